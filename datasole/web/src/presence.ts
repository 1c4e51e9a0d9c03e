// Presence: who is in a tag the server tracks (datasole TrackPresence), and join and leave
// events. Wire: RPC "$ds.presence" {tag} → {entries: [{conn, user, info?}]}, RPC
// "$ds.presence.stats" {tag} → {conns, users}, events "$ds.join" and "$ds.leave" with data
// {tag, conn, user, info?}; the calls are answered only for a connection in the tag (else
// error -32004).

/** PresenceEntry is one connection in a tag: its connection id, user id and the info the server attaches. */
export interface PresenceEntry<I = unknown> {
  /** conn is the connection's id, unique across the server's nodes. */
  conn: string;
  /** user is the connection's user id ("" for anonymous connections). */
  user: string;
  /** info is what the server's PresenceOptions.Info selected, when it attaches any. */
  info?: I;
}

/** PresenceChange is a join or a leave in a tracked tag. */
export interface PresenceChange<I = unknown> extends PresenceEntry<I> {
  /** tag is the tag joined or left. */
  tag: string;
}

/** PresenceStats counts the connections and distinct users in a tag. */
export interface PresenceStats {
  conns: number;
  users: number;
}

export const presenceMethod = "$ds.presence";
export const presenceStatsMethod = "$ds.presence.stats";
export const joinEvent = "$ds.join";
export const leaveEvent = "$ds.leave";

/** parseEntry validates one entry; undefined drops it. */
export function parseEntry(v: unknown): PresenceEntry | undefined {
  if (typeof v !== "object" || v === null) return undefined;
  const e = v as Record<string, unknown>;
  if (typeof e.conn !== "string" || typeof e.user !== "string") return undefined;
  const out: PresenceEntry = { conn: e.conn, user: e.user };
  if (e.info !== undefined && e.info !== null) out.info = e.info;
  return out;
}

/** parseChange validates the data of a join or leave event. */
export function parseChange(v: unknown): PresenceChange | undefined {
  const e = parseEntry(v);
  const tag = (v as Record<string, unknown> | null)?.tag;
  if (!e || typeof tag !== "string") return undefined;
  return { tag, ...e };
}

/** parseEntries validates the result of $ds.presence; undefined when it is not a list of entries. */
export function parseEntries(v: unknown): PresenceEntry[] | undefined {
  const list = (v as Record<string, unknown> | null)?.entries;
  if (!Array.isArray(list)) return undefined;
  const out: PresenceEntry[] = [];
  for (const item of list) {
    const e = parseEntry(item);
    if (e) out.push(e);
  }
  return out;
}

/** parseStats validates the result of $ds.presence.stats. */
export function parseStats(v: unknown): PresenceStats | undefined {
  const s = v as Record<string, unknown> | null;
  if (typeof s?.conns !== "number" || typeof s.users !== "number") return undefined;
  return { conns: s.conns, users: s.users };
}
