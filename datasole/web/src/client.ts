// DatasoleClient: the browser side of protocol v1 with the reference client's defects fixed
// (REFERENCE-BEHAVIOR §13, §15 D11–D13).
import { subprotocolBatch, subprotocolV1, tokenProtocol } from "./batch";
import type {
  ContractCrdtStore,
  EmitArgs,
  EventData,
  EventName,
  OnlyUntyped,
  PresenceInfo,
  PresenceTag,
  RpcArgs,
  RpcMethod,
  RpcResult,
  StateKey,
  StateValue,
  Untyped,
} from "./contract";
import { CrdtStore, type CrdtOp, type CrdtState } from "./crdt";
import { closeError, DatasoleError } from "./errors";
import { parseAnswer, parsePos, Streams, type Pos } from "./history";
import { openDirect, openWorker, WorkerUnavailable, type Link, type LinkEvents } from "./link";
import {
  joinEvent,
  leaveEvent,
  parseChange,
  parseEntries,
  parseStats,
  presenceMethod,
  presenceStatsMethod,
  type PresenceChange,
  type PresenceEntry,
  type PresenceStats,
} from "./presence";
import { probe } from "./probe";
import { encodeFrame, Op, parsePayload, type Frame } from "./protocol";
import { StateStore } from "./state";
import { deliver, unsubscriber, type Unsubscribe } from "./subscription";

/** ConnectionState is where the client is in its connection life cycle. */
export type ConnectionState = "disconnected" | "connecting" | "connected" | "reconnecting";

/** ConnectionInfo details a connection state change. */
export interface ConnectionInfo {
  /** attempt is the consecutive failure count behind a reconnecting state. */
  attempt?: number;
  /** delay is the wait (ms) before the next attempt. */
  delay?: number;
  /** code and reason come from the WebSocket close that caused the change. */
  code?: number;
  reason?: string;
  /** gaveUp is set when the reconnect budget is exhausted. */
  gaveUp?: boolean;
  /** error says why the connection failed or closed, when the client knows (see DatasoleError.code). */
  error?: DatasoleError;
}

/** DatasoleClientOptions configures a client; only url is required. */
export interface DatasoleClientOptions {
  /** url is the server's base URL (http, https, ws or wss). */
  url: string;
  /** path is the endpoint path; default "/__ds". */
  path?: string;
  /**
   * auth.token is the credential. By default it is sent as the `token` query parameter (v1);
   * with `sendAs: "subprotocol"` it is offered as the WebSocket subprotocol
   * `datasole.token.<token>` instead, which keeps it out of URLs and access logs (the server
   * must read it from there).
   */
  auth?: { token?: string; sendAs?: "query" | "subprotocol" };
  /** useWorker runs the socket and zlib in a dedicated worker; default true where Worker exists. */
  useWorker?: boolean;
  /** workerUrl is the worker script; default `<path>/datasole-worker.iife.min.js` on the page's origin. */
  workerUrl?: string;
  /** workerTimeout is how long (ms) the worker script may take to start before direct mode is used; default 10000. */
  workerTimeout?: number;
  /** useSharedArrayBuffer is accepted for v1 compatibility and ignored (one ordered path). */
  useSharedArrayBuffer?: boolean;
  /** reconnect enables automatic reconnection after a lost connection; default true. */
  reconnect?: boolean;
  /** reconnectInterval is the backoff base (ms); default 1000. */
  reconnectInterval?: number;
  /** maxReconnectAttempts bounds consecutive failed attempts; default 10. */
  maxReconnectAttempts?: number;
  /** rpcTimeout is the default per-call timeout (ms); default 30000. */
  rpcTimeout?: number;
  /** pingInterval is the keepalive period (ms); 0 disables; default 25000. */
  pingInterval?: number;
  /** pingTimeout is how long (ms) to wait for traffic after a PING before the link counts as dead; default 10000. */
  pingTimeout?: number;
  /**
   * probe asks the server why a WebSocket upgrade failed (a plain GET of the same URL with
   * `ds-probe=1`), so a failed connect rejects with a specific error; default true.
   */
  probe?: boolean;
}

/** RpcOptions tunes one call. */
export interface RpcOptions {
  /** timeout overrides the client's rpcTimeout for this call (ms). */
  timeout?: number;
}

