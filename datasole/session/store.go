// Package session keeps a small key/value map per user that survives
// reconnects and server restarts.
//
// A Store holds the sessions of the users connected to one node in memory and
// writes each user's whole map, as one JSON object, to the backend key
// "session:<userID>". The server calls Acquire when a connection opens, which
// loads the user's session, and Release when it closes, which writes it back.
// In between, handlers read and change the session without any I/O; a change
// reaches the backend when the user's unflushed changes reach a threshold, on
// a timer, on the user's last disconnect and at Close.
//
// Unflushed changes are never discarded: loading a session again, and writing
// it when another node has written it meanwhile, merges the backend copy with
// the keys changed here, and the local changes win. A write that fails keeps
// the changes pending and is retried later.
package session

import (
	"bytes"
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/datasole/datasole-go/datasole/backend"
)

// Defaults for the zero fields of Options.
const (
	DefaultFlushThreshold = 10
	DefaultFlushInterval  = 5 * time.Second
	DefaultTTL            = 24 * time.Hour
	DefaultMaxIdleUsers   = 10_000
	DefaultMaxKeys        = 256
	DefaultMaxValueSize   = 64 << 10
)

// MaxKeyLength is the longest key, in bytes, that Set accepts.
const MaxKeyLength = 256

// KeyPrefix is the backend key under which a user's session is stored,
// followed by the user id; the reference implementation uses the same layout.
const KeyPrefix = "session:"

// Sentinel errors; test for them with errors.Is.
var (
	// ErrClosed is returned after the Store has been closed.
	ErrClosed = errors.New("session: store closed")
	// ErrEvicted is returned when a Session handle is changed after its user
	// was evicted from memory; Acquire the user again for a fresh handle.
	ErrEvicted = errors.New("session: session evicted from memory")
	// ErrNoSession is returned when changing a nil *Session, which is what
	// callers get when sessions are off or the user's session failed to load.
	ErrNoSession = errors.New("session: no session")
	// ErrInvalidKey is returned for an empty key or one longer than MaxKeyLength.
	ErrInvalidKey = errors.New("session: invalid key")
	// ErrTooManyKeys is returned by Set for a new key when the session already
	// holds Options.MaxKeys keys.
	ErrTooManyKeys = errors.New("session: too many keys")
	// ErrValueTooLarge is returned by Set when the value's JSON encoding is
	// longer than Options.MaxValueSize.
	ErrValueTooLarge = errors.New("session: value too large")
)

// Options configures NewStore. Only Backend is required.
type Options struct {
	// Backend stores the sessions. Required.
	Backend backend.Backend
	// FlushThreshold is how many unflushed changes of one user trigger a
	// write of that user's session in the background. Zero means
	// DefaultFlushThreshold (10).
	FlushThreshold int
	// FlushInterval is how often the sessions with unflushed changes are
	// written, which also retries failed writes. Zero means
	// DefaultFlushInterval (5s); a negative value disables the timer.
	FlushInterval time.Duration
	// TTL is how long the backend keeps a session after it was last
	// written; every write, including the one on a user's last disconnect,
	// starts it again. Zero means DefaultTTL (24h); a negative value keeps
	// sessions forever.
	TTL time.Duration
	// MaxIdleUsers is how many users with no live connection and nothing
	// left to write stay in memory; beyond it the least recently released are
	// evicted and loaded from the backend again when they reconnect. Zero
	// means DefaultMaxIdleUsers (10,000); a negative value keeps none.
	MaxIdleUsers int
	// MaxKeys bounds the keys of one session. Zero means DefaultMaxKeys (256).
	MaxKeys int
	// MaxValueSize bounds the JSON encoding of one value, in bytes. Zero
	// means DefaultMaxValueSize (64 KiB).
	MaxValueSize int
	// Logger receives failed background writes. Default slog.Default().
	Logger *slog.Logger
}

// Change describes one Set or Delete, as passed to OnChange listeners.
type Change struct {
	UserID string
	Key    string
	// Value is the new JSON value, or nil when the key was deleted.
	Value json.RawMessage
	// Version orders changes: it grows with every change made through the
	// Store, across all users, and starts again with a new Store.
	Version uint64
	// Remote is true for a change made on another node and applied here with
	// ApplyRemote.
	Remote bool
}

// Store holds the sessions of the users connected to this node. All methods
// are safe for concurrent use. Create it with NewStore and end it with Close.
type Store struct {
	opts Options
	log  *slog.Logger
	seq  atomic.Uint64 // last Change.Version handed out
	shut atomic.Bool

	mu      sync.Mutex
	users   map[string]*Session
	idle    *list.List // *Session with no live connection, most recently released first
	pending map[*Session]struct{}

	listenersMu sync.RWMutex
	listeners   map[uint64]func(Change)
	nextID      uint64

	wake    chan struct{}
	done    chan struct{}
	stopped chan struct{}
	bgCtx   context.Context
	cancel  context.CancelFunc
	stop    sync.Once
}

