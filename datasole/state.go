package datasole

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/datasole/datasole-go/datasole/patch"
	"github.com/datasole/datasole-go/datasole/protocol"
)

// Scope says who may see a state key. A connection never receives a key
// outside its scopes.
type Scope struct {
	kind targetKind
	id   string
}

// Global is the scope of keys every connection sees.
func Global() Scope { return Scope{kind: targetAll} }

// ForUser is the scope of keys only one user's connections see ("my cart").
// Each user has their own value under the same key name.
func ForUser(userID string) Scope { return Scope{kind: targetUser, id: userID} }

// ForTag is the scope of keys only connections carrying a tag (a room) see.
func ForTag(tag string) Scope { return Scope{kind: targetTag, id: tag} }

func (sc Scope) target() Target { return Target(sc) }

func (sc Scope) String() string {
	switch sc.kind {
	case targetUser:
		return "user:" + sc.id
	case targetTag:
		return "tag:" + sc.id
	}
	return "global"
}

// FlushStrategy decides when the changes of a state key are sent.
type FlushStrategy struct {
	mode     flushMode
	interval time.Duration
	maxBatch int
}

type flushMode uint8

const (
	flushImmediate flushMode = iota
	flushBatched
	flushDebounced
)

// Immediate sends every change at once (the default).
func Immediate() FlushStrategy { return FlushStrategy{} }

// Batched collects changes and sends them together every interval, or as
// soon as maxBatch changes are waiting (0: no size trigger).
func Batched(interval time.Duration, maxBatch int) FlushStrategy {
	return FlushStrategy{mode: flushBatched, interval: interval, maxBatch: maxBatch}
}

// Debounced sends the collected changes once no change has come for quiet.
func Debounced(quiet time.Duration) FlushStrategy {
	return FlushStrategy{mode: flushDebounced, interval: quiet}
}

// StateOptions configures a state key (in every scope).
type StateOptions struct {
	// Flush decides when changes are sent. Default Immediate.
	Flush FlushStrategy
}

type stateID struct {
	scope Scope
	key   string
}

// stateEntry is one key's authoritative value. Its lock serializes updates.
type stateEntry struct {
	id      stateID
	mu      sync.Mutex
	value   json.RawMessage // latest value; nil when absent
	version uint64
	flush   FlushStrategy

	// What clients hold: equal to value/version unless changes wait for a
	// flush. Snapshots for joining connections use it, so the waiting
	// patches still apply on top of it.
	sent        json.RawMessage
	sentVersion uint64
	pending     []json.RawMessage // patch lists since sentVersion
	timer       *time.Timer
}

// live is the server's live-state store.
type live struct {
	mu      sync.Mutex
	entries map[Scope]map[string]*stateEntry
	opts    map[string]StateOptions
}

// ConfigureState sets options for a key. Call it before the key is first
// set; later calls apply to values created afterwards.
func (s *Server) ConfigureState(key string, o StateOptions) {
	s.live.mu.Lock()
	if s.live.opts == nil {
		s.live.opts = make(map[string]StateOptions)
	}
	s.live.opts[key] = o
	s.live.mu.Unlock()
}

func (l *live) entry(id stateID, create bool) *stateEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	byKey := l.entries[id.scope]
	if e := byKey[id.key]; e != nil || !create {
		return e
	}
	if l.entries == nil {
		l.entries = make(map[Scope]map[string]*stateEntry)
	}
	if byKey == nil {
		byKey = make(map[string]*stateEntry)
		l.entries[id.scope] = byKey
	}
	e := &stateEntry{id: id, flush: l.opts[id.key].Flush}
	byKey[id.key] = e
	return e
}

func (l *live) scopeEntries(sc Scope) []*stateEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*stateEntry, 0, len(l.entries[sc]))
	for _, e := range l.entries[sc] {
		out = append(out, e)
	}
	return out
}

func (l *live) drop(e *stateEntry) {
	l.mu.Lock()
	if byKey := l.entries[e.id.scope]; byKey[e.id.key] == e {
		delete(byKey, e.id.key)
		if len(byKey) == 0 {
			delete(l.entries, e.id.scope)
		}
	}
	l.mu.Unlock()
}

// SetState sets a global state key and sends the change to every connection.
func (s *Server) SetState(ctx context.Context, key string, value any) error {
	return s.SetStateIn(ctx, Global(), key, value)
}

