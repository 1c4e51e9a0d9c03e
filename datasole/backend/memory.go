package backend

import (
	"container/heap"
	"context"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// MemoryOptions configures NewMemory. The zero value is ready to use.
type MemoryOptions struct {
	// Prefix namespaces keys and channels. Empty means DefaultPrefix.
	Prefix string
	// SubscriberQueueBytes bounds each subscription's queue while its
	// handler is busy. Zero means DefaultSubscriberQueueBytes.
	SubscriberQueueBytes int
	// Logger receives the backend's warnings (a subscription dropping
	// messages). Nil means slog.Default().
	Logger *slog.Logger
	// Peer, when set, makes the new backend share Peer's store and bus, the
	// way several nodes share one Redis server. This lets one process run
	// several nodes, in tests for example. Closing one of them leaves the
	// others working.
	Peer *Memory
}

// Memory is the in-process Backend: the embedded default for a single node.
// It keeps copies of the values it is given, expires keys with a TTL as time
// passes, and runs one goroutine per subscription plus one for gap
// notifications. It implements every optional interface: BatchGetter,
// History (a ring per stream), Presence and GapNotifier. Create it with
// NewMemory.
type Memory struct {
	store  *memStore
	prefix string
	disp   *Dispatcher
	closed atomic.Bool
}

var (
	_ Backend     = (*Memory)(nil)
	_ GapNotifier = (*Memory)(nil)
	_ BatchGetter = (*Memory)(nil)
	_ History     = (*Memory)(nil)
	_ Presence    = (*Memory)(nil)
)

// NewMemory returns an in-process backend configured by opts.
func NewMemory(opts MemoryOptions) *Memory {
	m := &Memory{
		prefix: opts.Prefix,
		disp:   NewDispatcher(DispatcherOptions{QueueBytes: opts.SubscriberQueueBytes, Logger: opts.Logger}),
	}
	if m.prefix == "" {
		m.prefix = DefaultPrefix
	}
	if opts.Peer != nil {
		m.store = opts.Peer.store
	} else {
		m.store = newMemStore()
	}
	m.store.mu.Lock()
	m.store.nodes[m] = struct{}{}
	m.store.mu.Unlock()
	return m
}

// memStore is the state that peers share. Expired entries are removed by
// every operation that takes the lock, oldest first, and expired streams and
// presence of dead nodes by a sweep at most once per sweepEvery, so memory
// stays bounded by what is live without a background goroutine.
type memStore struct {
	mu      sync.Mutex
	entries map[string]*memEntry
	expiry  expiryHeap
	nodes   map[*Memory]struct{}

	streams       map[string]*memStream
	presence      map[string]*memPresenceSet
	presenceNodes map[string]*memNode
	nextSweep     time.Time
}

// sweepEvery is how often expired streams and dead presence nodes are
// looked for.
const sweepEvery = time.Minute

func newMemStore() *memStore {
	return &memStore{
		entries:       make(map[string]*memEntry),
		nodes:         make(map[*Memory]struct{}),
		streams:       make(map[string]*memStream),
		presence:      make(map[string]*memPresenceSet),
		presenceNodes: make(map[string]*memNode),
	}
}

type memEntry struct {
	key     string
	value   []byte
	version uint64
	expires time.Time // zero: never
	index   int       // position in expiryHeap, -1 when not there
}

// lock takes the store lock and drops what has expired.
func (s *memStore) lock() time.Time {
	s.mu.Lock()
	now := time.Now()
	for len(s.expiry) > 0 && !s.expiry[0].expires.After(now) {
		e := heap.Pop(&s.expiry).(*memEntry)
		delete(s.entries, e.key)
	}
	if !now.Before(s.nextSweep) {
		s.nextSweep = now.Add(sweepEvery)
		s.sweepStreams(now)
		s.sweepNodes(now)
	}
	return now
}

func (s *memStore) put(key string, value []byte, version uint64, ttl time.Duration, now time.Time) {
	e := s.entries[key]
	if e == nil {
		e = &memEntry{key: key, index: -1}
		s.entries[key] = e
	}
	e.value = append([]byte(nil), value...)
	e.version = version
	s.setTTL(e, ttl, now)
}

func (s *memStore) setTTL(e *memEntry, ttl time.Duration, now time.Time) {
	switch {
	case ttl > 0:
		e.expires = now.Add(ttl)
		if e.index >= 0 {
			heap.Fix(&s.expiry, e.index)
		} else {
			heap.Push(&s.expiry, e)
		}
	case e.index >= 0:
		e.expires = time.Time{}
		heap.Remove(&s.expiry, e.index)
	}
}

func (m *Memory) check(ctx context.Context) error {
	if m.closed.Load() {
		return ErrClosed
	}
	return ctx.Err()
}

// Get implements Backend.
func (m *Memory) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	if err := m.check(ctx); err != nil {
		return nil, 0, err
	}
	m.store.lock()
	defer m.store.mu.Unlock()
	e := m.store.entries[m.prefix+key]
	if e == nil {
		return nil, 0, ErrNotFound
	}
	return append([]byte(nil), e.value...), e.version, nil
}

