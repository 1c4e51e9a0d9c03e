// Type tests of DatasoleClient<C>, type-checked by tsc (check.sh) twice: against the
// published declarations (datasole.d.ts) and against the sources. Nothing here runs.
//
// Every @ts-expect-error line compiles on an untyped client (see the last section), so each
// one fails only because the contract says no; tsc fails the check if any of them compiles.
import { DatasoleClient, DatasoleError } from "datasole-under-test";
import type {
  ConnectionErrorCode,
  CrdtHandle,
  EventData,
  LWWMap,
  LWWRegister,
  PNCounter,
  PresenceChange,
  PresenceEntry,
  PresenceInfo,
  PresenceStats,
  PresenceTag,
  RpcParams,
  RpcResult,
  StateValue,
} from "datasole-under-test";
import { Events, RPC, StateKeys, type AddParams, type AddResult, type AppContract, type ChatMessage, type Dashboard } from "./contract";

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function expectType<T extends true>(_?: T): void {}

// The generated contract plus CRDT keys, which Go contracts do not declare.
interface Contract extends AppContract {
  crdt: {
    likes: { type: "pn-counter" };
    title: { type: "lww-register"; value: string };
    prefs: { type: "lww-map"; value: boolean };
  };
}

// The generated contract plus presence tags (by pattern and by name), written by hand too.
interface RoomInfo {
  name: string;
  avatar?: string;
}
interface PresenceContract extends AppContract {
  presence: { [tag: `room:${string}`]: RoomInfo; lobby: { since: number } };
}

// Helpers.
expectType<Equal<RpcParams<AppContract, "add">, AddParams>>();
expectType<Equal<RpcResult<AppContract, "add">, AddResult>>();
expectType<Equal<RpcResult<AppContract, "search">, string[]>>();
expectType<Equal<EventData<AppContract, "chat:message">, ChatMessage>>();
expectType<Equal<StateValue<AppContract, "dashboard">, Dashboard>>();
expectType<Equal<CrdtHandle<Contract, "likes">, PNCounter>>();
expectType<Equal<CrdtHandle<Contract, "title">, LWWRegister<string>>>();
expectType<Equal<CrdtHandle<Contract, "prefs">, LWWMap<boolean>>>();
// @ts-expect-error: not a method of the contract
type NoSuchMethod = RpcParams<AppContract, "subtract">;
expectType<Equal<PresenceInfo<PresenceContract, "room:42">, RoomInfo>>();
expectType<Equal<PresenceInfo<PresenceContract, "lobby">, { since: number }>>();
expectType<Equal<PresenceTag<PresenceContract>, `room:${string}` | "lobby">>();
expectType<Equal<PresenceTag<AppContract>, string>>();
expectType<Equal<PresenceInfo<AppContract, "anything">, unknown>>();

// Presence typed by the contract's presence section.
export async function presence(client: DatasoleClient<PresenceContract>, roomId: string): Promise<void> {
  const entries = await client.presence("room:42");
  expectType<Equal<typeof entries, PresenceEntry<RoomInfo>[]>>();
  entries[0].info?.name.toUpperCase();
  const inRoom = await client.presence(`room:${roomId}`, { timeout: 1000 });
  expectType<Equal<typeof inRoom, PresenceEntry<RoomInfo>[]>>();
  const lobby = await client.presence("lobby");
  expectType<Equal<typeof lobby, PresenceEntry<{ since: number }>[]>>();
  const stats = await client.presenceStats(`room:${roomId}`);
  expectType<Equal<typeof stats, PresenceStats>>();
  client.onJoin("room:42", (c) => {
    expectType<Equal<typeof c, PresenceChange<RoomInfo>>>();
    expectType<Equal<typeof c.tag, string>>();
  });
  const off = client.onLeave("lobby", (c) => {
    expectType<Equal<typeof c.info, { since: number } | undefined>>();
  });
  off.unsubscribe();
  client.onRecover((stream, recovered) => {
    expectType<Equal<typeof stream, string>>();
    expectType<Equal<typeof recovered, boolean>>();
  });

  // @ts-expect-error: a tag the presence section does not declare
  await client.presence("hall");
  // @ts-expect-error: a tag the presence section does not declare
  await client.presenceStats("hall");
  // @ts-expect-error: a tag the presence section does not declare
  client.onJoin("room", () => {});
  // @ts-expect-error: the handler expects other info than the tag carries
  client.onJoin("room:42", (c: PresenceChange<number>) => c);
  // @ts-expect-error: a type argument cannot override the contract's info
  await client.presence<{ name: number }>("room:42");
  // @ts-expect-error: name is a string
  const n: number | undefined = (await client.presence("room:1"))[0].info?.name;
  void n;
}

// A contract without a presence section takes any tag; info is unknown.
export async function presenceUndeclared(client: DatasoleClient<AppContract>): Promise<void> {
  const entries = await client.presence("anything");
  expectType<Equal<typeof entries, PresenceEntry<unknown>[]>>();
  client.onLeave("anything", (c) => {
    expectType<Equal<typeof c.info, unknown>>();
  });
}