/** ServerEvent is what event handlers receive. */
export interface ServerEvent<T = unknown> {
  event: string;
  data: T;
  /** timestamp is the local receive time (ms), as in the v1 client. */
  timestamp: number;
  /** serverTimestamp is the server's send time (ms), when it sent one. */
  serverTimestamp?: number;
}

/**
 * RecoverHandler learns how a recovery of a history stream ended: recovered true when every
 * missed event was delivered, false when some are lost for good (the server's window passed
 * or its history was lost) and what depends on the stream must be reloaded. Streams are
 * named "a" (events to everyone), "u:<user>" and "t:<tag>".
 */
export type RecoverHandler = (stream: string, recovered: boolean) => void;

/** EventHandler handles one server event. */
export type EventHandler<T = unknown> = (event: ServerEvent<T>) => void;

/** CrdtStoreOf is what registerCrdt returns: the plain store, or its contract-checked view. */
export type CrdtStoreOf<C> = Untyped<C> extends true ? CrdtStore : ContractCrdtStore<C>;

// An event body with a position, on its way through the history rules.
interface Positioned {
  body: Record<string, unknown> & { event: string };
  pos: Pos;
}

interface Pending {
  method: string;
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

const resyncMethod = "$ds.resync";
const recoverMethod = "$ds.recover";
const maxRecoverStreams = 64;
const methodNotFound = -32601;
const maxEventName = 256;
const maxQueuedCrdtOps = 1000;
const probeTimeout = 5000;

/**
 * DatasoleClient connects a page to a datasole server: RPC, events, live state and CRDTs.
 *
 * C is the server's contract (e.g. the AppContract that `datasole gen ts` writes): with it,
 * method and event names, parameters, results, event data, state values and CRDT handles
 * are checked by the compiler. Without it (the default) nothing is checked and results are
 * `unknown` unless a type argument says otherwise, as in the v1 client.
 */
export class DatasoleClient<C = any> {
  private readonly opts: Required<Omit<DatasoleClientOptions, "auth" | "useSharedArrayBuffer">> & { token?: string };
  private readonly protocols: string[];
  private readonly tokenInProtocol: boolean;
  // plainV1 is set once a server failed the upgrade that offered subprotocols but would admit
  // the page: browsers fail a handshake whose response selects none of the offered
  // subprotocols, which is what a v1 server that knows none of them answers.
  private plainV1 = false;
  private state: ConnectionState = "disconnected";
  private link: Link | null = null;
  private connecting: Promise<void> | null = null;
  private abortConnect: ((e: Error) => void) | null = null;
  private userClosed = true;
  private workerFailed = false;
  private attempts = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private pingTimer: ReturnType<typeof setInterval> | undefined;
  private pongTimer: ReturnType<typeof setTimeout> | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly handlers = new Map<string, Set<EventHandler>>();
  private readonly stores = new Map<string, StateStore>();
  private readonly stateListeners = new Set<(s: ConnectionState, info: ConnectionInfo) => void>();
  private readonly errorListeners = new Set<(e: DatasoleError) => void>();
  private crdts: CrdtStore | null = null;
  private readonly crdtQueue: Uint8Array[] = [];
  private readonly resyncWanted = new Set<string>();
  private resyncInFlight = false;
  private resyncUnsupported = false;
  // Positions live here, on the page thread, for the client's life: a worker is one link's
  // transport and is replaced on every reconnect, so it never holds them.
  private readonly history = new Streams<Positioned>();
  private readonly recoverListeners = new Set<RecoverHandler>();
  private recoverCalls = 0;

  constructor(options: DatasoleClientOptions) {
    if (!options || typeof options.url !== "string") throw new TypeError("datasole: options.url is required");
    const path = options.path ?? "/__ds";
    const token = options.auth?.token || undefined;
    this.tokenInProtocol = token !== undefined && options.auth?.sendAs === "subprotocol";
    this.protocols = [subprotocolV1, subprotocolBatch];
    if (this.tokenInProtocol) this.protocols.push(tokenProtocol(token!));
    this.opts = {
      url: options.url,
      path,
      token: this.tokenInProtocol ? undefined : token,
      useWorker: options.useWorker ?? typeof Worker !== "undefined",
      workerUrl: options.workerUrl ?? `${path.replace(/\/$/, "")}/datasole-worker.iife.min.js`,
      workerTimeout: options.workerTimeout ?? 10_000,
      reconnect: options.reconnect ?? true,
      reconnectInterval: options.reconnectInterval ?? 1000,
      maxReconnectAttempts: options.maxReconnectAttempts ?? 10,
      rpcTimeout: options.rpcTimeout ?? 30_000,
      pingInterval: options.pingInterval ?? 25_000,
      pingTimeout: options.pingTimeout ?? 10_000,
      probe: options.probe ?? true,
    };
  }

