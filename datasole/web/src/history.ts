// Event history: exactly-once, in-order delivery of events that carry a position.
//
// Events to targets the server keeps history of carry the extension member
// `pos: {s: stream, e: epoch, o: offset}` (streams "a", "u:<user>", "t:<tag>"; offsets grow by
// one per stream). Per stream the client keeps the epoch and the offset of the last event it
// delivered: an offset at or below it is a duplicate and is dropped; the next offset is
// delivered; an offset that skips ahead, or another epoch, is held back while the missed
// events are asked for ($ds.recover), then the replayed events and the held ones are delivered
// in order. A stream never seen before starts at its first event. The same rules as the Go
// client's (datasole/client/history.go).

/** Pos is the `pos` member of an EVENT_S2C: stream, epoch and offset. */
export interface Pos {
  s: string;
  e: string;
  o: number;
}

/** Positioned is anything delivered through the history rules: it has a position. */
export interface Positioned {
  pos: Pos;
}

/** RecoverAnswer is the server's answer for one stream of a $ds.recover call. */
export interface RecoverAnswer {
  recovered: boolean;
  /** visible false: the connection may not see the stream (yet); the position is kept. */
  visible: boolean;
  e: string;
  o: number;
}

/** maxHeld bounds the events held back per stream while a recovery runs. */
export const maxHeld = 10_000;

const maxStreamName = 1024;

/** parsePos returns the position of an event body's `pos` member, or undefined when it has none or a malformed one. */
export function parsePos(v: unknown): Pos | undefined {
  if (typeof v !== "object" || v === null) return undefined;
  const p = v as Record<string, unknown>;
  if (typeof p.s !== "string" || p.s.length === 0 || p.s.length > maxStreamName || typeof p.e !== "string") return undefined;
  if (!isOffset(p.o)) return undefined;
  return { s: p.s, e: p.e, o: p.o };
}

/** parseAnswer validates one stream's answer of a $ds.recover call. */
export function parseAnswer(v: unknown): RecoverAnswer | undefined {
  if (typeof v !== "object" || v === null) return undefined;
  const a = v as Record<string, unknown>;
  if (a.visible === false) return { recovered: false, visible: false, e: "", o: 0 };
  if (typeof a.recovered !== "boolean") return undefined;
  const e = a.e === undefined ? "" : a.e;
  const o = a.o === undefined ? 0 : a.o;
  if (typeof e !== "string" || !isOffset(o)) return undefined;
  return { recovered: a.recovered, visible: true, e, o };
}

function isOffset(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

interface Stream<T> {
  epoch: string;
  /** offset of the last event delivered. */
  offset: number;
  /** events ahead of offset, by offset. */
  held: T[];
  /** the recovery call under way for the stream (0: none). */
  recovering: number;
  /** where the stream stood when that call asked. */
  asked: { epoch: string; offset: number };
}

/** Settled is what applying a recovery answer to one stream gives. */
export interface Settled<T> {
  /** deliver lists the held events that now follow the position, in order. */
  deliver: T[];
  /** again is set when a gap remains after the answer: the stream must be recovered again. */
  again: boolean;
  /** report is whether the stream recovered, for the app; undefined when nothing is reported. */
  report?: boolean;
}

/**
 * Streams tracks the position of every stream seen. It runs no I/O: the client hands it
 * events and recovery answers and acts on what it returns.
 */
export class Streams<T extends Positioned> {
  private readonly streams = new Map<string, Stream<T>>();

  /** size is the number of streams seen. */
  get size(): number {
    return this.streams.size;
  }

  /** position returns the stream's epoch and last delivered offset. */
  position(name: string): { e: string; o: number } | undefined {
    const st = this.streams.get(name);
    return st && { e: st.epoch, o: st.offset };
  }

  /**
   * arrive takes an event with a position and returns the events to deliver now, in order,
   * and whether a recovery of its stream must start.
   */
  arrive(ev: T): { deliver: T[]; recover: boolean } {
    const p = ev.pos;
    const st = this.streams.get(p.s);
    if (!st) {
      this.streams.set(p.s, { epoch: p.e, offset: p.o, held: [], recovering: 0, asked: { epoch: p.e, offset: p.o } });
      return { deliver: [ev], recover: false };
    }
    if (p.e === st.epoch && p.o <= st.offset) return { deliver: [], recover: false }; // delivered already
    if (p.e === st.epoch && p.o === st.offset + 1) {
      st.offset = p.o;
      return { deliver: [ev, ...drain(st)], recover: false };
    }
    hold(st, ev); // a gap, or another epoch: hold it and recover
    return { deliver: [], recover: st.recovering === 0 };
  }

  /**
   * positions returns what to ask for of the named streams (null: every stream seen) and
   * marks them as recovered by the call token.
   */
  positions(names: readonly string[] | null, token: number): Map<string, { e: string; o: number }> {
    const out = new Map<string, { e: string; o: number }>();
    for (const name of names ?? this.streams.keys()) {
      const st = this.streams.get(name);
      if (!st) continue;
      st.recovering = token;
      st.asked = { epoch: st.epoch, offset: st.offset };
      out.set(name, { e: st.epoch, o: st.offset });
    }
    return out;
  }

  /** abort ends the recovery of the named streams by call token without an answer (the call failed). */
  abort(names: readonly string[], token: number): void {
    for (const name of names) {
      const st = this.streams.get(name);
      if (st && st.recovering === token) st.recovering = 0;
    }
  }

  /**
   * settle applies the server's answer for one stream, to the call token; the replayed
   * events arrived before it.
   */
  settle(name: string, a: RecoverAnswer, token: number): Settled<T> {
    const st = this.streams.get(name);
    if (!st || st.recovering !== token) return { deliver: [], again: false };
    st.recovering = 0;
    if (!a.visible) return { deliver: [], again: false }; // not in the stream's target (yet): the next live event retries
    if (!a.recovered) {
      // Start again from the server's top; what is held beyond it still counts.
      st.epoch = a.e;
      st.offset = a.o;
      st.held = st.held.filter((e) => e.pos.e === st.epoch && e.pos.o > st.offset);
    }
    const deliver = drain(st);
    // A gap left after the answer means more was lost after its top: ask again, but only
    // when this recovery moved the stream on (a server answering the same again cannot loop).
    const moved = st.epoch !== st.asked.epoch || st.offset !== st.asked.offset;
    return { deliver, again: st.held.length > 0 && moved, report: a.recovered };
  }
}

function hold<T extends Positioned>(st: Stream<T>, ev: T): void {
  const o = ev.pos.o;
  let lo = 0;
  let hi = st.held.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (st.held[mid].pos.o < o) lo = mid + 1;
    else hi = mid;
  }
  if (lo < st.held.length && st.held[lo].pos.o === o) return; // held already
  if (st.held.length >= maxHeld) return;
  st.held.splice(lo, 0, ev);
}

// drain returns the held events that now follow the stream's offset.
function drain<T extends Positioned>(st: Stream<T>): T[] {
  const out: T[] = [];
  let i = 0;
  for (; i < st.held.length; i++) {
    const e = st.held[i];
    if (e.pos.e !== st.epoch || e.pos.o > st.offset + 1) break;
    if (e.pos.o === st.offset + 1) {
      st.offset++;
      out.push(e);
    }
  }
  if (i > 0) st.held.splice(0, i);
  return out;
}
