// Live state: one value per key, changed by STATE_PATCH and STATE_SNAPSHOT (PROTOCOL §5.5–5.6,
// REFERENCE-BEHAVIOR §5.3), plus per-key versions so gaps and failed patches trigger a resync.
import { deliver } from "./subscription";
import { applyPatch, type Operation } from "fast-json-patch/module/core.mjs";

const allowedOps = new Set(["add", "remove", "replace", "move", "copy", "test"]);
const forbiddenSegments = new Set(["__proto__", "constructor", "prototype"]);
const indexPath = /^\/\d+(\/|$)/;

function forbidden(path: unknown): boolean {
  return typeof path === "string" && path.split("/").some((s) => forbiddenSegments.has(s));
}

/**
 * applyPatches applies RFC 6902 ops to a copy of base and returns the new value, or throws
 * if any op is invalid or fails; base is never modified.
 */
export function applyPatches(base: unknown, patches: unknown): unknown {
  if (!Array.isArray(patches)) throw new Error("patches is not an array");
  if (patches.length === 0) return base;
  for (const p of patches) {
    if (typeof p !== "object" || p === null || !allowedOps.has((p as Operation).op)) throw new Error("bad op");
    if (typeof (p as Operation).path !== "string") throw new Error("bad path");
    if (forbidden((p as Operation).path) || forbidden((p as { from?: unknown }).from)) throw new Error("forbidden path");
  }
  let start = base;
  if (start === undefined || start === null) {
    const first = patches[0] as Operation & { value?: unknown };
    const arrayRoot = first.op === "replace" && first.path === "" && Array.isArray(first.value);
    start = arrayRoot || indexPath.test(first.path) ? [] : {};
  }
  const copy = JSON.parse(JSON.stringify(start)) as unknown;
  return applyPatch(copy, patches as Operation[], false, true, true).newDocument;
}

/** Subscriber receives a key's whole value after every change. */
export type Subscriber = (value: unknown) => void;

/** StateStore holds one key's value, its last known version and its subscribers. */
export class StateStore {
  value: unknown = undefined;
  /** version is the last version seen for the key, or undefined when the server sends none. */
  version: number | undefined = undefined;
  /** stale is set after a gap or failed patch, until the next snapshot arrives. */
  stale = false;
  readonly subscribers = new Set<Subscriber>();

  /** snapshot replaces the value; the server is authoritative, whatever the version. */
  snapshot(data: unknown, version: unknown): void {
    this.value = data;
    this.version = typeof version === "number" ? version : undefined;
    this.stale = false;
    this.notify();
  }

  /**
   * patch applies a STATE_PATCH and reports whether a resync is needed. A versioned patch must
   * apply to the last version exactly: to `base` when the server sends it (a batched flush
   * carries several versions at once), else to version - 1; older ones are duplicates and ignored.
   */
  patch(patches: unknown, version: unknown, base?: unknown): "ok" | "ignored" | "resync" {
    const versioned = typeof version === "number";
    if (versioned && this.version !== undefined) {
      if (version <= this.version) return "ignored";
      const from = typeof base === "number" ? base : version - 1;
      if (this.stale || from !== this.version) {
        this.stale = true;
        return "resync";
      }
    }
    try {
      this.value = applyPatches(this.value, patches);
    } catch {
      // A versioned server can repair the value; a v1 server cannot, so keep the old value.
      if (!versioned) return "ignored";
      this.stale = true;
      return "resync";
    }
    this.version = versioned ? version : undefined;
    this.notify();
    return "ok";
  }

  private notify(): void {
    deliver(this.subscribers, this.value);
  }
}