export async function typed(client: DatasoleClient<Contract>): Promise<void> {
  // RPC: names, params and results.
  const { sum } = await client.rpc("add", { a: 2, b: 3 });
  expectType<Equal<typeof sum, number>>();
  expectType<Equal<Awaited<ReturnType<typeof client.rpc<"add">>>, AddResult>>();
  const viaEnum = await client.rpc(RPC.Add, { a: 1, b: 1 }, { timeout: 1000 });
  expectType<Equal<typeof viaEnum, AddResult>>();
  const pong = await client.rpc("ping"); // struct{} params may be left out
  expectType<Equal<typeof pong, string>>();
  await client.rpc("ping", {});
  await client.rpc("search"); // every member optional: may be left out
  await client.rpc("search", { query: "x" }, { timeout: 5 });

  // @ts-expect-error: wrong parameter type
  await client.rpc("add", { a: "2", b: 3 });
  // @ts-expect-error: missing parameter member
  await client.rpc("add", { a: 2 });
  // @ts-expect-error: required params left out
  await client.rpc("add");
  // @ts-expect-error: unknown method
  await client.rpc("subtract", { a: 2, b: 3 });
  // @ts-expect-error: a result member that does not exist
  (await client.rpc("add", { a: 2, b: 3 })).total;
  // @ts-expect-error: the result is a number, not a string
  const s: string = (await client.rpc("add", { a: 2, b: 3 })).sum;
  // @ts-expect-error: a type argument cannot override the contract's result
  await client.rpc<number>("add", { a: 2, b: 3 });

  // Events: names and data, both ways.
  const off = client.on("chat:message", (e) => {
    expectType<Equal<typeof e.data, ChatMessage>>();
    e.data.text.toUpperCase();
  });
  off();
  client.on(Events.Typing, (e) => {
    expectType<Equal<typeof e.data, string | null>>();
  });
  client.emit("chat:send", { from: "ann", text: "hi" });
  client.emit("typing"); // string | null: may be left out
  client.emit("typing", "ann");

  // @ts-expect-error: wrong event data
  client.emit("chat:send", { from: "ann", text: 42 });
  // @ts-expect-error: event data left out
  client.emit("chat:send");
  // @ts-expect-error: unknown event
  client.emit("chat:edit", { from: "ann", text: "hi" });
  // @ts-expect-error: unknown event
  client.on("chat:typo", () => {});
  // @ts-expect-error: the handler expects other data than the event carries
  client.on("chat:message", (e: { data: number }) => e.data);
  client.on("chat:message", (e) => {
    // @ts-expect-error: text is a string
    const n: number = e.data.text;
    void n;
  });

  // State.
  client.subscribeState("dashboard", (d) => {
    expectType<Equal<typeof d, Dashboard | undefined>>();
    d?.online.join(",");
  });
  const load = client.getState(StateKeys.Load);
  expectType<Equal<typeof load, number | undefined>>();

  // @ts-expect-error: wrong state value type
  client.subscribeState("dashboard", (d: { visitors: string } | undefined) => d);
  // @ts-expect-error: wrong state value type
  const wrong: string | undefined = client.getState("load");
  // @ts-expect-error: unknown state key
  client.getState("dashbaord");

  // CRDTs.
  const store = client.registerCrdt();
  const likes = store.register("likes", "pn-counter");
  likes.increment();
  const title = store.register("title", "lww-register", "untitled");
  title.set("Hello");
  const prefs = store.register("prefs", "lww-map");
  prefs.set("dark", true);
  expectType<Equal<ReturnType<typeof prefs.get>, boolean | undefined>>();
  expectType<Equal<ReturnType<typeof store.get<"title">>, LWWRegister<string> | undefined>>();

  // @ts-expect-error: the key is a counter, not a map
  store.register("likes", "lww-map");
  // @ts-expect-error: wrong register value
  title.set(5);
  // @ts-expect-error: wrong initial value
  store.register("title", "lww-register", 5);
  // @ts-expect-error: unknown CRDT key
  store.register("dislikes", "pn-counter");

  void s;
  void wrong;
}

// A contract without CRDT keys registers none.
export function noCrdt(client: DatasoleClient<AppContract>): void {
  // @ts-expect-error: the contract declares no CRDT keys
  client.registerCrdt().register("likes", "pn-counter");
}

// Without a contract nothing is checked, as in the v1 client: every call that the
// contract refused above compiles here.
export async function untyped(client: DatasoleClient): Promise<void> {
  const r = await client.rpc("add", { a: "2", b: 3 });
  expectType<Equal<typeof r, unknown>>();
  const n = await client.rpc<number>("subtract", { a: 2, b: 3 });
  expectType<Equal<typeof n, number>>();
  await client.rpc("add");
  client.emit("chat:send", { from: "ann", text: 42 });
  client.emit("chat:edit");
  client.on("chat:typo", () => {});
  client.on<number>("chat:message", (e) => e.data.toFixed());
  client.subscribeState<{ visitors: string }>("dashboard", (d) => d.visitors);
  const v = client.getState<string>("load");
  expectType<Equal<typeof v, string | undefined>>();
  client.getState("dashbaord");
  const store = client.registerCrdt();
  store.register("likes", "lww-map");
  store.register("dislikes", "pn-counter");
  store.register<number>("title", "lww-register", 5).set(5);
  // Presence: any tag, info typed by a type argument.
  const entries = await client.presence<RoomInfo>("hall");
  expectType<Equal<typeof entries, PresenceEntry<RoomInfo>[]>>();
  await client.presenceStats("hall");
  client.onJoin("room", () => {});
  client.onJoin("room:42", (c: PresenceChange<number>) => c);
  await client.presence<{ name: number }>("room:42");
  client.onLeave<RoomInfo>("room:1", (c) => c.info?.name);
}

// Connection errors carry a code to switch on.
export async function errors(client: DatasoleClient<AppContract>): Promise<string> {
  try {
    await client.connect();
    return "connected";
  } catch (e) {
    if (!(e instanceof DatasoleError)) throw e;
    const code = e.code as ConnectionErrorCode;
    switch (code) {
      case "unauthorized":
      case "forbidden-origin":
      case "not-found":
      case "unreachable":
      case "over-capacity":
        return `${code} (HTTP ${e.status ?? "?"})`;
    }
    return e.message;
  }
}