  /**
   * connect opens the connection and resolves once it is open. While connected or connecting
   * it returns the same outcome again. If the first attempt fails the promise rejects and, with
   * reconnect on, the retry schedule keeps going as in v1.
   */
  connect(): Promise<void> {
    this.userClosed = false;
    if (this.state === "connected") return Promise.resolve();
    if (this.connecting) return this.connecting;
    clearTimeout(this.retryTimer);
    return this.open();
  }

  /** disconnect closes the connection for good: no reconnect follows until connect is called. */
  async disconnect(): Promise<void> {
    this.userClosed = true;
    clearTimeout(this.retryTimer);
    this.drop(1000, "client disconnect");
    this.attempts = 0;
    this.setState("disconnected", { code: 1000 });
  }

  /** getConnectionState returns the current connection state. */
  getConnectionState(): ConnectionState {
    return this.state;
  }

  /** onConnectionState calls handler now and on every connection state change. */
  onConnectionState(handler: (state: ConnectionState, info: ConnectionInfo) => void): Unsubscribe {
    this.stateListeners.add(handler);
    handler(this.state, {});
    return unsubscriber(() => this.stateListeners.delete(handler));
  }

  /** onError receives server ERROR frames that do not belong to a pending call (e.g. a rate-limited emit). */
  onError(handler: (error: DatasoleError) => void): Unsubscribe {
    this.errorListeners.add(handler);
    return unsubscriber(() => this.errorListeners.delete(handler));
  }

  /**
   * rpc calls a server method and resolves with its result. It rejects with a DatasoleError on
   * an error reply, a server ERROR frame for the call, a timeout or a lost connection. With a
   * contract, params may be left out only when the method's parameters may be empty.
   */
  rpc<T = unknown>(method: OnlyUntyped<C, string>, params?: unknown, options?: RpcOptions): Promise<T>;
  rpc<M extends RpcMethod<C>>(method: M, ...args: RpcArgs<C, M, RpcOptions>): Promise<RpcResult<C, M>>;
  rpc(method: string, params?: unknown, options?: RpcOptions): Promise<unknown> {
    return this.call(method, params, options);
  }

