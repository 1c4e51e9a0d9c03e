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

// stateEntry is one key's value in one scope, as this node knows it.
type stateEntry struct {
	key string
	// update serializes this node's updates of the key. It is held across
	// the store's compare-and-set, but only other updaters of the same key
	// wait for it: joiners, deliveries and readers use the scope's lock.
	update sync.Mutex

	// Guarded by the scope's mu.
	value   json.RawMessage // latest committed value; nil when absent
	version uint64
	known   bool // value/version were read from or written to the store
	flush   FlushStrategy

	// What clients hold: equal to value/version unless changes wait for a
	// flush. Snapshots for joining connections use it, so the waiting
	// patches still apply on top of it.
	sent        json.RawMessage
	sentVersion uint64
	pending     []json.RawMessage // patch lists since sentVersion
	timer       *time.Timer
	snap        []byte // encoded STATE_SNAPSHOT of sent, shared by joiners; nil until needed
}

// snapshotMsg returns the encoded STATE_SNAPSHOT of what clients hold,
// encoding it once per version. The scope's mu is held.
func (e *stateEntry) snapshotMsg() []byte {
	if e.snap == nil {
		data := e.sent
		if data == nil {
			data = json.RawMessage("null")
		}
		msg, err := protocol.Encode(protocol.StateSnapshot, 0, snapshotPayload(e.key, data, e.sentVersion))
		if err != nil {
			return nil // values are refused before they grow past a frame
		}
		e.snap = msg
	}
	return e.snap
}

