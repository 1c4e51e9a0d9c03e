package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/crdt"
	"github.com/datasole/datasole-go/datasole/protocol"
)

// crdtStore keeps the client's CRDT replicas. Local operations apply at
// once (optimistically), go out as CRDT_OP and stay in an outbox until a
// CRDT_STATE from the server shows them included; after a reconnect the
// outbox is sent again (the server applies each op once).
//
// Each CRDT_OP carries a correlation id of its own, which the server
// echoes in an ERROR refusing it. A refused op leaves the outbox and its
// local effect is undone (the replica is reset to what the server
// confirmed, then the ops still pending are applied again); the refusal is
// reported to OnCRDTError listeners and Options.OnError. A rate-limited op
// stays and is sent again after the server's retryAfter.
type crdtStore struct {
	mu     sync.Mutex
	nodeID string
	keys   map[string]*replica
	early  map[string]crdt.State // states for keys not registered yet
	later  map[string][]*crdtSub // OnCRDT subscribers of keys not registered yet
	lastID uint32
	errs   []*crdtErrSub
}

type replica struct {
	key    string
	c      crdt.CRDT // what the application sees: base plus the outbox
	base   crdt.CRDT // what the server confirmed: its states merged
	outbox []pendingOp
	subs   []*crdtSub
}

// pendingOp is an op not yet confirmed and the correlation id it was last
// sent with (0: not sent since the last reconnect).
type pendingOp struct {
	op crdt.Op
	id uint32
}

type crdtSub struct{ fn func() }

type crdtErrSub struct{ fn func(*CRDTError) }

// maxEarlyStates bounds states kept for keys the application has not
// registered.
const maxEarlyStates = 1024

// crdtIDBit marks the correlation ids of CRDT ops; calls use ids below it.
const crdtIDBit = 1 << 31

// CRDTError reports a CRDT op the server refused. The op has left the
// outbox and its local effect is undone. It matches crdt.ErrTooLarge,
// crdt.ErrNodeOwned or crdt.ErrInvalidOp when the server's code says so
// ("crdt-too-large", "crdt-node-owned", "crdt-invalid"), and the
// *ServerError in any case.
type CRDTError struct {
	// Key is the CRDT key the op was for.
	Key string
	// Op is the refused op.
	Op crdt.Op
	// Server is the server's ERROR.
	Server *ServerError
}

func (e *CRDTError) Error() string {
	return fmt.Sprintf("datasole client: crdt op on %q refused: %s", e.Key, e.Server.Message)
}

// Unwrap returns the server's error and the crdt sentinel its code names.
func (e *CRDTError) Unwrap() []error {
	errs := []error{e.Server}
	switch e.Server.Code {
	case "crdt-too-large":
		errs = append(errs, crdt.ErrTooLarge)
	case "crdt-node-owned":
		errs = append(errs, crdt.ErrNodeOwned)
	case "crdt-invalid":
		errs = append(errs, crdt.ErrInvalidOp)
	}
	return errs
}

func newNodeID() string {
	var b [8]byte
	rand.Read(b[:])
	return "go-" + hex.EncodeToString(b[:])
}

// NodeID returns the id this client writes CRDT operations under.
func (c *Client) NodeID() string { return c.crdts.nodeID }

// RegisterCRDT creates the local replica of a CRDT key of the named type
// ("pn-counter", "lww-register", "lww-map"), or returns the existing one.
// States the server sends for the key merge into it, and it is reset in
// place when the server refuses one of this client's ops (see
// OnCRDTError). Change it through Counter, Register and Map: changes made
// on it directly are neither sent nor kept across such a reset.
func (c *Client) RegisterCRDT(key, typ string) (crdt.CRDT, error) {
	r, err := c.replica(key, typ)
	if err != nil {
		return nil, err
	}
	return r.c, nil
}

func (c *Client) replica(key, typ string) (*replica, error) {
	st := &c.crdts
	st.mu.Lock()
	defer st.mu.Unlock()
	if r := st.keys[key]; r != nil {
		if r.c.Type() != typ {
			return nil, crdt.ErrTypeMismatch
		}
		return r, nil
	}
	cr, err := crdt.New(typ, st.nodeID, crdt.Limits{})
	if err != nil {
		return nil, err
	}
	base, _ := crdt.New(typ, st.nodeID, crdt.Limits{})
	if early, ok := st.early[key]; ok {
		if cr.Merge(early) == nil {
			base.Merge(early)
		}
		delete(st.early, key)
	}
	r := &replica{key: key, c: cr, base: base, subs: st.later[key]}
	delete(st.later, key)
	if st.keys == nil {
		st.keys = make(map[string]*replica)
	}
	st.keys[key] = r
	return r, nil
}

