// Unit tests of the batching extension's codec and outbox against TEAM protocol decisions:
// BATCH = opcode 0x0C, correlationId = item count, payload = uvarint(len) + message, items
// raw (0x01–0x0B) or zlib (0x78), never nested, never compressed itself, ≤ 1,048,576 bytes.
import assert from "node:assert/strict";
import { test } from "node:test";
import { decodeBatch, encodeBatch, Outbox, receive, tokenProtocol } from "../../src/batch";
import { decodeMessage, encodeFrame, parsePayload, wireBytes } from "../../src/protocol";
import { zlibSync } from "fflate";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const bytes = (h: string) => new Uint8Array(h.match(/../g)!.map((x) => parseInt(x, 16)));
const body = (f: { payload: Uint8Array }) => parsePayload(f.payload);

test("a batch of two raw frames has the layout of the spec", () => {
  const ping = encodeFrame(0x07, 0, null); // 07 00000000 00000004 "null"
  const event = encodeFrame(0x03, 0, { event: "e" });
  const b = encodeBatch([ping, event]);
  const payloadLen = 1 + ping.length + 1 + event.length;
  assert.equal(hex(b.subarray(0, 9)), "0c" + "00000002" + payloadLen.toString(16).padStart(8, "0"));
  assert.equal(b[9], ping.length);
  assert.equal(hex(b.subarray(10, 10 + ping.length)), hex(ping));
  assert.equal(b[10 + ping.length], event.length);
  assert.equal(b.length, 9 + payloadLen);
  const frames = decodeBatch(b)!;
  assert.deepEqual(
    frames.map((f) => [f.opcode, f.correlationId, body(f)]),
    [
      [0x07, 0, null],
      [0x03, 0, { event: "e" }],
    ],
  );
});

test("a hand-built batch decodes (uvarint lengths of one and two bytes, a compressed item)", () => {
  const small = encodeFrame(0x02, 7, { result: 1, correlationId: 7 });
  const big = encodeFrame(0x04, 0, { event: "x", data: "y".repeat(300) }); // 300+ bytes: 2-byte varint
  const zbig = wireBytes(big);
  assert.equal(zbig[0], 0x78, "frames over 256 bytes go compressed");
  const raw = encodeFrame(0x04, 0, { event: "z", data: "q".repeat(200) });
  assert(raw.length > 127 && raw.length <= 256);
  const items = [small, zbig, raw];
  const parts: number[] = [];
  for (const m of items) {
    let n = m.length;
    while (n >= 0x80) {
      parts.push((n & 0x7f) | 0x80);
      n >>>= 7;
    }
    parts.push(n);
    parts.push(...m);
  }
  const msg = new Uint8Array(9 + parts.length);
  const v = new DataView(msg.buffer);
  msg[0] = 0x0c;
  v.setUint32(1, items.length);
  v.setUint32(5, parts.length);
  msg.set(parts, 9);
  assert.equal(hex(encodeBatch(items)), hex(msg), "the encoder writes the same bytes");
  const frames = decodeBatch(msg)!;
  assert.equal(frames.length, 3);
  assert.deepEqual(body(frames[0]), { result: 1, correlationId: 7 });
  assert.equal((body(frames[1]) as { data: string }).data.length, 300);
  assert.equal(frames[2].opcode, 0x04);
});

test("the item count in the header is informational", () => {
  const b = encodeBatch([encodeFrame(0x07, 0, null)]);
  new DataView(b.buffer).setUint32(1, 99);
  assert.equal(decodeBatch(b)!.length, 1);
});

test("a malformed batch is rejected as a whole", () => {
  const good = encodeBatch([encodeFrame(0x07, 0, null), encodeFrame(0x03, 0, { event: "e" })]);
  const withPayload = (payload: number[], declared = payload.length) => {
    const m = new Uint8Array(9 + payload.length);
    m[0] = 0x0c;
    new DataView(m.buffer).setUint32(5, declared);
    m.set(payload, 9);
    return m;
  };
  const ping = Array.from(encodeFrame(0x07, 0, null));
  const cases: [string, Uint8Array][] = [
    ["shorter than a header", good.subarray(0, 8)],
    ["payload shorter than declared", good.subarray(0, good.length - 1)],
    ["bytes after the payload", new Uint8Array([...good, 0])],
    ["an item longer than what is left", withPayload([ping.length + 1, ...ping])],
    ["an empty item", withPayload([0, ping.length, ...ping])],
    ["a varint cut off", withPayload([...[ping.length], ...ping, 0x80])],
    ["a varint of five bytes", withPayload([0x80, 0x80, 0x80, 0x80, 0x01])],
    ["a nested batch", withPayload([good.length, ...good])],
    ["an item with an unknown opcode", withPayload([ping.length, 0x0d, ...ping.slice(1)])],
    ["an item that is not a frame", withPayload([3, 0x01, 0x00, 0x00])],
    ["a compressed item that inflates to a batch", withPayload([...varint(zlibSync(good).length), ...zlibSync(good)])],
    ["a compressed item with a bad checksum", withPayload(badZlib())],
    ["a payload over 1,048,576 bytes", withPayload([], 1_048_577)],
  ];
  for (const [name, m] of cases) assert.equal(decodeBatch(m), null, name);
  // One good item followed by a bad one yields nothing, not the first item.
  assert.equal(decodeBatch(withPayload([ping.length, ...ping, 2, 0x07, 0x00])), null);
});

function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}

function badZlib(): number[] {
  const z = zlibSync(encodeFrame(0x04, 0, { event: "x", data: "y".repeat(400) }));
  z[z.length - 1] ^= 0xff;
  return [...varint(z.length), ...z];
}

