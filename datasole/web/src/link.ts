// A Link is one connection attempt: a WebSocket on the page thread (direct mode) or in a
// dedicated worker (worker mode). It reports open once, frames in order, and close once.
import { Outbox, receive, subprotocolBatch } from "./batch";
import type { Frame } from "./protocol";

/** Callbacks a Link reports to; close is called exactly once per Link. */
export interface LinkEvents {
  /** open reports the subprotocol the server selected ("" for none). */
  open(protocol: string): void;
  frame(frame: Frame): void;
  close(code: number, reason: string, error?: Error): void;
}

/** Link is the transport of one connection attempt. */
export interface Link {
  /** send transmits an uncompressed frame, compressing it by the 256-byte rule. */
  send(frame: Uint8Array): void;
  /** close ends the connection; the close callback still fires once. */
  close(code: number, reason: string): void;
}

/**
 * openDirect opens the WebSocket on the calling thread, offering protocols. When the server
 * selects datasole.batch.v1, BATCH messages are accepted and frames queued in the same task
 * go out together.
 */
export function openDirect(url: string, protocols: string[], ev: LinkEvents): Link {
  let done = false;
  let batching = false;
  const finish = (code: number, reason: string, error?: Error) => {
    if (done) return;
    done = true;
    ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
    out.clear();
    ev.close(code, reason, error);
  };
  const ws = new WebSocket(url, protocols);
  ws.binaryType = "arraybuffer";
  const out = new Outbox((m) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(m);
  });
  ws.onopen = () => {
    batching = out.batching = ws.protocol === subprotocolBatch;
    ev.open(ws.protocol);
  };
  ws.onmessage = (m) => {
    if (typeof m.data === "string") return;
    for (const f of receive(new Uint8Array(m.data as ArrayBuffer), batching)) {
      if (done) return;
      ev.frame(f);
    }
  };
  // A close event follows every error event; the close carries what matters.
  ws.onerror = () => {};
  ws.onclose = (c) => finish(c.code, c.reason);
  return {
    send(frame) {
      if (ws.readyState === WebSocket.OPEN) out.send(frame);
    },
    close(code, reason) {
      out.flush();
      try {
        ws.close(code, reason);
      } catch {
        ws.close();
      }
      finish(code, reason);
    },
  };
}

/** WorkerUnavailable marks a failure to start the worker script, as opposed to a network failure. */
export class WorkerUnavailable extends Error {}

/**
 * openWorker starts a dedicated worker that owns the WebSocket. If the script cannot be
 * loaded or does not announce itself within readyTimeout ms, close reports a
 * WorkerUnavailable error so the caller can fall back to direct mode.
 */
export function openWorker(workerUrl: string, url: string, protocols: string[], readyTimeout: number, ev: LinkEvents): Link {
  let done = false;
  let ready = false;
  let worker: Worker | null = null;
  const finish = (code: number, reason: string, error?: Error, linger = 0) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    const w = worker;
    // Lingering lets the worker complete the WebSocket closing handshake before it dies.
    if (linger) setTimeout(() => w?.terminate(), linger);
    else w?.terminate();
    ev.close(code, reason, error);
  };
  const timer = setTimeout(() => finish(1006, "worker did not start", new WorkerUnavailable("worker did not start")), readyTimeout);
  try {
    worker = new Worker(workerUrl);
  } catch (e) {
    // Deferred so the caller holds the Link before any callback runs.
    queueMicrotask(() => finish(1006, "worker failed", new WorkerUnavailable(String(e))));
    return { send() {}, close: (code, reason) => finish(code, reason) };
  }
  worker.onerror = (e) => {
    e.preventDefault();
    finish(1006, "worker failed", ready ? new Error("worker error") : new WorkerUnavailable("worker script failed to load"));
  };
  worker.onmessage = (m: MessageEvent) => {
    if (done) return;
    const msg = m.data as { type?: string; payload?: Record<string, unknown> } | null;
    switch (msg?.type) {
      case "ready":
        ready = true;
        clearTimeout(timer);
        break;
      case "open":
        ev.open(String(msg.payload?.protocol ?? ""));
        break;
      case "message": {
        const p = msg.payload as unknown as Frame;
        ev.frame({ opcode: p.opcode, correlationId: p.correlationId, payload: p.payload });
        break;
      }
      case "close": {
        const p = msg.payload ?? {};
        finish(Number(p.code ?? 1006), String(p.reason ?? ""));
        break;
      }
    }
  };
  worker.postMessage({ type: "connect", payload: { url, protocols } });
  // Frames sent in one task cross to the worker in one message, so that the worker, which
  // batches what it gets in one task, can put them into one BATCH.
  let queue: Uint8Array[] = [];
  const flush = () => {
    const frames = queue;
    queue = [];
    if (!done && frames.length > 0) {
      worker!.postMessage({ type: "frames", payload: { data: frames } }, frames.map((f) => f.buffer));
    }
  };
  return {
    send(frame) {
      if (done) return;
      if (queue.push(frame) === 1) queueMicrotask(flush);
    },
    close(code, reason) {
      flush();
      if (!done) worker!.postMessage({ type: "disconnect", payload: { code, reason } });
      finish(code, reason, undefined, 1000);
    },
  };
}
