package datasole

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/datasole/datasole-go/datasole/crdt"
	"github.com/datasole/datasole-go/datasole/protocol"
)

// CRDTOptions configures the server's CRDTs.
type CRDTOptions struct {
	// MaxKeys bounds the CRDT keys of the server. Default 1,000.
	MaxKeys int
	// MaxKeysPerConn bounds the keys one connection may create. Default 16.
	MaxKeysPerConn int
	// MaxSkew clamps timestamps of CRDTs the server creates to its clock
	// plus this much, so a far-future write cannot win forever. Default 1m.
	MaxSkew time.Duration
	// Authorize decides whether a connection may apply op to key. Default:
	// any connection that can see the key may write it.
	Authorize func(c *Conn, key string, op crdt.Op) error
	// AllowCreate decides whether a connection may create key (of type typ)
	// by sending an op for a key that does not exist. Default: clients create
	// no keys; the server registers them.
	AllowCreate func(c *Conn, key, typ string) bool
}

func (o CRDTOptions) check(c *optionChecker) {
	c.nonNegative("Options.CRDT.MaxKeys", int64(o.MaxKeys), o.MaxKeys)
	c.nonNegative("Options.CRDT.MaxKeysPerConn", int64(o.MaxKeysPerConn), o.MaxKeysPerConn)
	c.nonNegative("Options.CRDT.MaxSkew", int64(o.MaxSkew), o.MaxSkew)
}

func (o CRDTOptions) withDefaults() CRDTOptions {
	if o.MaxKeys == 0 {
		o.MaxKeys = 1000
	}
	if o.MaxKeysPerConn == 0 {
		o.MaxKeysPerConn = 16
	}
	if o.MaxSkew == 0 {
		o.MaxSkew = time.Minute
	}
	return o
}

// Errors of the CRDT registry.
var (
	// ErrCRDTExists is returned when registering a key twice.
	ErrCRDTExists = errors.New("datasole: crdt key already registered")
	// ErrCRDTLimit is returned when a key limit is reached.
	ErrCRDTLimit = errors.New("datasole: crdt key limit reached")
	// ErrUnknownCRDT is returned for ops on a key that does not exist.
	ErrUnknownCRDT = errors.New("datasole: unknown crdt key")
)

type crdtEntry struct {
	key   string
	scope Scope
	mu    sync.Mutex // guards the fields below and c
	c     crdt.CRDT
	frame []byte          // encoded CRDT_STATE of c; nil once c changed
	state json.RawMessage // c.State() as JSON, for the bus and the store; nil once c changed
	seq   uint64          // changes of c, to know what a save covered
	saved uint64          // seq of the last state written to the store

	// A change is sent by whoever finds no broadcast under way, in a loop
	// that picks up the changes made meanwhile: under a flood of ops the
	// state is encoded once per round, not once per op.
	broadcasting   bool
	pendingLocal   bool // local connections need the new state
	pendingPublish bool // the other nodes need it too (a change made here)
}

// changedLocked notes a change of c: from here (publish) or merged from
// elsewhere. e.mu is held.
func (e *crdtEntry) changedLocked(publish bool) {
	e.frame, e.state = nil, nil
	e.pendingLocal = true
	if publish {
		e.pendingPublish = true
		e.seq++
	}
}

// encodedLocked returns the CRDT_STATE frame and the state JSON of c,
// encoding them once per change. e.mu is held.
func (e *crdtEntry) encodedLocked() ([]byte, json.RawMessage) {
	if e.frame == nil {
		st, _ := json.Marshal(e.c.State())
		payload, _ := marshal(protocol.CRDTStateBody{Key: e.key, State: st})
		frame, err := protocol.Encode(protocol.CRDTState, 0, payload)
		if err != nil {
			return nil, st
		}
		e.frame, e.state = frame, st
	}
	return e.frame, e.state
}

type crdtRegistry struct {
	mu      sync.Mutex
	byKey   map[string]*crdtEntry
	byScope map[Scope][]*crdtEntry
	created map[*Conn]int // keys each connection created
}