// NewStore returns a Store writing to opts.Backend and starts its
// background writer.
func NewStore(opts Options) (*Store, error) {
	if opts.Backend == nil {
		return nil, errors.New("session: Options.Backend is required")
	}
	if opts.FlushThreshold <= 0 {
		opts.FlushThreshold = DefaultFlushThreshold
	}
	if opts.FlushInterval == 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	switch {
	case opts.TTL == 0:
		opts.TTL = DefaultTTL
	case opts.TTL < 0:
		opts.TTL = 0 // the backend's "no expiry"
	}
	switch {
	case opts.MaxIdleUsers == 0:
		opts.MaxIdleUsers = DefaultMaxIdleUsers
	case opts.MaxIdleUsers < 0:
		opts.MaxIdleUsers = 0
	}
	if opts.MaxKeys <= 0 {
		opts.MaxKeys = DefaultMaxKeys
	}
	if opts.MaxValueSize <= 0 {
		opts.MaxValueSize = DefaultMaxValueSize
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	st := &Store{
		opts:      opts,
		log:       opts.Logger,
		users:     make(map[string]*Session),
		idle:      list.New(),
		pending:   make(map[*Session]struct{}),
		listeners: make(map[uint64]func(Change)),
		wake:      make(chan struct{}, 1),
		done:      make(chan struct{}),
		stopped:   make(chan struct{}),
	}
	st.bgCtx, st.cancel = context.WithCancel(context.Background())
	go st.run()
	return st, nil
}

// Acquire counts a new live connection of userID and returns the user's
// session, loading it from the backend when the user had no other live
// connection here. Keys changed here and not yet written are merged over the
// loaded copy, so a reconnect never loses them. On error the connection is
// not counted.
func (st *Store) Acquire(ctx context.Context, userID string) (*Session, error) {
	st.mu.Lock()
	if st.shut.Load() {
		st.mu.Unlock()
		return nil, ErrClosed
	}
	s := st.users[userID]
	if s == nil {
		s = &Session{store: st, userID: userID, data: make(map[string]json.RawMessage), changed: make(map[string]uint64)}
		st.users[userID] = s
	}
	first := s.conns == 0
	s.conns++
	if s.elem != nil {
		st.idle.Remove(s.elem)
		s.elem = nil
	}
	st.mu.Unlock()

	if err := s.load(ctx, first); err != nil {
		st.mu.Lock()
		st.releaseLocked(s)
		st.mu.Unlock()
		return nil, err
	}
	return s, nil
}

// AcquireEphemeral counts a live connection of userID and returns a
// session that lives only as long as the user's connections on this node:
// it is neither read from nor written to the backend, its changes are not
// announced to OnChange listeners, and the last Release forgets it. The
// server uses it for anonymous connections, which are each their own user
// and would otherwise leave a stored session behind per connection.
func (st *Store) AcquireEphemeral(userID string) (*Session, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.shut.Load() {
		return nil, ErrClosed
	}
	s := st.users[userID]
	if s == nil {
		s = &Session{store: st, userID: userID, data: make(map[string]json.RawMessage),
			changed: make(map[string]uint64), loaded: true, ephemeral: true}
		st.users[userID] = s
	}
	s.conns++
	return s, nil
}

// Release ends a live connection of userID counted by Acquire. When it was
// the user's last one, the session is written to the backend (which also
// restarts its TTL) and the user becomes idle, so that it can be evicted
// from memory. A failed write is returned and retried later.
func (st *Store) Release(ctx context.Context, userID string) error {
	st.mu.Lock()
	s := st.users[userID]
	if s == nil || s.conns == 0 {
		st.mu.Unlock()
		return nil
	}
	if s.conns > 1 {
		s.conns--
		st.mu.Unlock()
		return nil
	}
	if s.ephemeral {
		s.conns = 0
		delete(st.users, userID)
		st.mu.Unlock()
		return nil
	}
	st.mu.Unlock()

	err := s.flush(ctx, true)
	st.mu.Lock()
	st.releaseLocked(s)
	st.mu.Unlock()
	return err
}

// releaseLocked drops one live connection of s and, when none is left, makes
// s idle and evicts what the memory bound requires.
func (st *Store) releaseLocked(s *Session) {
	if s.conns > 0 { // an unbalanced Release must not go below zero
		s.conns--
	}
	if s.conns > 0 || s.elem != nil || st.users[s.userID] != s {
		return
	}
	s.elem = st.idle.PushFront(s)
	st.evictLocked()
}

// evictLocked removes idle users with nothing left to write, least recently
// released first, until at most MaxIdleUsers idle users remain. Users whose
// writes keep failing stay, so that nothing is lost.
func (st *Store) evictLocked() {
	for e := st.idle.Back(); e != nil && st.idle.Len() > st.opts.MaxIdleUsers; {
		s := e.Value.(*Session)
		prev := e.Prev()
		if s.evict() {
			st.idle.Remove(e)
			s.elem = nil
			delete(st.users, s.userID)
		}
		e = prev
	}
}

// Session returns the in-memory session of userID, or nil when the user is
// not loaded. A connection's handlers use the session returned by Acquire
// for it, or this.
func (st *Store) Session(userID string) *Session {
	st.mu.Lock()
	s := st.users[userID]
	st.mu.Unlock()
	if s == nil || !s.isLoaded() {
		return nil
	}
	return s
}

// Flush writes every session with unflushed changes. It returns the failures
// joined; those sessions stay pending and are retried later.
func (st *Store) Flush(ctx context.Context) error {
	st.mu.Lock()
	all := make([]*Session, 0, len(st.users))
	for _, s := range st.users {
		all = append(all, s)
	}
	st.mu.Unlock()

	var errs []error
	for _, s := range all {
		if err := s.flush(ctx, false); err != nil {
			errs = append(errs, err)
		}
	}
	st.mu.Lock()
	st.evictLocked()
	st.mu.Unlock()
	return errors.Join(errs...)
}

// Close stops the background writer and writes every session with unflushed
// changes. Afterwards Acquire, Set and Delete return ErrClosed. When some
// writes fail, Close returns them and may be called again to retry. The
// backend stays open; it belongs to the caller.
func (st *Store) Close(ctx context.Context) error {
	st.shut.Store(true)
	st.stop.Do(func() {
		close(st.done)
		st.cancel() // abandons a background write under way; Flush below redoes it
		<-st.stopped
	})
	return st.Flush(ctx)
}

// OnChange registers fn to be called after every Set and Delete of any
// session of this Store, synchronously in the goroutine that made the
// change and after the session's lock is released, so fn may read the
// session. Changes made concurrently may reach fn in either order; compare
// their Version. The returned function unregisters fn.
func (st *Store) OnChange(fn func(Change)) (off func()) {
	st.listenersMu.Lock()
	id := st.nextID
	st.nextID++
	st.listeners[id] = fn
	st.listenersMu.Unlock()
	return func() {
		st.listenersMu.Lock()
		delete(st.listeners, id)
		st.listenersMu.Unlock()
	}
}

// notify calls the listeners; val is copied for them, since the session
// keeps the original.
func (st *Store) notify(userID, key string, val json.RawMessage, version uint64, remote bool) {
	st.listenersMu.RLock()
	fns := make([]func(Change), 0, len(st.listeners))
	for _, fn := range st.listeners {
		fns = append(fns, fn)
	}
	st.listenersMu.RUnlock()
	for _, fn := range fns {
		fn(Change{UserID: userID, Key: key, Value: bytes.Clone(val), Version: version, Remote: remote})
	}
}

// ApplyRemote applies a change made on another node (where it is written to
// the backend) to this node's copy of the user's session, when it is loaded,
// and calls the OnChange listeners with Remote set. It does not count as an
// unwritten change here. A user not loaded on this node is left alone: their
// next Acquire reads the backend.
func (st *Store) ApplyRemote(c Change) {
	s := st.Session(c.UserID)
	if s == nil || checkKey(c.Key) != nil {
		return
	}
	s.mu.Lock()
	if s.evicted || st.shut.Load() {
		s.mu.Unlock()
		return
	}
	if c.Value == nil {
		delete(s.data, c.Key)
	} else {
		s.data[c.Key] = bytes.Clone(c.Value)
	}
	version := st.seq.Add(1)
	s.mu.Unlock()
	st.notify(c.UserID, c.Key, c.Value, version, true)
}

// schedule asks the background writer to write s soon.
func (st *Store) schedule(s *Session) {
	st.mu.Lock()
	st.pending[s] = struct{}{}
	st.mu.Unlock()
	select {
	case st.wake <- struct{}{}:
	default:
	}
}

// run is the background writer: it writes sessions that reached the
// threshold as soon as they do, and all pending sessions on every tick.
func (st *Store) run() {
	defer close(st.stopped)
	var tick <-chan time.Time
	if st.opts.FlushInterval > 0 {
		t := time.NewTicker(st.opts.FlushInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-st.done:
			return
		case <-tick:
			if err := st.Flush(st.bgCtx); err != nil && st.bgCtx.Err() == nil {
				st.log.Warn("session: periodic flush failed", "err", err)
			}
		case <-st.wake:
			st.mu.Lock()
			batch := st.pending
			st.pending = make(map[*Session]struct{})
			st.mu.Unlock()
			for s := range batch {
				s.unschedule()
				if err := s.flush(st.bgCtx, false); err != nil && st.bgCtx.Err() == nil {
					st.log.Warn("session: flush failed; retrying on the next interval", "user", s.userID, "err", err)
				}
			}
			st.mu.Lock()
			st.evictLocked()
			st.mu.Unlock()
		}
	}
}

func backendKey(userID string) string { return KeyPrefix + userID }

func wrap(userID, op string, err error) error {
	return fmt.Errorf("session: %s %q: %w", op, userID, err)
}
