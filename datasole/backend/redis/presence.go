package dsredis

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/redis/go-redis/v9"
)

// Presence keys. A set is four kinds of keys in one hash slot:
//
//	<base>:e          hash ConnID → packed entry (node, user, info)
//	<base>:u          hash UserID → its number of connections
//	<base>:n          hash NodeID → its number of connections
//	<base>:c:<node>   set of the node's ConnIDs
//
// so that counting is O(1) and removing a dead node's entries costs what
// it had. Liveness is one sorted set for the namespace, NodeID → expiry in
// Redis server milliseconds, and each node has a set of the sets it has
// entries in, for removing them once it is dead.
func (b *Backend) presenceKeys(set string) (keys []string, base string) {
	base = b.internal + "p{" + set + "}"
	return []string{base + ":e", base + ":u", base + ":n"}, base
}

func (b *Backend) nodesKey() string { return b.internal + "nodes" }

func (b *Backend) nodeSetsKey(node string) string { return b.internal + "ns{" + node + "}" }

// presenceLua is the common part of the scripts on one set. KEYS[1..3] are
// the set's e, u and n keys; ARGV[1] is its base, from which the per-node
// connection sets are named (they share the hash slot).
const presenceLua = `
local function conns(node) return ARGV[1] .. ':c:' .. node end
local function decode(v)
	local nl = v:byte(1) * 256 + v:byte(2)
	local ul = v:byte(3 + nl) * 256 + v:byte(4 + nl)
	return v:sub(3, 2 + nl), v:sub(5 + nl, 4 + nl + ul)
end
local function remove(conn)
	local v = redis.call('HGET', KEYS[1], conn)
	if not v then return 0 end
	local node, user = decode(v)
	redis.call('HDEL', KEYS[1], conn)
	redis.call('SREM', conns(node), conn)
	if redis.call('HINCRBY', KEYS[2], user, -1) <= 0 then redis.call('HDEL', KEYS[2], user) end
	if redis.call('HINCRBY', KEYS[3], node, -1) <= 0 then
		redis.call('HDEL', KEYS[3], node)
		return 1, node
	end
	return 0, node
end
`

// nowLua reads the server's clock in milliseconds, which all nodes share.
const nowLua = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

var (
	// ARGV[2] conn, ARGV[3] node, ARGV[4] user, ARGV[5] packed entry.
	presenceAddScript = redis.NewScript(presenceLua + `
remove(ARGV[2])
redis.call('HSET', KEYS[1], ARGV[2], ARGV[5])
redis.call('HINCRBY', KEYS[2], ARGV[4], 1)
redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
redis.call('SADD', conns(ARGV[3]), ARGV[2])
return 1`)

	// ARGV[2] conn. Returns {1, node} when the entry's node has no entry
	// left in the set, {0} otherwise.
	presenceRemoveScript = redis.NewScript(presenceLua + `
local gone, node = remove(ARGV[2])
if gone == 1 then return {1, node} end
return {0}`)

	// ARGV[2...] dead nodes whose entries go.
	presencePurgeScript = redis.NewScript(presenceLua + `
for i = 2, #ARGV do
	for _, conn in ipairs(redis.call('SMEMBERS', conns(ARGV[i]))) do remove(conn) end
	redis.call('DEL', conns(ARGV[i]))
end
return 1`)

	// KEYS[1] liveness. ARGV: nodes. Returns those that are not alive.
	deadNodesScript = redis.NewScript(nowLua + `
local dead = {}
for _, node in ipairs(ARGV) do
	local s = redis.call('ZSCORE', KEYS[1], node)
	if not s or tonumber(s) <= now then dead[#dead + 1] = node end
end
return dead`)

	// KEYS[1] liveness. ARGV[1] node, ARGV[2] ttl ms. A live node is kept
	// alive; a lapsed one is left for the caller to clean up first.
	// Returns {lapsed, up to 8 dead nodes}.
	keepAliveScript = redis.NewScript(nowLua + `
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
local lapsed = (not s) or tonumber(s) <= now
if not lapsed then redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1]) end
return {lapsed and 1 or 0, redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 8)}`)

	// KEYS[1] liveness. ARGV[1] node, ARGV[2] ttl ms.
	markAliveScript = redis.NewScript(nowLua + `
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 1`)

	// KEYS[1] liveness. ARGV[1] node, forgotten if still dead.
	forgetNodeScript = redis.NewScript(nowLua + `
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if s and tonumber(s) <= now then redis.call('ZREM', KEYS[1], ARGV[1]) end
return 1`)
)

