package crdt

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/datasole/datasole-go/datasole/protocol"
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
	DefaultMaxEntries    = 10_000
	DefaultMaxNodeIDLen  = 128
	DefaultMaxStateBytes = 256 << 10
	DefaultMaxValueBytes = 64 << 10
	DefaultMaxNodes      = 1024
	DefaultMaxSeqJump    = 1 << 16
)

// MaxStateCeiling is the largest encoded state (json.Marshal of State) any
// replica holds, whatever its Limits: merges that would pass it are refused,
// and Limits.MaxStateBytes above it means MaxStateCeiling. A CRDT_STATE
// payload adds 20 bytes and the JSON-quoted key to the state, so a state at
// the ceiling still fits protocol.MaxPayload with a key of up to 2 KiB, even
// one whose every byte needs a six-byte escape.
const MaxStateCeiling = protocol.MaxPayload - 16<<10

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
	// ErrTooLarge is returned when a change would exceed a bound of [Limits]
	// (entries, nodes, state or value bytes) or [MaxStateCeiling], or push a
	// counter past MaxSafeInteger. Nothing is changed.
	ErrTooLarge = errors.New("crdt: too large")
	// ErrDuplicateOp is returned by PNCounter.Apply for an op whose (nodeId,
	// seq) was already applied. It is not a failure: the op has no effect and
	// need not be stored, forwarded or broadcast.
	ErrDuplicateOp = errors.New("crdt: duplicate op")
	// ErrForbiddenField is returned for lww-map field names __proto__,
	// constructor and prototype, which v1 browser peers refuse or mishandle.
	ErrForbiddenField = errors.New("crdt: forbidden field name")
	// ErrForbiddenValue is returned for a register or map value that holds an
	// object member named __proto__, constructor or prototype at any depth;
	// the error also matches patch.ErrForbiddenKey, as live state values do.
	ErrForbiddenValue = errors.New("crdt: forbidden member name in value")
	// ErrInvalidNodeID is returned for an empty or over-long node id.
	ErrInvalidNodeID = errors.New("crdt: invalid node id")
	// ErrSeqJump is returned (wrapped with ErrInvalidOp) by PNCounter.Apply for
	// an op whose seq lies more than Limits.MaxSeqJump past the highest seq
	// known for its node.
	ErrSeqJump = errors.New("crdt: seq too far ahead")
	// ErrNodeOwned is returned by [Owners] for a node id bound to another
	// owner.
	ErrNodeOwned = errors.New("crdt: node id owned by another writer")
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
	// EncodedState returns json.Marshal(State()), encoded at the first call
	// after a change and reused until the next one (so a counter's or map's
	// metadata.timestamp is the clock at that first call). The caller must not
	// modify it.
	EncodedState() json.RawMessage
	// Size returns an upper bound of len(EncodedState()), kept up to date
	// with every change at the cost of the change, not of the whole state.
	Size() int
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
//
// Byte bounds apply to the encoded state, json.Marshal(State()), which is
// what a CRDT_STATE frame carries. Every replica keeps a running upper bound
// of it (see CRDT.Size) and checks a change against it before applying
// anything: a local change or remote op that would grow the state past
// MaxStateBytes, a value past MaxValueBytes, or a counter past MaxNodes is
// refused with ErrTooLarge and changes nothing. A change that does not grow
// the state (an overwrite with a value no longer than the old one, an
// increment of a known node, a losing write) is never refused for size.
// Merges combine writes that other replicas already accepted, so they are
// held only to MaxEntries and MaxStateCeiling; refusing them at the smaller
// budget would leave replicas apart for good.
type Limits struct {
	// MaxEntries bounds the number of lww-map fields, tombstones included,
	// of pn-counter nodes (merges included) and of [Owners] bindings. Zero
	// means DefaultMaxEntries (10,000).
	MaxEntries int
	// MaxStateBytes bounds the encoded state that local changes and remote
	// ops may grow. Zero means DefaultMaxStateBytes (256 KiB); values above
	// MaxStateCeiling (1008 KiB) mean MaxStateCeiling.
	MaxStateBytes int
	// MaxValueBytes bounds one lww-register or lww-map value, in bytes of
	// its compact JSON encoding, in local changes and remote ops. Zero means
	// DefaultMaxValueBytes (64 KiB); it is never above MaxStateBytes.
	MaxValueBytes int
	// MaxNodes bounds the distinct node ids a pn-counter takes local changes
	// and ops from, its own included. Each node stays in the state for good
	// (at most three times its JSON-quoted id plus 54 bytes), so this is the
	// number of writers a counter can ever have. Zero means DefaultMaxNodes
	// (1,024). Merges are held to MaxEntries.
	MaxNodes int
	// MaxSeqJump bounds how far a remote pn-counter op's seq may lie past the
	// highest seq known for its node (0 for a new node); ops beyond are
	// refused with ErrSeqJump, so that one op cannot make every later op of
	// its node look like a duplicate. Zero means DefaultMaxSeqJump (65,536).
	MaxSeqJump uint64
	// MaxNodesPerOwner bounds the node ids one owner may bind in an [Owners].
	// Zero means no bound besides MaxEntries. A browser client takes a fresh
	// node id per page load, so a bound here eventually locks out a user who
	// reloads often; it suits owners that are connections rather than users.
	MaxNodesPerOwner int
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

func (l Limits) maxStateBytes() int {
	if l.MaxStateBytes > 0 {
		return min(l.MaxStateBytes, MaxStateCeiling)
	}
	return DefaultMaxStateBytes
}

func (l Limits) maxValueBytes() int {
	n := DefaultMaxValueBytes
	if l.MaxValueBytes > 0 {
		n = l.MaxValueBytes
	}
	return min(n, l.maxStateBytes())
}

func (l Limits) maxNodes() int {
	n := DefaultMaxNodes
	if l.MaxNodes > 0 {
		n = l.MaxNodes
	}
	return min(n, l.maxEntries())
}

func (l Limits) maxSeqJump() uint64 {
	if l.MaxSeqJump > 0 {
		return l.MaxSeqJump
	}
	return DefaultMaxSeqJump
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
