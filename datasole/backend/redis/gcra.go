package dsredis

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// gcraScript runs the generic cell rate algorithm atomically in Redis: the
// bucket is one key holding its theoretical arrival time in microseconds,
// expiring once the bucket is full again. The clock is Redis's own (TIME), so
// nodes with skewed clocks still share one limit.
//
// KEYS[1] bucket; ARGV[1] limit, ARGV[2] window µs, ARGV[3] cost.
// Returns {1, 0} when admitted, {0, retry µs} otherwise.
var gcraScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local inc = math.floor(window / limit) * tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local nxt = tat + inc
local allow_at = nxt - window
if now < allow_at then return {0, allow_at - now} end
redis.call('SET', KEYS[1], nxt, 'PX', math.floor((nxt - now) / 1000) + 1000)
return {1, 0}`)

// GCRA admits cost units under a limit of limit per window for key, in one
// round trip. The server's rate limiter uses it when the backend is Redis.
func (b *Backend) GCRA(ctx context.Context, key string, limit int, window time.Duration, cost int) (bool, time.Duration, error) {
	if err := b.check(ctx); err != nil {
		return false, 0, err
	}
	res, err := gcraScript.Run(ctx, b.client, []string{b.prefix + key}, limit, window.Microseconds(), cost).Int64Slice()
	if err != nil {
		return false, 0, fmt.Errorf("dsredis: gcra: %w", err)
	}
	return res[0] == 1, time.Duration(res[1]) * time.Microsecond, nil
}
