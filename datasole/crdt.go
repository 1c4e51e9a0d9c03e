package datasole

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/datasole/datasole-go/datasole/crdt"
	"github.com/datasole/datasole-go/datasole/protocol"
)

// CRDTOptions configures the server's CRDTs. The byte and node limits are
// checked before an op is applied: an op that would exceed them is refused
// (ERROR crdt-too-large) and changes nothing.
type CRDTOptions struct {
	// MaxKeys bounds the CRDT keys of the server. Default 1,000.
	MaxKeys int
	// MaxKeysPerUser bounds the keys one user (one IP address for anonymous
	// connections) may create with AllowCreate and keep at once; the quota
	// survives reconnects and is given back when a key expires. Default 16.
	MaxKeysPerUser int
	// ClientKeyPrefix is the prefix every client-created key must carry, so
	// that clients can never take a name the application registers later.
	// Default "client:".
	ClientKeyPrefix string
	// ClientKeyTTL is how long a client-created key lives without any op;
	// then it is dropped here and in the store. Default 24h.
	ClientKeyTTL time.Duration
	// MaxStateBytes bounds a CRDT's encoded state (what CRDT_STATE carries).
	// Default 256 KiB.
	MaxStateBytes int
	// MaxValueBytes bounds one lww-register or lww-map value. Default 64 KiB.
	MaxValueBytes int
	// MaxNodes bounds the distinct writers (node ids) of a pn-counter.
	// Default 1,024.
	MaxNodes int
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
	c.nonNegative("Options.CRDT.MaxKeysPerUser", int64(o.MaxKeysPerUser), o.MaxKeysPerUser)
	c.nonNegative("Options.CRDT.ClientKeyTTL", int64(o.ClientKeyTTL), o.ClientKeyTTL)
	c.nonNegative("Options.CRDT.MaxStateBytes", int64(o.MaxStateBytes), o.MaxStateBytes)
	c.nonNegative("Options.CRDT.MaxValueBytes", int64(o.MaxValueBytes), o.MaxValueBytes)
	c.nonNegative("Options.CRDT.MaxNodes", int64(o.MaxNodes), o.MaxNodes)
	c.nonNegative("Options.CRDT.MaxSkew", int64(o.MaxSkew), o.MaxSkew)
	if o.MaxStateBytes > crdt.MaxStateCeiling {
		c.fail("Options.CRDT.MaxStateBytes", o.MaxStateBytes, fmt.Sprintf("a CRDT_STATE must fit one frame: at most %d", crdt.MaxStateCeiling))
	}
}

func (o CRDTOptions) withDefaults() CRDTOptions {
	if o.MaxKeys == 0 {
		o.MaxKeys = 1000
	}
	if o.MaxKeysPerUser == 0 {
		o.MaxKeysPerUser = 16
	}
	if o.ClientKeyPrefix == "" {
		o.ClientKeyPrefix = "client:"
	}
	if o.ClientKeyTTL == 0 {
		o.ClientKeyTTL = 24 * time.Hour
	}
	if o.MaxSkew == 0 {
		o.MaxSkew = time.Minute
	}
	return o
}

