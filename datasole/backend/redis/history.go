package dsredis

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/redis/go-redis/v9"
)

// A history stream is two keys in one hash slot: a hash holding the epoch
// (e) and the top offset (t), and a Redis stream whose entry ids are
// "<offset>-0" with the data in field d.
func (b *Backend) streamKeys(stream string) (meta, entries string) {
	base := b.internal + "h{" + stream + "}"
	return base + ":m", base + ":s"
}

// envelopeLua builds backend.EncodeStreamEnvelope's bytes in Lua, with
// the struct library Redis bundles (several times faster than building the
// integers byte by byte).
const envelopeLua = `
local function envelope(stream, epoch, offset, data)
	return 'dsh\1' .. struct.pack('>I4', #stream) .. stream .. string.char(#epoch) .. epoch .. struct.pack('>I8', offset) .. data
end
`

// streamMetaLua returns the stream's epoch and top, creating the metadata
// with a new epoch (and dropping entries left without metadata) when it is
// missing.
const streamMetaLua = `
local function streamMeta(newEpoch)
	local epoch = redis.call('HGET', KEYS[1], 'e')
	if epoch then
		return epoch, tonumber(redis.call('HGET', KEYS[1], 't')), false
	end
	redis.call('DEL', KEYS[2])
	redis.call('HSET', KEYS[1], 'e', newEpoch, 't', 0)
	return newEpoch, 0, true
end
`

var (
	// KEYS[1] meta, KEYS[2] entries. ARGV[1] data, ARGV[2] size, ARGV[3]
	// ttl ms, ARGV[4] meta ttl ms (0: none), ARGV[5] new epoch, ARGV[6]
	// channel ("": none), ARGV[7] stream name. Returns {epoch, offset}.
	appendScript = redis.NewScript(envelopeLua + streamMetaLua + `
local epoch = streamMeta(ARGV[5])
local top = redis.call('HINCRBY', KEYS[1], 't', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], string.format('%d-0', top), 'd', ARGV[1])
if tonumber(ARGV[3]) > 0 then
	redis.call('PEXPIRE', KEYS[2], ARGV[3])
	redis.call('PEXPIRE', KEYS[1], ARGV[4])
else
	redis.call('PERSIST', KEYS[2])
	redis.call('PERSIST', KEYS[1])
end
if ARGV[6] ~= '' then
	redis.call('PUBLISH', ARGV[6], envelope(ARGV[7], epoch, top, ARGV[1]))
end
return {epoch, top}`)

	// KEYS[1] meta, KEYS[2] entries. ARGV[1] since epoch, ARGV[2] since
	// offset, ARGV[3] limit (0: none), ARGV[4] new epoch, ARGV[5] meta ttl
	// ms (0: none). Returns {epoch, top, ok (1) or unrecoverable (0),
	// entries}.
	readScript = redis.NewScript(streamMetaLua + `
local epoch, top, created = streamMeta(ARGV[4])
if created and tonumber(ARGV[5]) > 0 then
	redis.call('PEXPIRE', KEYS[1], ARGV[5])
end
if ARGV[1] == '' then return {epoch, top, 1, {}} end
local since = tonumber(ARGV[2])
if ARGV[1] ~= epoch or since > top then return {epoch, top, 0, {}} end
if since == top then return {epoch, top, 1, {}} end
local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
if #first == 0 or tonumber(string.match(first[1][1], '^%d+')) > since + 1 then
	return {epoch, top, 0, {}}
end
local from = string.format('%d-0', since + 1)
if tonumber(ARGV[3]) > 0 then
	return {epoch, top, 1, redis.call('XRANGE', KEYS[2], from, '+', 'COUNT', ARGV[3])}
end
return {epoch, top, 1, redis.call('XRANGE', KEYS[2], from, '+')}`)
)

// AppendPublish implements backend.History: one script increments the
// offset, adds the entry (XADD MAXLEN ~), sets the expiries and publishes
// the envelope, so subscribers receive a stream's messages in offset order.
func (b *Backend) AppendPublish(ctx context.Context, stream, channel string, data []byte, o backend.StreamOptions) (backend.Position, error) {
	o, err := o.Resolve()
	if err != nil {
		return backend.Position{}, err
	}
	if err := b.check(ctx); err != nil {
		return backend.Position{}, err
	}
	if channel != "" {
		channel = b.prefix + channel
	}
	meta, entries := b.streamKeys(stream)
	res, err := appendScript.Run(ctx, b.client, []string{meta, entries},
		data, o.Size, o.TTL.Milliseconds(), o.MetaTTL.Milliseconds(), backend.NewEpoch(), channel, stream).Slice()
	if err != nil {
		return backend.Position{}, b.fail("append", err)
	}
	epoch, ok1 := res[0].(string)
	top, ok2 := res[1].(int64)
	if len(res) != 2 || !ok1 || !ok2 {
		return backend.Position{}, fmt.Errorf("dsredis: append: unexpected reply %v", res)
	}
	return backend.Position{Epoch: epoch, Offset: uint64(top)}, nil
}

// ReadHistory implements backend.History in one script.
func (b *Backend) ReadHistory(ctx context.Context, stream string, since backend.Position, limit int, o backend.StreamOptions) ([]backend.HistoryEntry, backend.Position, error) {
	o, err := o.Resolve()
	if err != nil {
		return nil, backend.Position{}, err
	}
	if err := b.check(ctx); err != nil {
		return nil, backend.Position{}, err
	}
	meta, entries := b.streamKeys(stream)
	res, err := readScript.Run(ctx, b.client, []string{meta, entries},
		since.Epoch, strconv.FormatUint(since.Offset, 10), max(limit, 0), backend.NewEpoch(), o.MetaTTL.Milliseconds()).Slice()
	if err != nil {
		return nil, backend.Position{}, b.fail("read history", err)
	}
	bad := func() error { return fmt.Errorf("dsredis: read history: unexpected reply %v", res) }
	if len(res) != 4 {
		return nil, backend.Position{}, bad()
	}
	epoch, ok1 := res[0].(string)
	top, ok2 := res[1].(int64)
	recoverable, ok3 := res[2].(int64)
	raw, ok4 := res[3].([]any)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return nil, backend.Position{}, bad()
	}
	pos := backend.Position{Epoch: epoch, Offset: uint64(top)}
	if recoverable == 0 {
		return nil, pos, backend.ErrUnrecoverable
	}
	out := make([]backend.HistoryEntry, 0, len(raw))
	for _, r := range raw {
		e, ok := parseStreamEntry(r)
		if !ok {
			return nil, backend.Position{}, bad()
		}
		out = append(out, e)
	}
	return out, pos, nil
}

// parseStreamEntry reads one XRANGE item: {"<offset>-0", {"d", data}}.
func parseStreamEntry(r any) (backend.HistoryEntry, bool) {
	item, ok := r.([]any)
	if !ok || len(item) != 2 {
		return backend.HistoryEntry{}, false
	}
	id, ok1 := item[0].(string)
	fields, ok2 := item[1].([]any)
	if !ok1 || !ok2 || len(fields) != 2 {
		return backend.HistoryEntry{}, false
	}
	ms, _, _ := strings.Cut(id, "-")
	offset, err := strconv.ParseUint(ms, 10, 64)
	data, ok := fields[1].(string)
	if err != nil || !ok {
		return backend.HistoryEntry{}, false
	}
	return backend.HistoryEntry{Offset: offset, Data: []byte(data)}, true
}