  private call(method: string, params?: unknown, options?: RpcOptions): Promise<unknown> {
    if (this.state !== "connected" || !this.link) return Promise.reject(new DatasoleError("Not connected", { code: "not-connected" }));
    const id = this.nextId;
    // Ids count 1, 2, 3 … and skip 0 after wrapping, which would collide with uncorrelated frames.
    this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    const frame = encodeFrame(Op.RpcReq, id, { method, params: params === undefined ? null : params, correlationId: id });
    const timeout = options?.timeout ?? this.opts.rpcTimeout;
    return new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new DatasoleError(`RPC timeout: ${method} (${timeout}ms)`, { code: "timeout" }));
      }, timeout);
      this.pending.set(id, { method, resolve, reject, timer });
      this.link!.send(frame);
    });
  }

  /** on registers a handler for a server event; the result removes it. */
  on<T = unknown>(event: OnlyUntyped<C, string>, handler: EventHandler<T>): Unsubscribe;
  on<E extends EventName<C>>(event: E, handler: EventHandler<EventData<C, E>>): Unsubscribe;
  on(event: string, handler: EventHandler<never>): Unsubscribe {
    return this.addHandler(event, handler as EventHandler);
  }

  private addHandler(event: string, handler: EventHandler): Unsubscribe {
    let set = this.handlers.get(event);
    if (!set) this.handlers.set(event, (set = new Set()));
    set.add(handler);
    return unsubscriber(() => this.removeHandler(event, handler));
  }

  /** off removes a handler registered with on. */
  off<T = unknown>(event: OnlyUntyped<C, string>, handler: EventHandler<T>): void;
  off<E extends EventName<C>>(event: E, handler: EventHandler<EventData<C, E>>): void;
  off(event: string, handler: EventHandler<never>): void {
    this.removeHandler(event, handler as EventHandler);
  }

  private removeHandler(event: string, handler: EventHandler): void {
    const set = this.handlers.get(event);
    set?.delete(handler as EventHandler);
    if (set?.size === 0) this.handlers.delete(event);
  }

  /** emit sends a fire-and-forget event to the server; it throws when not connected. */
  emit(event: OnlyUntyped<C, string>, data?: unknown): void;
  emit<E extends EventName<C>>(event: E, ...data: EmitArgs<C, E>): void;
  emit(event: string, data?: unknown): void {
    if (typeof event !== "string" || event.length === 0 || event.length > maxEventName) {
      throw new TypeError(`datasole: event name must be 1–${maxEventName} characters`);
    }
    if (this.state !== "connected" || !this.link) throw new DatasoleError("Not connected", { code: "not-connected" });
    this.link.send(encodeFrame(Op.EventC2S, 0, data === undefined ? { event } : { event, data }));
  }

  /**
   * onRecover calls handler after every recovery of a history stream (after a reconnect, or
   * when an offset gap showed events were missed) with whether every missed event was
   * delivered. recovered false means events were lost for good: reload what the stream feeds.
   */
  onRecover(handler: RecoverHandler): Unsubscribe {
    this.recoverListeners.add(handler);
    return unsubscriber(() => this.recoverListeners.delete(handler));
  }

  /**
   * presence lists the connections in a tag the server tracks (TrackPresence), across its
   * nodes. The client must be in the tag (else it rejects with code -32004). With a contract
   * whose presence section declares the tag, entries' info is typed by it.
   */
  presence<I = unknown>(tag: OnlyUntyped<C, string>, options?: RpcOptions): Promise<PresenceEntry<I>[]>;
  presence<T extends PresenceTag<C>>(tag: T, options?: RpcOptions): Promise<PresenceEntry<PresenceInfo<C, T>>[]>;
  async presence(tag: string, options?: RpcOptions): Promise<PresenceEntry[]> {
    const entries = parseEntries(await this.call(presenceMethod, { tag }, options));
    if (!entries) throw new DatasoleError(`Invalid RPC response: ${presenceMethod}`, { code: "bad-response" });
    return entries;
  }

  /** presenceStats counts the connections and distinct users in a tracked tag without listing them (for big rooms). */
  async presenceStats(tag: PresenceTag<C>, options?: RpcOptions): Promise<PresenceStats> {
    const stats = parseStats(await this.call(presenceStatsMethod, { tag }, options));
    if (!stats) throw new DatasoleError(`Invalid RPC response: ${presenceStatsMethod}`, { code: "bad-response" });
    return stats;
  }

  /** onJoin calls handler when a connection joins tag (the server must track it with Events on). */
  onJoin<I = unknown>(tag: OnlyUntyped<C, string>, handler: (change: PresenceChange<I>) => void): Unsubscribe;
  onJoin<T extends PresenceTag<C>>(tag: T, handler: (change: PresenceChange<PresenceInfo<C, T>>) => void): Unsubscribe;
  onJoin(tag: string, handler: (change: PresenceChange<never>) => void): Unsubscribe {
    return this.onPresence(joinEvent, tag, handler as (c: PresenceChange) => void);
  }

  /** onLeave calls handler when a connection leaves tag (or closes). */
  onLeave<I = unknown>(tag: OnlyUntyped<C, string>, handler: (change: PresenceChange<I>) => void): Unsubscribe;
  onLeave<T extends PresenceTag<C>>(tag: T, handler: (change: PresenceChange<PresenceInfo<C, T>>) => void): Unsubscribe;
  onLeave(tag: string, handler: (change: PresenceChange<never>) => void): Unsubscribe {
    return this.onPresence(leaveEvent, tag, handler as (c: PresenceChange) => void);
  }

  private onPresence(event: string, tag: string, handler: (c: PresenceChange) => void): Unsubscribe {
    return this.addHandler(event, (e) => {
      const c = parseChange(e.data);
      if (c && c.tag === tag) handler(c);
    });
  }

  /** subscribeState calls handler now with the key's value (possibly undefined) and after every change. */
  subscribeState<T = unknown>(key: OnlyUntyped<C, string>, handler: (value: T) => void): Unsubscribe;
  subscribeState<K extends StateKey<C>>(key: K, handler: (value: StateValue<C, K> | undefined) => void): Unsubscribe;
  subscribeState(key: string, handler: (value: never) => void): Unsubscribe {
    const store = this.store(key);
    const fn = handler as (v: unknown) => void;
    store.subscribers.add(fn);
    fn(store.value);
    return unsubscriber(() => store.subscribers.delete(fn));
  }

  /** getState returns the key's current value, or undefined before anything arrived. */
  getState<T = unknown>(key: OnlyUntyped<C, string>): T | undefined;
  getState<K extends StateKey<C>>(key: K): StateValue<C, K> | undefined;
  getState(key: string): unknown {
    return this.stores.get(key)?.value;
  }

  /**
   * registerCrdt returns the client's CRDT store, creating it with nodeId (default: random) on
   * first use. Replicas registered on it send CRDT_OP frames and merge CRDT_STATE frames.
   */
  registerCrdt(nodeId?: string): CrdtStoreOf<C> {
    if (!this.crdts) {
      this.crdts = new CrdtStore(nodeId ?? randomNodeId(), (key, op) => this.sendCrdt(key, op));
    }
    // With a contract the same store is handed out through its checked view.
    return this.crdts as CrdtStoreOf<C>;
  }

  private store(key: string): StateStore {
    let s = this.stores.get(key);
    if (!s) this.stores.set(key, (s = new StateStore()));
    return s;
  }

  private setState(state: ConnectionState, info: ConnectionInfo): void {
    if (state === this.state && state !== "reconnecting") return;
    this.state = state;
    for (const fn of [...this.stateListeners]) {
      try {
        fn(state, info);
      } catch (e) {
        setTimeout(() => {
          throw e;
        });
      }
    }
  }

  private open(): Promise<void> {
    this.drop(1000, "reconnect");
    this.setState("connecting", { attempt: this.attempts });
    const base = this.opts.url.replace(/^http/, "ws").replace(/\/$/, "");
    const url = `${base}${this.opts.path}${this.opts.token ? `?${new URLSearchParams({ token: this.opts.token })}` : ""}`;
    const p = new Promise<void>((resolve, reject) => {
      let opened = false;
      this.abortConnect = reject;
      const events: LinkEvents = {
        open: () => {
          if (this.link !== link) return;
          opened = true;
          this.connecting = null;
          this.abortConnect = null;
          this.attempts = 0;
          this.setState("connected", {});
          this.startKeepalive();
          for (const f of this.crdtQueue.splice(0)) link.send(f);
          // Ask for whatever the kept streams missed while there was no connection; the
          // server replays it before answering, and before that answer nothing is dropped.
          if (this.history.size > 0) this.recover(null);
          resolve();
        },
        frame: (f) => {
          if (this.link === link) this.route(f);
        },
        close: (code, reason, error) => {
          if (this.link !== link) return;
          this.link = null;
          this.stopKeepalive();
          this.failPending("Connection closed");
          if (error instanceof WorkerUnavailable) {
            // The worker script is missing or broken: carry on without it instead of hanging.
            this.workerFailed = true;
            this.connecting = null;
            this.abortConnect = null;
            this.open().then(resolve, reject);
            return;
          }
          if (opened) {
            this.connecting = null;
            this.abortConnect = null;
            this.afterClose(code, reason, closeError(code, reason));
            return;
          }
          // The upgrade failed: learn why before reporting it. Meanwhile the state stays
          // "connecting" and connect() returns this same promise.
          void this.explain(url, code).then((err) => {
            if (this.connecting !== p) return; // disconnect() or a newer attempt took over
            this.connecting = null;
            this.abortConnect = null;
            if (offered.length > 0 && !this.plainV1 && !this.tokenInProtocol && (err.code === "upgrade-failed" || err.code === "connection-failed")) {
              this.plainV1 = true;
              this.open().then(resolve, reject);
              return;
            }
            reject(err);
            this.afterClose(code, reason, err);
          });
        },
      };
      const offered = this.plainV1 ? [] : this.protocols;
      let link: Link;
      try {
        link =
          this.opts.useWorker && !this.workerFailed
            ? openWorker(this.opts.workerUrl, url, offered, this.opts.workerTimeout, events)
            : openDirect(url, offered, events);
      } catch (e) {
        this.connecting = null;
        this.abortConnect = null;
        this.setState("disconnected", {});
        reject(e instanceof Error ? e : new Error(String(e)));
        return;
      }
      this.link = link;
    });
    this.connecting = p;
    return p;
  }

  // drop abandons the current link (if any) without triggering a reconnect.
  private drop(code: number, reason: string): void {
    const link = this.link;
    this.link = null;
    this.connecting = null;
    this.stopKeepalive();
    this.failPending("Connection closed");
    this.abortConnect?.(new DatasoleError("Connection closed", { code }));
    this.abortConnect = null;
    link?.close(code, reason);
  }

  // explain says why an upgrade failed: by asking the server (see probe.ts) unless probing
  // is off, else only by its close code.
  private async explain(url: string, code: number): Promise<DatasoleError> {
    const generic = new DatasoleError(`Connection failed (${code})`, { code: "connection-failed", closeCode: code });
    if (!this.opts.probe || code !== 1006) return generic;
    try {
      return await probe({
        wsUrl: url,
        path: this.opts.path,
        token: this.opts.token !== undefined || this.tokenInProtocol,
        protocols: this.tokenInProtocol ? this.protocols : undefined,
        timeout: probeTimeout,
      });
    } catch {
      return generic;
    }
  }

  private afterClose(code: number, reason: string, error?: DatasoleError): void {
    if (this.userClosed || !this.opts.reconnect) {
      this.setState("disconnected", { code, reason, error });
      return;
    }
    if (this.attempts >= this.opts.maxReconnectAttempts) {
      this.setState("disconnected", { code, reason, gaveUp: true, error });
      return;
    }
    this.attempts++;
    const b = this.opts.reconnectInterval;
    const delay = b * Math.min(2 ** this.attempts, 64) + Math.random() * b;
    this.setState("reconnecting", { attempt: this.attempts, delay, code, reason, error });
    this.retryTimer = setTimeout(() => {
      this.open().catch(() => {});
    }, delay);
  }

  private failPending(message: string): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(new DatasoleError(message, { code: "closed" }));
    }
  }

  private startKeepalive(): void {
    const { pingInterval, pingTimeout } = this.opts;
    if (!(pingInterval > 0)) return;
    // v1 servers answer PING with PONG; any inbound frame counts as proof of life.
    this.pingTimer = setInterval(() => {
      if (this.pongTimer !== undefined || !this.link) return;
      this.link.send(encodeFrame(Op.Ping, 0, null));
      this.pongTimer = setTimeout(() => {
        this.pongTimer = undefined;
        const link = this.link;
        if (!link) return;
        link.close(4000, "ping timeout");
      }, pingTimeout);
    }, pingInterval);
  }

  private stopKeepalive(): void {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
    this.pingTimer = this.pongTimer = undefined;
  }

  private sendCrdt(key: string, op: CrdtOp): void {
    const frame = encodeFrame(Op.CrdtOp, 0, { key, op });
    if (this.state === "connected" && this.link) this.link.send(frame);
    else if (this.crdtQueue.length < maxQueuedCrdtOps) this.crdtQueue.push(frame);
  }

  private route(f: Frame): void {
    clearTimeout(this.pongTimer);
    this.pongTimer = undefined;
    if (f.opcode === Op.Pong) return;
    const body = parsePayload(f.payload) as Record<string, unknown> | null | undefined;
    switch (f.opcode) {
      case Op.RpcRes:
        return this.settle(f.correlationId, body);
      case Op.Error:
        return this.serverError(f.correlationId, body);
    }
    if (typeof body !== "object" || body === null) return;
    switch (f.opcode) {
      case Op.EventS2C: {
        if (typeof body.event !== "string") return;
        const ev = body as Positioned["body"];
        const pos = parsePos(body.pos);
        if (!pos) return this.dispatch(ev);
        const { deliver: now, recover } = this.history.arrive({ body: ev, pos });
        for (const e of now) this.dispatch(e.body);
        if (recover) this.recover([pos.s]);
        return;
      }
      case Op.StatePatch:
        if (typeof body.key !== "string") return;
        if (this.store(body.key).patch(body.patches, body.version, body.base) === "resync") this.requestResync(body.key);
        return;
      case Op.StateSnapshot:
        if (typeof body.key !== "string") return;
        this.resyncWanted.delete(body.key);
        this.store(body.key).snapshot(body.data, body.version);
        return;
      case Op.CrdtState:
        if (typeof body.key === "string" && typeof body.state === "object" && body.state !== null) {
          this.crdts?.merge(body.key, body.state as CrdtState);
        }
        return;
    }
  }

  private dispatch(body: Positioned["body"]): void {
    const set = this.handlers.get(body.event);
    if (!set) return;
    const ts = typeof body.timestamp === "number" ? body.timestamp : undefined;
    deliver(set, { event: body.event, data: body.data, timestamp: Date.now(), serverTimestamp: ts });
  }

  // recover asks the server for the events the named streams (null: every stream seen)
  // missed; it replays them, in order and with their positions, before it answers.
  private recover(names: string[] | null): void {
    const token = ++this.recoverCalls;
    const all = [...this.history.positions(names, token)];
    for (let i = 0; i < all.length; i += maxRecoverStreams) {
      const part = all.slice(i, i + maxRecoverStreams);
      const chunk = part.map(([name]) => name);
      this.call(recoverMethod, { streams: Object.fromEntries(part) }).then(
        (res) => this.recovered(chunk, res, token),
        // A lost connection or an unavailable backend: the next reconnect or gap asks again.
        () => this.history.abort(chunk, token),
      );
    }
  }

  private recovered(names: string[], res: unknown, token: number): void {
    const answers = (res as { streams?: unknown } | null)?.streams;
    const again: string[] = [];
    for (const name of names) {
      const own = typeof answers === "object" && answers !== null && Object.prototype.hasOwnProperty.call(answers, name);
      const a = parseAnswer(own ? (answers as Record<string, unknown>)[name] : undefined);
      if (!a) {
        this.history.abort([name], token);
        continue;
      }
      const s = this.history.settle(name, a, token);
      for (const e of s.deliver) this.dispatch(e.body);
      if (s.again) again.push(name);
      if (s.report !== undefined) {
        const report: [string, boolean] = [name, s.report];
        deliver([...this.recoverListeners].map((fn) => (r: [string, boolean]) => fn(...r)), report);
      }
    }
    if (again.length > 0) this.recover(again);
  }

  private settle(id: number, body: Record<string, unknown> | null | undefined): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      p.reject(new DatasoleError(`Invalid RPC response: ${p.method}`, { code: "bad-response" }));
      return;
    }
    const err = body.error as { message?: unknown; code?: unknown; data?: unknown } | undefined;
    if (!err) {
      p.resolve(body.result);
      return;
    }
    const message = typeof err === "object" && typeof err.message === "string" ? err.message : "RPC failed";
    const code = typeof err === "object" && typeof err.code === "number" ? err.code : undefined;
    p.reject(new DatasoleError(message, { code, data: typeof err === "object" ? err.data : undefined }));
  }

  private serverError(id: number, body: Record<string, unknown> | null | undefined): void {
    const b = typeof body === "object" && body !== null ? body : {};
    const e = new DatasoleError(typeof b.message === "string" ? b.message : "Server error", {
      code: typeof b.code === "number" || typeof b.code === "string" ? b.code : "server-error",
      retryAfter: typeof b.retryAfter === "number" ? b.retryAfter : undefined,
    });
    const p = id !== 0 ? this.pending.get(id) : undefined;
    if (p) {
      this.pending.delete(id);
      clearTimeout(p.timer);
      p.reject(e);
      return;
    }
    deliver(this.errorListeners, e);
  }

  // requestResync asks a versioning server for fresh snapshots of keys whose patches could not
  // be applied in order. Requests are batched per task and at most one is in flight.
  private requestResync(key: string): void {
    if (this.resyncUnsupported) return;
    this.resyncWanted.add(key);
    if (this.resyncInFlight) return;
    this.resyncInFlight = true;
    queueMicrotask(() => {
      const keys = [...this.resyncWanted];
      if (keys.length === 0 || this.state !== "connected") {
        this.resyncInFlight = false;
        return;
      }
      this.call(resyncMethod, { keys })
        .catch((e: unknown) => {
          if (e instanceof DatasoleError && e.code === methodNotFound) this.resyncUnsupported = true;
        })
        .finally(() => {
          this.resyncInFlight = false;
          // Keys answered by snapshots are gone from the set; whatever is left is asked again
          // by its next out-of-order patch.
          for (const k of keys) this.resyncWanted.delete(k);
        });
    });
  }
}

function randomNodeId(): string {
  const bytes = new Uint8Array(8);
  crypto.getRandomValues(bytes);
  return "c-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