// limits are the crdt package limits of the server's CRDTs.
func (o CRDTOptions) limits() crdt.Limits {
	return crdt.Limits{MaxStateBytes: o.MaxStateBytes, MaxValueBytes: o.MaxValueBytes, MaxNodes: o.MaxNodes, MaxSkew: o.MaxSkew}
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
	key    string
	scope  Scope
	mu     sync.Mutex // guards the fields below, c and owners
	c      crdt.CRDT
	owners *crdt.Owners // server-side bindings of node ids to writers; never sent to clients
	// creator is the quota holder of a client-created key ("" for keys the
	// application registered); used is when an op last touched it.
	creator string
	used    time.Time
	frame   []byte          // encoded CRDT_STATE of c; nil once c changed
	state   json.RawMessage // c.State() as JSON, for the bus and the store; nil once c changed
	seq     uint64          // changes of c, to know what a save covered
	saved   uint64          // seq of the last state written to the store

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

// encodedLocked returns the CRDT_STATE frame for clients and the record
// (state and owner bindings) for the bus and the store, encoding them once
// per change. e.mu is held.
func (e *crdtEntry) encodedLocked() ([]byte, json.RawMessage) {
	if e.frame == nil {
		st := e.c.EncodedState()
		payload := make([]byte, 0, len(st)+len(e.key)+24)
		payload = append(payload, `{"key":`...)
		key, _ := json.Marshal(e.key)
		payload = append(payload, key...)
		payload = append(payload, `,"state":`...)
		payload = append(payload, st...)
		payload = append(payload, '}')
		frame, err := protocol.Encode(protocol.CRDTState, 0, payload)
		if err != nil {
			return nil, nil
		}
		e.frame, e.state = frame, crdt.AppendRecord(nil, e.c, e.owners)
	}
	return e.frame, e.state
}

type crdtRegistry struct {
	mu      sync.Mutex
	byKey   map[string]*crdtEntry
	byScope map[Scope][]*crdtEntry
	created map[string]int // client-created keys per user (per IP for anonymous connections)
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
	if strings.HasPrefix(key, s.opts.CRDT.ClientKeyPrefix) {
		return fmt.Errorf("%w: %q starts with CRDTOptions.ClientKeyPrefix, which is for keys clients create", ErrCRDTExists, key)
	}
	e, err := s.addCRDT(key, sc, c, "")
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
	if strings.HasPrefix(key, s.opts.CRDT.ClientKeyPrefix) {
		return nil, fmt.Errorf("%w: %q starts with CRDTOptions.ClientKeyPrefix, which is for keys clients create", ErrCRDTExists, key)
	}
	c, err := s.newCRDT(typ)
	if err != nil {
		return nil, err
	}
	e, err := s.addCRDT(key, sc, c, "")
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
	return crdt.New(typ, serverNodePrefix+s.nodeID, s.opts.CRDT.limits())
}

// serverNodePrefix starts the node ids of servers; clients may not use it.
const serverNodePrefix = "server-"

// serverOwner owns the node ids of servers in a CRDT's owner bindings.
const serverOwner = "$server"

// addCRDT registers a CRDT. creator is the quota holder of a key a client
// creates, "" for keys the application registers.
func (s *Server) addCRDT(key string, sc Scope, c crdt.CRDT, creator string) (*crdtEntry, error) {
	r := &s.crdts
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byKey == nil {
		r.byKey = make(map[string]*crdtEntry)
		r.byScope = make(map[Scope][]*crdtEntry)
		r.created = make(map[string]int)
	}
	if _, ok := r.byKey[key]; ok {
		return nil, ErrCRDTExists
	}
	if len(r.byKey) >= s.opts.CRDT.MaxKeys {
		return nil, ErrCRDTLimit
	}
	if creator != "" {
		if r.created[creator] >= s.opts.CRDT.MaxKeysPerUser {
			return nil, ErrCRDTLimit
		}
		r.created[creator]++
	}
	e := &crdtEntry{key: key, scope: sc, c: c, owners: crdt.NewOwners(s.opts.CRDT.limits()), creator: creator, used: time.Now()}
	if strings.HasPrefix(c.NodeID(), serverNodePrefix) {
		e.owners.Bind(c.NodeID(), serverOwner)
	}
	r.byKey[key] = e
	r.byScope[sc] = append(r.byScope[sc], e)
	return e, nil
}

// dropCRDT unregisters a client-created key that expired and gives its
// creator's quota back.
func (s *Server) dropCRDT(e *crdtEntry) {
	r := &s.crdts
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byKey[e.key] != e {
		return
	}
	delete(r.byKey, e.key)
	r.byScope[e.scope] = slices.DeleteFunc(r.byScope[e.scope], func(x *crdtEntry) bool { return x == e })
	if len(r.byScope[e.scope]) == 0 {
		delete(r.byScope, e.scope)
	}
	if r.created[e.creator]--; r.created[e.creator] <= 0 {
		delete(r.created, e.creator)
	}
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
		return s.applyCRDT(e, op, crdtOwner(dc.conn))
	}
	return s.applyCRDT(e, op, "")
}

