// Type declarations for the datasole browser client (datasole.mjs and the global Datasole of
// datasole.iife.min.js). Maintained by hand; `tsc` checks them against the sources.

export as namespace Datasole;

/** Where the client is in its connection life cycle. */
export type ConnectionState = "disconnected" | "connecting" | "connected" | "reconnecting";

/** Details of a connection state change. */
export interface ConnectionInfo {
  /** Consecutive failure count behind a reconnecting state. */
  attempt?: number;
  /** Wait (ms) before the next attempt. */
  delay?: number;
  /** Close code of the WebSocket close that caused the change. */
  code?: number;
  /** Close reason of the WebSocket close that caused the change. */
  reason?: string;
  /** Set when the reconnect budget is exhausted. */
  gaveUp?: boolean;
  /** Why the connection failed or closed, when the client knows (see DatasoleError.code). */
  error?: DatasoleError;
}

/** Client options; only `url` is required. */
export interface DatasoleClientOptions {
  /** Server base URL (http, https, ws or wss). */
  url: string;
  /** Endpoint path; default "/__ds". */
  path?: string;
  /**
   * The credential: sent as the `token` query parameter (default), or with
   * `sendAs: "subprotocol"` offered as the WebSocket subprotocol `datasole.token.<token>`,
   * which keeps it out of URLs (the server must read it from there).
   */
  auth?: { token?: string; sendAs?: "query" | "subprotocol" };
  /** Run the socket and zlib in a dedicated worker; default true where Worker exists. */
  useWorker?: boolean;
  /** Worker script URL; default `<path>/datasole-worker.iife.min.js` on the page's origin. */
  workerUrl?: string;
  /** Time (ms) the worker script may take to start before direct mode is used; default 10000. */
  workerTimeout?: number;
  /** Accepted for v1 compatibility and ignored. */
  useSharedArrayBuffer?: boolean;
  /** Reconnect automatically after a lost connection; default true. */
  reconnect?: boolean;
  /** Backoff base (ms); default 1000. */
  reconnectInterval?: number;
  /** Consecutive failed attempts before giving up; default 10. */
  maxReconnectAttempts?: number;
  /** Default per-call RPC timeout (ms); default 30000. */
  rpcTimeout?: number;
  /** Keepalive PING period (ms); 0 disables; default 25000. */
  pingInterval?: number;
  /** Wait (ms) for traffic after a PING before the link counts as dead; default 10000. */
  pingTimeout?: number;
  /** Ask the server why a WebSocket upgrade failed (a GET with `ds-probe=1`); default true. */
  probe?: boolean;
}

/** Options for one RPC call. */
export interface RpcOptions {
  /** Overrides the client's rpcTimeout (ms). */
  timeout?: number;
}

/** What event handlers receive. */
export interface ServerEvent<T = unknown> {
  event: string;
  data: T;
  /** Local receive time (ms). */
  timestamp: number;
  /** The server's send time (ms), when present. */
  serverTimestamp?: number;
}

/** Handles one server event. */
export type EventHandler<T = unknown> = (event: ServerEvent<T>) => void;

/**
 * Learns how a recovery of a history stream ended: true when every missed event was
 * delivered, false when some are lost for good (reload what the stream feeds). Streams are
 * "a" (events to everyone), "u:<user>" and "t:<tag>".
 */
export type RecoverHandler = (stream: string, recovered: boolean) => void;

/** One connection in a tracked tag. */
export interface PresenceEntry<I = unknown> {
  /** The connection's id, unique across the server's nodes. */
  conn: string;
  /** The connection's user id ("" for anonymous connections). */
  user: string;
  /** What the server's PresenceOptions.Info selected, when it attaches any. */
  info?: I;
}

/** A join or a leave in a tracked tag. */
export interface PresenceChange<I = unknown> extends PresenceEntry<I> {
  /** The tag joined or left. */
  tag: string;
}

/** Connection and distinct-user counts of a tracked tag. */
export interface PresenceStats {
  conns: number;
  users: number;
}

/** Stops a subscription: call it, or call its `unsubscribe` method. */
export interface Unsubscribe {
  (): void;
  unsubscribe(): void;
}

/** Why a connection could not be opened or was closed. */
export type ConnectionErrorCode =
  | "unauthorized"
  | "forbidden-origin"
  | "not-found"
  | "unreachable"
  | "over-capacity"
  | "server-error"
  | "upgrade-failed"
  | "connection-failed"
  | "session-expired"
  | "revoked"
  | "policy"
  | "too-big"
  | "server-closed";

