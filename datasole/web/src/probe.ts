// Why a connection failed. Browsers hide the HTTP status of a refused WebSocket upgrade (every
// refusal is close code 1006), so after a failed upgrade the client asks the server with a
// plain GET of the same URL plus the probe marker; a datasole server answers it with the
// status the upgrade got (401, 403, 429, 503, or 204 when it would have been admitted),
// without taking a connection slot. Close codes after an open need no probe.
import { DatasoleError } from "./errors";

/** probeParam is the query parameter that marks a probe request. */
export const probeParam = "ds-probe";
/** probeHeader carries the offered subprotocols when they hold a credential (no URL may carry it). */
export const probeHeader = "Datasole-Protocol";
// The server marks its answers to probes with this header; "limited" means it refused to
// answer because this address probed too often.
const answeredHeader = "Datasole-Probe";

/** ProbeTarget is what the probe needs to know about the failed attempt. */
export interface ProbeTarget {
  /** wsUrl is the URL the WebSocket was opened with (query included). */
  wsUrl: string;
  /** path is the client's path option, for messages. */
  path: string;
  /** token says whether a credential was sent. */
  token: boolean;
  /** protocols is the subprotocol offer when it carries the credential; else unset. */
  protocols?: string[];
  /** timeout bounds the probe (ms). */
  timeout: number;
}

/**
 * probeUrl turns the WebSocket URL into the probe's http(s) URL: the same query, byte for
 * byte (an auth handler may check it, e.g. a signed URL), with the marker appended.
 */
export function probeUrl(wsUrl: string): string {
  const u = new URL(wsUrl);
  u.protocol = u.protocol === "wss:" ? "https:" : "http:";
  u.search = (u.search ? u.search + "&" : "?") + probeParam + "=1";
  return u.toString();
}

// endpoint is the http(s) URL of the endpoint without the query (which may hold a token).
function endpoint(wsUrl: string): string {
  const u = new URL(wsUrl);
  u.protocol = u.protocol === "wss:" ? "https:" : "http:";
  u.search = "";
  return u.toString();
}

function pageOrigin(): string {
  return typeof location !== "undefined" ? location.origin : "";
}

function failure(code: string, message: string, status?: number): DatasoleError {
  return new DatasoleError(message, { code, status, closeCode: 1006 });
}

/** explainStatus turns the probe's HTTP status into the error the connection failed with. */
export function explainStatus(status: number, t: ProbeTarget, answered: string | null): DatasoleError {
  const http = endpoint(t.wsUrl);
  switch (status) {
    case 204:
    case 200:
      if (answered === null) break;
      if (t.protocols) {
        return failure(
          "upgrade-failed",
          `Connection failed: the server at ${http} accepts the credential but did not complete the WebSocket handshake that offered it as a subprotocol; it may not support auth.sendAs "subprotocol" (send the token as a query parameter instead), or a proxy in between does not forward WebSocket upgrades`,
          status,
        );
      }
      return failure(
        "upgrade-failed",
        `Connection failed: the server at ${http} would admit this page, but the WebSocket upgrade did not complete; something in between (a proxy or load balancer) may not forward WebSocket upgrades`,
        status,
      );
    case 401:
      return failure(
        "unauthorized",
        t.token
          ? `Connection refused (HTTP 401): the server did not accept the credential in auth.token (wrong, expired or revoked); get a fresh one and connect again`
          : `Connection refused (HTTP 401): the server requires a credential and none was sent; pass one as auth.token (or sign in first when the server uses cookies)`,
        status,
      );
    case 403:
      return failure(
        "forbidden-origin",
        `Connection refused (HTTP 403): the server refused this page's origin (${pageOrigin() || "unknown"}); add it to the server's Options.AllowedOrigins, or serve the page from the server's own origin`,
        status,
      );
    case 404:
      return failure(
        "not-found",
        `Connection failed (HTTP 404): nothing answers at ${http}; the client's path option ("${t.path}") must equal the server's Options.Path, and the datasole handler must be mounted there`,
        status,
      );
    case 408:
    case 500:
      return failure(
        "server-error",
        `Connection refused (HTTP ${status}): the server could not check the credential (its auth handler ${status === 408 ? "timed out" : "failed"}); see the server's log`,
        status,
      );
    case 429:
      if (answered === "limited") break;
      return failure(
        "over-capacity",
        `Connection refused (HTTP 429): too many connections from this user or address (the server's MaxConnectionsPerUser or MaxConnectionsPerIP); close other tabs or raise the limit`,
        status,
      );
    case 503:
      return failure(
        "over-capacity",
        `Connection refused (HTTP 503): the server is at its connection limit (Options.MaxConnections), starting, or shutting down; retry later`,
        status,
      );
  }
  if (status >= 300 && status < 400) {
    return failure(
      "not-found",
      `Connection failed (HTTP ${status}): ${http} redirects elsewhere, so it is not the datasole endpoint; check the client's path option ("${t.path}") and where the handler is mounted`,
      status,
    );
  }
  return failure(
    "connection-failed",
    `Connection failed (1006): the server refused the WebSocket upgrade and did not say why${status ? ` (its answer to a plain request was HTTP ${status})` : ""}`,
    status || undefined,
  );
}

/**
 * probe asks the server why the upgrade of t.wsUrl failed and returns the error to report.
 * A probe that cannot reach the server at all means the server is unreachable.
 */
export async function probe(t: ProbeTarget): Promise<DatasoleError> {
  if (typeof fetch !== "function") return explainStatus(0, t, null);
  const url = probeUrl(t.wsUrl);
  const ctl = typeof AbortController === "function" ? new AbortController() : undefined;
  const timer = setTimeout(() => ctl?.abort(), t.timeout);
  try {
    const headers: Record<string, string> = {};
    if (t.protocols) headers[probeHeader] = t.protocols.join(", ");
    let res: Response;
    try {
      res = await fetch(url, { credentials: "include", cache: "no-store", redirect: "manual", headers, signal: ctl?.signal });
    } catch (e) {
      if (ctl?.signal.aborted) return explainStatus(0, t, null);
      // A cross-origin server that does not answer probes sends no CORS headers, which fails
      // the fetch just like a dead server would; an opaque request tells the two apart.
      if (!(await reachable(url, ctl?.signal))) {
        return failure(
          "unreachable",
          `Connection failed: the server at ${new URL(url).origin} could not be reached (not running, wrong URL or port, or the network is down)`,
        );
      }
      return explainStatus(0, t, null);
    }
    if (res.type === "opaqueredirect") return explainStatus(302, t, null);
    return explainStatus(res.status, t, res.headers.get(answeredHeader));
  } finally {
    clearTimeout(timer);
  }
}

async function reachable(url: string, signal?: AbortSignal): Promise<boolean> {
  try {
    await fetch(url, { mode: "no-cors", credentials: "omit", cache: "no-store", signal });
    return true;
  } catch {
    return false;
  }
}
