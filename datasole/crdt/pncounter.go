package crdt

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"sync"
)

// PNCounter is a counter that any replica may increment and decrement. Each
// node's increments and decrements are summed separately; the value is
// Σincrements − Σdecrements, and a merge takes the per-node maximum, which
// converges whatever the order, duplication or delay of states.
//
// # Ops and exactly-once
//
// An op adds to its node's entry, so an op applied twice counts twice
// (v1 semantics, kept for ops without Seq). Ops made by Increment and
// Decrement carry Seq = 1, 2, 3, … per node, and Apply drops an op whose
// (nodeId, seq) it has already counted, returning ErrDuplicateOp. Memory per
// node is bounded: the highest seq seen plus a 64-op window below it, so ops
// that arrive out of order by up to 64 still count once. An op older than
// the window, or at or below a seq learnt from a merged state, is dropped.
//
// Dropping is safe: a replica never counts more than its writer did, because
// its entry for node n never exceeds n's own count at the highest seq it
// knows, and a merge only takes maxima. Dropping can under-count only until
// a state from the writer (or one that includes it) is merged. This holds
// when every op of a node carries Seq and node ids are not reused by a fresh
// replica that has not first merged its earlier state. States of v1 peers
// carry no seqs; if they raise a node's count past its seq'd ops, a later op
// of that node may be counted again.
//
// # Bounds
//
// Every node that ever wrote stays in the state, so a counter takes local
// changes and ops from at most Limits.MaxNodes distinct node ids (and
// Limits.MaxStateBytes of state); ops of further nodes are refused with
// ErrTooLarge. An op whose seq lies more than Limits.MaxSeqJump past its
// node's highest known seq is refused with ErrSeqJump. Neither stops one
// client from writing under another's node id: a server binds node ids to
// their writers with [Owners].
//
// A PNCounter is safe for concurrent use.
type PNCounter struct {
	mu      sync.Mutex
	node    string
	lim     Limits
	nodes   map[string]*pnEntry
	version uint64
	size    int // upper bound of the encoded state
	enc     encoding
}

// pnEntry is one node's counts. hasInc and hasDec record whether the node
// appears in the increments and decrements vectors, keeping the v1 shape.
type pnEntry struct {
	inc, dec       uint64
	hasInc, hasDec bool
	seq            seqWindow
	qlen           int // quotedLen of the node id
}

// size bounds what e adds to the encoded state: one member per vector it
// appears in, and one in metadata.seqs once it has a seq.
func (e *pnEntry) size() int {
	n := 0
	for _, in := range []bool{e.hasInc, e.hasDec, e.seq.high > 0} {
		if in {
			n += e.qlen + len(`:,`) + safeWidth
		}
	}
	return n
}

// seqWindow remembers which op sequence numbers of one node were counted:
// every seq ≤ high−65, and seq high−1−i iff bit i of seen is set.
type seqWindow struct {
	high uint64
	seen uint64
}

// accept reports whether seq is new and records it.
func (w *seqWindow) accept(seq uint64) bool {
	switch {
	case seq > w.high:
		shift := seq - w.high
		if shift >= 64 {
			w.seen = 0
		} else {
			w.seen = w.seen<<shift | 1<<(shift-1)
		}
		w.high = seq
		return true
	case seq == w.high:
		return false
	}
	d := w.high - 1 - seq
	if d >= 64 || w.seen&(1<<d) != 0 {
		return false
	}
	w.seen |= 1 << d
	return true
}

// covered reports whether accept(seq) would refuse seq.
func (w seqWindow) covered(seq uint64) bool {
	return !w.accept(seq)
}

// close marks every seq up to max(high, seq) as counted. A merged state
// that raised a node's counts may include ops the window lists as missing,
// so none of them may be counted again.
func (w *seqWindow) close(seq uint64) {
	w.high = max(w.high, seq)
	w.seen = math.MaxUint64
}

// NewPNCounter returns a counter at zero for replica nodeID.
func NewPNCounter(nodeID string, lim Limits) (*PNCounter, error) {
	if err := lim.checkNodeID(nodeID); err != nil {
		return nil, err
	}
	own := &pnEntry{hasInc: true, hasDec: true, qlen: quotedLen(nodeID)}
	base := len(`{"type":"pn-counter","value":,"metadata":{"type":"pn-counter","nodeId":,"timestamp":,"version":,"vector":{"increments":{},"decrements":{}},"seqs":{}}}`) +
		quotedLen(nodeID) + 3*wordWidth
	return &PNCounter{
		node:  nodeID,
		lim:   lim,
		nodes: map[string]*pnEntry{nodeID: own},
		size:  base + own.size(),
	}, nil
}