test("receive reads BATCH only where batching was negotiated", () => {
  const b = encodeBatch([encodeFrame(0x07, 0, null), encodeFrame(0x08, 0, null)]);
  assert.equal(receive(b, true).length, 2);
  assert.equal(receive(b, false).length, 0, "a v1 connection drops opcode 0x0C like any unknown opcode");
  const single = encodeFrame(0x08, 0, null);
  assert.equal(receive(single, true).length, 1);
  assert.equal(receive(single, false).length, 1);
  assert.equal(receive(bytes("0c00000000"), true).length, 0);
});

test("an outbox without batching sends every frame at once, compressed by the 256-byte rule", () => {
  const sent: Uint8Array[] = [];
  const out = new Outbox((m) => sent.push(m));
  out.send(encodeFrame(0x07, 0, null));
  out.send(encodeFrame(0x03, 0, { event: "e", data: "x".repeat(400) }));
  assert.equal(sent.length, 2);
  assert.equal(sent[0][0], 0x07);
  assert.equal(sent[1][0], 0x78);
});

test("an outbox with batching sends frames queued in one task together", async () => {
  const sent: Uint8Array[] = [];
  const out = new Outbox((m) => sent.push(m));
  out.batching = true;
  out.send(encodeFrame(0x01, 1, { method: "a", params: null, correlationId: 1 }));
  out.send(encodeFrame(0x01, 2, { method: "b", params: "z".repeat(500), correlationId: 2 }));
  out.send(encodeFrame(0x03, 0, { event: "e" }));
  assert.equal(sent.length, 0, "nothing goes out before the task ends");
  await Promise.resolve();
  assert.equal(sent.length, 1);
  assert.equal(sent[0][0], 0x0c);
  const frames = decodeBatch(sent[0])!;
  assert.deepEqual(
    frames.map((f) => f.correlationId),
    [1, 2, 0],
  );
  const items = itemFirstBytes(sent[0]);
  assert.deepEqual(items, [0x01, 0x78, 0x03], "each item is compressed as it would be alone");

  // A lone frame goes out as a plain message.
  out.send(encodeFrame(0x07, 0, null));
  await Promise.resolve();
  assert.equal(sent.length, 2);
  assert.equal(sent[1][0], 0x07);
});

function itemFirstBytes(b: Uint8Array): number[] {
  const out: number[] = [];
  let at = 9;
  while (at < b.length) {
    let len = 0;
    let shift = 1;
    for (;;) {
      const x = b[at++];
      len += (x & 0x7f) * shift;
      shift *= 128;
      if (x < 0x80) break;
    }
    out.push(b[at]);
    at += len;
  }
  return out;
}

test("an outbox never builds a batch over 1,048,576 bytes", async () => {
  const sent: Uint8Array[] = [];
  const out = new Outbox((m) => sent.push(m));
  out.batching = true;
  // Random payloads of 400,000 characters (about 330 KB compressed): four cannot share one batch.
  const noise = () => {
    const b = new Uint8Array(400_000);
    for (let i = 0; i < b.length; i += 65536) crypto.getRandomValues(b.subarray(i, i + 65536));
    return Array.from(b, (x) => String.fromCharCode(35 + (x % 90))).join("");
  };
  for (let i = 0; i < 4; i++) out.send(encodeFrame(0x03, 0, { event: "e", data: noise() }));
  await Promise.resolve();
  assert(sent.length >= 2, `sent ${sent.length} messages`);
  let frames = 0;
  for (const m of sent) {
    assert(m.length <= 9 + 1_048_576, `message of ${m.length} bytes`);
    frames += m[0] === 0x0c ? decodeBatch(m)!.length : 1;
  }
  assert.equal(frames, 4);
});

test("a token is offered as a subprotocol only when it is an HTTP token", () => {
  assert.equal(tokenProtocol("eyJhbGciOi.eyJzdWIi.sig-_x"), "datasole.token.eyJhbGciOi.eyJzdWIi.sig-_x");
  for (const bad of ["a b", "a/b", "a=b", "a,b", 'a"b', "", "é"]) {
    assert.throws(() => tokenProtocol(bad), /subprotocol/, JSON.stringify(bad));
  }
});

test("v1 frames still decode alone", () => {
  const f = decodeMessage(encodeFrame(0x02, 5, { result: 2, correlationId: 5 }))!;
  assert.equal(f.correlationId, 5);
});

test("mutated batches never throw: they decode to well-formed frames or are dropped whole", () => {
  // A fixed-seed generator, so a failure repeats.
  let seed = 0x2545f491;
  const rand = (n: number) => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  const seeds = [
    encodeBatch([encodeFrame(0x07, 0, null), encodeFrame(0x03, 0, { event: "e" })]),
    encodeBatch([wireBytes(encodeFrame(0x04, 0, { event: "x", data: "y".repeat(500) })), encodeFrame(0x02, 9, { result: 1 })]),
  ];
  let decoded = 0;
  for (let i = 0; i < 5000; i++) {
    const m = seeds[rand(seeds.length)].slice();
    for (let k = 1 + rand(4); k > 0; k--) {
      switch (rand(3)) {
        case 0:
          m[rand(m.length)] = rand(256);
          break;
        case 1:
          m[9 + rand(m.length - 9)] ^= 1 << rand(8);
          break;
        case 2:
          m[rand(12)] = rand(256); // the header and the first length
      }
    }
    const cut = rand(4) === 0 ? m.subarray(0, rand(m.length + 1)) : m;
    const frames = decodeBatch(cut);
    if (frames === null) continue;
    decoded++;
    for (const f of frames) {
      assert(f.opcode >= 0x01 && f.opcode <= 0x0b, `opcode ${f.opcode}`);
      assert(f.payload.length <= 1_048_576);
    }
  }
  assert(decoded > 0, "some mutations (e.g. of the informational count) still decode");
});
