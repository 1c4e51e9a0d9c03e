/** DatasoleError is the error every failed call, timeout and server ERROR frame rejects with. */
export class DatasoleError extends Error {
  /** code is the RPC error code (−32601, −32000, …), the ERROR frame's code, or a client code. */
  readonly code?: number | string;
  /** data is the RPC error's optional `data` member. */
  readonly data?: unknown;
  /** retryAfter is the server's hint (ms) from a rate-limit ERROR frame. */
  readonly retryAfter?: number;

  constructor(message: string, extra: { code?: number | string; data?: unknown; retryAfter?: number } = {}) {
    super(message);
    this.name = "DatasoleError";
    this.code = extra.code;
    this.data = extra.data;
    this.retryAfter = extra.retryAfter;
  }
}