// Type returns "pn-counter".
func (c *PNCounter) Type() string { return TypePNCounter }

// NodeID returns the replica's node id.
func (c *PNCounter) NodeID() string { return c.node }

// Increment adds n to this node's count and returns the op to send, with
// the next Seq of this node.
func (c *PNCounter) Increment(n uint64) (Op, error) { return c.local(OpIncrement, n) }

// Decrement subtracts n from the counter and returns the op to send, with
// the next Seq of this node.
func (c *PNCounter) Decrement(n uint64) (Op, error) { return c.local(OpDecrement, n) }

func (c *PNCounter) local(name string, n uint64) (Op, error) {
	if n > MaxSafeInteger {
		return Op{}, fmt.Errorf("%w: amount %d above 2^53", ErrTooLarge, n)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.nodes[c.node]
	if e.seq.high >= MaxSafeInteger {
		return Op{}, fmt.Errorf("%w: seq above 2^53", ErrTooLarge)
	}
	op := Op{
		Type:      TypePNCounter,
		NodeID:    c.node,
		Timestamp: c.lim.now().UnixMilli(),
		Op:        name,
		Value:     json.RawMessage(strconv.FormatUint(n, 10)),
		Seq:       e.seq.high + 1,
	}
	if err := c.add(c.node, e, name, n, op.Seq); err != nil {
		return Op{}, err
	}
	return op, nil
}

// add adds n to the increments or decrements of node's entry e (new when
// not in c.nodes) and records seq (0: none). It refuses to pass 2^53, to
// add a node past MaxNodes or to grow the state past MaxStateBytes, and
// then changes nothing.
func (c *PNCounter) add(node string, e *pnEntry, name string, n, seq uint64) error {
	after := *e
	p, has := &after.inc, &after.hasInc
	if name == OpDecrement {
		p, has = &after.dec, &after.hasDec
	}
	if *p+n > MaxSafeInteger {
		return fmt.Errorf("%w: count above 2^53", ErrTooLarge)
	}
	*p += n
	*has = true
	if seq != 0 {
		after.seq.accept(seq)
	}
	before := 0
	if _, known := c.nodes[node]; known {
		before = e.size()
	} else if len(c.nodes) >= c.lim.maxNodes() {
		return fmt.Errorf("%w: more than %d nodes", ErrTooLarge, c.lim.maxNodes())
	}
	next := c.size - before + after.size()
	if err := budget(c.size, next, c.lim.maxStateBytes()); err != nil {
		return err
	}
	*e = after
	c.nodes[node] = e
	c.size = next
	c.version++
	c.enc.reset()
	return nil
}

// Apply adds a remote op's amount to op.NodeID's entry. The amount must be
// an integer in 0..2^53; absent or null means 1. An op with Seq that was
// already counted returns ErrDuplicateOp and changes nothing; one with a Seq
// more than Limits.MaxSeqJump past the node's highest known seq is refused
// with ErrSeqJump (wrapped with ErrInvalidOp). A new node past
// Limits.MaxNodes or a state growing past Limits.MaxStateBytes is refused
// with ErrTooLarge.
func (c *PNCounter) Apply(op Op) error {
	if err := c.lim.checkOp(op, TypePNCounter); err != nil {
		return err
	}
	if op.Op != OpIncrement && op.Op != OpDecrement {
		return fmt.Errorf("%w: op %q on pn-counter", ErrInvalidOp, op.Op)
	}
	n, err := op.amount()
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.nodes[op.NodeID]
	if e == nil {
		e = &pnEntry{qlen: quotedLen(op.NodeID)}
	}
	if op.Seq != 0 {
		if e.seq.covered(op.Seq) {
			return fmt.Errorf("%w: node %q seq %d", ErrDuplicateOp, op.NodeID, op.Seq)
		}
		if jump := c.lim.maxSeqJump(); op.Seq > e.seq.high && op.Seq-e.seq.high > jump {
			return fmt.Errorf("%w: %w: node %q seq %d, highest known %d, at most %d ahead allowed",
				ErrInvalidOp, ErrSeqJump, op.NodeID, op.Seq, e.seq.high, jump)
		}
	}
	return c.add(op.NodeID, e, op.Op, n, op.Seq)
}

// Merge takes, per node, the maximum of the local and remote increments,
// decrements and seqs. The state needs metadata.vector; entries with an
// invalid node id or count are skipped (as the v1 reference skips
// non-numeric counts). A merge that would exceed MaxEntries nodes or
// MaxStateCeiling bytes returns ErrTooLarge and changes nothing.
func (c *PNCounter) Merge(s State) error {
	if err := checkState(s, TypePNCounter); err != nil {
		return err
	}
	if s.Metadata.Vector == nil {
		return fmt.Errorf("%w: no vector", ErrInvalidState)
	}
	valid := func(node string, n uint64) bool {
		return c.lim.checkNodeID(node) == nil && n <= MaxSafeInteger
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Merge into copies of the entries the state touches, so that a merge
	// refused for its size changes nothing.
	touched := map[string]*pnEntry{}
	changed := false
	entry := func(node string) *pnEntry {
		if e := touched[node]; e != nil {
			return e
		}
		e := &pnEntry{qlen: quotedLen(node)}
		if cur := c.nodes[node]; cur != nil {
			*e = *cur
		} else {
			changed = true
		}
		touched[node] = e
		return e
	}
	for node, n := range s.Metadata.Vector.Increments {
		if valid(node, n) {
			e := entry(node)
			if n > e.inc || !e.hasInc {
				e.inc, e.hasInc, changed = max(e.inc, n), true, true
				e.seq.close(0)
			}
		}
	}
	for node, n := range s.Metadata.Vector.Decrements {
		if valid(node, n) {
			e := entry(node)
			if n > e.dec || !e.hasDec {
				e.dec, e.hasDec, changed = max(e.dec, n), true, true
				e.seq.close(0)
			}
		}
	}
	for node, seq := range s.Metadata.Seqs {
		if valid(node, seq) {
			if e := entry(node); seq > e.seq.high {
				e.seq.close(seq)
				changed = true
			}
		}
	}
	if !changed {
		return nil
	}
	added, next := 0, c.size
	for node, e := range touched {
		if cur := c.nodes[node]; cur != nil {
			next -= cur.size()
		} else {
			added++
		}
		next += e.size()
	}
	if len(c.nodes)+added > c.lim.maxEntries() {
		return fmt.Errorf("%w: more than %d nodes", ErrTooLarge, c.lim.maxEntries())
	}
	if err := budget(c.size, next, MaxStateCeiling); err != nil {
		return err
	}
	for node, e := range touched {
		if cur := c.nodes[node]; cur != nil {
			*cur = *e
		} else {
			c.nodes[node] = e
		}
	}
	c.size = next
	c.version++
	c.enc.reset()
	return nil
}

// State returns the counter in v1 shape; metadata.seqs lists the highest
// op seq per node that used seqs.
func (c *PNCounter) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stateLocked()
}

// EncodedState returns the encoded State, cached until the next change.
func (c *PNCounter) EncodedState() json.RawMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.enc.get(c.stateLocked)
}

