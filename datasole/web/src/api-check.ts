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
