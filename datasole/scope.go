package datasole

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sync"

	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/datasole/datasole-go/datasole/protocol"
)

// A scope (global, one user, one tag) owns its state entries. Its lock
// orders the scope's commits, deliveries and joins: a connection joining a
// scope gets each key as a snapshot or as a later patch, never neither and
// never a patch against a value it did not see. No lock is held across
// backend I/O: a commit writes the store first, then takes the scope lock
// briefly to record the value and queue the frame on the local connections,
// then hands the bus message to the node's publisher.
//
// A node keeps a scope only while it has local members (or while an
// operation uses it): the global scope always, a user's scope while the user
// is connected here, a tag's while a local connection carries it. Others are
// evicted and read again from the store on demand, so a node's memory is
// bounded by its own connections, not by every user of the application.
type scope struct {
	id      Scope
	mu      sync.Mutex
	entries map[string]*stateEntry // guarded by mu
	loaded  bool                   // entries were read from the store; guarded by mu
	loading chan struct{}          // closed when a load under way ends; guarded by mu
	evicted bool                   // no longer the node's copy: deliver nothing; guarded by mu
	refs    int                    // members and operations using it; guarded by scopeSet.mu
}

// scopeSet is the node's registry of scopes.
type scopeSet struct {
	mu     sync.Mutex
	m      map[Scope]*scope
	global *scope
	opts   map[string]StateOptions // ConfigureState
}

func (ss *scopeSet) init() {
	ss.m = make(map[Scope]*scope)
	ss.global = &scope{id: Global(), entries: make(map[string]*stateEntry)}
	ss.m[Global()] = ss.global
}

// acquire returns the scope, creating it, and counts one user of it; pair
// it with Server.releaseScope.
func (ss *scopeSet) acquire(sc Scope) *scope {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	sp := ss.m[sc]
	if sp == nil {
		sp = &scope{id: sc, entries: make(map[string]*stateEntry)}
		ss.m[sc] = sp
	}
	sp.refs++
	return sp
}

// get returns the scope if this node keeps it.
func (ss *scopeSet) get(sc Scope) *scope {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.m[sc]
}

func (ss *scopeSet) all() []*scope {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	out := make([]*scope, 0, len(ss.m))
	for _, sp := range ss.m {
		out = append(out, sp)
	}
	return out
}

func (ss *scopeSet) flushOf(key string) FlushStrategy {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.opts[key].Flush
}

