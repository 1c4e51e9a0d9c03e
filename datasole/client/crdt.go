package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"sync"
	"time"

	"github.com/datasole/datasole-go/datasole/crdt"
	"github.com/datasole/datasole-go/datasole/protocol"
)

// crdtStore keeps the client's CRDT replicas. Local operations apply at
// once (optimistically), go out as CRDT_OP and stay in an outbox until a
// CRDT_STATE from the server shows them included; after a reconnect the
// outbox is sent again (the server applies each op once).
type crdtStore struct {
	mu     sync.Mutex
	nodeID string
	keys   map[string]*replica
	early  map[string]crdt.State // states for keys not registered yet
}

type replica struct {
	key    string
	c      crdt.CRDT
	outbox []crdt.Op
	subs   []*crdtSub
}

type crdtSub struct{ fn func() }

// maxEarlyStates bounds states kept for keys the application has not
// registered.
const maxEarlyStates = 1024

func newNodeID() string {
	var b [8]byte
	rand.Read(b[:])
	return "go-" + hex.EncodeToString(b[:])
}

// NodeID returns the id this client writes CRDT operations under.
func (c *Client) NodeID() string { return c.crdts.nodeID }

// RegisterCRDT creates the local replica of a CRDT key of the named type
// ("pn-counter", "lww-register", "lww-map"), or returns the existing one.
// States the server sends for the key merge into it.
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
	if early, ok := st.early[key]; ok {
		cr.Merge(early)
		delete(st.early, key)
	}
	r := &replica{key: key, c: cr}
	if st.keys == nil {
		st.keys = make(map[string]*replica)
	}
	st.keys[key] = r
	return r, nil
}

// OnCRDT calls fn after every change of the local replica of key (a local
// op or a merged server state). fn runs with no lock held.
func (c *Client) OnCRDT(key string, fn func()) (off func()) {
	st := &c.crdts
	s := &crdtSub{fn: fn}
	st.mu.Lock()
	r := st.keys[key]
	if r != nil {
		r.subs = append(append([]*crdtSub(nil), r.subs...), s)
	}
	st.mu.Unlock()
	return func() {
		st.mu.Lock()
		defer st.mu.Unlock()
		if r == nil {
			return
		}
		var next []*crdtSub
		for _, x := range r.subs {
			if x != s {
				next = append(next, x)
			}
		}
		r.subs = next
	}
}

// localOp applies fn's op locally (fn uses the replica's own methods),
// queues it in the outbox and sends it.
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
	r.outbox = append(r.outbox, op)
	subs := r.subs
	st.mu.Unlock()
	for _, s := range subs {
		s.fn()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := c.sendCRDTOp(key, op); err != nil && err != ErrNotConnected {
		return err
	}
	return nil // while disconnected the op waits in the outbox
}

func (c *Client) sendCRDTOp(key string, op crdt.Op) error {
	payload, err := json.Marshal(struct {
		Key string  `json:"key"`
		Op  crdt.Op `json:"op"`
	}{key, op})
	if err != nil {
		return err
	}
	return c.send(protocol.CRDTOp, 0, payload)
}

// resendOutbox sends every unacknowledged op again after a reconnect.
func (c *Client) resendOutbox(ctx context.Context, reconnect bool) {
	if !reconnect {
		return
	}
	st := &c.crdts
	st.mu.Lock()
	type pending struct {
		key string
		op  crdt.Op
	}
	var all []pending
	for _, r := range st.keys {
		for _, op := range r.outbox {
			all = append(all, pending{r.key, op})
		}
	}
	st.mu.Unlock()
	for _, p := range all {
		if c.sendCRDTOp(p.key, p.op) != nil {
			return // disconnected again: the next reconnect retries
		}
	}
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
	kept := r.outbox[:0]
	for _, op := range r.outbox {
		if !covers(body.State, op) {
			kept = append(kept, op)
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