// nextID returns the correlation id for the next CRDT op sent; st.mu is
// held.
func (st *crdtStore) nextID() uint32 {
	st.lastID = (st.lastID + 1) % crdtIDBit
	if st.lastID == 0 {
		st.lastID = 1
	}
	return crdtIDBit | st.lastID
}

// OnCRDT calls fn after every change of the local replica of key (a local
// op, a merged server state or an op undone after a refusal), also when
// key is registered only later. fn runs with no lock held.
func (c *Client) OnCRDT(key string, fn func()) (off func()) {
	st := &c.crdts
	s := &crdtSub{fn: fn}
	st.mu.Lock()
	if r := st.keys[key]; r != nil {
		r.subs = append(append([]*crdtSub(nil), r.subs...), s)
	} else {
		if st.later == nil {
			st.later = make(map[string][]*crdtSub)
		}
		st.later[key] = append(st.later[key], s)
	}
	st.mu.Unlock()
	return func() {
		st.mu.Lock()
		defer st.mu.Unlock()
		if r := st.keys[key]; r != nil {
			r.subs = without(r.subs, s)
		} else if subs := without(st.later[key], s); len(subs) > 0 {
			st.later[key] = subs
		} else {
			delete(st.later, key)
		}
	}
}

// without returns a copy of subs without s.
func without[T comparable](subs []T, s T) []T {
	var next []T
	for _, x := range subs {
		if x != s {
			next = append(next, x)
		}
	}
	return next
}

// OnCRDTError calls fn for every CRDT op the server refuses, after the op
// has left the outbox and its local effect is undone. fn runs on the
// client's read goroutine with no lock held; it must not block.
func (c *Client) OnCRDTError(fn func(*CRDTError)) (off func()) {
	st := &c.crdts
	s := &crdtErrSub{fn: fn}
	st.mu.Lock()
	st.errs = append(append([]*crdtErrSub(nil), st.errs...), s)
	st.mu.Unlock()
	return func() {
		st.mu.Lock()
		defer st.mu.Unlock()
		st.errs = without(st.errs, s)
	}
}