/** Rejection reason of failed calls, timeouts, server ERROR frames and failed connections. */
export class DatasoleError extends Error {
  constructor(
    message: string,
    extra?: { code?: number | string; data?: unknown; retryAfter?: number; status?: number; closeCode?: number },
  );
  /** RPC error code (-32601, -32000, …), ERROR frame code, a client code ("timeout", "closed", "not-connected", "bad-response"), or a ConnectionErrorCode. */
  readonly code?: number | string;
  /** The RPC error's `data` member. */
  readonly data?: unknown;
  /** Rate-limit hint (ms) from an ERROR frame. */
  readonly retryAfter?: number;
  /** HTTP status the server refused the connection with, when the client learned it. */
  readonly status?: number;
  /** WebSocket close code behind a connection error. */
  readonly closeCode?: number;
}

/** The three replicated types of protocol v1. */
export type CrdtType = "pn-counter" | "lww-register" | "lww-map";

/** The `op` member of a CRDT_OP frame. */
export interface CrdtOp {
  type: CrdtType;
  nodeId: string;
  timestamp: number;
  op: "increment" | "decrement" | "set" | "remove";
  value?: unknown;
  key?: string;
}

/** Per-field stamp of an extended lww-map state (`metadata.fields`). */
export interface FieldMeta {
  timestamp: number;
  nodeId: string;
  deleted?: boolean;
}

/** The `state` member of a CRDT_STATE frame. */
export interface CrdtState {
  type: CrdtType;
  value?: unknown;
  metadata: {
    type?: CrdtType;
    nodeId: string;
    timestamp: number;
    version: number;
    vector?: { increments: Record<string, number>; decrements: Record<string, number> };
    fields?: Record<string, FieldMeta>;
  };
}

/** What every replica offers. */
export abstract class Crdt<T = unknown> {
  abstract readonly type: CrdtType;
  /** CRDT key the replica is registered under. */
  readonly key: string;
  /** This writer's id in ops and vectors. */
  readonly nodeId: string;
  /** Local change count; not comparable across replicas. */
  version: number;
  /** Current value. */
  abstract get value(): T;
  /** Folds a CRDT_STATE in; returns whether the value changed. */
  abstract merge(state: CrdtState): boolean;
  /** Calls fn now and after every change. */
  subscribe(fn: (value: T) => void): Unsubscribe;
}

/** A counter every node may increment and decrement. */
export class PNCounter extends Crdt<number> {
  readonly type: "pn-counter";
  get value(): number;
  /** Adds n (default 1) and sends the op. */
  increment(n?: number): void;
  /** Subtracts n (default 1) and sends the op. */
  decrement(n?: number): void;
  merge(state: CrdtState): boolean;
}

/** One value; the latest write wins. */
export class LWWRegister<T = unknown> extends Crdt<T | undefined> {
  readonly type: "lww-register";
  get value(): T | undefined;
  /** Writes v locally and sends the op. */
  set(v: T): void;
  merge(state: CrdtState): boolean;
}

/** A map of independent last-writer-wins fields with tombstones. */
export class LWWMap<T = unknown> extends Crdt<Record<string, T>> {
  readonly type: "lww-map";
  get value(): Record<string, T>;
  /** One live field. */
  get(field: string): T | undefined;
  /** Writes one field and sends the op. */
  set(field: string, v: T): void;
  /** Removes one field (leaving a tombstone) and sends the op. */
  delete(field: string): void;
  merge(state: CrdtState): boolean;
}

/** Any registered replica. */
export type AnyCrdt = PNCounter | LWWRegister<unknown> | LWWMap<unknown>;

/** The replicas registered on one client. */
export class CrdtStore {
  /** This client's id in every op it sends. */
  readonly nodeId: string;
  /** Creates (or returns the existing) replica for key. */
  register(key: string, type: "pn-counter"): PNCounter;
  register<T>(key: string, type: "lww-register", initial?: T): LWWRegister<T>;
  register<T>(key: string, type: "lww-map"): LWWMap<T>;
  /** The replica registered under key. */
  get(key: string): AnyCrdt | undefined;
  /** Folds a CRDT_STATE into the replica for key, if registered. */
  merge(key: string, state: CrdtState): void;
}

/** One RPC method of a contract: its parameter and result types. */
export interface RpcSpec {
  params: unknown;
  result: unknown;
}