func (r *crdtRegistry) all() []*crdtEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*crdtEntry, 0, len(r.byKey))
	for _, e := range r.byKey {
		out = append(out, e)
	}
	return out
}

// RegisterCRDT makes c available under key to the connections of a scope:
// they receive its state on connect and after every change, and may send
// ops (CRDT_OP) subject to CRDTOptions.Authorize. Its stored state is
// merged in by Start (or at once, when the server is started).
func (s *Server) RegisterCRDT(key string, sc Scope, c crdt.CRDT) error {
	if err := checkStateKey(key); err != nil {
		return err
	}
	e, err := s.addCRDT(key, sc, c, nil)
	if err != nil {
		return err
	}
	return s.loadRegistered(e)
}

// RegisterCRDTType creates and registers an empty CRDT of the named type
// ("pn-counter", "lww-register" or "lww-map") with the server as its node.
func (s *Server) RegisterCRDTType(key string, sc Scope, typ string) (crdt.CRDT, error) {
	if err := checkStateKey(key); err != nil {
		return nil, err
	}
	c, err := s.newCRDT(typ)
	if err != nil {
		return nil, err
	}
	e, err := s.addCRDT(key, sc, c, nil)
	if err != nil {
		return nil, err
	}
	return c, s.loadRegistered(e)
}

// loadRegistered merges the stored state of a CRDT registered after Start;
// Start loads those registered before.
func (s *Server) loadRegistered(e *crdtEntry) error {
	if !s.started.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, busTimeout)
	defer cancel()
	return s.loadCRDT(ctx, e)
}

func (s *Server) newCRDT(typ string) (crdt.CRDT, error) {
	return crdt.New(typ, "server-"+s.nodeID, crdt.Limits{MaxSkew: s.opts.CRDT.MaxSkew})
}

func (s *Server) addCRDT(key string, sc Scope, c crdt.CRDT, creator *Conn) (*crdtEntry, error) {
	r := &s.crdts
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byKey == nil {
		r.byKey = make(map[string]*crdtEntry)
		r.byScope = make(map[Scope][]*crdtEntry)
		r.created = make(map[*Conn]int)
	}
	if _, ok := r.byKey[key]; ok {
		return nil, ErrCRDTExists
	}
	if len(r.byKey) >= s.opts.CRDT.MaxKeys {
		return nil, ErrCRDTLimit
	}
	if creator != nil {
		if r.created[creator] >= s.opts.CRDT.MaxKeysPerConn {
			return nil, ErrCRDTLimit
		}
		r.created[creator]++
	}
	e := &crdtEntry{key: key, scope: sc, c: c}
	r.byKey[key] = e
	r.byScope[sc] = append(r.byScope[sc], e)
	return e, nil
}

func (s *Server) crdtEntry(key string) *crdtEntry {
	s.crdts.mu.Lock()
	defer s.crdts.mu.Unlock()
	return s.crdts.byKey[key]
}

// CRDT returns the CRDT registered under key.
func (s *Server) CRDT(key string) (crdt.CRDT, bool) {
	e := s.crdtEntry(key)
	if e == nil {
		return nil, false
	}
	return e.c, true
}

// ApplyCRDT applies op to the CRDT under key exactly once and sends the new
// state to the key's connections. Server code uses it for CRDT operations
// that arrive as ordinary events (the pattern stock v1 clients use). Called
// with a handler's *Context, it applies that connection's rights as a
// CRDT_OP frame would: the key must be in one of its scopes and
// CRDTOptions.Authorize must allow the op.
func (s *Server) ApplyCRDT(ctx context.Context, key string, op crdt.Op) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e := s.crdtEntry(key)
	if e == nil {
		return ErrUnknownCRDT
	}
	if dc, ok := ctx.(*Context); ok && dc.conn != nil {
		if err := s.authorizeCRDT(dc.conn, e, op); err != nil {
			return err
		}
	}
	return s.applyCRDT(e, op)
}

