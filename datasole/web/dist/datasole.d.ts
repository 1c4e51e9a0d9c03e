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
}

/** Client options; only `url` is required. */
export interface DatasoleClientOptions {
  /** Server base URL (http, https, ws or wss). */
  url: string;
  /** Endpoint path; default "/__ds". */
  path?: string;
  /** `auth.token` is sent as the `token` query parameter. */
  auth?: { token?: string };
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

/** Stops a subscription: call it, or call its `unsubscribe` method. */
export interface Unsubscribe {
  (): void;
  unsubscribe(): void;
}

/** Rejection reason of failed calls, timeouts and server ERROR frames. */
export class DatasoleError extends Error {
  constructor(message: string, extra?: { code?: number | string; data?: unknown; retryAfter?: number });
  /** RPC error code (-32601, -32000, …), ERROR frame code, or a client code ("timeout", "closed", "not-connected", "bad-response"). */
  readonly code?: number | string;
  /** The RPC error's `data` member. */
  readonly data?: unknown;
  /** Rate-limit hint (ms) from an ERROR frame. */
  readonly retryAfter?: number;
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

/** Connects a page to a datasole server: RPC, events, live state and CRDTs. */
export class DatasoleClient {
  constructor(options: DatasoleClientOptions);
  /** Opens the connection; resolves once open (the same promise while connecting). */
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
  rpc<T = unknown>(method: string, params?: unknown, options?: RpcOptions): Promise<T>;
  /** Registers a handler for a server event. */
  on<T = unknown>(event: string, handler: EventHandler<T>): Unsubscribe;
  /** Removes a handler registered with on. */
  off<T = unknown>(event: string, handler: EventHandler<T>): void;
  /** Sends a fire-and-forget event; throws when not connected. */
  emit(event: string, data?: unknown): void;
  /** Calls handler now with the key's value (possibly undefined) and after every change. */
  subscribeState<T = unknown>(key: string, handler: (value: T) => void): Unsubscribe;
  /** The key's current value, or undefined before anything arrived. */
  getState<T = unknown>(key: string): T | undefined;
  /** The client's CRDT store, created with nodeId (default random) on first use. */
  registerCrdt(nodeId?: string): CrdtStore;
}
