package crdt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"
)

// LWWRegister holds one JSON value; the write with the greatest
// (timestamp, nodeId) wins, in local sets, remote ops and merges alike (the
// v1 reference breaks set/apply ties by arrival order instead). The state
// carries the winner's node id in metadata.writer; a v1 state without it is
// merged as if metadata.nodeId had written the value, which is what the v1
// reference compares.
//
// A new register holds no value at timestamp 0, so any write wins.
//
// Values must not hold object members named __proto__, constructor or
// prototype at any depth, and are bounded by Limits.MaxValueBytes.
//
// An LWWRegister is safe for concurrent use.
type LWWRegister struct {
	mu      sync.Mutex
	node    string
	lim     Limits
	cur     write
	version uint64
	base    int // size of the encoded state without value and writer
	enc     encoding
}

// NewLWWRegister returns an empty register for replica nodeID.
func NewLWWRegister(nodeID string, lim Limits) (*LWWRegister, error) {
	if err := lim.checkNodeID(nodeID); err != nil {
		return nil, err
	}
	base := len(`{"type":"lww-register","value":,"metadata":{"type":"lww-register","nodeId":,"timestamp":,"version":,"writer":}}`) +
		quotedLen(nodeID) + 2*wordWidth
	return &LWWRegister{node: nodeID, lim: lim, base: base}, nil
}

// sizeOf bounds the encoded state when w is the current write.
func (r *LWWRegister) sizeOf(w write) int {
	return r.base + len(w.value) + quotedLen(w.node)
}

// Type returns "lww-register".
func (r *LWWRegister) Type() string { return TypeLWWRegister }

// NodeID returns the replica's node id.
func (r *LWWRegister) NodeID() string { return r.node }

// Set writes v (any value encoding/json accepts, or a json.RawMessage) at
// timestamp ts (milliseconds) and returns the op to send. The write takes
// effect only if it wins; the op is returned either way, like the v1
// reference does. With Limits.MaxSkew set, ts is clamped first and the op
// carries the clamped timestamp. A value holding a forbidden member name is
// refused with ErrForbiddenValue, one past Limits.MaxValueBytes or
// Limits.MaxStateBytes with ErrTooLarge.
func (r *LWWRegister) Set(v any, ts int64) (Op, error) {
	b, err := encodeValue(v)
	if err != nil {
		return Op{}, err
	}
	if err := r.lim.checkEncoded(b); err != nil {
		return Op{}, err
	}
	if ts < 0 || ts > MaxSafeInteger {
		return Op{}, fmt.Errorf("%w: timestamp %d out of range", ErrInvalidOp, ts)
	}
	ts = r.lim.clamp(ts)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.offer(write{value: b, ts: ts, node: r.node}, r.lim.maxStateBytes()); err != nil {
		return Op{}, err
	}
	return Op{Type: TypeLWWRegister, NodeID: r.node, Timestamp: ts, Op: OpSet, Value: b}, nil
}

// offer installs w if it wins and the state stays within limit.
func (r *LWWRegister) offer(w write, limit int) error {
	if !w.beats(r.cur) {
		return nil
	}
	if err := budget(r.sizeOf(r.cur), r.sizeOf(w), limit); err != nil {
		return err
	}
	r.cur = w
	r.version++
	r.enc.reset()
	return nil
}

// Apply applies a remote "set" op. The op needs a value (null is a value).
func (r *LWWRegister) Apply(op Op) error {
	if err := r.lim.checkOp(op, TypeLWWRegister); err != nil {
		return err
	}
	if op.Op != OpSet {
		return fmt.Errorf("%w: op %q on lww-register", ErrInvalidOp, op.Op)
	}
	if len(op.Value) == 0 {
		return fmt.Errorf("%w: set without value", ErrInvalidOp)
	}
	b, err := r.lim.opValue(op.Value)
	if err != nil {
		return err
	}
	ts := r.lim.clamp(op.Timestamp)
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.offer(write{value: b, ts: ts, node: op.NodeID}, r.lim.maxStateBytes())
}

// Merge merges a remote register state. A state without a value (never
// written) changes nothing; otherwise it needs a valid metadata.timestamp
// and a writer (metadata.writer, else metadata.nodeId), and a value free of
// forbidden member names (ErrForbiddenValue) that keeps the state within
// MaxStateCeiling (ErrTooLarge).
func (r *LWWRegister) Merge(s State) error {
	if err := checkState(s, TypeLWWRegister); err != nil {
		return err
	}
	md := s.Metadata
	writer := md.Writer
	if writer == "" {
		writer = md.NodeID
	}
	if err := r.lim.checkNodeID(writer); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidState, err)
	}
	if md.Timestamp < 0 || md.Timestamp > MaxSafeInteger {
		return fmt.Errorf("%w: timestamp %d out of range", ErrInvalidState, md.Timestamp)
	}
	if len(s.Value) == 0 {
		return nil
	}
	b, err := encodeValue(s.Value)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidState, err)
	}
	if err := checkMembers(b); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidState, err)
	}
	ts := r.lim.clamp(md.Timestamp)
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.offer(write{value: b, ts: ts, node: writer}, MaxStateCeiling)
}

// State returns the register in v1 shape: metadata.timestamp is the
// winning write's, metadata.writer its node id, and value is absent until
// the first write.
func (r *LWWRegister) State() State {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stateLocked()
}

// EncodedState returns the encoded State, cached until the next change.
func (r *LWWRegister) EncodedState() json.RawMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.enc.get(r.stateLocked)
}

// Size returns an upper bound of len(EncodedState()).
func (r *LWWRegister) Size() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sizeOf(r.cur)
}

func (r *LWWRegister) stateLocked() State {
	return State{
		Type:  TypeLWWRegister,
		Value: bytes.Clone(r.cur.value),
		Metadata: &Metadata{
			Type:      TypeLWWRegister,
			NodeID:    r.node,
			Timestamp: r.cur.ts,
			Version:   r.version,
			Writer:    r.cur.node,
		},
	}
}

// Value returns the current value and whether the register was ever
// written.
func (r *LWWRegister) Value() (json.RawMessage, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.cur.value), r.cur.value != nil
}
