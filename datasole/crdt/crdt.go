package crdt

import (
	"cmp"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Type names as they appear in the "type" member of ops and states.
const (
	TypePNCounter   = "pn-counter"
	TypeLWWRegister = "lww-register"
	TypeLWWMap      = "lww-map"
)

// Op names as they appear in the "op" member of an [Op].
const (
	OpIncrement = "increment"
	OpDecrement = "decrement"
	OpSet       = "set"
	OpRemove    = "remove"
)

// MaxSafeInteger is 2^53, the largest integer a v1 peer (IEEE-754 doubles)
// represents exactly. Amounts, counts, timestamps and sequence numbers must
// not exceed it.
const MaxSafeInteger = 1 << 53

// Defaults used when the corresponding [Limits] field is zero.
const (
	DefaultMaxEntries   = 10_000
	DefaultMaxNodeIDLen = 128
)

// Sentinel errors. Errors returned by this package wrap one or more of them;
// test with errors.Is.
var (
	// ErrInvalidOp is returned by Apply for an op that is malformed: unknown op
	// name, missing or invalid amount, value or field, bad timestamp or node id.
	ErrInvalidOp = errors.New("crdt: invalid op")
	// ErrInvalidState is returned by Merge for a state that lacks what a merge
	// needs (metadata, counters vector, object value, node id, timestamp).
	ErrInvalidState = errors.New("crdt: invalid state")
	// ErrTypeMismatch is returned when an op or state names another CRDT type.
	ErrTypeMismatch = errors.New("crdt: type mismatch")
	// ErrTooLarge is returned when a change would exceed Limits.MaxEntries or
	// push a counter past MaxSafeInteger. Nothing is changed.
	ErrTooLarge = errors.New("crdt: too large")
	// ErrDuplicateOp is returned by PNCounter.Apply for an op whose (nodeId,
	// seq) was already applied. It is not a failure: the op has no effect and
	// need not be stored, forwarded or broadcast.
	ErrDuplicateOp = errors.New("crdt: duplicate op")
	// ErrForbiddenField is returned for lww-map field names __proto__,
	// constructor and prototype, which v1 browser peers refuse or mishandle.
	ErrForbiddenField = errors.New("crdt: forbidden field name")
	// ErrInvalidNodeID is returned for an empty or over-long node id.
	ErrInvalidNodeID = errors.New("crdt: invalid node id")
	// ErrUnknownType is returned by New for a type name other than
	// "pn-counter", "lww-register" and "lww-map".
	ErrUnknownType = errors.New("crdt: unknown type")
)

// CRDT is what the three types have in common: the server and the client
// store keep them by key and hand them remote ops and states.
type CRDT interface {
	// Type returns the type name ("pn-counter", "lww-register", "lww-map").
	Type() string
	// NodeID returns the id of this replica.
	NodeID() string
	// Apply applies a remote op.
	Apply(op Op) error
	// Merge merges a remote state.
	Merge(s State) error
	// State returns the replica's state in v1 wire shape plus extension members.
	State() State
}

// New returns an empty CRDT of the named type for replica nodeID.
func New(typ, nodeID string, lim Limits) (CRDT, error) {
	switch typ {
	case TypePNCounter:
		return NewPNCounter(nodeID, lim)
	case TypeLWWRegister:
		return NewLWWRegister(nodeID, lim)
	case TypeLWWMap:
		return NewLWWMap(nodeID, lim)
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownType, typ)
}

// Limits bounds what a replica accepts. The zero value applies the defaults
// and no timestamp clamping, which suits a client that trusts its server; a
// server facing untrusted clients should set MaxSkew.
type Limits struct {
	// MaxEntries bounds the number of lww-map fields, tombstones included,
	// and of pn-counter nodes. Zero means DefaultMaxEntries (10,000).
	MaxEntries int
	// MaxNodeIDLen bounds node ids in bytes. Zero means DefaultMaxNodeIDLen (128).
	MaxNodeIDLen int
	// MaxSkew, when positive, clamps every LWW timestamp (local writes, remote
	// ops and merged states) to Now()+MaxSkew; see Clamp. Zero disables it.
	MaxSkew time.Duration
	// Now is the clock used for clamping, for the op timestamps of counters and
	// for metadata.timestamp of counter and map states. Nil means time.Now.
	Now func() time.Time
}

func (l Limits) maxEntries() int {
	if l.MaxEntries > 0 {
		return l.MaxEntries
	}
	return DefaultMaxEntries
}

func (l Limits) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// clamp applies Clamp when MaxSkew is set.
func (l Limits) clamp(ts int64) int64 {
	if l.MaxSkew <= 0 {
		return ts
	}
	return Clamp(ts, l.now(), l.MaxSkew)
}

func (l Limits) checkNodeID(id string) error {
	maxLen := l.MaxNodeIDLen
	if maxLen <= 0 {
		maxLen = DefaultMaxNodeIDLen
	}
	if id == "" || len(id) > maxLen {
		return fmt.Errorf("%w: %d bytes (1..%d allowed)", ErrInvalidNodeID, len(id), maxLen)
	}
	return nil
}

// checkOp validates what every op carries: its type, node id and timestamp.
func (l Limits) checkOp(op Op, typ string) error {
	if op.Type != typ {
		return fmt.Errorf("%w: op type %q on %s", ErrTypeMismatch, op.Type, typ)
	}
	if err := l.checkNodeID(op.NodeID); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidOp, err)
	}
	if op.Timestamp < 0 || op.Timestamp > MaxSafeInteger {
		return fmt.Errorf("%w: timestamp %d out of range", ErrInvalidOp, op.Timestamp)
	}
	if op.Seq > MaxSafeInteger {
		return fmt.Errorf("%w: seq %d out of range", ErrInvalidOp, op.Seq)
	}
	return nil
}

