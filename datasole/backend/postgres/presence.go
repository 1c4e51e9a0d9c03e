package dspostgres

import (
	"context"
	"time"

	"github.com/datasole/datasole-go/datasole/backend"
)

// Presence entries are rows of <table>_presence keyed by set and
// connection; liveness is one row per node in <table>_nodes, compared with
// the database clock. Set names and node ids carry the prefix. Entries of
// dead nodes are not read, and are deleted by the periodic cleanup and by
// the node's own KeepNodeAlive once it lapsed.

// AddPresence implements backend.Presence.
func (b *Backend) AddPresence(ctx context.Context, set string, e backend.PresenceEntry) error {
	if err := e.Validate(); err != nil {
		return err
	}
	if err := b.check(ctx); err != nil {
		return err
	}
	if e.Info == nil {
		e.Info = []byte{}
	}
	_, err := b.pool.Exec(ctx, `INSERT INTO `+b.presence+` (set_name, conn, node, user_id, info) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (set_name, conn) DO UPDATE SET node = EXCLUDED.node, user_id = EXCLUDED.user_id, info = EXCLUDED.info`,
		b.key(set), []byte(e.ConnID), b.key(e.NodeID), []byte(e.UserID), e.Info)
	if err != nil {
		return b.fail("add presence", err)
	}
	return nil
}

// RemovePresence implements backend.Presence.
func (b *Backend) RemovePresence(ctx context.Context, set, connID string) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	if _, err := b.pool.Exec(ctx, `DELETE FROM `+b.presence+` WHERE set_name = $1 AND conn = $2`, b.key(set), []byte(connID)); err != nil {
		return b.fail("remove presence", err)
	}
	return nil
}

// liveEntries joins a set's entries with the live nodes.
func (b *Backend) liveEntries() string {
	return b.presence + ` p JOIN ` + b.nodes + ` n ON n.node = p.node WHERE p.set_name = $1 AND n.expires_at > now()`
}

// ListPresence implements backend.Presence.
func (b *Backend) ListPresence(ctx context.Context, set string, limit int) ([]backend.PresenceEntry, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	rows, err := b.pool.Query(ctx, `SELECT p.conn, p.user_id, p.node, p.info FROM `+b.liveEntries()+` LIMIT $2`,
		b.key(set), backend.PresenceLimit(limit))
	if err != nil {
		return nil, b.fail("list presence", err)
	}
	defer rows.Close()
	var out []backend.PresenceEntry
	for rows.Next() {
		var conn, user, node, info []byte
		if err := rows.Scan(&conn, &user, &node, &info); err != nil {
			return nil, b.fail("list presence", err)
		}
		out = append(out, backend.PresenceEntry{ConnID: string(conn), UserID: string(user), NodeID: string(node[len(b.prefix):]), Info: info})
	}
	if err := rows.Err(); err != nil {
		return nil, b.fail("list presence", err)
	}
	return out, nil
}

// PresenceStats implements backend.Presence. The database counts, so no
// entry is transferred; the cost is a scan of the set's index.
func (b *Backend) PresenceStats(ctx context.Context, set string) (backend.PresenceStats, error) {
	if err := b.check(ctx); err != nil {
		return backend.PresenceStats{}, err
	}
	var conns, users int64
	if err := b.pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT p.user_id) FROM `+b.liveEntries(), b.key(set)).Scan(&conns, &users); err != nil {
		return backend.PresenceStats{}, b.fail("presence stats", err)
	}
	return backend.PresenceStats{Connections: int(conns), Users: int(users)}, nil
}

// KeepNodeAlive implements backend.Presence with one statement: it
// refreshes the node's row and, when the node had lapsed, deletes its
// entries.
func (b *Backend) KeepNodeAlive(ctx context.Context, nodeID string, ttl time.Duration) (bool, error) {
	if err := b.check(ctx); err != nil {
		return false, err
	}
	var lapsed bool
	err := b.pool.QueryRow(ctx, `WITH old AS (
	SELECT expires_at > now() AS alive FROM `+b.nodes+` WHERE node = $1
), purged AS (
	DELETE FROM `+b.presence+` WHERE node = $1 AND NOT COALESCE((SELECT alive FROM old), false)
)
INSERT INTO `+b.nodes+` (node, expires_at) VALUES ($1, now() + $2::bigint * interval '1 millisecond')
ON CONFLICT (node) DO UPDATE SET expires_at = EXCLUDED.expires_at
RETURNING NOT COALESCE((SELECT alive FROM old), false)`, b.key(nodeID), max(ttl.Milliseconds(), 1)).Scan(&lapsed)
	if err != nil {
		return false, b.fail("keep node alive", err)
	}
	return lapsed, nil
}