// packEntry stores node, user and info as the Lua decode above reads them.
func packEntry(e backend.PresenceEntry) []byte {
	b := make([]byte, 0, 4+len(e.NodeID)+len(e.UserID)+len(e.Info))
	b = binary.BigEndian.AppendUint16(b, uint16(len(e.NodeID)))
	b = append(b, e.NodeID...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(e.UserID)))
	b = append(b, e.UserID...)
	return append(b, e.Info...)
}

func unpackEntry(conn, v string) (backend.PresenceEntry, error) {
	e := backend.PresenceEntry{ConnID: conn}
	for _, field := range []*string{&e.NodeID, &e.UserID} {
		if len(v) < 2 {
			return e, fmt.Errorf("dsredis: malformed presence entry of %q", conn)
		}
		n := int(v[0])<<8 | int(v[1])
		if n > len(v)-2 {
			return e, fmt.Errorf("dsredis: malformed presence entry of %q", conn)
		}
		*field, v = v[2:2+n], v[2+n:]
	}
	e.Info = []byte(v)
	return e, nil
}

// AddPresence implements backend.Presence. It records the set among the
// node's sets, then adds the entry in one script.
func (b *Backend) AddPresence(ctx context.Context, set string, e backend.PresenceEntry) error {
	if err := e.Validate(); err != nil {
		return err
	}
	if err := b.check(ctx); err != nil {
		return err
	}
	if err := b.client.SAdd(ctx, b.nodeSetsKey(e.NodeID), set).Err(); err != nil {
		return b.fail("add presence", err)
	}
	keys, base := b.presenceKeys(set)
	if err := presenceAddScript.Run(ctx, b.client, keys, base, e.ConnID, e.NodeID, e.UserID, packEntry(e)).Err(); err != nil {
		return b.fail("add presence", err)
	}
	return nil
}

// RemovePresence implements backend.Presence.
func (b *Backend) RemovePresence(ctx context.Context, set, connID string) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	keys, base := b.presenceKeys(set)
	res, err := presenceRemoveScript.Run(ctx, b.client, keys, base, connID).Slice()
	if err != nil {
		return b.fail("remove presence", err)
	}
	// The node's last entry in the set left: forget the set among the
	// node's, so that a long-lived node's list stays as long as its sets.
	if len(res) == 2 {
		if node, ok := res[1].(string); ok && res[0] == int64(1) {
			if err := b.client.SRem(ctx, b.nodeSetsKey(node), set).Err(); err != nil {
				return b.fail("remove presence", err)
			}
		}
	}
	return nil
}

// purgeDead removes from set the entries of the nodes in it that are not
// alive, and reports whether there were any.
func (b *Backend) purgeDead(ctx context.Context, set string, nodes []string) (bool, error) {
	if len(nodes) == 0 {
		return false, nil
	}
	dead, err := deadNodesScript.Run(ctx, b.client, []string{b.nodesKey()}, toArgs(nodes)...).StringSlice()
	if err != nil || len(dead) == 0 {
		return false, err
	}
	keys, base := b.presenceKeys(set)
	return true, presencePurgeScript.Run(ctx, b.client, keys, append([]any{base}, toArgs(dead)...)...).Err()
}