// GetState returns a global key's value and version; ok is false when the
// key has no value.
func (s *Server) GetState(key string) (value json.RawMessage, version uint64, ok bool) {
	return s.GetStateIn(Global(), key)
}

// UpdateState atomically replaces a global key's value with fn(old). old is
// nil when the key has no value. Updates of one key never interleave.
func (s *Server) UpdateState(ctx context.Context, key string, fn func(old json.RawMessage) (any, error)) error {
	return s.UpdateStateIn(ctx, Global(), key, fn)
}

// DeleteState removes a global key; clients receive null.
func (s *Server) DeleteState(ctx context.Context, key string) error {
	return s.DeleteStateIn(ctx, Global(), key)
}

// SetStateIn sets key in a scope: the value is stored as a copy (JSON), its
// version grows by one, and the change is diffed once and sent to the
// scope's connections as one STATE_PATCH {key, patches, version}.
func (s *Server) SetStateIn(ctx context.Context, sc Scope, key string, value any) error {
	return s.UpdateStateIn(ctx, sc, key, func(json.RawMessage) (any, error) { return value, nil })
}

// GetStateIn returns the value and version of key in a scope.
func (s *Server) GetStateIn(sc Scope, key string) (json.RawMessage, uint64, bool) {
	e := s.live.entry(stateID{sc, key}, false)
	if e == nil {
		return nil, 0, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.value == nil {
		return nil, e.version, false
	}
	return append(json.RawMessage(nil), e.value...), e.version, true
}

// UpdateStateIn is UpdateState for a scope.
func (s *Server) UpdateStateIn(ctx context.Context, sc Scope, key string, fn func(old json.RawMessage) (any, error)) error {
	if err := checkStateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.syncMu.RLock()
	defer s.syncMu.RUnlock()
	e := s.live.entry(stateID{sc, key}, true)
	e.mu.Lock()
	defer e.mu.Unlock()
	for attempt := 0; ; attempt++ {
		var old json.RawMessage
		if e.value != nil {
			old = append(json.RawMessage(nil), e.value...) // fn may not alias the stored copy
		}
		v, err := fn(old)
		if err != nil {
			return err
		}
		next, err := encodeState(v)
		if err != nil {
			return err
		}
		if next == nil {
			return s.deleteLocked(ctx, e)
		}
		patches, err := patch.Diff(e.value, next)
		if err != nil {
			if errors.Is(err, patch.ErrForbiddenKey) {
				return fmt.Errorf("%w: %w", ErrForbiddenKey, err)
			}
			return err
		}
		if string(patches) == "[]" {
			return nil // no change, no new version
		}
		version := e.version + 1
		if b := s.opts.Backend; b != nil {
			// The store decides the version: compare-and-set against the
			// version this node knows; on conflict, re-read and run fn again.
			version, err = b.CompareAndSet(ctx, storeKey(e.id), next, e.version, 0)
			if errors.Is(err, backend.ErrConflict) && attempt < maxStateRetries {
				if err := s.refreshLocked(ctx, e); err != nil {
					return err
				}
				continue
			}
			if err != nil {
				s.backendError("cas", err)
				return fmt.Errorf("datasole: storing state %q: %w", key, err)
			}
		}
		e.value = next
		e.version = version
		s.obs.StateChanged()
		e.pending = append(e.pending, patches)
		s.scheduleFlush(e)
		return nil
	}
}

// maxStateRetries bounds compare-and-set retries of one update under
// contention from other nodes.
const maxStateRetries = 64

// refreshLocked re-reads e from the store after a lost compare-and-set.
// Changes this node has not seen yet reach its clients with the next flush
// (as one patch from what they hold), so nothing is skipped.
func (s *Server) refreshLocked(ctx context.Context, e *stateEntry) error {
	val, ver, err := s.opts.Backend.Get(ctx, storeKey(e.id))
	if errors.Is(err, backend.ErrNotFound) {
		val, ver, err = nil, 0, nil
	}
	if err != nil {
		s.backendError("get", err)
		return err
	}
	if ver < e.version {
		return nil
	}
	// Fold the unseen change into the pending patches so local clients stay
	// in step even if its bus message never arrives.
	if ver > e.version {
		if p, derr := patch.Diff(e.value, val); derr == nil && string(p) != "[]" {
			e.pending = append(e.pending, p)
		}
	}
	e.value, e.version = val, ver
	return nil
}

// encodeState turns a value into the JSON stored for it, refusing values
// whose snapshot could not be sent (over 1 MiB) or that carry forbidden
// member names. nil means delete.
func encodeState(v any) (json.RawMessage, error) {
	var raw json.RawMessage
	switch x := v.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		if !json.Valid(x) {
			return nil, errors.New("datasole: state value is not valid JSON")
		}
		raw = append(json.RawMessage(nil), x...)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("datasole: encoding state: %w", err)
		}
		raw = b
	}
	if err := patch.CheckValue(raw); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrForbiddenKey, err)
	}
	if len(raw) > protocol.MaxPayload-1024 {
		return nil, ErrStateTooLarge
	}
	return raw, nil
}

