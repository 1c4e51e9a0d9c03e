// Unit tests of the history rules (the same as the Go client's): events with a position are
// delivered once and in order per stream; gaps are held back and recovered; recovery answers
// reset, keep or resume a stream.
import assert from "node:assert/strict";
import { test } from "node:test";
import { maxHeld, parseAnswer, parsePos, Streams, type RecoverAnswer } from "../../src/history";

interface Ev {
  pos: { s: string; e: string; o: number };
}
const ev = (o: number, s = "t:room", e = "E1"): Ev => ({ pos: { s, e, o } });
const offsets = (list: Ev[]) => list.map((x) => x.pos.o);
const ok = (o: number, e = "E1"): RecoverAnswer => ({ recovered: true, visible: true, e, o });
const lost = (o: number, e = "E1"): RecoverAnswer => ({ recovered: false, visible: true, e, o });
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

test("a stream starts at its first event, then delivers each next offset once", () => {
  const h = new Streams<Ev>();
  assert.deepEqual(offsets(h.arrive(ev(41)).deliver), [41]);
  assert.deepEqual(offsets(h.arrive(ev(42)).deliver), [42]);
  assert.deepEqual(h.arrive(ev(42)), { deliver: [], recover: false }, "a duplicate");
  assert.deepEqual(h.arrive(ev(7)), { deliver: [], recover: false }, "an old offset");
  assert.deepEqual(offsets(h.arrive(ev(43)).deliver), [43]);
  assert.deepEqual(h.position("t:room"), { e: "E1", o: 43 });
  // Streams are independent.
  assert.deepEqual(offsets(h.arrive(ev(1, "a")).deliver), [1]);
  assert.equal(h.size, 2);
});

test("a gap holds events back and asks once for the missed ones; replay then held, in order", () => {
  const h = new Streams<Ev>();
  h.arrive(ev(1));
  const gap = h.arrive(ev(5));
  assert.deepEqual(gap, { deliver: [], recover: true });
  const pos = h.positions(["t:room"], 1);
  assert.deepEqual([...pos], [["t:room", { e: "E1", o: 1 }]]);
  // More events while the recovery runs: held, no second recovery.
  assert.deepEqual(h.arrive(ev(7)), { deliver: [], recover: false });
  assert.deepEqual(h.arrive(ev(6)), { deliver: [], recover: false });
  assert.deepEqual(h.arrive(ev(6)), { deliver: [], recover: false }, "a held duplicate");
  // The replay (2..4 plus copies of what is held) arrives before the answer.
  const got: number[] = [];
  for (const o of [2, 3, 4, 5, 6]) got.push(...offsets(h.arrive(ev(o)).deliver));
  assert.deepEqual(got, [2, 3, 4, 5, 6, 7]);
  const s = h.settle("t:room", ok(7), 1);
  assert.deepEqual(s, { deliver: [], again: false, report: true });
  assert.deepEqual(offsets(h.arrive(ev(8)).deliver), [8]);
});

test("after a reconnect every stream is recovered; live events ahead wait for the replay", () => {
  const h = new Streams<Ev>();
  h.arrive(ev(10));
  h.arrive(ev(3, "u:ann"));
  assert.deepEqual(
    [...h.positions(null, 9)],
    [
      ["t:room", { e: "E1", o: 10 }],
      ["u:ann", { e: "E1", o: 3 }],
    ],
  );
  // A live event of the new connection comes before the replay: held, and the recovery
  // under way covers it.
  assert.deepEqual(h.arrive(ev(1011)), { deliver: [], recover: false });
  const got: number[] = [];
  for (const o of range(11, 1010)) got.push(...offsets(h.arrive(ev(o)).deliver));
  assert.deepEqual(got, range(11, 1011));
  assert.deepEqual(h.settle("t:room", ok(1011), 9), { deliver: [], again: false, report: true });
  assert.deepEqual(h.settle("u:ann", ok(3), 9), { deliver: [], again: false, report: true });
});

test("not recovered: the stream restarts at the answer's top, held events beyond it still count", () => {
  const h = new Streams<Ev>();
  h.arrive(ev(10));
  h.positions(null, 1);
  h.arrive(ev(1009)); // older than the top: dropped by the reset
  h.arrive(ev(1012));
  h.arrive(ev(1011));
  const s = h.settle("t:room", lost(1010), 1);
  assert.deepEqual({ ...s, deliver: offsets(s.deliver) }, { deliver: [1011, 1012], again: false, report: false });
  assert.deepEqual(h.position("t:room"), { e: "E1", o: 1012 });
});