// checkState validates the envelope every merged state needs.
func checkState(s State, typ string) error {
	if s.Type != typ {
		return fmt.Errorf("%w: state type %q on %s", ErrTypeMismatch, s.Type, typ)
	}
	if s.Metadata == nil {
		return fmt.Errorf("%w: no metadata", ErrInvalidState)
	}
	return nil
}

// Clamp returns ts (milliseconds since the Unix epoch) capped at
// now+maxSkew.
//
// Clamping rather than rejecting keeps writes from clients whose clocks run
// ahead (the write still happens and still wins over older writes) while
// bounding how long such a write can shadow later ones: once the receiver's
// clock passes the clamped time, ordinary writes win again. Replicas that
// clamp the same op differently still converge, because the clamped value
// travels in their states and merges by the usual LWW order.
func Clamp(ts int64, now time.Time, maxSkew time.Duration) int64 {
	return min(ts, now.UnixMilli()+maxSkew.Milliseconds())
}

// forbiddenField reports whether name is an object key v1 browser peers refuse
// in paths or would turn into prototype pollution.
func forbiddenField(name string) bool {
	switch name {
	case "__proto__", "constructor", "prototype":
		return true
	}
	return false
}

// write is one last-writer-wins write: a value (nil for a tombstone or a
// register never written) stamped with (ts, node).
type write struct {
	value   []byte
	ts      int64
	node    string
	deleted bool
}

// beats reports whether w wins over o. The order is (timestamp, nodeId)
// lexicographic; for the same (timestamp, nodeId), which only a node writing
// twice in one millisecond produces, a tombstone wins and then the greater
// value bytes, so every replica picks the same winner whatever the arrival
// order.
func (w write) beats(o write) bool {
	if c := cmp.Compare(w.ts, o.ts); c != 0 {
		return c > 0
	}
	if c := strings.Compare(w.node, o.node); c != 0 {
		return c > 0
	}
	if w.deleted != o.deleted {
		return w.deleted
	}
	return strings.Compare(string(w.value), string(o.value)) > 0
}