func toArgs(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// ListPresence implements backend.Presence: the set's nodes and up to limit
// entries (HRANDFIELD) in one round trip, a liveness check in a second, and
// a cleanup plus a second read only when a node of the set is dead.
func (b *Backend) ListPresence(ctx context.Context, set string, limit int) ([]backend.PresenceEntry, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	limit = backend.PresenceLimit(limit)
	keys, _ := b.presenceKeys(set)
	for attempt := 0; ; attempt++ {
		var nodes *redis.StringSliceCmd
		var fields *redis.KeyValueSliceCmd
		if _, err := b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			nodes = p.HKeys(ctx, keys[2])
			fields = p.HRandFieldWithValues(ctx, keys[0], limit)
			return nil
		}); err != nil {
			return nil, b.fail("list presence", err)
		}
		purged, err := b.purgeDead(ctx, set, nodes.Val())
		if err != nil {
			return nil, b.fail("list presence", err)
		}
		if purged && attempt == 0 {
			continue
		}
		out := make([]backend.PresenceEntry, 0, len(fields.Val()))
		for _, kv := range fields.Val() {
			e, err := unpackEntry(kv.Key, kv.Value)
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		}
		return out, nil
	}
}

// PresenceStats implements backend.Presence: counts and the set's nodes in
// one round trip, a liveness check in a second.
func (b *Backend) PresenceStats(ctx context.Context, set string) (backend.PresenceStats, error) {
	if err := b.check(ctx); err != nil {
		return backend.PresenceStats{}, err
	}
	keys, _ := b.presenceKeys(set)
	for attempt := 0; ; attempt++ {
		var conns, users *redis.IntCmd
		var nodes *redis.StringSliceCmd
		if _, err := b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			conns, users, nodes = p.HLen(ctx, keys[0]), p.HLen(ctx, keys[1]), p.HKeys(ctx, keys[2])
			return nil
		}); err != nil {
			return backend.PresenceStats{}, b.fail("presence stats", err)
		}
		purged, err := b.purgeDead(ctx, set, nodes.Val())
		if err != nil {
			return backend.PresenceStats{}, b.fail("presence stats", err)
		}
		if purged && attempt == 0 {
			continue
		}
		return backend.PresenceStats{Connections: int(conns.Val()), Users: int(users.Val())}, nil
	}
}

// KeepNodeAlive implements backend.Presence. One script refreshes the
// node's score; when the node had lapsed its entries are removed first.
// The same call removes the entries of up to eight dead nodes, so that sets
// nobody lists do not keep them.
func (b *Backend) KeepNodeAlive(ctx context.Context, nodeID string, ttl time.Duration) (bool, error) {
	if err := b.check(ctx); err != nil {
		return false, err
	}
	ms := max(ttl.Milliseconds(), 1)
	res, err := keepAliveScript.Run(ctx, b.client, []string{b.nodesKey()}, nodeID, ms).Slice()
	if err != nil {
		return false, b.fail("keep node alive", err)
	}
	lapsed, _ := res[0].(int64)
	dead, _ := res[1].([]any)
	if lapsed == 1 {
		if err := b.removeNode(ctx, nodeID); err != nil {
			return true, b.fail("keep node alive", err)
		}
		if err := markAliveScript.Run(ctx, b.client, []string{b.nodesKey()}, nodeID, ms).Err(); err != nil {
			return true, b.fail("keep node alive", err)
		}
	}
	for _, d := range dead {
		if node, ok := d.(string); ok && node != nodeID {
			if err := b.removeNode(ctx, node); err != nil {
				return lapsed == 1, b.fail("keep node alive", err)
			}
			if err := forgetNodeScript.Run(ctx, b.client, []string{b.nodesKey()}, node).Err(); err != nil {
				return lapsed == 1, b.fail("keep node alive", err)
			}
		}
	}
	return lapsed == 1, nil
}

// removeNode removes every entry of node from the sets it has entries in.
func (b *Backend) removeNode(ctx context.Context, node string) error {
	sets, err := b.client.SMembers(ctx, b.nodeSetsKey(node)).Result()
	if err != nil {
		return err
	}
	for _, set := range sets {
		keys, base := b.presenceKeys(set)
		if err := presencePurgeScript.Run(ctx, b.client, keys, base, node).Err(); err != nil {
			return err
		}
	}
	if len(sets) > 0 {
		return b.client.SRem(ctx, b.nodeSetsKey(node), toArgs(sets)...).Err()
	}
	return nil
}