// releaseScope drops one user of sp; the last one evicts it. Changes still
// waiting for a batched flush are sent to the other nodes first.
func (s *Server) releaseScope(sp *scope) {
	ss := &s.scopes
	ss.mu.Lock()
	sp.refs--
	last := sp.refs == 0 && sp != ss.global
	if last {
		delete(ss.m, sp.id)
	}
	ss.mu.Unlock()
	if !last {
		return
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.evicted = true
	for _, e := range sp.entries {
		s.flushLocked(sp, e)
	}
	sp.entries = nil
}

// entryOf returns the entry of key in sp, creating it.
func (s *Server) entryOf(sp *scope, key string) *stateEntry {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if e := sp.entries[key]; e != nil {
		return e
	}
	return s.newEntryLocked(sp, key)
}

// newEntryLocked adds an empty entry. In a loaded scope a missing key does
// not exist in the store, so the entry is known to be empty at version 0.
func (s *Server) newEntryLocked(sp *scope, key string) *stateEntry {
	e := &stateEntry{key: key, flush: s.scopes.flushOf(key), known: sp.loaded}
	if sp.entries == nil { // evicted: a late operation still gets an entry of its own
		sp.entries = make(map[string]*stateEntry)
	}
	sp.entries[key] = e
	return e
}

// ensureLoaded reads a scope's keys from the store unless this node has
// them already. Bus messages that arrive meanwhile are applied to the
// entries as usual; the read then adds only what is newer, by version.
func (s *Server) ensureLoaded(ctx context.Context, sp *scope) {
	sp.mu.Lock()
	if sp.loaded {
		sp.mu.Unlock()
		return
	}
	if ch := sp.loading; ch != nil {
		sp.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
		return
	}
	ch := make(chan struct{})
	sp.loading = ch
	sp.mu.Unlock()

	keys, vals, err := s.loadScope(ctx, sp.id)

	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.loading = nil
	close(ch)
	if err != nil {
		s.backendError("load-scope", err)
		return // the next joiner tries again; resync and gaps repair
	}
	for i, k := range keys {
		st := vals[i]
		e := sp.entries[k]
		if !st.ok || (e != nil && e.known && st.version <= e.version) {
			continue
		}
		if e == nil {
			e = s.newEntryLocked(sp, k)
		}
		e.value, e.version, e.known, e.pending = st.value, st.version, true, nil
		e.sent, e.sentVersion, e.snap = st.value, st.version, nil
	}
	for _, e := range sp.entries {
		if !e.known { // not in the index: the key does not exist
			e.known = true
		}
	}
	sp.loaded = true
}

// loadScope reads the names of a scope's keys from its index, then their
// values in one batched read.
func (s *Server) loadScope(ctx context.Context, sc Scope) ([]string, []stored, error) {
	names, _, err := s.readIndex(ctx, sc)
	if err != nil || len(names) == 0 {
		return nil, nil, err
	}
	ids := make([]string, len(names))
	for i, k := range names {
		ids[i] = storeKey(sc, k)
	}
	vals, err := s.getMany(ctx, ids)
	return names, vals, err
}

// reloadScopes re-reads every scope this node keeps and sends what changed
// to its connections: the bus may have lost messages.
func (s *Server) reloadScopes() {
	for _, sp := range s.scopes.all() {
		ctx, cancel := context.WithTimeout(s.ctx, busTimeout)
		keys, vals, err := s.loadScope(ctx, sp.id)
		cancel()
		if err != nil {
			s.backendError("load-scope", err)
			continue
		}
		sp.mu.Lock()
		for i, k := range keys {
			st := vals[i]
			e := sp.entries[k]
			if !st.ok || (e != nil && e.known && st.version == e.version) {
				continue
			}
			if e == nil {
				e = s.newEntryLocked(sp, k)
			}
			s.adoptLocked(sp, e, st.value, st.version)
		}
		sp.mu.Unlock()
	}
}

// The index of a scope lists its key names, so that a node can load a
// user's or a tag's keys when the first member arrives without scanning
// the store. It is changed only when a key is created or deleted.

// maxScopeKeys bounds the keys of one scope.
const maxScopeKeys = 10000

// ErrTooManyKeys is returned when a scope already has the maximum number of
// state keys (10,000).
var ErrTooManyKeys = errors.New("datasole: too many state keys in one scope")

func indexKey(sc Scope) string { return "stateidx:" + scopeCode(sc) }

func (s *Server) readIndex(ctx context.Context, sc Scope) ([]string, uint64, error) {
	raw, ver, err := s.opts.Backend.Get(ctx, indexKey(sc))
	if errors.Is(err, backend.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	var names []string
	if err := json.Unmarshal(raw, &names); err != nil {
		s.log.Warn("datasole: unreadable state index; rebuilding it", "scope", sc.String(), "err", err)
		return nil, ver, nil
	}
	return names, ver, nil
}

// indexState adds key to (or removes it from) its scope's index.
func (s *Server) indexState(ctx context.Context, sc Scope, key string, add bool) error {
	for range maxStateRetries {
		names, ver, err := s.readIndex(ctx, sc)
		if err != nil {
			return s.storeFailed("get", key, err)
		}
		i := slices.Index(names, key)
		switch {
		case add && i >= 0, !add && i < 0:
			return nil
		case add && len(names) >= maxScopeKeys:
			return fmt.Errorf("%w (%s)", ErrTooManyKeys, sc)
		case add:
			names = append(names, key)
		default:
			names = slices.Delete(names, i, i+1)
		}
		raw, _ := json.Marshal(names)
		_, err = s.opts.Backend.CompareAndSet(ctx, indexKey(sc), raw, ver, 0)
		if err == nil {
			return nil
		}
		if !errors.Is(err, backend.ErrConflict) {
			return s.storeFailed("cas", key, err)
		}
	}
	return s.storeFailed("cas", key, errors.New("too many conflicts on the state index"))
}

// scopeCode is a scope's part of its store keys.
func scopeCode(sc Scope) string {
	switch sc.kind {
	case targetUser:
		return "u:" + url.QueryEscape(sc.id)
	case targetTag:
		return "t:" + url.QueryEscape(sc.id)
	}
	return "g"
}

// storeKey is where a state key lives in the backend.
func storeKey(sc Scope, key string) string { return "state:" + scopeCode(sc) + ":" + key }

// scopes returns the scopes c is in: global, its user, its tags.
func (c *Conn) scopes() []Scope {
	return append([]Scope{Global(), ForUser(c.userID)}, tagScopes(c.Tags())...)
}

func tagScopes(tags []string) []Scope {
	out := make([]Scope, len(tags))
	for i, t := range tags {
		out[i] = ForTag(t)
	}
	return out
}

// attach adds a new connection to the hub and queues what it needs to be
// current: a snapshot of every state key and CRDT of the global scope and
// of its user's scope (read from the store first when this node has no
// other connection of the user).
func (s *Server) attach(ctx context.Context, c *Conn) {
	us := s.scopes.acquire(ForUser(c.userID))
	if c.anonymous() { // nobody can have stored state for a fresh anonymous id
		us.mu.Lock()
		us.loaded = true
		us.mu.Unlock()
	} else {
		s.ensureLoaded(ctx, us)
	}
	gl := s.scopes.global
	gl.mu.Lock()
	us.mu.Lock()
	s.hub.add(c)
	s.snapshotLocked(c, gl)
	s.snapshotLocked(c, us)
	us.mu.Unlock()
	gl.mu.Unlock()
}

// detach removes an ended connection from the hub and gives back its
// scopes.
func (s *Server) detach(c *Conn) {
	tags, ok := s.hub.remove(c)
	if !ok {
		return
	}
	s.presenceClosed(c, tags)
	for _, t := range tags {
		if sp := s.scopes.get(ForTag(t)); sp != nil {
			s.releaseScope(sp)
		}
	}
	if sp := s.scopes.get(ForUser(c.userID)); sp != nil {
		s.releaseScope(sp)
	}
}

// snapshotLocked queues the state and CRDTs of sp on c. sp.mu is held.
func (s *Server) snapshotLocked(c *Conn, sp *scope) {
	for _, e := range sp.entries {
		if e.sent != nil {
			if msg := e.snapshotMsg(); msg != nil {
				c.enqueue(protocol.StateSnapshot, msg)
			}
		}
	}
	s.crdtSnapshots(c, sp.id)
}

// tagConn adds c to a tag: it joins the tag's scope with a snapshot of its
// keys and CRDTs.
func (s *Server) tagConn(c *Conn, tag string) {
	sp := s.scopes.acquire(ForTag(tag))
	ctx, cancel := context.WithTimeout(c.ctx, busTimeout)
	s.ensureLoaded(ctx, sp)
	cancel()
	sp.mu.Lock()
	added := s.hub.tag(c, tag)
	if added {
		s.snapshotLocked(c, sp)
	}
	sp.mu.Unlock()
	if !added {
		s.releaseScope(sp) // already tagged, or the connection is gone
		return
	}
	s.presenceJoined(c, tag)
}

// untagConn removes c from a tag.
func (s *Server) untagConn(c *Conn, tag string) {
	sp := s.scopes.get(ForTag(tag))
	if sp == nil {
		return
	}
	sp.mu.Lock()
	removed := s.hub.untag(c, tag)
	sp.mu.Unlock()
	if removed {
		s.releaseScope(sp)
		s.presenceLeft(c, tag)
	}
}
