// The negotiated batching extension (subprotocol datasole.batch.v1): one BATCH frame (opcode
// 0x0C) carries several v1 messages, each as uvarint(length) followed by the message bytes
// exactly as they would be sent alone (a raw frame or a zlib-compressed one). The BATCH
// frame itself is never compressed and never nested.
import { decodeMessage, headerLen, maxPayload, wireBytes, type Frame } from "./protocol";

/** Subprotocols our clients offer, in this order: servers that echo the first offer pick plain v1. */
export const subprotocolV1 = "datasole.v1";
export const subprotocolBatch = "datasole.batch.v1";
/** tokenPrefix starts the subprotocol entry that carries a credential; servers never echo it. */
export const tokenPrefix = "datasole.token.";

/** opBatch is the BATCH opcode of the extension. */
export const opBatch = 0x0c;

const zlibFirstByte = 0x78;

/** isBatch reports whether a received message is a BATCH frame (never compressed, so the first byte tells). */
export function isBatch(message: Uint8Array): boolean {
  return message.length > 0 && message[0] === opBatch;
}

function uvarintLen(n: number): number {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}

function putUvarint(out: Uint8Array, at: number, n: number): number {
  while (n >= 0x80) {
    out[at++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  out[at++] = n;
  return at;
}

// batchSize is the BATCH payload length for these messages.
function batchSize(messages: Uint8Array[]): number {
  let n = 0;
  for (const m of messages) n += uvarintLen(m.length) + m.length;
  return n;
}

/**
 * encodeBatch builds one BATCH frame from wire messages (each already in its final form:
 * raw or zlib-compressed). The caller keeps the payload within maxPayload.
 */
export function encodeBatch(messages: Uint8Array[]): Uint8Array {
  const size = batchSize(messages);
  if (size > maxPayload) throw new Error(`datasole: batch payload of ${size} bytes exceeds ${maxPayload}`);
  const out = new Uint8Array(headerLen + size);
  const view = new DataView(out.buffer);
  out[0] = opBatch;
  view.setUint32(1, messages.length);
  view.setUint32(5, size);
  let at = headerLen;
  for (const m of messages) {
    at = putUvarint(out, at, m.length);
    out.set(m, at);
    at += m.length;
  }
  return out;
}

// Item lengths never exceed maxPayload (< 2^21), so four varint bytes are more than enough;
// anything longer is malformed.
const maxVarintBytes = 4;

/**
 * decodeBatch splits a BATCH message into its frames, inflating compressed items. A BATCH
 * that is malformed anywhere — header, lengths, an item that does not decode, a nested
 * BATCH, trailing bytes — yields null: it is rejected as a whole.
 */
export function decodeBatch(message: Uint8Array): Frame[] | null {
  if (message.length < headerLen || message[0] !== opBatch) return null;
  const view = new DataView(message.buffer, message.byteOffset, message.byteLength);
  const size = view.getUint32(5);
  if (size > maxPayload || message.length !== headerLen + size) return null;
  const frames: Frame[] = [];
  let at = headerLen;
  while (at < message.length) {
    let len = 0;
    let shift = 1;
    let i = 0;
    for (;;) {
      if (at >= message.length || i === maxVarintBytes) return null;
      const b = message[at++];
      len += (b & 0x7f) * shift;
      shift *= 128;
      i++;
      if (b < 0x80) break;
    }
    if (len === 0 || len > message.length - at) return null;
    const item = message.subarray(at, at + len);
    at += len;
    if (item[0] !== zlibFirstByte && (item[0] < 0x01 || item[0] > 0x0b)) return null; // nested BATCH or garbage
    const f = decodeMessage(item);
    if (!f) return null;
    frames.push(f);
  }
  return frames;
}

/**
 * Outbox sends frames on one connection. Without batching every frame goes out at once, as
 * in v1. With batching, frames queued in the same task go out together after it: one alone
 * as a plain message, several as BATCH frames of at most maxPayload bytes each.
 */
export class Outbox {
  private queue: Uint8Array[] = [];
  private size = 0;
  private scheduled = false;
  /** batching is set once the server selected datasole.batch.v1. */
  batching = false;

  constructor(private readonly write: (message: Uint8Array) => void) {}

  /** send transmits an uncompressed frame, compressing it by the 256-byte rule. */
  send(frame: Uint8Array): void {
    const message = wireBytes(frame);
    if (!this.batching) {
      this.write(message);
      return;
    }
    const cost = uvarintLen(message.length) + message.length;
    if (this.size + cost > maxPayload) this.flush();
    this.queue.push(message);
    this.size += cost;
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  /** flush sends whatever is queued now. */
  flush(): void {
    this.scheduled = false;
    const q = this.queue;
    if (q.length === 0) return;
    this.queue = [];
    this.size = 0;
    // send flushes before a batch would outgrow maxPayload, so several messages always fit
    // one; a single one (even one too large for any batch) goes out as it is.
    this.write(q.length === 1 ? q[0] : encodeBatch(q));
  }

  /** clear drops queued frames (the connection is gone). */
  clear(): void {
    this.queue = [];
    this.size = 0;
  }
}

/**
 * tokenProtocol returns the subprotocol entry that carries token, or throws when the token
 * cannot be a subprotocol (RFC 6455 requires an HTTP token: no spaces, quotes, commas, "/",
 * "=" …; base64url tokens such as JWTs are fine).
 */
export function tokenProtocol(token: string): string {
  if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(token)) {
    throw new TypeError(
      'datasole: auth.token cannot be sent as a subprotocol (it has characters outside the HTTP token set, e.g. "/", "=" or spaces); send it as a query parameter instead',
    );
  }
  return tokenPrefix + token;
}

/**
 * receive decodes one inbound WebSocket message into its frames: a BATCH's items when
 * batching was negotiated, else the one v1 frame. Messages that do not decode yield none.
 */
export function receive(message: Uint8Array, batching: boolean): Frame[] {
  if (batching && isBatch(message)) return decodeBatch(message) ?? [];
  const f = decodeMessage(message);
  return f ? [f] : [];
}
