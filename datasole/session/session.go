package session

import (
	"bytes"
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/datasole/datasole-go/datasole/backend"
)

// maxWriteAttempts bounds how often one flush re-reads and merges the
// backend copy after another node wrote it in between.
const maxWriteAttempts = 5

// Session is one user's key/value map. Values are JSON; Get and Set work on
// memory only and are safe for concurrent use. Obtain it from
// Store.Acquire or Store.Session.
//
// A nil *Session is usable, so that handlers need no check when sessions
// are off or failed to load: it has no keys, and Set and Delete return
// ErrNoSession.
type Session struct {
	store  *Store
	userID string

	// Guarded by store.mu.
	conns int
	elem  *list.Element // position in store.idle while the user has no connection

	// io serializes the backend reads and writes of this user, so that an
	// older copy never overwrites a newer one.
	io sync.Mutex

	mu      sync.Mutex
	data    map[string]json.RawMessage
	changed map[string]uint64 // keys not yet written → Version of their last change
	pending int               // changes not yet written, for FlushThreshold
	remote  uint64            // backend version of the copy last read or written
	loaded  bool
	evicted bool
	// ephemeral sessions live only while their user has connections on
	// this node: they are never read from or written to the backend.
	ephemeral bool
	queued    bool // scheduled for a background write
	failed    bool // the last write failed; the timer retries it
}

// UserID returns the id of the user the session belongs to.
func (s *Session) UserID() string {
	if s == nil {
		return ""
	}
	return s.userID
}

// Get returns a copy of the JSON value stored under key.
func (s *Session) Get(key string) (json.RawMessage, bool) {
	if s == nil {
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.data[key]
	return bytes.Clone(v), ok
}

// GetInto decodes the value stored under key into v. It reports false, and
// leaves v alone, when there is no such key.
func (s *Session) GetInto(key string, v any) (bool, error) {
	raw, ok := s.Get(key)
	if !ok {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("session: decode %q: %w", key, err)
	}
	return true, nil
}

// Keys returns the session's keys in sorted order.
func (s *Session) Keys() []string {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.data))
	for k := range s.data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Set stores the JSON encoding of v under key. The key must be 1 to
// MaxKeyLength bytes long, the encoding at most Options.MaxValueSize bytes
// (ErrValueTooLarge), and a new key must fit in Options.MaxKeys
// (ErrTooManyKeys). OnChange listeners are called before Set returns.
func (s *Session) Set(key string, v any) error {
	if s == nil {
		return ErrNoSession
	}
	if err := checkKey(key); err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("session: encode %q: %w", key, err)
	}
	if limit := s.store.opts.MaxValueSize; len(b) > limit {
		return fmt.Errorf("%w: %q is %d bytes, the limit is %d", ErrValueTooLarge, key, len(b), limit)
	}
	return s.change(key, b)
}

// Delete removes key. Removing a missing key changes nothing and calls no
// listener; otherwise OnChange listeners are called before Delete returns.
func (s *Session) Delete(key string) error {
	if s == nil {
		return ErrNoSession
	}
	if err := checkKey(key); err != nil {
		return err
	}
	return s.change(key, nil)
}

func checkKey(key string) error {
	if key == "" || len(key) > MaxKeyLength {
		return fmt.Errorf("%w: length %d, want 1 to %d bytes", ErrInvalidKey, len(key), MaxKeyLength)
	}
	return nil
}

// change sets key to val, or deletes it when val is nil, and counts the
// change towards the next write.
func (s *Session) change(key string, val json.RawMessage) error {
	st := s.store
	s.mu.Lock()
	switch {
	case st.shut.Load():
		s.mu.Unlock()
		return ErrClosed
	case s.evicted:
		s.mu.Unlock()
		return ErrEvicted
	}
	_, exists := s.data[key]
	if val == nil {
		if !exists {
			s.mu.Unlock()
			return nil
		}
		delete(s.data, key)
	} else {
		if !exists && len(s.data) >= st.opts.MaxKeys {
			s.mu.Unlock()
			return fmt.Errorf("%w: the limit is %d", ErrTooManyKeys, st.opts.MaxKeys)
		}
		s.data[key] = val
	}
	if s.ephemeral {
		s.mu.Unlock()
		return nil
	}
	// Taken under s.mu, so a write that snapshots the map knows exactly
	// which changes it covers: those with a version up to its snapshot's.
	version := st.seq.Add(1)
	s.changed[key] = version
	s.pending++
	kick := s.pending >= st.opts.FlushThreshold && !s.queued && !s.failed
	if kick {
		s.queued = true
	}
	s.mu.Unlock()

	if kick {
		st.schedule(s)
	}
	st.notify(s.userID, key, val, version, false)
	return nil
}

