package datasole

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

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
	mu    sync.Mutex
	c     crdt.CRDT
}

type crdtRegistry struct {
	mu      sync.Mutex
	byKey   map[string]*crdtEntry
	created map[*Conn]int // keys each connection created
}

// RegisterCRDT makes c available under key to the connections of a scope:
// they receive its state on connect and after every change, and may send
// ops (CRDT_OP) subject to CRDTOptions.Authorize.
func (s *Server) RegisterCRDT(key string, sc Scope, c crdt.CRDT) error {
	if err := checkStateKey(key); err != nil {
		return err
	}
	e, err := s.addCRDT(key, sc, c, nil)
	if err == nil {
		s.loadCRDT(e)
	}
	return err
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
	s.loadCRDT(e)
	return c, nil
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
// that arrive as ordinary events (the pattern stock v1 clients use).
func (s *Server) ApplyCRDT(ctx context.Context, key string, op crdt.Op) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e := s.crdtEntry(key)
	if e == nil {
		return ErrUnknownCRDT
	}
	return s.applyCRDT(e, op)
}

func (s *Server) applyCRDT(e *crdtEntry, op crdt.Op) error {
	s.syncMu.RLock()
	defer s.syncMu.RUnlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if op.Type != e.c.Type() {
		return fmt.Errorf("%w: %s op for %s key %q", crdt.ErrTypeMismatch, op.Type, e.c.Type(), e.key)
	}
	if err := e.c.Apply(op); err != nil {
		return err
	}
	s.obs.CRDTApplied()
	return s.crdtChanged(e)
}

// crdtChanged persists e, sends its state to the key's local connections
// and to the other nodes. e.mu is held.
func (s *Server) crdtChanged(e *crdtEntry) error {
	if s.opts.Backend != nil {
		s.saveCRDT(e)
	}
	payload := crdtStatePayload(e)
	msg, err := protocol.Encode(protocol.CRDTState, 0, payload)
	if err != nil {
		return err
	}
	t := e.scope.target()
	s.deliver(t, protocol.CRDTState, msg)
	if s.opts.Backend != nil {
		var st json.RawMessage
		var body protocol.CRDTStateBody
		if json.Unmarshal(payload, &body) == nil {
			st = body.State
		}
		s.publish(&busMsg{kind: busCRDT, target: t, key: e.key, value: st})
	}
	return nil
}

// UpdateCRDT runs fn on the CRDT under key (to make local changes with its
// own methods) and then sends the new state.
func (s *Server) UpdateCRDT(ctx context.Context, key string, fn func(c crdt.CRDT) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e := s.crdtEntry(key)
	if e == nil {
		return ErrUnknownCRDT
	}
	s.syncMu.RLock()
	defer s.syncMu.RUnlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := fn(e.c); err != nil {
		return err
	}
	return s.crdtChanged(e)
}

func crdtStatePayload(e *crdtEntry) []byte {
	st, _ := json.Marshal(e.c.State())
	payload, _ := marshal(protocol.CRDTStateBody{Key: e.key, State: st})
	return payload
}

// crdtSnapshots queues the state of every CRDT of a scope on c (syncMu is
// held exclusively by the caller).
func (s *Server) crdtSnapshots(c *Conn, sc Scope) {
	s.crdts.mu.Lock()
	var entries []*crdtEntry
	for _, e := range s.crdts.byKey {
		if e.scope == sc {
			entries = append(entries, e)
		}
	}
	s.crdts.mu.Unlock()
	for _, e := range entries {
		e.mu.Lock()
		c.sendFrame(protocol.CRDTState, 0, crdtStatePayload(e))
		e.mu.Unlock()
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
		if allow == nil || !allow(c, body.Key, body.Op.Type) || checkStateKey(body.Key) != nil {
			c.sendError(f.CorrelationID, protocol.ErrorBody{Message: "crdt: unknown key " + body.Key, Code: "crdt-unknown-key"})
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
	if !c.canSee(e.scope) {
		c.sendError(f.CorrelationID, protocol.ErrorBody{Message: "crdt: unknown key " + body.Key, Code: "crdt-unknown-key"})
		return
	}
	if auth := s.opts.CRDT.Authorize; auth != nil {
		if err := auth(c, body.Key, body.Op); err != nil {
			c.sendError(f.CorrelationID, protocol.ErrorBody{Message: "crdt: not allowed", Code: "crdt-forbidden"})
			return
		}
	}
	err := s.applyCRDT(e, body.Op)
	switch {
	case err == nil:
	case errors.Is(err, crdt.ErrDuplicateOp):
		e.mu.Lock()
		c.sendFrame(protocol.CRDTState, 0, crdtStatePayload(e))
		e.mu.Unlock()
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