// crdtOwner is who a connection's ops bind their node ids to: its user, or
// all anonymous connections together (an anonymous id lasts one connection,
// and clients keep their node id across reconnects).
func crdtOwner(c *Conn) string {
	if c.anonymous() {
		return anonymousPrefix
	}
	return c.userID
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

// applyCRDT applies op once. owner is the sender's identity for an op from
// a connection: a pn-counter binds each node id to the first owner that
// writes under it and refuses everyone else (crdt.ErrNodeOwned); server
// node ids belong to the servers. "" is the application's own op.
func (s *Server) applyCRDT(e *crdtEntry, op crdt.Op, owner string) error {
	e.mu.Lock()
	if op.Type != e.c.Type() {
		e.mu.Unlock()
		return fmt.Errorf("%w: %s op for %s key %q", crdt.ErrTypeMismatch, op.Type, e.c.Type(), e.key)
	}
	var err error
	switch {
	case owner == "":
		err = e.c.Apply(op)
	case strings.HasPrefix(op.NodeID, serverNodePrefix):
		err = fmt.Errorf("%w: %q is a server's node id", crdt.ErrNodeOwned, op.NodeID)
	case e.c.Type() == crdt.TypePNCounter:
		err = e.owners.Apply(e.c, op, owner)
	default:
		err = e.c.Apply(op)
	}
	if err != nil {
		e.mu.Unlock()
		return err
	}
	e.used = time.Now()
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
// changes made here, to the other nodes, from a goroutine of its own unless
// one is already at it: it picks the change up. Ops arriving meanwhile —
// even one after another from a single connection — are coalesced, so the
// state is encoded once per round, not once per op. Persisting is left to
// the saver.
func (s *Server) broadcastCRDT(e *crdtEntry) {
	e.mu.Lock()
	if e.broadcasting || !(e.pendingLocal || e.pendingPublish) {
		e.mu.Unlock()
		return
	}
	e.broadcasting = true
	e.mu.Unlock()
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		s.runBroadcast(e)
	}()
}

func (s *Server) runBroadcast(e *crdtEntry) {
	e.mu.Lock()
	for e.pendingLocal || e.pendingPublish {
		publish := e.pendingPublish
		e.pendingLocal, e.pendingPublish = false, false
		frame, record := e.encodedLocked()
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
			s.pub.enqueue(&busMsg{kind: busCRDT, target: t, key: e.key, value: record})
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
		var err error
		if e, err = s.createClientCRDT(c, body.Key, body.Op.Type); err != nil {
			code := "crdt-unknown-key"
			switch {
			case errors.Is(err, ErrCRDTLimit):
				code = "crdt-key-limit"
			case errors.Is(err, crdt.ErrUnknownType):
				code = "crdt-invalid"
			}
			c.sendError(f.CorrelationID, protocol.ErrorBody{Message: "crdt: " + code, Code: code})
			return
		}
	}
	if err := s.authorizeCRDT(c, e, body.Op); err != nil {
		if !c.canSee(e.scope) {
			c.sendError(f.CorrelationID, protocol.ErrorBody{Message: "crdt: crdt-unknown-key", Code: "crdt-unknown-key"})
		} else {
			c.sendError(f.CorrelationID, protocol.ErrorBody{Message: "crdt: not allowed", Code: "crdt-forbidden"})
		}
		return
	}
	err := s.applyCRDT(e, body.Op, crdtOwner(c))
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
		code := "crdt-invalid"
		switch {
		case errors.Is(err, crdt.ErrTooLarge):
			code = "crdt-too-large"
		case errors.Is(err, crdt.ErrNodeOwned):
			code = "crdt-node-owned"
		}
		c.s.obs.FrameRefused(code)
		c.sendError(f.CorrelationID, protocol.ErrorBody{Message: err.Error(), Code: code})
	}
}

// createClientCRDT creates key for a client op, if CRDTOptions.AllowCreate
// allows it: the key must carry the client prefix, and its creator's quota
// (per user, per IP for anonymous connections) must have room.
func (s *Server) createClientCRDT(c *Conn, key, typ string) (*crdtEntry, error) {
	o := &s.opts.CRDT
	if o.AllowCreate == nil || !strings.HasPrefix(key, o.ClientKeyPrefix) || checkStateKey(key) != nil || !o.AllowCreate(c, key, typ) {
		return nil, ErrUnknownCRDT
	}
	cr, err := s.newCRDT(typ)
	if err != nil {
		return nil, err
	}
	creator := c.userID
	if c.anonymous() {
		creator = "ip:" + c.ip
	}
	e, err := s.addCRDT(key, Global(), cr, creator)
	if errors.Is(err, ErrCRDTExists) {
		if e = s.crdtEntry(key); e != nil {
			return e, nil
		}
	}
	return e, err
}

// expireClientCRDTs drops the client-created keys no op touched for
// ClientKeyTTL (the store expires them too: they are saved with that TTL).
func (s *Server) expireClientCRDTs(now time.Time) {
	ttl := s.opts.CRDT.ClientKeyTTL
	for _, e := range s.crdts.all() {
		e.mu.Lock()
		idle := e.creator != "" && now.Sub(e.used) > ttl
		e.mu.Unlock()
		if idle {
			s.dropCRDT(e)
		}
	}
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
	e.mu.Lock()
	before, _ := e.encodedLocked()
	if err := crdt.MergeRecord(e.c, e.owners, raw); err != nil {
		s.log.Warn("datasole: stored crdt state refused", "key", e.key, "err", err)
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
			before, _ := e.encodedLocked()
			crdt.MergeRecord(e.c, e.owners, raw) // what other nodes wrote; a refused part is theirs to fix
			e.frame, e.state = nil, nil
			if after, _ := e.encodedLocked(); string(after) != string(before) {
				e.pendingLocal = true
			}
		}
		_, out := e.encodedLocked()
		seq, local := e.seq, e.pendingLocal
		var ttl time.Duration
		if e.creator != "" {
			ttl = s.opts.CRDT.ClientKeyTTL
		}
		e.mu.Unlock()
		if local {
			s.broadcastCRDT(e)
		}
		_, err = b.CompareAndSet(ctx, crdtStoreKey(e.key), out, ver, ttl)
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
	sweep := time.NewTicker(time.Minute)
	defer sweep.Stop()
	for {
		select {
		case <-w.wake:
		case now := <-sweep.C:
			w.s.expireClientCRDTs(now)
			continue
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