/** One CRDT key of a contract: a counter, or a register or map of `value`s. */
export type CrdtSpec = { type: "pn-counter" } | { type: "lww-register"; value: unknown } | { type: "lww-map"; value: unknown };

/**
 * A server's contract: RPC methods (name → params and result), events (name → data), state
 * keys (key → value), CRDT keys (key → type) and presence tags (tag or tag pattern → the
 * info of their entries). `datasole gen ts` writes one (AppContract) from the Go contract;
 * crdt and presence sections are written by hand.
 */
export interface Contract {
  rpc?: { [method: string]: RpcSpec };
  events?: { [event: string]: unknown };
  state?: { [key: string]: unknown };
  crdt?: { [key: string]: CrdtSpec };
  presence?: { [tag: string]: unknown };
}

type Untyped<C> = 0 extends 1 & C ? true : false;
type OnlyUntyped<C, T> = Untyped<C> extends true ? T : never;
type Section<C, S extends keyof Contract> = C extends { [K in S]: infer X } ? X : {};
type MaybeOptional<T, Rest extends unknown[]> = undefined extends T
  ? [T?, ...Rest]
  : null extends T
    ? [T?, ...Rest]
    : {} extends T
      ? [T?, ...Rest]
      : [T, ...Rest];

/** The union of C's RPC method names. */
export type RpcMethod<C> = keyof Section<C, "rpc"> & string;
/** The union of C's event names. */
export type EventName<C> = keyof Section<C, "events"> & string;
/** The union of C's state keys. */
export type StateKey<C> = keyof Section<C, "state"> & string;
/** The union of C's CRDT keys. */
export type CrdtKey<C> = keyof Section<C, "crdt"> & string;
/** The tags (or tag patterns) of C's presence section; any string when C declares none. */
export type PresenceTag<C> = C extends { presence: infer P } ? keyof P & string : string;
/** The info type of tag T in C's presence section; unknown when C declares none. */
export type PresenceInfo<C, T extends string> = C extends { presence: infer P } ? (T extends keyof P ? P[T] : never) : unknown;
/** The parameter type of method M of contract C. */
export type RpcParams<C, M extends RpcMethod<C>> = Section<C, "rpc">[M] extends { params: infer P } ? P : never;
/** The result type of method M of contract C. */
export type RpcResult<C, M extends RpcMethod<C>> = Section<C, "rpc">[M] extends { result: infer R } ? R : never;
/** The data type of event E of contract C. */
export type EventData<C, E extends EventName<C>> = Section<C, "events">[E];
/** The value type of state key K of contract C. */
export type StateValue<C, K extends StateKey<C>> = Section<C, "state">[K];
type CrdtSpecOf<C, K extends CrdtKey<C>> = Section<C, "crdt">[K] extends infer S extends CrdtSpec ? S : never;
/** The replica type of CRDT key K of contract C. */
export type CrdtHandle<C, K extends CrdtKey<C>> =
  CrdtSpecOf<C, K> extends { type: "pn-counter" }
    ? PNCounter
    : CrdtSpecOf<C, K> extends { type: "lww-register"; value: infer T }
      ? LWWRegister<T>
      : CrdtSpecOf<C, K> extends { type: "lww-map"; value: infer T }
        ? LWWMap<T>
        : never;
type CrdtRegisterArgs<C, K extends CrdtKey<C>> =
  CrdtSpecOf<C, K> extends { type: "lww-register"; value: infer T }
    ? [type: "lww-register", initial?: T]
    : [type: CrdtSpecOf<C, K>["type"]];

/** The client's CRDT store as seen through contract C: keys and value types are checked. */
export interface ContractCrdtStore<C> {
  /** This client's id in every op it sends. */
  readonly nodeId: string;
  /** Creates (or returns the existing) replica for key. */
  register<K extends CrdtKey<C>>(key: K, ...args: CrdtRegisterArgs<C, K>): CrdtHandle<C, K>;
  /** The replica registered under key. */
  get<K extends CrdtKey<C>>(key: K): CrdtHandle<C, K> | undefined;
  /** Folds a CRDT_STATE into the replica for key, if registered. */
  merge(key: CrdtKey<C>, state: CrdtState): void;
}

/** What registerCrdt returns: the plain store, or its contract-checked view. */
export type CrdtStoreOf<C> = Untyped<C> extends true ? CrdtStore : ContractCrdtStore<C>;

