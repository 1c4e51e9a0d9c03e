// Unit tests of how a failed connection is explained: the probe's URL, the mapping of
// its answer to error codes and messages, and close codes after an open.
import assert from "node:assert/strict";
import { test } from "node:test";
import { closeError } from "../../src/errors";
import { explainStatus, probe, probeUrl, type ProbeTarget } from "../../src/probe";

const target: ProbeTarget = { wsUrl: "wss://app.example/__ds?token=abc", path: "/__ds", token: true, timeout: 1000 };

test("the probe asks the same URL over http(s) with the marker", () => {
  assert.equal(probeUrl("wss://app.example/__ds?token=a%20b&sig=x~y"), "https://app.example/__ds?token=a%20b&sig=x~y&ds-probe=1");
  assert.equal(probeUrl("ws://127.0.0.1:8080/x/__ds"), "http://127.0.0.1:8080/x/__ds?ds-probe=1");
});

test("every status the server answers maps to its own code", () => {
  const cases: [number, string | null, string, RegExp][] = [
    [401, "1", "unauthorized", /did not accept the credential in auth\.token/],
    [403, "1", "forbidden-origin", /Options\.AllowedOrigins/],
    [404, null, "not-found", /path option \("\/__ds"\) must equal the server's Options\.Path/],
    [429, "1", "over-capacity", /MaxConnectionsPerUser or MaxConnectionsPerIP/],
    [503, "1", "over-capacity", /Options\.MaxConnections/],
    [500, "1", "server-error", /auth handler failed/],
    [408, "1", "server-error", /auth handler timed out/],
    [204, "1", "upgrade-failed", /proxy/],
    [301, null, "not-found", /redirects/],
    [426, null, "connection-failed", /did not say why \(its answer to a plain request was HTTP 426\)/],
    [429, "limited", "connection-failed", /did not say why/],
    [204, null, "connection-failed", /did not say why/],
  ];
  for (const [status, answered, code, message] of cases) {
    const e = explainStatus(status, target, answered);
    assert.equal(e.code, code, `HTTP ${status} (${answered})`);
    assert.match(e.message, message, `HTTP ${status}`);
    assert.equal(e.closeCode, 1006);
  }
  assert.equal(explainStatus(401, target, "1").status, 401);
});

test("messages never repeat the token from the URL", () => {
  for (const status of [401, 403, 404, 204, 426]) {
    assert.equal(explainStatus(status, target, "1").message.includes("abc"), false, `HTTP ${status}`);
  }
});

test("a 401 without a token says to send one", () => {
  assert.match(explainStatus(401, { ...target, token: false }, "1").message, /none was sent; pass one as auth\.token/);
});

test("a 204 after offering a subprotocol credential names the option", () => {
  const e = explainStatus(204, { ...target, protocols: ["datasole.v1", "datasole.token.abc"] }, "1");
  assert.equal(e.code, "upgrade-failed");
  assert.match(e.message, /auth\.sendAs "subprotocol"/);
});

test("close codes after an open have their own codes", () => {
  assert.equal(closeError(4001, "token expired")?.code, "session-expired");
  assert.match(closeError(4001, "token expired")!.message, /"token expired"/);
  assert.equal(closeError(4003, "")?.code, "revoked");
  assert.equal(closeError(1013, "")?.code, "over-capacity");
  assert.equal(closeError(1008, "")?.code, "policy");
  assert.equal(closeError(1009, "")?.code, "too-big");
  assert.equal(closeError(1001, "")?.code, "server-closed");
  assert.equal(closeError(1000, ""), undefined);
  assert.equal(closeError(1006, ""), undefined);
  assert.equal(closeError(4001, "")?.closeCode, 4001);
});

test("a probe that reaches nothing means the server is unreachable", async () => {
  const saved = globalThis.fetch;
  const calls: { url: string; init?: RequestInit }[] = [];
  globalThis.fetch = (async (url: string, init?: RequestInit) => {
    calls.push({ url, init });
    throw new TypeError("Failed to fetch");
  }) as typeof fetch;
  try {
    const e = await probe({ ...target, protocols: ["datasole.v1", "datasole.token.abc"] });
    assert.equal(e.code, "unreachable");
    assert.match(e.message, /https:\/\/app\.example could not be reached/);
    assert.equal(calls.length, 2, "a CORS failure is told apart from a dead server by an opaque request");
    assert.equal(calls[0].init?.credentials, "include");
    assert.deepEqual(calls[0].init?.headers, { "Datasole-Protocol": "datasole.v1, datasole.token.abc" });
    assert.equal(calls[1].init?.mode, "no-cors");
  } finally {
    globalThis.fetch = saved;
  }
});

test("a server that answers but hides the answer from this origin is not unreachable", async () => {
  const saved = globalThis.fetch;
  globalThis.fetch = (async (_url: string, init?: RequestInit) => {
    if (init?.mode === "no-cors") return new Response(null, { status: 200 });
    throw new TypeError("Failed to fetch"); // CORS refused
  }) as typeof fetch;
  try {
    assert.equal((await probe(target)).code, "connection-failed");
  } finally {
    globalThis.fetch = saved;
  }
});