// ErrStateTooLarge is returned for state values whose snapshot would not fit
// in one frame. Nothing is stored.
var ErrStateTooLarge = errors.New("datasole: state value larger than a frame")

func checkStateKey(key string) error {
	switch key {
	case "":
		return errors.New("datasole: empty state key")
	case "__proto__", "constructor", "prototype":
		return fmt.Errorf("%w: %q", ErrForbiddenKey, key)
	}
	return nil
}

// DeleteStateIn removes key from a scope. Its connections receive a
// snapshot of null with version 0, so a later value starts afresh.
func (s *Server) DeleteStateIn(ctx context.Context, sc Scope, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.syncMu.RLock()
	defer s.syncMu.RUnlock()
	e := s.live.entry(stateID{sc, key}, false)
	if e == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return s.deleteLocked(ctx, e)
}

func (s *Server) deleteLocked(ctx context.Context, e *stateEntry) error {
	if e.value == nil && e.sent == nil {
		return nil
	}
	if b := s.opts.Backend; b != nil {
		if err := b.Delete(ctx, storeKey(e.id)); err != nil {
			s.backendError("delete", err)
			return fmt.Errorf("datasole: deleting state %q: %w", e.id.key, err)
		}
	}
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	e.value, e.sent, e.pending = nil, nil, nil
	e.version, e.sentVersion = 0, 0
	s.live.drop(e)
	payload, _ := marshal(protocol.StateSnapshotBody{Key: e.id.key, Data: json.RawMessage("null")})
	s.fanoutState(e, protocol.StateSnapshot, payload)
	return nil
}

// fanoutState sends a state frame to the key's local connections and, with
// the key's new value and version, to the other nodes. e.mu is held.
func (s *Server) fanoutState(e *stateEntry, op protocol.Opcode, payload []byte) {
	msg, err := protocol.Encode(op, 0, payload)
	if err != nil {
		s.log.Error("datasole: state frame too large", "key", e.id.key, "err", err)
		return
	}
	t := e.id.scope.target()
	s.deliver(t, op, msg)
	s.publish(&busMsg{kind: busState, target: t, op: op, msg: msg, key: e.id.key, version: e.sentVersion, value: e.sent})
}

// scheduleFlush sends or schedules the pending patches of e (locked).
func (s *Server) scheduleFlush(e *stateEntry) {
	switch e.flush.mode {
	case flushImmediate:
		s.flushLocked(e)
	case flushBatched:
		if e.flush.maxBatch > 0 && len(e.pending) >= e.flush.maxBatch {
			s.flushLocked(e)
			return
		}
		if e.timer == nil {
			e.timer = time.AfterFunc(e.flush.interval, func() { s.flushEntry(e) })
		}
	case flushDebounced:
		if e.timer != nil {
			e.timer.Stop()
		}
		e.timer = time.AfterFunc(e.flush.interval, func() { s.flushEntry(e) })
	}
}

func (s *Server) flushEntry(e *stateEntry) {
	s.syncMu.RLock()
	defer s.syncMu.RUnlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	s.flushLocked(e)
}

// flushLocked sends what waits as one STATE_PATCH, or as a snapshot when
// that is much smaller (or the patches would not fit in a frame).
func (s *Server) flushLocked(e *stateEntry) {
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	if len(e.pending) == 0 {
		return
	}
	base := e.sentVersion
	patches := concatPatches(e.pending)
	e.pending = nil
	e.sent, e.sentVersion = e.value, e.version
	if len(patches) <= len(e.value)+1024 { // else a snapshot is much smaller
		body := statePatchBody{Key: e.id.key, Patches: patches, Version: e.version}
		if base != e.version-1 {
			body.Base = &base
		}
		if payload, err := marshal(body); err == nil && len(payload) <= protocol.MaxPayload {
			s.fanoutState(e, protocol.StatePatch, payload)
			return
		}
	}
	s.fanoutState(e, protocol.StateSnapshot, snapshotPayload(e.id.key, e.value, e.version))
}

