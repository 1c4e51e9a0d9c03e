// Wire protocol v1: the 9-byte frame header, the opcodes and the zlib rule (PROTOCOL §2, §3, §6).
import { Unzlib, zlibSync } from "fflate";

/** Opcode values of protocol v1. */
export const enum Op {
  RpcReq = 0x01,
  RpcRes = 0x02,
  EventC2S = 0x03,
  EventS2C = 0x04,
  StatePatch = 0x05,
  StateSnapshot = 0x06,
  Ping = 0x07,
  Pong = 0x08,
  Error = 0x09,
  CrdtOp = 0x0a,
  CrdtState = 0x0b,
}

/** A decoded frame; payload is the raw UTF-8 JSON text. */
export interface Frame {
  opcode: number;
  correlationId: number;
  payload: Uint8Array;
}

/** headerLen is the size of the frame header. */
export const headerLen = 9;
/** maxPayload is the largest payload a frame may carry (PROTOCOL §7). */
export const maxPayload = 1_048_576;
const maxCompressed = 4_194_304;
// A frame never inflates to more than header + max payload, so anything larger is garbage.
const maxInflated = headerLen + maxPayload;
const compressThreshold = 256;

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder();

/** encodeFrame builds the frame for a JSON value (undefined → empty payload). */
export function encodeFrame(opcode: number, correlationId: number, body: unknown): Uint8Array {
  const payload = body === undefined ? new Uint8Array(0) : utf8Encoder.encode(JSON.stringify(body));
  if (payload.length > maxPayload) {
    throw new Error(`datasole: payload of ${payload.length} bytes exceeds ${maxPayload}`);
  }
  const frame = new Uint8Array(headerLen + payload.length);
  const view = new DataView(frame.buffer);
  frame[0] = opcode;
  view.setUint32(1, correlationId >>> 0);
  view.setUint32(5, payload.length);
  frame.set(payload, headerLen);
  return frame;
}

/** wireBytes applies the sender rule of §6: frames longer than 256 bytes go out zlib-wrapped. */
export function wireBytes(frame: Uint8Array): Uint8Array {
  return frame.length > compressThreshold ? zlibSync(frame, { level: 6 }) : frame;
}

/** decodeMessage inflates (when the first byte is 0x78) and decodes one message; null drops it. */
export function decodeMessage(message: Uint8Array): Frame | null {
  let bytes: Uint8Array | null = message;
  if (message.length >= 2 && message[0] === 0x78) {
    bytes = inflate(message);
    if (!bytes) return null;
  }
  if (bytes.length < headerLen) return null;
  const opcode = bytes[0];
  if (opcode < Op.RpcReq || opcode > Op.CrdtState) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const len = view.getUint32(5);
  if (len > maxPayload || bytes.length < headerLen + len) return null;
  return { opcode, correlationId: view.getUint32(1), payload: bytes.subarray(headerLen, headerLen + len) };
}

/** parsePayload returns the payload's JSON value, or undefined when it is not valid JSON. */
export function parsePayload(payload: Uint8Array): unknown {
  try {
    return JSON.parse(utf8Decoder.decode(payload));
  } catch {
    return undefined;
  }
}

// inflate decodes one zlib stream with a bounded output and an Adler-32 check. Input is fed in
// small slices so a hostile stream is abandoned soon after crossing the cap instead of being
// expanded in full first.
function inflate(message: Uint8Array): Uint8Array | null {
  if (message.length > maxCompressed || message.length < 6) return null;
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    const stream = new Unzlib((chunk) => {
      total += chunk.length;
      if (total > maxInflated) throw new Error("inflated message too large");
      chunks.push(chunk);
    });
    const step = 1024;
    for (let i = 0; i < message.length; i += step) {
      const end = Math.min(i + step, message.length);
      stream.push(message.subarray(i, end), end === message.length);
    }
  } catch {
    return null;
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  const t = message.length - 4;
  const want = ((message[t] << 24) | (message[t + 1] << 16) | (message[t + 2] << 8) | message[t + 3]) >>> 0;
  return adler32(out) === want ? out : null;
}

function adler32(data: Uint8Array): number {
  let a = 1;
  let b = 0;
  // 5552 is the largest block for which b cannot overflow 2^32 before the modulo.
  for (let i = 0; i < data.length; ) {
    const end = Math.min(i + 5552, data.length);
    for (; i < end; i++) {
      a += data[i];
      b += a;
    }
    a %= 65521;
    b %= 65521;
  }
  return ((b << 16) | a) >>> 0;
}