func (s *Session) unschedule() {
	s.mu.Lock()
	s.queued = false
	s.mu.Unlock()
}

func (s *Session) isLoaded() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loaded
}

// evict marks the session as gone from memory unless it still has changes
// to write. The caller holds store.mu and removes it from the store.
func (s *Session) evict() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.changed) > 0 {
		return false
	}
	s.evicted = true
	return true
}

// load reads the backend copy when the session has not been loaded yet or
// when force is set, and merges the unwritten local changes over it.
func (s *Session) load(ctx context.Context, force bool) error {
	s.io.Lock()
	defer s.io.Unlock()
	if !force && s.isLoaded() {
		return nil
	}
	remote, version, err := s.read(ctx)
	if err != nil {
		return wrap(s.userID, "load", err)
	}
	s.mu.Lock()
	s.mergeLocked(remote, version)
	s.loaded = true
	s.mu.Unlock()
	return nil
}

// read returns the backend copy of the session and its version; a missing
// or expired session is empty at version 0.
func (s *Session) read(ctx context.Context) (map[string]json.RawMessage, uint64, error) {
	b, version, err := s.store.opts.Backend.Get(ctx, backendKey(s.userID))
	if errors.Is(err, backend.ErrNotFound) {
		return make(map[string]json.RawMessage), 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		// Refusing the user forever would not bring the data back; the next
		// write replaces the unreadable copy.
		s.store.log.Warn("session: unreadable session in the backend; starting empty", "user", s.userID, "err", err)
		m = nil
	}
	if m == nil {
		m = make(map[string]json.RawMessage)
	}
	return m, version, nil
}

// mergeLocked replaces the map by the backend copy with the unwritten local
// changes applied over it: local changes win.
func (s *Session) mergeLocked(remote map[string]json.RawMessage, version uint64) {
	for k := range s.changed {
		if v, ok := s.data[k]; ok {
			remote[k] = v
		} else {
			delete(remote, k)
		}
	}
	s.data = remote
	s.remote = version
}

// flush writes the whole map when it has unwritten changes or, with touch,
// when there is a backend copy whose TTL should restart. The write is
// conditional on the backend version last seen; when another node wrote in
// between, its copy is merged under the local changes and the write retried.
func (s *Session) flush(ctx context.Context, touch bool) error {
	s.io.Lock()
	defer s.io.Unlock()
	st := s.store
	for attempt := 1; ; attempt++ {
		s.mu.Lock()
		if !s.loaded || (len(s.changed) == 0 && !(touch && (len(s.data) > 0 || s.remote > 0))) {
			s.mu.Unlock()
			return nil
		}
		body, err := json.Marshal(s.data)
		if err != nil { // values are valid JSON; this would be a bug
			s.mu.Unlock()
			return wrap(s.userID, "encode", err)
		}
		var covered uint64
		for _, v := range s.changed {
			covered = max(covered, v)
		}
		pending, expect := s.pending, s.remote
		s.mu.Unlock()

		version, err := st.opts.Backend.CompareAndSet(ctx, backendKey(s.userID), body, expect, st.opts.TTL)
		if err == nil {
			s.mu.Lock()
			s.remote = version
			for k, v := range s.changed {
				if v <= covered {
					delete(s.changed, k)
				}
			}
			// Subtract rather than reset: changes made during the write
			// still count towards the next one.
			s.pending -= pending
			s.failed = false
			s.mu.Unlock()
			return nil
		}
		if errors.Is(err, backend.ErrConflict) && attempt < maxWriteAttempts {
			remote, rv, rerr := s.read(ctx)
			if rerr == nil {
				s.mu.Lock()
				s.mergeLocked(remote, rv)
				s.mu.Unlock()
				continue
			}
			err = rerr
		}
		s.mu.Lock()
		s.failed = true
		s.mu.Unlock()
		return wrap(s.userID, "write", err)
	}
}