// ConfigureState sets options for a key. Call it before the key is first
// set; later calls apply to values created afterwards.
func (s *Server) ConfigureState(key string, o StateOptions) {
	s.scopes.mu.Lock()
	if s.scopes.opts == nil {
		s.scopes.opts = make(map[string]StateOptions)
	}
	s.scopes.opts[key] = o
	s.scopes.mu.Unlock()
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

// GetStateIn returns the value and version of key in a scope. Scopes with
// connections on this node (and the global scope) are answered from memory;
// others are read from the backend, within a short timeout, as this node
// keeps no copy of them.
func (s *Server) GetStateIn(sc Scope, key string) (json.RawMessage, uint64, bool) {
	if sp := s.scopes.get(sc); sp != nil {
		sp.mu.Lock()
		e := sp.entries[key]
		if e != nil && (e.known || sp.loaded) {
			defer sp.mu.Unlock()
			if e.value == nil {
				return nil, e.version, false
			}
			return append(json.RawMessage(nil), e.value...), e.version, true
		}
		loaded := sp.loaded
		sp.mu.Unlock()
		if loaded && e == nil {
			return nil, 0, false
		}
	}
	ctx, cancel := context.WithTimeout(s.ctx, busTimeout)
	defer cancel()
	val, ver, err := s.opts.Backend.Get(ctx, storeKey(sc, key))
	if err != nil {
		if !errors.Is(err, backend.ErrNotFound) {
			s.backendError("get", err)
		}
		return nil, 0, false
	}
	return val, ver, true
}

// UpdateStateIn is UpdateState for a scope.
//
// fn runs without any lock but the key's own update lock, so it may read
// and write other keys, tag connections and send events; it must not update
// the same key of the same scope (that would wait for itself). fn may run
// more than once when another node changes the key concurrently.
func (s *Server) UpdateStateIn(ctx context.Context, sc Scope, key string, fn func(old json.RawMessage) (any, error)) error {
	if err := checkStateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	sp := s.scopes.acquire(sc)
	defer s.releaseScope(sp)
	e := s.entryOf(sp, key)
	e.update.Lock()
	defer e.update.Unlock()
	for attempt := 0; ; attempt++ {
		sp.mu.Lock()
		known, cur, ver := e.known, e.value, e.version
		sp.mu.Unlock()
		if !known && attempt > 0 {
			if err := s.refresh(ctx, sp, e); err != nil {
				return err
			}
			continue
		}
		// A key this node has no copy of is first tried as new: creating
		// it costs no read, and an existing one conflicts and is read then.
		var old json.RawMessage
		if cur != nil {
			old = append(json.RawMessage(nil), cur...) // fn may not alias the stored copy
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
			return s.deleteEntry(ctx, sp, e)
		}
		patches, err := patch.Diff(cur, next)
		if err != nil {
			if errors.Is(err, patch.ErrForbiddenKey) {
				return fmt.Errorf("%w: %w", ErrForbiddenKey, err)
			}
			return err
		}
		if string(patches) == "[]" {
			return nil // no change, no new version
		}
		if ver == 0 {
			if err := s.indexState(ctx, sc, key, true); err != nil {
				return err
			}
		}
		// The store decides the version: compare-and-set against the
		// version this node knows; on conflict, re-read and run fn again.
		version, err := s.opts.Backend.CompareAndSet(ctx, storeKey(sc, key), next, ver, 0)
		if errors.Is(err, backend.ErrConflict) && attempt < maxStateRetries {
			if err := s.refresh(ctx, sp, e); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return s.storeFailed("cas", key, err)
		}
		sp.mu.Lock()
		s.commitLocked(sp, e, next, version, patches)
		sp.mu.Unlock()
		return nil
	}
}

// maxStateRetries bounds compare-and-set retries of one update under
// contention from other nodes.
const maxStateRetries = 64

// storeFailed counts a failed store operation and returns it to the caller
// as a retryable backend error.
func (s *Server) storeFailed(op, key string, err error) error {
	s.backendError(op, err)
	return &BackendError{Op: op, Key: key, Err: err}
}

// commitLocked records a value this node stored and sends the change. The
// scope's mu is held.
func (s *Server) commitLocked(sp *scope, e *stateEntry, next json.RawMessage, version uint64, patches json.RawMessage) {
	if version <= e.version {
		return // a newer version already came from another node; it was sent then
	}
	e.value, e.version, e.known = next, version, true
	e.pending = append(e.pending, patches)
	s.obs.StateChanged()
	s.scheduleFlush(sp, e)
}

// refresh re-reads e from the store after a lost compare-and-set, or before
// the first update of a key this node has no copy of. A change this node had
// not seen reaches its clients with the next flush (as one patch from what
// they hold), so nothing is skipped.
func (s *Server) refresh(ctx context.Context, sp *scope, e *stateEntry) error {
	val, ver, err := s.opts.Backend.Get(ctx, storeKey(sp.id, e.key))
	if errors.Is(err, backend.ErrNotFound) {
		val, ver, err = nil, 0, nil
	}
	if err != nil {
		return s.storeFailed("get", e.key, err)
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if e.known && ver < e.version {
		return nil
	}
	// Fold the unseen change into the pending patches so local clients stay
	// in step even if its bus message never arrives.
	if e.known && ver > e.version {
		if p, derr := patch.Diff(e.value, val); derr == nil && string(p) != "[]" {
			e.pending = append(e.pending, p)
		}
	} else if !e.known {
		e.sent, e.sentVersion, e.snap = val, ver, nil
	}
	e.value, e.version, e.known = val, ver, true
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
	if len(key) > maxStateKey {
		return fmt.Errorf("datasole: state key longer than %d bytes", maxStateKey)
	}
	return nil
}

// maxStateKey bounds state key names.
const maxStateKey = 1024

// DeleteStateIn removes key from a scope. Its connections receive a
// snapshot of null with version 0, so a later value starts afresh.
func (s *Server) DeleteStateIn(ctx context.Context, sc Scope, key string) error {
	if err := checkStateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	sp := s.scopes.acquire(sc)
	defer s.releaseScope(sp)
	e := s.entryOf(sp, key)
	e.update.Lock()
	defer e.update.Unlock()
	return s.deleteEntry(ctx, sp, e)
}

// deleteEntry removes e from the store, then from this node, and sends
// null to the scope's connections and the other nodes. e.update is held.
func (s *Server) deleteEntry(ctx context.Context, sp *scope, e *stateEntry) error {
	if err := s.opts.Backend.Delete(ctx, storeKey(sp.id, e.key)); err != nil {
		return s.storeFailed("delete", e.key, err)
	}
	if err := s.indexState(ctx, sp.id, e.key, false); err != nil {
		s.log.Warn("datasole: a deleted state key stays in its scope's index", "key", e.key, "err", err)
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	had := e.sent != nil || e.value != nil
	e.value, e.sent, e.pending, e.snap = nil, nil, nil, nil
	e.version, e.sentVersion = 0, 0
	if sp.entries[e.key] == e {
		delete(sp.entries, e.key)
	}
	if !had {
		return nil
	}
	msg, _ := protocol.Encode(protocol.StateSnapshot, 0, snapshotPayload(e.key, json.RawMessage("null"), 0))
	s.sendState(sp, e.key, protocol.StateSnapshot, msg, 0, 0, nil)
	return nil
}

// sendState delivers a state frame to the scope's local connections and
// hands it, with the key's value and version, to the publisher. The scope's
// mu is held.
func (s *Server) sendState(sp *scope, key string, op protocol.Opcode, msg []byte, version, base uint64, value json.RawMessage) {
	t := sp.id.target()
	if !sp.evicted {
		s.deliver(t, op, msg)
	}
	s.pub.enqueue(&busMsg{kind: busState, target: t, op: op, msg: msg, key: key, version: version, base: base, value: value})
}

// scheduleFlush sends or schedules the pending patches of e. The scope's
// mu is held.
func (s *Server) scheduleFlush(sp *scope, e *stateEntry) {
	switch e.flush.mode {
	case flushImmediate:
		s.flushLocked(sp, e)
	case flushBatched:
		if e.flush.maxBatch > 0 && len(e.pending) >= e.flush.maxBatch {
			s.flushLocked(sp, e)
			return
		}
		if e.timer == nil {
			e.timer = time.AfterFunc(e.flush.interval, func() { s.flushEntry(sp, e) })
		}
	case flushDebounced:
		if e.timer != nil {
			e.timer.Stop()
		}
		e.timer = time.AfterFunc(e.flush.interval, func() { s.flushEntry(sp, e) })
	}
}

func (s *Server) flushEntry(sp *scope, e *stateEntry) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	s.flushLocked(sp, e)
}

// flushLocked sends what waits as one STATE_PATCH, or as a snapshot when
// that is much smaller, the patches would not fit in a frame, or clients
// hold no base to apply them to.
func (s *Server) flushLocked(sp *scope, e *stateEntry) {
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
	e.sent, e.sentVersion, e.snap = e.value, e.version, nil
	if len(patches) <= len(e.value)+1024 { // else a snapshot is much smaller
		body := protocol.StatePatchBody{Key: e.key, Patches: patches, Version: e.version}
		if base != e.version-1 {
			body.Base = &base
		}
		if payload, err := marshal(body); err == nil && len(payload) <= protocol.MaxPayload {
			if msg, err := protocol.Encode(protocol.StatePatch, 0, payload); err == nil {
				s.sendState(sp, e.key, protocol.StatePatch, msg, e.version, base, e.sent)
				return
			}
		}
	}
	s.sendState(sp, e.key, protocol.StateSnapshot, e.snapshotMsg(), e.version, 0, e.sent)
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
	for _, sp := range s.scopes.all() {
		sp.mu.Lock()
		for _, e := range sp.entries {
			s.flushLocked(sp, e)
		}
		sp.mu.Unlock()
	}
}

// ResyncMethod is the extension RPC a client calls after a version gap or a
// reconnect: params {"keys": [...]}; the server answers {"keys": n} and
// queues a STATE_SNAPSHOT for each key the connection may see. v1 clients
// never call it.
const ResyncMethod = "$ds.resync"

// maxResyncKeys bounds the keys of one resync call.
const maxResyncKeys = 256

func (s *Server) registerResync() {
	s.rpcs.Store(ResyncMethod, RPCFunc(func(c *Context, params json.RawMessage) (any, error) {
		var p struct {
			Keys []string `json:"keys"`
		}
		if err := decodeParams(params, &p); err != nil {
			return nil, &Error{Code: protocol.CodeInvalidParams, Message: "Invalid params"}
		}
		keys := dedupeKeys(p.Keys, maxResyncKeys)
		if err := s.resync(c, c.conn, keys); err != nil {
			return nil, err
		}
		return map[string]int{"keys": len(keys)}, nil
	}))
}

// dedupeKeys drops duplicates and invalid names and keeps at most limit.
func dedupeKeys(keys []string, limit int) []string {
	seen := make(map[string]struct{}, min(len(keys), limit))
	out := make([]string, 0, min(len(keys), limit))
	for _, k := range keys {
		if len(out) == limit {
			break
		}
		if _, dup := seen[k]; dup || checkStateKey(k) != nil {
			continue
		}
		seen[k] = struct{}{}
		out = append(out, k)
	}
	return out
}

// resync answers the $ds.resync extension: this node may have missed a bus
// message, so the keys the connection may see are re-read from the store in
// one batched read under the call's deadline; changes found are sent to the
// whole scope, then c gets a fresh snapshot of each key.
func (s *Server) resync(ctx context.Context, c *Conn, keys []string) error {
	scopes := c.scopes()
	ids := make([]string, 0, len(scopes)*len(keys))
	for _, sc := range scopes {
		for _, k := range keys {
			ids = append(ids, storeKey(sc, k))
		}
	}
	found, err := s.getMany(ctx, ids)
	if err != nil {
		return s.storeFailed("get", "", err)
	}
	i := 0
	for _, sc := range scopes {
		sp := s.scopes.get(sc)
		if sp == nil {
			i += len(keys)
			continue
		}
		sp.mu.Lock()
		for _, k := range keys {
			st := found[i]
			i++
			e := sp.entries[k]
			if st.ok && (e == nil || st.version > e.version) {
				if e == nil {
					e = s.newEntryLocked(sp, k)
				}
				s.adoptLocked(sp, e, st.value, st.version)
			}
			if e != nil && e.sent != nil {
				if msg := e.snapshotMsg(); msg != nil {
					c.enqueue(protocol.StateSnapshot, msg)
				}
			}
		}
		sp.mu.Unlock()
	}
	return nil
}

// adoptLocked makes a value read from the store (or carried by the bus)
// current and sends it to the scope's connections as a snapshot. The
// scope's mu is held.
func (s *Server) adoptLocked(sp *scope, e *stateEntry, value json.RawMessage, version uint64) {
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	e.value, e.version, e.known, e.pending = value, version, true, nil
	e.sent, e.sentVersion, e.snap = value, version, nil
	if !sp.evicted {
		if msg := e.snapshotMsg(); msg != nil {
			s.deliver(sp.id.target(), protocol.StateSnapshot, msg)
		}
	}
}

// stored is one value read from the store.
type stored struct {
	value   json.RawMessage
	version uint64
	ok      bool
}

// getMany reads keys from the store in one round trip when the backend can
// (backend.BatchGetter), else one by one, all under ctx.
func (s *Server) getMany(ctx context.Context, keys []string) ([]stored, error) {
	vals, err := backend.GetMany(ctx, s.opts.Backend, keys)
	if err != nil {
		return nil, err
	}
	out := make([]stored, len(keys))
	for i, v := range vals {
		if v.Version > 0 {
			out[i] = stored{v.Value, v.Version, true}
		}
	}
	return out, nil
}