// ErrCRDTForbidden is returned when a connection may not write a CRDT: the
// key is outside its scopes or CRDTOptions.Authorize refused the op.
var ErrCRDTForbidden = errors.New("datasole: crdt op not allowed")

// authorizeCRDT checks that c may apply op to e.
func (s *Server) authorizeCRDT(c *Conn, e *crdtEntry, op crdt.Op) error {
	if !c.canSee(e.scope) {
		return fmt.Errorf("%w: %w %q", ErrCRDTForbidden, ErrUnknownCRDT, e.key)
	}
	if auth := s.opts.CRDT.Authorize; auth != nil {
		if err := auth(c, e.key, op); err != nil {
			return fmt.Errorf("%w: %w", ErrCRDTForbidden, err)
		}
	}
	return nil
}

func (s *Server) applyCRDT(e *crdtEntry, op crdt.Op) error {
	e.mu.Lock()
	if op.Type != e.c.Type() {
		e.mu.Unlock()
		return fmt.Errorf("%w: %s op for %s key %q", crdt.ErrTypeMismatch, op.Type, e.c.Type(), e.key)
	}
	if err := e.c.Apply(op); err != nil {
		e.mu.Unlock()
		return err
	}
	e.changedLocked(true)
	e.mu.Unlock()
	s.obs.CRDTApplied()
	s.broadcastCRDT(e)
	return nil
}

// UpdateCRDT runs fn on the CRDT under key (to make local changes with its
// own methods) and then sends the new state. fn runs under the CRDT's lock:
// it must not call back into the server for the same key.
func (s *Server) UpdateCRDT(ctx context.Context, key string, fn func(c crdt.CRDT) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e := s.crdtEntry(key)
	if e == nil {
		return ErrUnknownCRDT
	}
	e.mu.Lock()
	if err := fn(e.c); err != nil {
		e.mu.Unlock()
		return err
	}
	e.changedLocked(true)
	e.mu.Unlock()
	s.broadcastCRDT(e)
	return nil
}

// broadcastCRDT sends e's state to its scope's local connections and, for
// changes made here, to the other nodes, unless a broadcast is already
// under way (it picks the change up). Persisting is left to the saver.
func (s *Server) broadcastCRDT(e *crdtEntry) {
	e.mu.Lock()
	if e.broadcasting {
		e.mu.Unlock()
		return
	}
	e.broadcasting = true
	for e.pendingLocal || e.pendingPublish {
		publish := e.pendingPublish
		e.pendingLocal, e.pendingPublish = false, false
		frame, state := e.encodedLocked()
		e.mu.Unlock()
		t := e.scope.target()
		if sp := s.scopes.get(e.scope); sp != nil && frame != nil {
			sp.mu.Lock()
			if !sp.evicted {
				s.deliver(t, protocol.CRDTState, frame)
			}
			sp.mu.Unlock()
		}
		if publish {
			s.pub.enqueue(&busMsg{kind: busCRDT, target: t, key: e.key, value: state})
		}
		e.mu.Lock()
	}
	e.broadcasting = false
	unsaved := e.seq != e.saved
	e.mu.Unlock()
	if unsaved {
		s.saver.mark(e)
	}
}

// crdtSnapshots queues the state of every CRDT of a scope on c. The scope's
// mu is held.
func (s *Server) crdtSnapshots(c *Conn, sc Scope) {
	s.crdts.mu.Lock()
	entries := append([]*crdtEntry(nil), s.crdts.byScope[sc]...)
	s.crdts.mu.Unlock()
	for _, e := range entries {
		e.mu.Lock()
		frame, _ := e.encodedLocked()
		e.mu.Unlock()
		if frame != nil {
			c.enqueue(protocol.CRDTState, frame)
		}
	}
}

// canSee reports whether c is in scope sc.
func (c *Conn) canSee(sc Scope) bool {
	switch sc.kind {
	case targetAll:
		return true
	case targetUser:
		return sc.id == c.userID
	case targetTag:
		for _, t := range c.Tags() {
			if t == sc.id {
				return true
			}
		}
	}
	return false
}

