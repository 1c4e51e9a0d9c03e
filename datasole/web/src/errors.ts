/**
 * ConnectionErrorCode names why a connection could not be opened or was closed, so a page
 * can react (sign in again, show "server down", …) instead of parsing messages.
 */
export type ConnectionErrorCode =
  | "unauthorized"
  | "forbidden-origin"
  | "not-found"
  | "unreachable"
  | "over-capacity"
  | "server-error"
  | "upgrade-failed"
  | "connection-failed"
  | "session-expired"
  | "revoked"
  | "policy"
  | "too-big"
  | "server-closed";

/** DatasoleError is the error every failed call, timeout, server ERROR frame and failed connection rejects with. */
export class DatasoleError extends Error {
  /**
   * code is the RPC error code (−32601, −32000, …), the ERROR frame's code, a client code
   * ("timeout", "closed", "not-connected", "bad-response"), or a ConnectionErrorCode.
   */
  readonly code?: number | string;
  /** data is the RPC error's optional `data` member. */
  readonly data?: unknown;
  /** retryAfter is the server's hint (ms) from a rate-limit ERROR frame. */
  readonly retryAfter?: number;
  /** status is the HTTP status the server refused the connection with, when the client learned it. */
  readonly status?: number;
  /** closeCode is the WebSocket close code behind a connection error. */
  readonly closeCode?: number;

  constructor(
    message: string,
    extra: { code?: number | string; data?: unknown; retryAfter?: number; status?: number; closeCode?: number } = {},
  ) {
    super(message);
    this.name = "DatasoleError";
    this.code = extra.code;
    this.data = extra.data;
    this.retryAfter = extra.retryAfter;
    this.status = extra.status;
    this.closeCode = extra.closeCode;
  }
}

/**
 * closeError explains a close of an open connection by its code, or returns undefined for
 * a normal close (1000) and closes that carry no particular meaning.
 */
export function closeError(code: number, reason: string): DatasoleError | undefined {
  const why = reason ? ` ("${reason}")` : "";
  const e = (c: ConnectionErrorCode, message: string) => new DatasoleError(message, { code: c, closeCode: code });
  switch (code) {
    case 4001:
      return e("session-expired", `Connection closed (4001): the session expired${why}; get a fresh credential (sign in again) and connect`);
    case 4003:
      return e("revoked", `Connection closed (4003): the server revoked this connection's credential${why}; sign in again before reconnecting`);
    case 1013:
      return e("over-capacity", `Connection closed (1013): the server is at its connection limit${why}; retry later`);
    case 1008:
      return e("policy", `Connection closed (1008): the server closed the connection for a policy violation${why}, e.g. too many rate-limited frames or reading too slowly`);
    case 1009:
      return e("too-big", `Connection closed (1009): a message was larger than the server accepts${why}`);
    case 1001:
      return e("server-closed", `Connection closed (1001): the server is shutting down${why}; reconnect later`);
  }
  return undefined;
}
