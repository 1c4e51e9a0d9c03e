// Contract types: how DatasoleClient<C> checks method names, parameters, results, event
// data, state values and CRDT handles against a contract. Types only; nothing here runs.
import type { CrdtState, LWWMap, LWWRegister, PNCounter } from "./crdt";

/** RpcSpec is one RPC method of a contract: its parameter and result types. */
export interface RpcSpec {
  params: unknown;
  result: unknown;
}

/**
 * CrdtSpec is one CRDT key of a contract: a counter, or a register or map whose values
 * are of type `value`.
 */
export type CrdtSpec = { type: "pn-counter" } | { type: "lww-register"; value: unknown } | { type: "lww-map"; value: unknown };

/**
 * Contract describes a server: RPC methods (name → params and result), events (name →
 * data), state keys (key → value), CRDT keys (key → type) and presence tags (tag → the info
 * of their entries). `datasole gen ts` writes one (AppContract) from the Go contract; the
 * crdt and presence sections are written by hand when needed. A presence tag may be a
 * pattern: `` { [tag: `room:${string}`]: RoomInfo } ``.
 */
export interface Contract {
  rpc?: { [method: string]: RpcSpec };
  events?: { [event: string]: unknown };
  state?: { [key: string]: unknown };
  crdt?: { [key: string]: CrdtSpec };
  presence?: { [tag: string]: unknown };
}

/** Untyped is true for the default contract (any), which checks nothing, as before contracts. */
export type Untyped<C> = 0 extends 1 & C ? true : false;

/** OnlyUntyped is T for the untyped default contract and never for a real one. */
export type OnlyUntyped<C, T> = Untyped<C> extends true ? T : never;

type Section<C, S extends keyof Contract> = C extends { [K in S]: infer X } ? X : {};

/** RpcMethod is the union of C's RPC method names. */
export type RpcMethod<C> = keyof Section<C, "rpc"> & string;

/** EventName is the union of C's event names. */
export type EventName<C> = keyof Section<C, "events"> & string;

/** StateKey is the union of C's state keys. */
export type StateKey<C> = keyof Section<C, "state"> & string;

/** CrdtKey is the union of C's CRDT keys. */
export type CrdtKey<C> = keyof Section<C, "crdt"> & string;

/**
 * PresenceTag is the union of the tags (or tag patterns) of C's presence section; any string
 * when C declares none.
 */
export type PresenceTag<C> = C extends { presence: infer P } ? keyof P & string : string;

/** PresenceInfo is the info type of tag T in C's presence section; unknown when C declares none. */
export type PresenceInfo<C, T extends string> = C extends { presence: infer P } ? (T extends keyof P ? P[T] : never) : unknown;

/** RpcParams is the parameter type of method M of contract C. */
export type RpcParams<C, M extends RpcMethod<C>> = Section<C, "rpc">[M] extends { params: infer P } ? P : never;

/** RpcResult is the result type of method M of contract C. */
export type RpcResult<C, M extends RpcMethod<C>> = Section<C, "rpc">[M] extends { result: infer R } ? R : never;

/** EventData is the data type of event E of contract C. */
export type EventData<C, E extends EventName<C>> = Section<C, "events">[E];

/** StateValue is the value type of state key K of contract C. */
export type StateValue<C, K extends StateKey<C>> = Section<C, "state">[K];

/** CrdtSpecOf is the spec of CRDT key K of contract C. */
export type CrdtSpecOf<C, K extends CrdtKey<C>> = Section<C, "crdt">[K] extends infer S extends CrdtSpec ? S : never;

/** CrdtHandle is the replica type of CRDT key K of contract C. */
export type CrdtHandle<C, K extends CrdtKey<C>> =
  CrdtSpecOf<C, K> extends { type: "pn-counter" }
    ? PNCounter
    : CrdtSpecOf<C, K> extends { type: "lww-register"; value: infer T }
      ? LWWRegister<T>
      : CrdtSpecOf<C, K> extends { type: "lww-map"; value: infer T }
        ? LWWMap<T>
        : never;

// Optional when an absent value is acceptable: undefined, null, or an object whose members
// are all optional (a Go struct{} or an all-omitempty struct; the server decodes null as the
// zero value).
type MaybeOptional<T, Rest extends unknown[]> = undefined extends T
  ? [T?, ...Rest]
  : null extends T
    ? [T?, ...Rest]
    : {} extends T
      ? [T?, ...Rest]
      : [T, ...Rest];

/** RpcArgs is what rpc takes after the method name: the params (optional when they may be empty) and the options. */
export type RpcArgs<C, M extends RpcMethod<C>, O> = MaybeOptional<RpcParams<C, M>, [options?: O]>;

/** EmitArgs is what emit takes after the event name: the data, optional when it may be empty. */
export type EmitArgs<C, E extends EventName<C>> = MaybeOptional<EventData<C, E>, []>;

/** CrdtRegisterArgs is what register takes after the key: the type, and an initial value for a register. */
export type CrdtRegisterArgs<C, K extends CrdtKey<C>> =
  CrdtSpecOf<C, K> extends { type: "lww-register"; value: infer T }
    ? [type: "lww-register", initial?: T]
    : [type: CrdtSpecOf<C, K>["type"]];

/** ContractCrdtStore is the client's CRDT store as seen through contract C: keys and value types are checked. */
export interface ContractCrdtStore<C> {
  /** nodeId identifies this client in every op it sends. */
  readonly nodeId: string;
  /** register creates (or returns the existing) replica for key. */
  register<K extends CrdtKey<C>>(key: K, ...args: CrdtRegisterArgs<C, K>): CrdtHandle<C, K>;
  /** get returns the replica registered under key. */
  get<K extends CrdtKey<C>>(key: K): CrdtHandle<C, K> | undefined;
  /** merge folds a CRDT_STATE into the replica for key, if one is registered. */
  merge(key: CrdtKey<C>, state: CrdtState): void;
}
