// Local CRDT replicas (PROTOCOL §5.9–5.10, REFERENCE-BEHAVIOR §8.1, D3, D5). Local changes
// produce CRDT_OP bodies; CRDT_STATE from the server merges in.
import { deliver, unsubscriber, type Unsubscribe } from "./subscription";

/** CrdtType names the three replicated types of protocol v1. */
export type CrdtType = "pn-counter" | "lww-register" | "lww-map";

/** CrdtOp is the `op` member of a CRDT_OP frame. */
export interface CrdtOp {
  type: CrdtType;
  nodeId: string;
  timestamp: number;
  op: "increment" | "decrement" | "set" | "remove";
  value?: unknown;
  key?: string;
}

/** FieldMeta is the per-field LWW stamp an extended lww-map state carries in metadata.fields. */
export interface FieldMeta {
  timestamp: number;
  nodeId: string;
  deleted?: boolean;
}

/** CrdtState is the `state` member of a CRDT_STATE frame. */
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

type Send = (op: CrdtOp) => void;
type Listener<T> = (value: T) => void;

const forbiddenKeys = new Set(["__proto__", "constructor", "prototype"]);
const maxMapEntries = 10_000;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

// newer reports whether stamp (ts, node) beats (curTs, curNode): later time, ties to the
// lexicographically greater node id, so every replica picks the same winner (D5).
function newer(ts: number, node: string, curTs: number, curNode: string): boolean {
  return ts > curTs || (ts === curTs && node > curNode);
}

/** Crdt is what every replica offers: its value, change notification and merging. */
export abstract class Crdt<T = unknown> {
  abstract readonly type: CrdtType;
  /** version counts local changes; it is not comparable across replicas. */
  version = 0;
  private readonly listeners = new Set<Listener<T>>();

  constructor(
    /** key is the CRDT key this replica is registered under. */
    readonly key: string,
    /** nodeId identifies this writer in ops and vectors. */
    readonly nodeId: string,
    private readonly send: Send,
  ) {}

  /** value is the replica's current value. */
  abstract get value(): T;

  /** merge folds a CRDT_STATE into the replica; it returns whether the value changed. */
  abstract merge(state: CrdtState): boolean;

  /** subscribe calls fn now and after every change; call the result to stop. */
  subscribe(fn: Listener<T>): Unsubscribe {
    this.listeners.add(fn);
    fn(this.value);
    return unsubscriber(() => this.listeners.delete(fn));
  }

  protected changed(): void {
    this.version++;
    deliver(this.listeners, this.value);
  }

  protected emit(op: Omit<CrdtOp, "type" | "nodeId" | "timestamp">, timestamp = Date.now()): void {
    this.send({ type: this.type, nodeId: this.nodeId, timestamp, ...op });
  }
}

/** PNCounter is a counter every node may increment and decrement. */
export class PNCounter extends Crdt<number> {
  readonly type = "pn-counter";
  private readonly inc = new Map<string, number>();
  private readonly dec = new Map<string, number>();

  get value(): number {
    let total = 0;
    for (const n of this.inc.values()) total += n;
    for (const n of this.dec.values()) total -= n;
    return total;
  }

  /** increment adds n (default 1) and sends the op. */
  increment(n = 1): void {
    this.add(this.inc, n, "increment");
  }

  /** decrement subtracts n (default 1) and sends the op. */
  decrement(n = 1): void {
    this.add(this.dec, n, "decrement");
  }

  private add(m: Map<string, number>, n: number, op: "increment" | "decrement"): void {
    if (!Number.isFinite(n) || n <= 0) throw new RangeError("datasole: counter amount must be a positive number");
    m.set(this.nodeId, (m.get(this.nodeId) ?? 0) + n);
    this.changed();
    this.emit({ op, value: n });
  }

  merge(state: CrdtState): boolean {
    const vector = state.metadata?.vector;
    if (!isObject(vector)) return false;
    const a = mergeMax(this.inc, vector.increments);
    const b = mergeMax(this.dec, vector.decrements);
    if (a || b) this.changed();
    return a || b;
  }
}

function mergeMax(local: Map<string, number>, remote: unknown): boolean {
  if (!isObject(remote)) return false;
  let changed = false;
  for (const [node, n] of Object.entries(remote)) {
    if (typeof n !== "number" || !Number.isFinite(n)) continue;
    if (n > (local.get(node) ?? 0)) {
      local.set(node, n);
      changed = true;
    }
  }
  return changed;
}

/** LWWRegister holds one value; the latest write wins. */
export class LWWRegister<T = unknown> extends Crdt<T | undefined> {
  readonly type = "lww-register";
  private current: T | undefined;
  private stamp = 0;
  private writer = "";

  constructor(key: string, nodeId: string, send: Send, initial?: T) {
    super(key, nodeId, send);
    this.current = initial;
  }

  get value(): T | undefined {
    return this.current;
  }

  /** set writes v locally and sends the op. */
  set(v: T): void {
    this.stamp = Math.max(Date.now(), this.stamp);
    this.writer = this.nodeId;
    this.current = v;
    this.changed();
    this.emit({ op: "set", value: v }, this.stamp);
  }