// Set implements Backend.
func (m *Memory) Set(ctx context.Context, key string, value []byte, ttl time.Duration) (uint64, error) {
	if err := m.check(ctx); err != nil {
		return 0, err
	}
	now := m.store.lock()
	defer m.store.mu.Unlock()
	k := m.prefix + key
	var v uint64 = 1
	if e := m.store.entries[k]; e != nil {
		v = e.version + 1
	}
	m.store.put(k, value, v, ttl, now)
	return v, nil
}

// CompareAndSet implements Backend.
func (m *Memory) CompareAndSet(ctx context.Context, key string, value []byte, expect uint64, ttl time.Duration) (uint64, error) {
	if err := m.check(ctx); err != nil {
		return 0, err
	}
	now := m.store.lock()
	defer m.store.mu.Unlock()
	k := m.prefix + key
	var current uint64
	if e := m.store.entries[k]; e != nil {
		current = e.version
	}
	if current != expect {
		return 0, ErrConflict
	}
	m.store.put(k, value, current+1, ttl, now)
	return current + 1, nil
}

// Delete implements Backend.
func (m *Memory) Delete(ctx context.Context, key string) error {
	if err := m.check(ctx); err != nil {
		return err
	}
	m.store.lock()
	defer m.store.mu.Unlock()
	k := m.prefix + key
	if e := m.store.entries[k]; e != nil {
		if e.index >= 0 {
			heap.Remove(&m.store.expiry, e.index)
		}
		delete(m.store.entries, k)
	}
	return nil
}

// Incr implements Backend.
func (m *Memory) Incr(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	if err := m.check(ctx); err != nil {
		return 0, err
	}
	now := m.store.lock()
	defer m.store.mu.Unlock()
	k := m.prefix + key
	e := m.store.entries[k]
	if e == nil {
		m.store.put(k, strconv.AppendInt(nil, delta, 10), 1, ttl, now)
		return delta, nil
	}
	n, err := strconv.ParseInt(string(e.value), 10, 64)
	if err != nil || (delta > 0 && n > math.MaxInt64-delta) || (delta < 0 && n < math.MinInt64-delta) {
		return 0, ErrNotCounter
	}
	n += delta
	e.value = strconv.AppendInt(e.value[:0], n, 10)
	e.version++
	return n, nil
}

// GetMany implements BatchGetter.
func (m *Memory) GetMany(ctx context.Context, keys []string) ([]Versioned, error) {
	if err := m.check(ctx); err != nil {
		return nil, err
	}
	m.store.lock()
	defer m.store.mu.Unlock()
	out := make([]Versioned, len(keys))
	for i, k := range keys {
		if e := m.store.entries[m.prefix+k]; e != nil {
			out[i] = Versioned{Value: append([]byte(nil), e.value...), Version: e.version}
		}
	}
	return out, nil
}

// Keys implements Backend.
func (m *Memory) Keys(ctx context.Context, prefix string) ([]string, error) {
	if err := m.check(ctx); err != nil {
		return nil, err
	}
	m.store.lock()
	defer m.store.mu.Unlock()
	var keys []string
	full := m.prefix + prefix
	for k := range m.store.entries {
		if strings.HasPrefix(k, full) {
			keys = append(keys, k[len(m.prefix):])
		}
	}
	return keys, nil
}

// Publish implements Backend. Every node sharing the store with the same
// prefix receives its own copy of msg.
func (m *Memory) Publish(ctx context.Context, channel string, msg []byte) error {
	if err := m.check(ctx); err != nil {
		return err
	}
	// The store lock gives all publications one order that every
	// subscriber sees.
	m.store.mu.Lock()
	defer m.store.mu.Unlock()
	m.publishLocked(channel, msg)
	return nil
}

// publishLocked hands msg to every node of m's namespace; the store lock
// must be held.
func (m *Memory) publishLocked(channel string, msg []byte) {
	for n := range m.store.nodes {
		if n.prefix == m.prefix {
			n.disp.Dispatch(channel, append([]byte(nil), msg...))
		}
	}
}

// Subscribe implements Backend.
func (m *Memory) Subscribe(ctx context.Context, channel string, handler func(msg []byte)) (func(), error) {
	if err := m.check(ctx); err != nil {
		return nil, err
	}
	return m.disp.Subscribe(channel, handler)
}

// OnGap implements GapNotifier. The memory backend loses messages only when
// a subscription's queue overflows.
func (m *Memory) OnGap(fn func()) { m.disp.OnGap(fn) }

// Close implements Backend. Peers sharing the store keep working.
func (m *Memory) Close() error {
	if m.closed.Swap(true) {
		return nil
	}
	m.store.mu.Lock()
	delete(m.store.nodes, m)
	m.store.mu.Unlock()
	m.disp.Close()
	return nil
}

// expiryHeap orders entries by expiry time, soonest first.
type expiryHeap []*memEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires.Before(h[j].expires) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}

func (h *expiryHeap) Push(x any) {
	e := x.(*memEntry)
	e.index = len(*h)
	*h = append(*h, e)
}

func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.index = -1
	return e
}