// Size returns an upper bound of len(EncodedState()).
func (c *PNCounter) Size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size
}

func (c *PNCounter) stateLocked() State {
	v := Vector{Increments: Counts{}, Decrements: Counts{}}
	var seqs map[string]uint64
	for node, e := range c.nodes {
		if e.hasInc {
			v.Increments[node] = e.inc
		}
		if e.hasDec {
			v.Decrements[node] = e.dec
		}
		if e.seq.high > 0 {
			if seqs == nil {
				seqs = map[string]uint64{}
			}
			seqs[node] = e.seq.high
		}
	}
	return State{
		Type:  TypePNCounter,
		Value: json.RawMessage(strconv.FormatInt(c.valueLocked(), 10)),
		Metadata: &Metadata{
			Type:      TypePNCounter,
			NodeID:    c.node,
			Timestamp: c.lim.now().UnixMilli(),
			Version:   c.version,
			Vector:    &v,
			Seqs:      seqs,
		},
	}
}

// Value returns Σincrements − Σdecrements. Each sum saturates at
// math.MaxInt64, which only thousands of nodes near 2^53 could reach.
func (c *PNCounter) Value() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.valueLocked()
}

func (c *PNCounter) valueLocked() int64 {
	var pos, neg int64
	for _, e := range c.nodes {
		pos = saturatingAdd(pos, e.inc)
		neg = saturatingAdd(neg, e.dec)
	}
	return pos - neg
}

func saturatingAdd(sum int64, n uint64) int64 {
	if n > uint64(math.MaxInt64-sum) {
		return math.MaxInt64
	}
	return sum + int64(n)
}