// statePatchBody is STATE_PATCH with the extension members version and base
// (the version the patches apply to, present only when it is not
// version-1). v1 clients ignore both.
type statePatchBody struct {
	Key     string          `json:"key"`
	Patches json.RawMessage `json:"patches"`
	Version uint64          `json:"version"`
	Base    *uint64         `json:"base,omitempty"`
}

func snapshotPayload(key string, data json.RawMessage, version uint64) []byte {
	payload, _ := marshal(protocol.StateSnapshotBody{Key: key, Data: data, Version: version})
	return payload
}

func concatPatches(lists []json.RawMessage) json.RawMessage {
	if len(lists) == 1 {
		return lists[0]
	}
	out := make([]byte, 0, 256)
	out = append(out, '[')
	for _, l := range lists {
		inner := l[1 : len(l)-1]
		if len(inner) == 0 {
			continue
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(out, inner...)
	}
	return append(out, ']')
}

// flushAllState sends every pending change (on Close).
func (s *Server) flushAllState() {
	for _, e := range s.live.all() {
		s.flushEntry(e)
	}
}

// all returns every entry of every scope.
func (l *live) all() []*stateEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*stateEntry
	for _, byKey := range l.entries {
		for _, e := range byKey {
			out = append(out, e)
		}
	}
	return out
}

// snapshotScope queues snapshots of every key of a scope on c (syncMu held
// exclusively by the caller, so no change can slip between).
func (s *Server) snapshotScope(c *Conn, sc Scope) {
	for _, e := range s.live.scopeEntries(sc) {
		e.mu.Lock()
		if e.sent != nil {
			c.sendFrame(protocol.StateSnapshot, 0, snapshotPayload(e.id.key, e.sent, e.sentVersion))
		}
		e.mu.Unlock()
	}
}

// resync answers the $ds.resync extension: fresh snapshots of the keys a
// client asks for, among those it may see.
func (s *Server) resync(c *Conn, keys []string) {
	scopes := append([]Scope{Global(), ForUser(c.userID)}, tagScopes(c.Tags())...)
	if s.opts.Backend != nil { // this node may have missed a bus message
		for _, key := range keys {
			for _, sc := range scopes {
				s.refreshFromStore(stateID{sc, key})
			}
		}
	}
	s.syncMu.RLock()
	defer s.syncMu.RUnlock()
	for _, key := range keys {
		for _, sc := range scopes {
			e := s.live.entry(stateID{sc, key}, false)
			if e == nil {
				continue
			}
			e.mu.Lock()
			if e.sent != nil {
				c.sendFrame(protocol.StateSnapshot, 0, snapshotPayload(key, e.sent, e.sentVersion))
			}
			e.mu.Unlock()
		}
	}
}

func tagScopes(tags []string) []Scope {
	out := make([]Scope, len(tags))
	for i, t := range tags {
		out[i] = ForTag(t)
	}
	return out
}

// ResyncMethod is the extension RPC a client calls after a version gap or a
// reconnect: params {"keys": [...]}; the server answers {"keys": n} and
// queues a STATE_SNAPSHOT for each key the connection may see. v1 clients
// never call it.
const ResyncMethod = "$ds.resync"

func (s *Server) registerResync() {
	s.rpcs.Store(ResyncMethod, RPCFunc(func(c *Context, params json.RawMessage) (any, error) {
		var p struct {
			Keys []string `json:"keys"`
		}
		if err := decodeParams(params, &p); err != nil {
			return nil, &Error{Code: protocol.CodeInvalidParams, Message: "Invalid params"}
		}
		if len(p.Keys) > 1024 {
			p.Keys = p.Keys[:1024]
		}
		s.resync(c.conn, p.Keys)
		return map[string]int{"keys": len(p.Keys)}, nil
	}))
}

// attach adds a new connection to the hub and queues what it needs to be
// current: a snapshot of every state key and CRDT it may see.
func (s *Server) attach(c *Conn) {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	s.hub.add(c)
	for _, sc := range []Scope{Global(), ForUser(c.userID)} {
		s.snapshotScope(c, sc)
		s.crdtSnapshots(c, sc)
	}
}