  merge(state: CrdtState): boolean {
    const m = state.metadata;
    if (!m || typeof m.timestamp !== "number" || typeof m.version !== "number" || typeof m.nodeId !== "string") return false;
    if (!newer(m.timestamp, m.nodeId, this.stamp, this.writer)) return false;
    this.stamp = m.timestamp;
    this.writer = m.nodeId;
    this.current = state.value as T | undefined;
    this.changed();
    return true;
  }
}

interface Field<T> {
  value?: T;
  timestamp: number;
  nodeId: string;
  deleted: boolean;
}

/** LWWMap is a map whose fields are independent last-writer-wins registers with tombstones. */
export class LWWMap<T = unknown> extends Crdt<Record<string, T>> {
  readonly type = "lww-map";
  private readonly fields = new Map<string, Field<T>>();

  get value(): Record<string, T> {
    const out: Record<string, T> = {};
    for (const [k, f] of this.fields) if (!f.deleted) out[k] = f.value as T;
    return out;
  }

  /** get returns one live field. */
  get(field: string): T | undefined {
    const f = this.fields.get(field);
    return f && !f.deleted ? f.value : undefined;
  }

  /** set writes one field locally and sends the op. */
  set(field: string, v: T): void {
    this.write(field, v, false);
    this.emit({ op: "set", key: field, value: v }, this.fields.get(field)!.timestamp);
  }

  /** delete removes one field locally (leaving a tombstone) and sends the op. */
  delete(field: string): void {
    this.write(field, undefined, true);
    this.emit({ op: "remove", key: field }, this.fields.get(field)!.timestamp);
  }

  private write(field: string, v: T | undefined, deleted: boolean): void {
    if (forbiddenKeys.has(field)) throw new RangeError(`datasole: forbidden map field ${field}`);
    const timestamp = Math.max(Date.now(), this.fields.get(field)?.timestamp ?? 0);
    this.fields.set(field, { value: v, timestamp, nodeId: this.nodeId, deleted });
    this.changed();
  }

  merge(state: CrdtState): boolean {
    const m = state.metadata;
    const value = state.value ?? {};
    if (!m || typeof m.timestamp !== "number" || !isObject(value)) return false;
    // Servers that keep per-field stamps send them in metadata.fields (deletes included);
    // a v1 state stamps every live field with the single state timestamp.
    const stamps: Record<string, FieldMeta> = isObject(m.fields)
      ? m.fields
      : Object.fromEntries(Object.keys(value).map((k) => [k, { timestamp: m.timestamp, nodeId: String(m.nodeId) }]));
    const names = Object.keys(stamps);
    if (names.length > maxMapEntries) return false;
    let changed = false;
    for (const k of names) {
      const s = stamps[k];
      if (forbiddenKeys.has(k) || !isObject(s) || typeof s.timestamp !== "number") continue;
      const node = typeof s.nodeId === "string" ? s.nodeId : "";
      const cur = this.fields.get(k);
      if (cur && !newer(s.timestamp, node, cur.timestamp, cur.nodeId)) continue;
      const deleted = s.deleted === true || !Object.prototype.hasOwnProperty.call(value, k);
      this.fields.set(k, { value: deleted ? undefined : (value[k] as T), timestamp: s.timestamp, nodeId: node, deleted });
      changed = true;
    }
    if (changed) this.changed();
    return changed;
  }
}

/** AnyCrdt is any registered replica. */
export type AnyCrdt = PNCounter | LWWRegister<unknown> | LWWMap<unknown>;

/** CrdtStore holds the replicas registered on one client, keyed by CRDT key. */
export class CrdtStore {
  private readonly replicas = new Map<string, AnyCrdt>();

  constructor(
    /** nodeId identifies this client in every op it sends. */
    readonly nodeId: string,
    private readonly send: (key: string, op: CrdtOp) => void,
  ) {}

  /** register creates (or returns the existing) replica for key. */
  register(key: string, type: "pn-counter"): PNCounter;
  register<T>(key: string, type: "lww-register", initial?: T): LWWRegister<T>;
  register<T>(key: string, type: "lww-map"): LWWMap<T>;
  register(key: string, type: CrdtType, initial?: unknown): AnyCrdt {
    const existing = this.replicas.get(key);
    if (existing) {
      if (existing.type !== type) throw new Error(`datasole: CRDT ${key} is already a ${existing.type}`);
      return existing;
    }
    const send: Send = (op) => this.send(key, op);
    let c: AnyCrdt;
    switch (type) {
      case "pn-counter":
        c = new PNCounter(key, this.nodeId, send);
        break;
      case "lww-register":
        c = new LWWRegister(key, this.nodeId, send, initial);
        break;
      case "lww-map":
        c = new LWWMap(key, this.nodeId, send);
        break;
      default:
        throw new Error(`datasole: unknown CRDT type ${String(type)}`);
    }
    this.replicas.set(key, c);
    return c;
  }

  /** get returns the replica registered under key. */
  get(key: string): AnyCrdt | undefined {
    return this.replicas.get(key);
  }

  /** merge folds a CRDT_STATE into the replica for key, if one is registered. */
  merge(key: string, state: CrdtState): void {
    this.replicas.get(key)?.merge(state);
  }
}
