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
// A PNCounter is safe for concurrent use.
type PNCounter struct {
	mu      sync.Mutex
	node    string
	lim     Limits
	nodes   map[string]*pnEntry
	version uint64
}

// pnEntry is one node's counts. hasInc and hasDec record whether the node
// appears in the increments and decrements vectors, keeping the v1 shape.
type pnEntry struct {
	inc, dec       uint64
	hasInc, hasDec bool
	seq            seqWindow
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
	return &PNCounter{
		node:  nodeID,
		lim:   lim,
		nodes: map[string]*pnEntry{nodeID: {hasInc: true, hasDec: true}},
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
	op := Op{
		Type:      TypePNCounter,
		NodeID:    c.node,
		Timestamp: c.lim.now().UnixMilli(),
		Op:        name,
		Value:     json.RawMessage(strconv.FormatUint(n, 10)),
		Seq:       e.seq.high + 1,
	}
	if err := c.add(e, name, n); err != nil {
		return Op{}, err
	}
	e.seq.accept(op.Seq)
	c.version++
	return op, nil
}

// add adds n to e's increments or decrements, refusing to pass 2^53.
func (c *PNCounter) add(e *pnEntry, name string, n uint64) error {
	p, has := &e.inc, &e.hasInc
	if name == OpDecrement {
		p, has = &e.dec, &e.hasDec
	}
	if *p+n > MaxSafeInteger {
		return fmt.Errorf("%w: count above 2^53", ErrTooLarge)
	}
	*p += n
	*has = true
	return nil
}

// Apply adds a remote op's amount to op.NodeID's entry. The amount must be
// an integer in 0..2^53; absent or null means 1. An op with Seq that was
// already counted returns ErrDuplicateOp and changes nothing.
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
		if len(c.nodes) >= c.lim.maxEntries() {
			return fmt.Errorf("%w: more than %d nodes", ErrTooLarge, c.lim.maxEntries())
		}
		e = &pnEntry{}
	}
	if op.Seq != 0 && e.seq.covered(op.Seq) {
		return fmt.Errorf("%w: node %q seq %d", ErrDuplicateOp, op.NodeID, op.Seq)
	}
	if err := c.add(e, op.Op, n); err != nil {
		return err
	}
	if op.Seq != 0 {
		e.seq.accept(op.Seq)
	}
	c.nodes[op.NodeID] = e
	c.version++
	return nil
}

// Merge takes, per node, the maximum of the local and remote increments,
// decrements and seqs. The state needs metadata.vector; entries with an
// invalid node id or count are skipped (as the v1 reference skips
// non-numeric counts). A merge that would exceed MaxEntries nodes returns
// ErrTooLarge and changes nothing.
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
	added := map[string]bool{}
	for _, m := range []map[string]uint64{s.Metadata.Vector.Increments, s.Metadata.Vector.Decrements, s.Metadata.Seqs} {
		for node, n := range m {
			if _, ok := c.nodes[node]; !ok && valid(node, n) {
				added[node] = true
			}
		}
	}
	if len(c.nodes)+len(added) > c.lim.maxEntries() {
		return fmt.Errorf("%w: more than %d nodes", ErrTooLarge, c.lim.maxEntries())
	}
	changed := false
	entry := func(node string) *pnEntry {
		e := c.nodes[node]
		if e == nil {
			e = &pnEntry{}
			c.nodes[node] = e
			changed = true
		}
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
	if changed {
		c.version++
	}
	return nil
}

// State returns the counter in v1 shape; metadata.seqs lists the highest
// op seq per node that used seqs.
func (c *PNCounter) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
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
