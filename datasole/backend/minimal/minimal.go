// Package minimal is the smallest complete backend.Backend: a store and a
// bus in process memory that several nodes share through a Hub, the way
// nodes share a database server. It passes the conformance suite
// (backendtest.Run) and is the worked example of docs/backends.md,
// "Writing your own"; use package backend's Memory for real work.
package minimal

import (
	"context"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/datasole/datasole-go/datasole/backend"
)

// Hub is the shared server: the data and the list of connected nodes.
type Hub struct {
	mu      sync.Mutex
	entries map[string]entry // by namespaced key
	nodes   map[*Backend]struct{}
}

type entry struct {
	value   []byte
	version uint64
	expires time.Time // zero: never
}

// NewHub returns an empty hub.
func NewHub() *Hub {
	return &Hub{entries: map[string]entry{}, nodes: map[*Backend]struct{}{}}
}

// Backend is one node's handle on a Hub.
type Backend struct {
	hub    *Hub
	prefix string
	disp   *backend.Dispatcher
	closed atomic.Bool
}

var (
	_ backend.Backend     = (*Backend)(nil)
	_ backend.GapNotifier = (*Backend)(nil)
)

// Open connects a node to the hub in the namespace prefix.
func (h *Hub) Open(prefix string) *Backend {
	b := &Backend{hub: h, prefix: prefix, disp: backend.NewDispatcher(backend.DispatcherOptions{})}
	h.mu.Lock()
	h.nodes[b] = struct{}{}
	h.mu.Unlock()
	return b
}

// check refuses calls after Close and with a finished context.
func (b *Backend) check(ctx context.Context) error {
	if b.closed.Load() {
		return backend.ErrClosed
	}
	return ctx.Err()
}

// live returns the entry under the namespaced key k, dropping it if it has
// expired. The hub's lock must be held.
func (h *Hub) live(k string) (entry, bool) {
	e, ok := h.entries[k]
	if ok && !e.expires.IsZero() && !time.Now().Before(e.expires) {
		delete(h.entries, k)
		return entry{}, false
	}
	return e, ok
}

func expiry(ttl time.Duration) time.Time {
	if ttl <= 0 {
		return time.Time{}
	}
	return time.Now().Add(ttl)
}

// Get implements backend.Backend.
func (b *Backend) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	if err := b.check(ctx); err != nil {
		return nil, 0, err
	}
	b.hub.mu.Lock()
	defer b.hub.mu.Unlock()
	e, ok := b.hub.live(b.prefix + key)
	if !ok {
		return nil, 0, backend.ErrNotFound
	}
	return append([]byte(nil), e.value...), e.version, nil
}

// Set implements backend.Backend.
func (b *Backend) Set(ctx context.Context, key string, value []byte, ttl time.Duration) (uint64, error) {
	if err := b.check(ctx); err != nil {
		return 0, err
	}
	b.hub.mu.Lock()
	defer b.hub.mu.Unlock()
	e, _ := b.hub.live(b.prefix + key) // a missing key is at version 0
	e = entry{value: append([]byte(nil), value...), version: e.version + 1, expires: expiry(ttl)}
	b.hub.entries[b.prefix+key] = e
	return e.version, nil
}

// CompareAndSet implements backend.Backend.
func (b *Backend) CompareAndSet(ctx context.Context, key string, value []byte, expect uint64, ttl time.Duration) (uint64, error) {
	if err := b.check(ctx); err != nil {
		return 0, err
	}
	b.hub.mu.Lock()
	defer b.hub.mu.Unlock()
	e, _ := b.hub.live(b.prefix + key)
	if e.version != expect {
		return 0, backend.ErrConflict
	}
	e = entry{value: append([]byte(nil), value...), version: e.version + 1, expires: expiry(ttl)}
	b.hub.entries[b.prefix+key] = e
	return e.version, nil
}

// Delete implements backend.Backend.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	b.hub.mu.Lock()
	defer b.hub.mu.Unlock()
	delete(b.hub.entries, b.prefix+key)
	return nil
}

// Incr implements backend.Backend.
func (b *Backend) Incr(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	if err := b.check(ctx); err != nil {
		return 0, err
	}
	b.hub.mu.Lock()
	defer b.hub.mu.Unlock()
	e, ok := b.hub.live(b.prefix + key)
	var n int64
	if ok {
		var err error
		n, err = strconv.ParseInt(string(e.value), 10, 64)
		if err != nil || (delta > 0 && n > math.MaxInt64-delta) || (delta < 0 && n < math.MinInt64-delta) {
			return 0, backend.ErrNotCounter
		}
	} else {
		e.expires = expiry(ttl) // only a new counter takes the ttl
	}
	n += delta
	e.value, e.version = strconv.AppendInt(nil, n, 10), e.version+1
	b.hub.entries[b.prefix+key] = e
	return n, nil
}

// Keys implements backend.Backend.
func (b *Backend) Keys(ctx context.Context, prefix string) ([]string, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	b.hub.mu.Lock()
	defer b.hub.mu.Unlock()
	var keys []string
	for k := range b.hub.entries {
		if _, ok := b.hub.live(k); ok && strings.HasPrefix(k, b.prefix+prefix) {
			keys = append(keys, k[len(b.prefix):])
		}
	}
	return keys, nil
}

// Publish implements backend.Backend. Dispatching under the hub's lock
// gives every subscriber the same order.
func (b *Backend) Publish(ctx context.Context, channel string, msg []byte) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	b.hub.mu.Lock()
	defer b.hub.mu.Unlock()
	for n := range b.hub.nodes {
		if n.prefix == b.prefix {
			n.disp.Dispatch(channel, append([]byte(nil), msg...))
		}
	}
	return nil
}

// Subscribe implements backend.Backend.
func (b *Backend) Subscribe(ctx context.Context, channel string, handler func(msg []byte)) (func(), error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	return b.disp.Subscribe(channel, handler)
}

// OnGap implements backend.GapNotifier: this bus loses messages only when
// a subscription's queue overflows, which the Dispatcher reports.
func (b *Backend) OnGap(fn func()) { b.disp.OnGap(fn) }

// Close implements backend.Backend.
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	b.hub.mu.Lock()
	delete(b.hub.nodes, b)
	b.hub.mu.Unlock()
	b.disp.Close()
	return nil
}
