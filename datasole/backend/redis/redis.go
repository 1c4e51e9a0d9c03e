// Package dsredis is the Redis backend for datasole: several nodes sharing
// one Redis server see the same versioned state and exchange messages over
// Redis pub/sub.
//
// Each key is a Redis hash holding the value and its version; Set,
// CompareAndSet and Incr are Lua scripts, so every operation is atomic and
// takes one round trip. The bus uses one pattern subscription per backend
// (PSUBSCRIBE on the prefix), so a node receives every message published in
// its namespace and routes it to its local subscriptions.
//
// The backend implements every optional interface of package backend:
// GetMany is one pipeline, a history stream is a Redis stream appended,
// trimmed and published by one script, and presence keeps one liveness
// score per node. Their keys start with the byte 0xFF followed by the
// prefix, so Keys never lists them and they never collide with stored keys.
//
// Importing the package registers the URL schemes redis and rediss with
// backend.Open:
//
//	import _ "github.com/datasole/datasole-go/datasole/backend/redis"
//	b, err := backend.Open(ctx, "redis://localhost:6379/0?prefix=chat:")
//
// # Sentinel and Cluster
//
// New accepts any redis.UniversalClient, so high availability is configured
// on the client: redis.NewFailoverClient (or NewUniversalClient with
// MasterName) for Sentinel, redis.NewClusterClient for Cluster. The scripts
// touch one key each, so they run on Cluster; Keys scans every master.
//
// # Reconnection
//
// go-redis reconnects and resubscribes on its own; operations fail while
// the server is unreachable, with errors matching backend.ErrUnavailable.
// Messages published meanwhile are lost, so the backend reports a gap
// (backend.GapNotifier) once the subscription is back. Stored state
// survives a restart only if the server persists it.
//
// # Logging
//
// go-redis has one logger per process. New points it at Options.Logger
// (redis.SetLogger), so the library's lines become structured records of
// the application's logger; with several backends in one process the one
// created last receives them. Call redis.SetLogger after New to send them
// elsewhere.
package dsredis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/redis/go-redis/v9"
)

func init() {
	backend.Register("redis", open)
	backend.Register("rediss", open)
}

// Options configures New. The zero value is ready to use.
type Options struct {
	// Prefix namespaces keys and channels. Empty means backend.DefaultPrefix.
	Prefix string
	// SubscriberQueueBytes bounds each subscription's queue while its
	// handler is busy. Zero means backend.DefaultSubscriberQueueBytes.
	SubscriberQueueBytes int
	// Logger receives the backend's warnings and go-redis's log lines (see
	// Logging in the package documentation). Nil means slog.Default().
	Logger *slog.Logger
}

// Backend is a backend.Backend on a Redis server. Create it with New.
type Backend struct {
	client     redis.UniversalClient
	ownsClient bool
	prefix     string
	internal   string // "\xff" + prefix: history and presence keys
	pubsub     *redis.PubSub
	disp       *backend.Dispatcher
	done       chan struct{}

	mu     sync.RWMutex
	closed bool
}

var (
	_ backend.Backend     = (*Backend)(nil)
	_ backend.GapNotifier = (*Backend)(nil)
	_ backend.BatchGetter = (*Backend)(nil)
	_ backend.History     = (*Backend)(nil)
	_ backend.Presence    = (*Backend)(nil)
)

// New returns a backend on client and waits until its subscription is
// active. The caller keeps ownership of client: Close does not close it.
func New(ctx context.Context, client redis.UniversalClient, opts Options) (*Backend, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	redis.SetLogger(logAdapter{opts.Logger})
	b := &Backend{client: client, prefix: opts.Prefix, done: make(chan struct{})}
	if b.prefix == "" {
		b.prefix = backend.DefaultPrefix
	}
	b.internal = "\xff" + b.prefix
	b.pubsub = client.PSubscribe(ctx, escapeGlob(b.prefix)+"*")
	// Publishing is only safe once Redis has confirmed the subscription.
	if _, err := b.pubsub.Receive(ctx); err != nil {
		_ = b.pubsub.Close()
		return nil, b.fail("subscribe", err)
	}
	b.disp = backend.NewDispatcher(backend.DispatcherOptions{QueueBytes: opts.SubscriberQueueBytes, Logger: opts.Logger})
	go b.receive(b.pubsub.ChannelWithSubscriptions())
	return b, nil
}