// localOp applies fn's op locally (fn uses the replica's own methods),
// queues it in the outbox and sends it. An op the replica refuses (too
// large, a forbidden value, …) returns the error and is not sent.
func (c *Client) localOp(ctx context.Context, key, typ string, fn func(cr crdt.CRDT) (crdt.Op, error)) error {
	r, err := c.replica(key, typ)
	if err != nil {
		return err
	}
	st := &c.crdts
	st.mu.Lock()
	op, err := fn(r.c)
	if err != nil {
		st.mu.Unlock()
		return err
	}
	id := st.nextID()
	r.outbox = append(r.outbox, pendingOp{op: op, id: id})
	subs := r.subs
	st.mu.Unlock()
	for _, s := range subs {
		s.fn()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := c.sendCRDTOp(key, op, id); err != nil && !errors.Is(err, ErrNotConnected) {
		return err
	}
	return nil // while disconnected the op waits in the outbox
}

func (c *Client) sendCRDTOp(key string, op crdt.Op, id uint32) error {
	payload, err := json.Marshal(struct {
		Key string  `json:"key"`
		Op  crdt.Op `json:"op"`
	}{key, op})
	if err != nil {
		return err
	}
	return c.send(protocol.CRDTOp, id, payload)
}

// resendOutbox sends every unacknowledged op again after a reconnect.
func (c *Client) resendOutbox(ctx context.Context, reconnect bool) {
	if !reconnect {
		return
	}
	type pending struct {
		key string
		op  crdt.Op
		id  uint32
	}
	st := &c.crdts
	st.mu.Lock()
	var all []pending
	for _, r := range st.keys {
		for i := range r.outbox {
			r.outbox[i].id = st.nextID()
			all = append(all, pending{r.key, r.outbox[i].op, r.outbox[i].id})
		}
	}
	st.mu.Unlock()
	for _, p := range all {
		if c.sendCRDTOp(p.key, p.op, p.id) != nil {
			return // disconnected again: the next reconnect retries
		}
	}
}

// resendOp sends the outbox op last sent with id again, if it is still
// waiting (after a rate-limit refusal).
func (c *Client) resendOp(id uint32) {
	st := &c.crdts
	st.mu.Lock()
	r, i := st.findOp(id)
	if r == nil {
		st.mu.Unlock()
		return
	}
	p := &r.outbox[i]
	p.id = st.nextID()
	key, op, next := r.key, p.op, p.id
	st.mu.Unlock()
	c.sendCRDTOp(key, op, next) // a failure leaves it to the next reconnect
}

// findOp returns the replica and outbox index of the op last sent with id;
// st.mu is held.
func (st *crdtStore) findOp(id uint32) (*replica, int) {
	if id&crdtIDBit == 0 {
		return nil, 0
	}
	for _, r := range st.keys {
		for i, p := range r.outbox {
			if p.id == id {
				return r, i
			}
		}
	}
	return nil, 0
}

// crdtRefused handles an ERROR that answers a CRDT op and reports whether
// it did: a rate-limited op is sent again after the server's retryAfter,
// any other refused op leaves the outbox, its local effect is undone and
// the refusal goes to OnCRDTError listeners. Options.OnError sees every
// such ERROR, as before ops had correlation ids.
func (c *Client) crdtRefused(se *ServerError) bool {
	st := &c.crdts
	st.mu.Lock()
	r, i := st.findOp(se.CorrelationID)
	if r == nil {
		st.mu.Unlock()
		return false
	}
	if errors.Is(se, datasole.ErrRateLimited) {
		st.mu.Unlock()
		wait := min(max(se.RetryAfter, 10*time.Millisecond), time.Minute)
		time.AfterFunc(wait, func() { c.resendOp(se.CorrelationID) })
		if c.opts.OnError != nil {
			c.opts.OnError(se)
		}
		return true
	}
	refused := []*CRDTError{{Key: r.key, Op: r.outbox[i].op, Server: se}}
	r.outbox = append(r.outbox[:i:i], r.outbox[i+1:]...)
	refused = append(refused, r.rebase()...)
	subs, errSubs := r.subs, st.errs
	st.mu.Unlock()
	for _, s := range subs {
		s.fn()
	}
	for _, e := range refused {
		for _, s := range errSubs {
			s.fn(e)
		}
		if c.opts.OnError != nil {
			c.opts.OnError(e.Server)
		}
	}
	return true
}

// rebase resets the replica to what the server confirmed and applies the
// outbox again. Ops that no longer apply leave the outbox and are returned
// as refusals. st.mu is held.
func (r *replica) rebase() []*CRDTError {
	if err := r.c.(interface{ Reset(crdt.State) error }).Reset(r.base.State()); err != nil {
		return nil // the base merged into r.c before, so this cannot happen
	}
	var dropped []*CRDTError
	kept := r.outbox[:0]
	for _, p := range r.outbox {
		if err := r.c.Apply(p.op); err != nil && !errors.Is(err, crdt.ErrDuplicateOp) {
			dropped = append(dropped, &CRDTError{Key: r.key, Op: p.op, Server: &ServerError{Message: err.Error(), Code: "crdt-invalid"}})
			continue
		}
		kept = append(kept, p)
	}
	r.outbox = kept
	return dropped
}

func (c *Client) handleCRDTState(f protocol.Frame) {
	var body struct {
		Key   string     `json:"key"`
		State crdt.State `json:"state"`
	}
	if json.Unmarshal(f.Payload, &body) != nil || body.Key == "" {
		return
	}
	st := &c.crdts
	st.mu.Lock()
	r := st.keys[body.Key]
	if r == nil {
		if st.early == nil {
			st.early = make(map[string]crdt.State)
		}
		if _, ok := st.early[body.Key]; ok || len(st.early) < maxEarlyStates {
			st.early[body.Key] = body.State
		}
		st.mu.Unlock()
		return
	}
	if err := r.c.Merge(body.State); err != nil {
		st.mu.Unlock()
		c.log.Debug("datasole client: crdt state rejected", "key", body.Key, "err", err)
		return
	}
	r.base.Merge(body.State)
	kept := r.outbox[:0]
	for _, p := range r.outbox {
		if !covers(body.State, p.op) {
			kept = append(kept, p)
		}
	}
	r.outbox = kept
	subs := r.subs
	st.mu.Unlock()
	for _, s := range subs {
		s.fn()
	}
}

// covers reports whether a server state already includes op (or a write
// that wins over it), so the op needs no resending.
func covers(s crdt.State, op crdt.Op) bool {
	m := s.Metadata
	if m == nil {
		return false
	}
	after := func(ts int64, node string) bool {
		return ts > op.Timestamp || (ts == op.Timestamp && node >= op.NodeID)
	}
	switch op.Type {
	case crdt.TypePNCounter:
		return op.Seq > 0 && m.Seqs[op.NodeID] >= op.Seq
	case crdt.TypeLWWRegister:
		return after(m.Timestamp, m.Writer)
	case crdt.TypeLWWMap:
		f, ok := m.Fields[op.Key]
		return ok && after(f.Timestamp, f.NodeID)
	}
	return false
}

// Counter is a typed handle on a pn-counter key.
type Counter struct {
	c   *Client
	key string
}

// Counter returns a handle on the pn-counter under key, registering it.
func (c *Client) Counter(key string) (*Counter, error) {
	if _, err := c.replica(key, crdt.TypePNCounter); err != nil {
		return nil, err
	}
	return &Counter{c, key}, nil
}

// Increment adds n (at once locally, then on the server).
func (k *Counter) Increment(ctx context.Context, n uint64) error {
	return k.c.localOp(ctx, k.key, crdt.TypePNCounter, func(cr crdt.CRDT) (crdt.Op, error) {
		return cr.(*crdt.PNCounter).Increment(n)
	})
}

// Decrement subtracts n.
func (k *Counter) Decrement(ctx context.Context, n uint64) error {
	return k.c.localOp(ctx, k.key, crdt.TypePNCounter, func(cr crdt.CRDT) (crdt.Op, error) {
		return cr.(*crdt.PNCounter).Decrement(n)
	})
}

// Value returns the local value.
func (k *Counter) Value() int64 {
	r, _ := k.c.replica(k.key, crdt.TypePNCounter)
	return r.c.(*crdt.PNCounter).Value()
}

// Register is a typed handle on an lww-register key.
type Register struct {
	c   *Client
	key string
}

// Register returns a handle on the lww-register under key, registering it.
func (c *Client) Register(key string) (*Register, error) {
	if _, err := c.replica(key, crdt.TypeLWWRegister); err != nil {
		return nil, err
	}
	return &Register{c, key}, nil
}

// Set writes v with the current time.
func (k *Register) Set(ctx context.Context, v any) error {
	return k.c.localOp(ctx, k.key, crdt.TypeLWWRegister, func(cr crdt.CRDT) (crdt.Op, error) {
		return cr.(*crdt.LWWRegister).Set(v, time.Now().UnixMilli())
	})
}

// Value returns the local value.
func (k *Register) Value() (json.RawMessage, bool) {
	r, _ := k.c.replica(k.key, crdt.TypeLWWRegister)
	return r.c.(*crdt.LWWRegister).Value()
}

// Map is a typed handle on an lww-map key.
type Map struct {
	c   *Client
	key string
}

// Map returns a handle on the lww-map under key, registering it.
func (c *Client) Map(key string) (*Map, error) {
	if _, err := c.replica(key, crdt.TypeLWWMap); err != nil {
		return nil, err
	}
	return &Map{c, key}, nil
}

// Set writes field = v with the current time.
func (k *Map) Set(ctx context.Context, field string, v any) error {
	return k.c.localOp(ctx, k.key, crdt.TypeLWWMap, func(cr crdt.CRDT) (crdt.Op, error) {
		return cr.(*crdt.LWWMap).Set(field, v, time.Now().UnixMilli())
	})
}

// Delete removes field with the current time.
func (k *Map) Delete(ctx context.Context, field string) error {
	return k.c.localOp(ctx, k.key, crdt.TypeLWWMap, func(cr crdt.CRDT) (crdt.Op, error) {
		return cr.(*crdt.LWWMap).Delete(field, time.Now().UnixMilli())
	})
}

// Get returns one field.
func (k *Map) Get(field string) (json.RawMessage, bool) {
	r, _ := k.c.replica(k.key, crdt.TypeLWWMap)
	return r.c.(*crdt.LWWMap).Get(field)
}

// Value returns the live fields.
func (k *Map) Value() map[string]json.RawMessage {
	r, _ := k.c.replica(k.key, crdt.TypeLWWMap)
	return r.c.(*crdt.LWWMap).Value()
}

// Pending returns how many local CRDT ops the server has not yet confirmed.
func (c *Client) Pending() int {
	st := &c.crdts
	st.mu.Lock()
	defer st.mu.Unlock()
	n := 0
	for _, r := range st.keys {
		n += len(r.outbox)
	}
	return n
}
