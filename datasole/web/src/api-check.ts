// Compile-time check that the hand-maintained datasole.d.ts promises nothing the sources do
// not deliver: every declared export must accept the implementation (and option and payload
// types must match both ways). Type-checked by tsc, never bundled.
import type * as Api from "../datasole";
import * as Impl from "./index";

function same<T>(_: T): void {}
declare const v: {
  opts: Impl.DatasoleClientOptions;
  apiOpts: Api.DatasoleClientOptions;
  state: Impl.ConnectionState;
  apiState: Api.ConnectionState;
  crdtState: Impl.CrdtState;
  apiCrdtState: Api.CrdtState;
  event: Impl.ServerEvent;
  op: Impl.CrdtOp;
  counter: Impl.PNCounter;
  register: Impl.LWWRegister<string>;
  map: Impl.LWWMap<number>;
  store: Impl.CrdtStore;
  entry: Impl.PresenceEntry<{ name: string }>;
  apiEntry: Api.PresenceEntry<{ name: string }>;
  change: Impl.PresenceChange;
  apiChange: Api.PresenceChange;
  stats: Impl.PresenceStats;
  apiStats: Api.PresenceStats;
  recover: Impl.RecoverHandler;
  apiRecover: Api.RecoverHandler;
};

same<typeof Api.DatasoleClient>(Impl.DatasoleClient);
same<typeof Api.DatasoleError>(Impl.DatasoleError);
same<Api.DatasoleClientOptions>(v.opts);
same<Impl.DatasoleClientOptions>(v.apiOpts);
same<Api.ConnectionState>(v.state);
same<Impl.ConnectionState>(v.apiState);
same<Api.CrdtState>(v.crdtState);
same<Impl.CrdtState>(v.apiCrdtState);
same<Api.ServerEvent>(v.event);
same<Api.CrdtOp>(v.op);
same<Api.PNCounter>(v.counter);
same<Api.LWWRegister<string>>(v.register);
same<Api.LWWMap<number>>(v.map);
same<Api.CrdtStore>(v.store);
same<Api.PresenceEntry<{ name: string }>>(v.entry);
same<Impl.PresenceEntry<{ name: string }>>(v.apiEntry);
same<Api.PresenceChange>(v.change);
same<Impl.PresenceChange>(v.apiChange);
same<Api.PresenceStats>(v.stats);
same<Impl.PresenceStats>(v.apiStats);
same<Api.RecoverHandler>(v.recover);
same<Impl.RecoverHandler>(v.apiRecover);

// The contract helpers. (How the generic client's methods check calls is tested on both the
// declarations and the sources by test/types, with the same test file.)
interface SampleContract {
  rpc: { add: { params: { a: number; b: number }; result: { sum: number } } };
  events: { "chat:message": { from: string; text: string } };
  state: { dashboard: { visitors: number } };
  crdt: { title: { type: "lww-register"; value: string } };
  presence: { [tag: `room:${string}`]: { name: string } };
}

// Results of the contract helpers, compared both ways.
declare const r: {
  implResult: Impl.RpcResult<SampleContract, "add">;
  apiResult: Api.RpcResult<SampleContract, "add">;
  implParams: Impl.RpcParams<SampleContract, "add">;
  apiParams: Api.RpcParams<SampleContract, "add">;
  implData: Impl.EventData<SampleContract, "chat:message">;
  apiData: Api.EventData<SampleContract, "chat:message">;
  implValue: Impl.StateValue<SampleContract, "dashboard">;
  apiValue: Api.StateValue<SampleContract, "dashboard">;
  implHandle: Impl.CrdtHandle<SampleContract, "title">;
  apiHandle: Api.CrdtHandle<SampleContract, "title">;
  implInfo: Impl.ConnectionInfo;
  apiInfo: Api.ConnectionInfo;
  implCode: Impl.ConnectionErrorCode;
  apiCode: Api.ConnectionErrorCode;
  implTag: Impl.PresenceTag<SampleContract>;
  apiTag: Api.PresenceTag<SampleContract>;
  implInfo2: Impl.PresenceInfo<SampleContract, "room:1">;
  apiInfo2: Api.PresenceInfo<SampleContract, "room:1">;
};
same<Api.RpcResult<SampleContract, "add">>(r.implResult);
same<Impl.RpcResult<SampleContract, "add">>(r.apiResult);
same<Api.RpcParams<SampleContract, "add">>(r.implParams);
same<Impl.RpcParams<SampleContract, "add">>(r.apiParams);
same<Api.EventData<SampleContract, "chat:message">>(r.implData);
same<Impl.EventData<SampleContract, "chat:message">>(r.apiData);
same<Api.StateValue<SampleContract, "dashboard">>(r.implValue);
same<Impl.StateValue<SampleContract, "dashboard">>(r.apiValue);
same<Api.CrdtHandle<SampleContract, "title">>(r.implHandle);
same<Api.ConnectionInfo>(r.implInfo);
same<Impl.ConnectionInfo>(r.apiInfo);
same<Api.ConnectionErrorCode>(r.implCode);
same<Impl.ConnectionErrorCode>(r.apiCode);
same<Api.PresenceTag<SampleContract>>(r.implTag);
same<Impl.PresenceTag<SampleContract>>(r.apiTag);
same<Api.PresenceInfo<SampleContract, "room:1">>(r.implInfo2);
same<Impl.PresenceInfo<SampleContract, "room:1">>(r.apiInfo2);
void r.apiHandle;