/**
 * Connects a page to a datasole server: RPC, events, live state and CRDTs.
 *
 * C is the server's contract (e.g. the AppContract of `datasole gen ts`): with it, names,
 * parameters, results, event data, state values and CRDT handles are checked. Without it
 * (the default) nothing is checked, as in the v1 client.
 */
export class DatasoleClient<C = any> {
  constructor(options: DatasoleClientOptions);
  /** Opens the connection; resolves once open (the same promise while connecting). A failed first attempt rejects with a DatasoleError whose code says why. */
  connect(): Promise<void>;
  /** Closes the connection for good: no reconnect follows until connect is called. */
  disconnect(): Promise<void>;
  /** The current connection state. */
  getConnectionState(): ConnectionState;
  /** Calls handler now and on every connection state change. */
  onConnectionState(handler: (state: ConnectionState, info: ConnectionInfo) => void): Unsubscribe;
  /** Receives server ERROR frames that do not belong to a pending call. */
  onError(handler: (error: DatasoleError) => void): Unsubscribe;
  /** Calls a server method; rejects with DatasoleError on error reply, ERROR frame, timeout or lost connection. */
  rpc<T = unknown>(method: OnlyUntyped<C, string>, params?: unknown, options?: RpcOptions): Promise<T>;
  rpc<M extends RpcMethod<C>>(method: M, ...args: MaybeOptional<RpcParams<C, M>, [options?: RpcOptions]>): Promise<RpcResult<C, M>>;
  /** Registers a handler for a server event. */
  on<T = unknown>(event: OnlyUntyped<C, string>, handler: EventHandler<T>): Unsubscribe;
  on<E extends EventName<C>>(event: E, handler: EventHandler<EventData<C, E>>): Unsubscribe;
  /** Removes a handler registered with on. */
  off<T = unknown>(event: OnlyUntyped<C, string>, handler: EventHandler<T>): void;
  off<E extends EventName<C>>(event: E, handler: EventHandler<EventData<C, E>>): void;
  /** Sends a fire-and-forget event; throws when not connected. */
  emit(event: OnlyUntyped<C, string>, data?: unknown): void;
  emit<E extends EventName<C>>(event: E, ...data: MaybeOptional<EventData<C, E>, []>): void;
  /** Calls handler now with the key's value (possibly undefined) and after every change. */
  subscribeState<T = unknown>(key: OnlyUntyped<C, string>, handler: (value: T) => void): Unsubscribe;
  subscribeState<K extends StateKey<C>>(key: K, handler: (value: StateValue<C, K> | undefined) => void): Unsubscribe;
  /** The key's current value, or undefined before anything arrived. */
  getState<T = unknown>(key: OnlyUntyped<C, string>): T | undefined;
  getState<K extends StateKey<C>>(key: K): StateValue<C, K> | undefined;
  /** The client's CRDT store, created with nodeId (default random) on first use. */
  registerCrdt(nodeId?: string): CrdtStoreOf<C>;
  /** Calls handler after every recovery of a history stream (after a reconnect or an offset gap). */
  onRecover(handler: RecoverHandler): Unsubscribe;
  /** Lists the connections in a tracked tag, across the server's nodes; the client must be in the tag. */
  presence<I = unknown>(tag: OnlyUntyped<C, string>, options?: RpcOptions): Promise<PresenceEntry<I>[]>;
  presence<T extends PresenceTag<C>>(tag: T, options?: RpcOptions): Promise<PresenceEntry<PresenceInfo<C, T>>[]>;
  /** Counts the connections and distinct users in a tracked tag without listing them. */
  presenceStats(tag: PresenceTag<C>, options?: RpcOptions): Promise<PresenceStats>;
  /** Calls handler when a connection joins tag (the server must track it with Events on). */
  onJoin<I = unknown>(tag: OnlyUntyped<C, string>, handler: (change: PresenceChange<I>) => void): Unsubscribe;
  onJoin<T extends PresenceTag<C>>(tag: T, handler: (change: PresenceChange<PresenceInfo<C, T>>) => void): Unsubscribe;
  /** Calls handler when a connection leaves tag (or closes). */
  onLeave<I = unknown>(tag: OnlyUntyped<C, string>, handler: (change: PresenceChange<I>) => void): Unsubscribe;
  onLeave<T extends PresenceTag<C>>(tag: T, handler: (change: PresenceChange<PresenceInfo<C, T>>) => void): Unsubscribe;
}