// handleCRDTOp applies a client's CRDT_OP. Every refusal is answered with an
// ERROR frame; a duplicate op (re-sent after a reconnect) is answered with
// the current state so the sender learns it was applied.
func (s *Server) handleCRDTOp(c *Conn, f protocol.Frame) {
	var body struct {
		Key string  `json:"key"`
		Op  crdt.Op `json:"op"`
	}
	if err := json.Unmarshal(f.Payload, &body); err != nil {
		c.refuse(f.CorrelationID, "crdt-invalid", "crdt: malformed op")
		return
	}
	if body.Key == "" {
		c.refuse(f.CorrelationID, "crdt-invalid", "crdt: op without a key")
		return
	}
	e := s.crdtEntry(body.Key)
	if e == nil {
		allow := s.opts.CRDT.AllowCreate
		if allow == nil || checkStateKey(body.Key) != nil || !allow(c, body.Key, body.Op.Type) {
			c.sendError(f.CorrelationID, protocol.ErrorBody{Message: "crdt: unknown key", Code: "crdt-unknown-key"})
			return
		}
		cr, err := s.newCRDT(body.Op.Type)
		if err == nil {
			e, err = s.addCRDT(body.Key, Global(), cr, c)
		}
		if errors.Is(err, ErrCRDTExists) {
			e = s.crdtEntry(body.Key)
		} else if err != nil {
			code := "crdt-invalid"
			if errors.Is(err, ErrCRDTLimit) {
				code = "crdt-key-limit"
			}
			c.sendError(f.CorrelationID, protocol.ErrorBody{Message: err.Error(), Code: code})
			return
		}
	}
	if err := s.authorizeCRDT(c, e, body.Op); err != nil {
		if !c.canSee(e.scope) {
			c.sendError(f.CorrelationID, protocol.ErrorBody{Message: "crdt: unknown key", Code: "crdt-unknown-key"})
		} else {
			c.sendError(f.CorrelationID, protocol.ErrorBody{Message: "crdt: not allowed", Code: "crdt-forbidden"})
		}
		return
	}
	err := s.applyCRDT(e, body.Op)
	switch {
	case err == nil:
	case errors.Is(err, crdt.ErrDuplicateOp):
		e.mu.Lock()
		frame, _ := e.encodedLocked()
		e.mu.Unlock()
		if frame != nil {
			c.enqueue(protocol.CRDTState, frame)
		}
	default:
		c.s.obs.FrameRefused("crdt-invalid")
		c.sendError(f.CorrelationID, protocol.ErrorBody{Message: err.Error(), Code: "crdt-invalid"})
	}
}

// releaseCRDTQuota forgets how many keys c created (on disconnect).
func (s *Server) releaseCRDTQuota(c *Conn) {
	s.crdts.mu.Lock()
	delete(s.crdts.created, c)
	s.crdts.mu.Unlock()
}

// crdtStoreKey is where a CRDT's state lives in the backend.
func crdtStoreKey(key string) string { return "crdt:" + key }

// loadCRDTs merges the stored state of every registered CRDT (Start).
func (s *Server) loadCRDTs(ctx context.Context) error {
	for _, e := range s.crdts.all() {
		if err := s.loadCRDT(ctx, e); err != nil {
			return err
		}
	}
	return nil
}

