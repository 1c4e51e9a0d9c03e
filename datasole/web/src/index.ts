// Public entry point of the datasole browser client (the IIFE exposes it as global Datasole).
export { DatasoleClient } from "./client";
export type {
  ConnectionInfo,
  ConnectionState,
  CrdtStoreOf,
  DatasoleClientOptions,
  EventHandler,
  RecoverHandler,
  RpcOptions,
  ServerEvent,
} from "./client";
export type {
  Contract,
  ContractCrdtStore,
  CrdtHandle,
  CrdtKey,
  CrdtSpec,
  EventData,
  EventName,
  PresenceInfo,
  PresenceTag,
  RpcMethod,
  RpcParams,
  RpcResult,
  RpcSpec,
  StateKey,
  StateValue,
} from "./contract";
export { CrdtStore, LWWMap, LWWRegister, PNCounter } from "./crdt";
export type { AnyCrdt, Crdt, CrdtOp, CrdtState, CrdtType, FieldMeta } from "./crdt";
export { DatasoleError } from "./errors";
export type { ConnectionErrorCode } from "./errors";
export type { PresenceChange, PresenceEntry, PresenceStats } from "./presence";
export type { Unsubscribe } from "./subscription";
