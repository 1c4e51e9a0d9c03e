// Transport worker: owns the WebSocket, inflates and decodes inbound messages and compresses
// outbound frames, so the page thread never runs zlib.
//
// Message protocol (a superset of the v1 worker's, so pages running the v1 client can load
// this script from <path>/datasole-worker.iife.min.js):
//   page → worker: connect {url, protocols?}, send {data} (bytes sent as is), frame {data} (an
//                  uncompressed frame, compressed here by the 256-byte rule), frames {data: []}
//                  (several, sent as one BATCH when the server selected datasole.batch.v1),
//                  disconnect {code?, reason?},
//                  init-sab (ignored: one ordered postMessage path avoids reordering)
//   worker → page: ready, open {protocol}, error, close {code, reason},
//                  message {opcode, correlationId, payload} (one per frame, BATCH items included)
import { Outbox, receive, subprotocolBatch } from "./batch";

// Typed by hand: the DOM and WebWorker libs cannot share one compilation.
const scope = self as unknown as {
  postMessage(message: unknown, transfer?: Transferable[]): void;
  onmessage: ((ev: MessageEvent) => void) | null;
};

let socket: WebSocket | null = null;
let batching = false;
const out = new Outbox((m) => {
  if (socket?.readyState === WebSocket.OPEN) socket.send(m);
});

function open(url: string, protocols: string[]): void {
  drop();
  let ws: WebSocket;
  try {
    ws = new WebSocket(url, protocols);
  } catch {
    scope.postMessage({ type: "error" });
    scope.postMessage({ type: "close", payload: { code: 1006, reason: "invalid url" } });
    return;
  }
  ws.binaryType = "arraybuffer";
  ws.onopen = () => {
    batching = out.batching = ws.protocol === subprotocolBatch;
    scope.postMessage({ type: "open", payload: { protocol: ws.protocol } });
  };
  ws.onerror = () => scope.postMessage({ type: "error" });
  ws.onclose = (ev) => {
    if (socket === ws) {
      socket = null;
      out.clear();
      batching = out.batching = false;
    }
    scope.postMessage({ type: "close", payload: { code: ev.code, reason: ev.reason } });
  };
  ws.onmessage = (ev) => {
    if (typeof ev.data === "string") return; // v1 peers never send text
    for (const frame of receive(new Uint8Array(ev.data as ArrayBuffer), batching)) {
      // Copy to a fresh buffer so it can be transferred without cloning.
      const payload = frame.payload.slice();
      scope.postMessage(
        { type: "message", payload: { opcode: frame.opcode, correlationId: frame.correlationId, payload } },
        [payload.buffer],
      );
    }
  };
  socket = ws;
}

// drop detaches the current socket so its late events cannot be mistaken for a newer one's.
function drop(code = 1000, reason = ""): void {
  const ws = socket;
  if (ws?.readyState === WebSocket.OPEN) out.flush();
  out.clear();
  batching = out.batching = false;
  socket = null;
  if (!ws) return;
  ws.onopen = ws.onmessage = ws.onerror = null;
  ws.onclose = null;
  try {
    ws.close(code, reason);
  } catch {
    ws.close();
  }
  scope.postMessage({ type: "close", payload: { code, reason } });
}

scope.onmessage = (ev: MessageEvent) => {
  const msg = ev.data as { type?: string; payload?: Record<string, unknown> } | null;
  if (!msg) return;
  const p = msg.payload ?? {};
  switch (msg.type) {
    case "connect":
      open(String(p.url), Array.isArray(p.protocols) ? p.protocols.map(String) : []);
      break;
    case "send":
      if (socket?.readyState === WebSocket.OPEN) socket.send(p.data as Uint8Array);
      break;
    case "frame":
      if (socket?.readyState === WebSocket.OPEN) out.send(p.data as Uint8Array);
      break;
    case "frames":
      if (socket?.readyState === WebSocket.OPEN && Array.isArray(p.data)) {
        for (const f of p.data) out.send(f as Uint8Array);
      }
      break;
    case "disconnect":
      drop(typeof p.code === "number" ? p.code : 1000, typeof p.reason === "string" ? p.reason : "");
      break;
  }
};

scope.postMessage({ type: "ready" });