func open(ctx context.Context, u *url.URL, prefix string) (backend.Backend, error) {
	opts, err := redis.ParseURL(u.String())
	if err != nil {
		return nil, err
	}
	client := redis.NewClient(opts)
	b, err := New(ctx, client, Options{Prefix: prefix})
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	b.ownsClient = true
	return b, nil
}

// receive routes bus messages to local subscriptions. go-redis delivers a
// subscription confirmation each time it resubscribes after a reconnect.
func (b *Backend) receive(ch <-chan any) {
	defer close(b.done)
	for m := range ch {
		switch m := m.(type) {
		case *redis.Message:
			if c, ok := strings.CutPrefix(m.Channel, b.prefix); ok {
				b.disp.Dispatch(c, []byte(m.Payload))
			}
		case *redis.Subscription:
			if m.Kind == "psubscribe" {
				b.disp.Gap()
			}
		}
	}
}

// escapeGlob quotes the characters PSUBSCRIBE patterns treat specially.
func escapeGlob(s string) string {
	var sb strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\^-`, r) {
			sb.WriteByte('\\')
		}
		sb.WriteRune(r)
	}
	return sb.String()
}

func (b *Backend) check(ctx context.Context) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return backend.ErrClosed
	}
	return ctx.Err()
}

// Lua scripts. A key is a hash with fields v (value) and n (version).
var (
	// KEYS[1] key; ARGV[1] value, ARGV[2] ttl ms, ARGV[3] expected version or "" for none.
	setScript = redis.NewScript(`
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
if ARGV[3] ~= '' and n ~= tonumber(ARGV[3]) then return -1 end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'n', n + 1)
if tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) else redis.call('PERSIST', KEYS[1]) end
return n + 1`)
	// KEYS[1] key; ARGV[1] delta, ARGV[2] ttl ms.
	incrScript = redis.NewScript(`
