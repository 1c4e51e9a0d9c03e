// Public entry point of the datasole browser client (the IIFE exposes it as global Datasole).
export { DatasoleClient } from "./client";
export type {
  ConnectionInfo,
  ConnectionState,
  DatasoleClientOptions,
  EventHandler,
  RpcOptions,
  ServerEvent,
} from "./client";
export { CrdtStore, LWWMap, LWWRegister, PNCounter } from "./crdt";
export type { Crdt, CrdtOp, CrdtState, CrdtType, FieldMeta } from "./crdt";
export { DatasoleError } from "./errors";
export type { Unsubscribe } from "./subscription";