// loadCRDT merges the stored state of e into it (restore on start, repair
// after a gap) and sends it to the local connections when it changed.
func (s *Server) loadCRDT(ctx context.Context, e *crdtEntry) error {
	raw, _, err := s.opts.Backend.Get(ctx, crdtStoreKey(e.key))
	if errors.Is(err, backend.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var st crdt.State
	if err := json.Unmarshal(raw, &st); err != nil {
		s.backendError("decode", err)
		return nil
	}
	e.mu.Lock()
	before, _ := e.encodedLocked()
	if err := e.c.Merge(st); err != nil {
		e.mu.Unlock()
		s.log.Warn("datasole: stored crdt state refused", "key", e.key, "err", err)
		return nil
	}
	e.frame, e.state = nil, nil
	after, _ := e.encodedLocked()
	changed := string(before) != string(after)
	if changed {
		e.pendingLocal = true
	}
	e.mu.Unlock()
	if changed {
		s.broadcastCRDT(e)
	}
	return nil
}

// saveCRDT writes e's state to the store without losing what other nodes
// wrote meanwhile: merge the stored state in, then compare-and-set. No lock
// is held across the store's round trips.
func (s *Server) saveCRDT(ctx context.Context, e *crdtEntry) error {
	b := s.opts.Backend
	for range 16 {
		raw, ver, err := b.Get(ctx, crdtStoreKey(e.key))
		if err != nil && !errors.Is(err, backend.ErrNotFound) {
			return err
		}
		e.mu.Lock()
		if err == nil {
			var st crdt.State
			if json.Unmarshal(raw, &st) == nil {
				before, _ := e.encodedLocked()
				if e.c.Merge(st) == nil {
					e.frame, e.state = nil, nil
					if after, _ := e.encodedLocked(); string(after) != string(before) {
						e.pendingLocal = true
					}
				}
			}
		}
		_, out := e.encodedLocked()
		seq, local := e.seq, e.pendingLocal
		e.mu.Unlock()
		if local {
			s.broadcastCRDT(e)
		}
		_, err = b.CompareAndSet(ctx, crdtStoreKey(e.key), out, ver, 0)
		if err == nil {
			e.mu.Lock()
			e.saved = max(e.saved, seq)
			e.mu.Unlock()
			return nil
		}
		if !errors.Is(err, backend.ErrConflict) {
			return err
		}
	}
	return errors.New("too many conflicts")
}

// crdtSaver persists changed CRDTs in the background, coalescing changes:
// a CRDT changed a thousand times while a save was under way is saved once
// more, not a thousand times. A failed save is retried with backoff; the
// state stays in memory and on the bus meanwhile.
type crdtSaver struct {
	s       *Server
	mu      sync.Mutex
	dirty   map[*crdtEntry]struct{}
	wake    chan struct{}
	stop    chan struct{}
	stopped chan struct{}
}

func newCRDTSaver(s *Server) *crdtSaver {
	return &crdtSaver{s: s, dirty: make(map[*crdtEntry]struct{}), wake: make(chan struct{}, 1),
		stop: make(chan struct{}), stopped: make(chan struct{})}
}

func (w *crdtSaver) mark(e *crdtEntry) {
	w.mu.Lock()
	w.dirty[e] = struct{}{}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *crdtSaver) take() []*crdtEntry {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]*crdtEntry, 0, len(w.dirty))
	for e := range w.dirty {
		out = append(out, e)
	}
	clear(w.dirty)
	return out
}

func (w *crdtSaver) run() {
	defer close(w.stopped)
	backoff := 50 * time.Millisecond
	for {
		select {
		case <-w.wake:
		case <-w.stop:
			return
		}
		failed := w.saveAll(w.s.ctx)
		if !failed {
			backoff = 50 * time.Millisecond
			continue
		}
		select {
		case <-time.After(backoff):
		case <-w.stop:
			return
		}
		backoff = min(2*backoff, 2*time.Second)
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// saveAll saves every dirty CRDT once; the failed ones are marked again.
func (w *crdtSaver) saveAll(ctx context.Context) (failed bool) {
	for _, e := range w.take() {
		sctx, cancel := context.WithTimeout(ctx, busTimeout)
		err := w.s.saveCRDT(sctx, e)
		cancel()
		if err != nil {
			w.s.backendError("crdt-save", err)
			w.mark(e)
			failed = true
		}
	}
	return failed
}

// close stops the saver and saves what is dirty, until ctx is done.
func (w *crdtSaver) close(ctx context.Context) {
	close(w.stop)
	<-w.stopped
	for _, e := range w.take() {
		if err := w.s.saveCRDT(ctx, e); err != nil {
			w.s.backendError("crdt-save", err)
		}
	}
}