local created = redis.call('EXISTS', KEYS[1]) == 0
local ok, v = pcall(redis.call, 'HINCRBY', KEYS[1], 'v', ARGV[1])
if not ok then return redis.error_reply('NOTCOUNTER') end
redis.call('HINCRBY', KEYS[1], 'n', 1)
if created and tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return v`)
)

func ttlMillis(ttl time.Duration) int64 {
	if ttl <= 0 {
		return 0
	}
	return max(ttl.Milliseconds(), 1)
}

// Get implements backend.Backend.
func (b *Backend) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	if err := b.check(ctx); err != nil {
		return nil, 0, err
	}
	res, err := b.client.HMGet(ctx, b.prefix+key, "v", "n").Result()
	if err != nil {
		return nil, 0, b.fail("get", err)
	}
	v, version, err := versioned(res)
	switch {
	case err != nil:
		return nil, 0, fmt.Errorf("dsredis: get: %w", err)
	case version == 0:
		return nil, 0, backend.ErrNotFound
	}
	return v, version, nil
}

// GetMany implements backend.BatchGetter with one pipeline of HMGETs; on
// Cluster, go-redis sends one pipeline per shard.
func (b *Backend) GetMany(ctx context.Context, keys []string) ([]backend.Versioned, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	out := make([]backend.Versioned, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	cmds := make([]*redis.SliceCmd, len(keys))
	_, err := b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.HMGet(ctx, b.prefix+k, "v", "n")
		}
		return nil
	})
	if err != nil {
		return nil, b.fail("get many", err)
	}
	for i, c := range cmds {
		v, n, err := versioned(c.Val())
		if err != nil {
			return nil, b.fail("get many", err)
		}
		out[i] = backend.Versioned{Value: v, Version: n}
	}
	return out, nil
}

// versioned reads the reply of HMGET key v n: a missing key gives version 0.
func versioned(res []any) ([]byte, uint64, error) {
	v, ok1 := res[0].(string)
	n, ok2 := res[1].(string)
	if !ok1 || !ok2 {
		return nil, 0, nil
	}
	version, err := strconv.ParseUint(n, 10, 64)
	if err != nil {
		return nil, 0, fmt.Errorf("bad version %q: %w", n, err)
	}
	return []byte(v), version, nil
}

// Set implements backend.Backend.
func (b *Backend) Set(ctx context.Context, key string, value []byte, ttl time.Duration) (uint64, error) {
	return b.set(ctx, key, value, "", ttl)
}

// CompareAndSet implements backend.Backend.
func (b *Backend) CompareAndSet(ctx context.Context, key string, value []byte, expect uint64, ttl time.Duration) (uint64, error) {
	return b.set(ctx, key, value, strconv.FormatUint(expect, 10), ttl)
}

func (b *Backend) set(ctx context.Context, key string, value []byte, expect string, ttl time.Duration) (uint64, error) {
	if err := b.check(ctx); err != nil {
		return 0, err
	}
	n, err := setScript.Run(ctx, b.client, []string{b.prefix + key}, value, ttlMillis(ttl), expect).Int64()
	switch {
	case err != nil:
		return 0, b.fail("set", err)
	case n < 0:
		return 0, backend.ErrConflict
	}
	return uint64(n), nil
}

// Delete implements backend.Backend.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	if err := b.client.Del(ctx, b.prefix+key).Err(); err != nil {
		return b.fail("delete", err)
	}
	return nil
}

// Incr implements backend.Backend.
func (b *Backend) Incr(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	if err := b.check(ctx); err != nil {
		return 0, err
	}
	n, err := incrScript.Run(ctx, b.client, []string{b.prefix + key}, delta, ttlMillis(ttl)).Int64()
	if err != nil {
		if strings.Contains(err.Error(), "NOTCOUNTER") {
			return 0, backend.ErrNotCounter
		}
		return 0, b.fail("incr", err)
	}
	return n, nil
}

// Keys implements backend.Backend. It scans every master of a cluster.
func (b *Backend) Keys(ctx context.Context, prefix string) ([]string, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	match := escapeGlob(b.prefix+prefix) + "*"
	var (
		mu   sync.Mutex
		keys []string
	)
	scan := func(ctx context.Context, c redis.Cmdable) error {
		it := c.Scan(ctx, 0, match, 1000).Iterator()
		for it.Next(ctx) {
			mu.Lock()
			keys = append(keys, it.Val()[len(b.prefix):])
			mu.Unlock()
		}
		return it.Err()
	}
	var err error
	if cc, ok := b.client.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	} else {
		err = scan(ctx, b.client)
	}
	if err != nil {
		return nil, b.fail("keys", err)
	}
	return keys, nil
}

// Publish implements backend.Backend.
func (b *Backend) Publish(ctx context.Context, channel string, msg []byte) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	if err := b.client.Publish(ctx, b.prefix+channel, msg).Err(); err != nil {
		return b.fail("publish", err)
	}
	return nil
}

// Subscribe implements backend.Backend. It needs no round trip: the
// backend's pattern subscription already covers every channel.
func (b *Backend) Subscribe(ctx context.Context, channel string, handler func(msg []byte)) (func(), error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	return b.disp.Subscribe(channel, handler)
}

// OnGap implements backend.GapNotifier: fn runs after go-redis has
// resubscribed following a lost connection, and when a subscription's queue
// overflowed.
func (b *Backend) OnGap(fn func()) { b.disp.OnGap(fn) }

// Close implements backend.Backend. It closes the client only if the
// backend was opened from a URL.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	err := b.pubsub.Close()
	<-b.done
	b.disp.Close()
	if b.ownsClient {
		err = errors.Join(err, b.client.Close())
	}
	return err
}