test("another epoch: held, recovered from the new epoch's top", () => {
  const h = new Streams<Ev>();
  h.arrive(ev(50));
  assert.deepEqual(h.arrive(ev(3, "t:room", "E2")), { deliver: [], recover: true });
  h.positions(["t:room"], 4);
  const s = h.settle("t:room", lost(2, "E2"), 4);
  assert.deepEqual({ ...s, deliver: offsets(s.deliver) }, { deliver: [3], again: false, report: false });
  assert.deepEqual(h.position("t:room"), { e: "E2", o: 3 });
  assert.deepEqual(offsets(h.arrive(ev(4, "t:room", "E2")).deliver), [4]);
  assert.deepEqual(h.arrive(ev(51)).recover, true, "the old epoch is a gap too");
});

test("a stream the connection may not see keeps its position; the next gap asks again", () => {
  const h = new Streams<Ev>();
  h.arrive(ev(1));
  h.positions(null, 1);
  assert.deepEqual(h.settle("t:room", parseAnswer({ recovered: false, visible: false })!, 1), { deliver: [], again: false });
  assert.deepEqual(h.position("t:room"), { e: "E1", o: 1 });
  assert.deepEqual(h.arrive(ev(3)), { deliver: [], recover: true });
});

test("a gap left after the answer is recovered again only when the answer moved the stream", () => {
  const h = new Streams<Ev>();
  h.arrive(ev(1));
  h.arrive(ev(10));
  h.positions(["t:room"], 1);
  h.arrive(ev(2)); // replay up to the answer's top 2; 3..9 were appended after it
  const s = h.settle("t:room", ok(2), 1);
  assert.equal(s.again, true);
  h.positions(["t:room"], 2);
  assert.deepEqual(h.settle("t:room", ok(2), 2), { deliver: [], again: false, report: true }, "no progress: wait for the next gap");
  assert.equal(h.arrive(ev(11)).recover, true);
});

test("a failed call frees only the streams it was recovering", () => {
  const h = new Streams<Ev>();
  h.arrive(ev(1));
  h.arrive(ev(3)); // recovery 1 starts
  h.positions(["t:room"], 1);
  h.abort(["t:room"], 2); // another call's failure
  assert.equal(h.arrive(ev(4)).recover, false);
  assert.deepEqual(h.settle("t:room", ok(4), 2), { deliver: [], again: false }, "an answer to another call");
  h.abort(["t:room"], 1);
  assert.equal(h.arrive(ev(5)).recover, true);
});

test("held events are bounded per stream", () => {
  const h = new Streams<Ev>();
  h.arrive(ev(0));
  for (let o = 2; o < maxHeld + 100; o++) h.arrive(ev(o));
  h.positions(null, 1);
  const got = offsets(h.arrive(ev(1)).deliver);
  assert.equal(got.length, 1 + maxHeld);
  assert.equal(got[got.length - 1], maxHeld + 1);
});

test("positions and answers are validated", () => {
  assert.deepEqual(parsePos({ s: "t:x", e: "E", o: 3 }), { s: "t:x", e: "E", o: 3 });
  for (const bad of [undefined, null, 3, "x", { s: "", e: "E", o: 1 }, { s: "a", o: 1 }, { s: "a", e: "E", o: -1 }, { s: "a", e: "E", o: 1.5 }, { s: "a", e: "E", o: "1" }, { s: "a", e: "E", o: 2 ** 60 }, { s: "x".repeat(2000), e: "E", o: 1 }]) {
    assert.equal(parsePos(bad), undefined, JSON.stringify(bad));
  }
  assert.deepEqual(parseAnswer({ recovered: true, e: "E", o: 9 }), { recovered: true, visible: true, e: "E", o: 9 });
  assert.deepEqual(parseAnswer({ recovered: false, visible: false }), { recovered: false, visible: false, e: "", o: 0 });
  for (const bad of [undefined, null, {}, { recovered: "yes" }, { recovered: true, o: -2 }, { recovered: false, e: 4 }]) {
    assert.equal(parseAnswer(bad), undefined, JSON.stringify(bad));
  }
});
