package crdt

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
)

// MaxOwnerLen bounds an owner in bytes.
const MaxOwnerLen = 256

// ErrInvalidOwner is returned by [Owners] for an empty owner or one longer
// than MaxOwnerLen.
var ErrInvalidOwner = errors.New("crdt: invalid owner")

// Owners binds the node ids of one CRDT key to the writers that use them,
// so that a server can stop one client from writing under another's node
// id: without it, any client could send a pn-counter op under a victim's
// node id with a huge seq, after which every op of the victim looks like a
// duplicate.
//
// A server keeps one Owners per key beside the CRDT and passes each client
// op through Apply with the sender's owner. The first op that applies binds
// its node id to its owner; later ops under that node id from anyone else
// are refused with ErrNodeOwned. The owner must survive the client's
// reconnects, because clients keep their node id across them: a user id,
// or for anonymous clients a resumed session's id. An owner per connection
// locks a client out of its own node id after its first reconnect.
//
// Bindings are server-side data and may hold user ids: they are never part
// of State or EncodedState, and must not reach clients. A server stores them
// and passes them between its nodes together with the state, as a [Record]
// (AppendRecord, MergeRecord). When two nodes bound the same node id
// concurrently, the earlier claim wins everywhere (smaller timestamp, then
// smaller owner); ops applied meanwhile under the losing claim stay applied.
//
// Bindings are bounded like a state: at most Limits.MaxEntries of them (and
// Limits.MaxNodesPerOwner per owner, when set), Limits.MaxStateBytes of
// encoding for new bindings and MaxStateCeiling for merges. A pn-counter
// never has more node ids than Limits.MaxNodes, so its bindings stay small.
// Binding lww-register and lww-map node ids is possible but buys little,
// as any writer may overwrite any value, and every distinct writer then
// takes a binding for good.
//
// An Owners is safe for concurrent use.
type Owners struct {
	mu       sync.Mutex
	lim      Limits
	claims   map[string]Claim
	perOwner map[string]int
	size     int // upper bound of the encoding
	enc      []byte
}

// Claim is the binding of one node id.
type Claim struct {
	// Owner is the writer the node id belongs to.
	Owner string `json:"owner"`
	// Timestamp is when the binding was made, in milliseconds since the
	// Unix epoch on the clock of the server that made it.
	Timestamp int64 `json:"timestamp"`
}

// before reports whether claim a wins over b: the earlier one, then the
// smaller owner, so every node picks the same.
func (a Claim) before(b Claim) bool {
	if a.Timestamp != b.Timestamp {
		return a.Timestamp < b.Timestamp
	}
	return strings.Compare(a.Owner, b.Owner) < 0
}

// claimSize bounds what one binding adds to the encoding.
func claimSize(node string, c Claim) int {
	return quotedLen(node) + len(`:{"owner":,"timestamp":},`) + quotedLen(c.Owner) + safeWidth
}

// NewOwners returns an empty set of bindings bounded by lim (MaxEntries,
// MaxNodesPerOwner, MaxStateBytes, MaxNodeIDLen; Now stamps new bindings).
func NewOwners(lim Limits) *Owners {
	return &Owners{lim: lim, claims: map[string]Claim{}, perOwner: map[string]int{}, size: len(`{}`)}
}

func checkOwner(owner string) error {
	if owner == "" || len(owner) > MaxOwnerLen {
		return fmt.Errorf("%w: %d bytes (1..%d allowed)", ErrInvalidOwner, len(owner), MaxOwnerLen)
	}
	return nil
}

// Owner returns the binding of nodeID, if any.
func (o *Owners) Owner(nodeID string) (Claim, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	c, ok := o.claims[nodeID]
	return c, ok
}

// Len returns the number of bindings.
func (o *Owners) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.claims)
}

// Claims returns a copy of the bindings by node id.
func (o *Owners) Claims() map[string]Claim {
	o.mu.Lock()
	defer o.mu.Unlock()
	return maps.Clone(o.claims)
}

// Bind binds nodeID to owner if it is free. It returns nil when nodeID is
// then owner's, ErrNodeOwned when it is another's, ErrTooLarge when no
// binding can be added, ErrInvalidNodeID or ErrInvalidOwner for bad input.
// A server binds its own node id (with an owner no client can have) so
// that clients cannot write under it.
func (o *Owners) Bind(nodeID, owner string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	bind, err := o.check(nodeID, owner)
	if err == nil && bind {
		o.bind(nodeID, owner)
	}
	return err
}

// Apply applies op to c on behalf of owner. An op under a node id bound to
// another owner is refused with ErrNodeOwned, one under a free node id that
// cannot be bound any more with ErrTooLarge; otherwise the result is
// c.Apply(op), and when that is nil, op.NodeID is bound to owner. A refused
// op (duplicates included) binds nothing.
func (o *Owners) Apply(c CRDT, op Op, owner string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	bind, err := o.check(op.NodeID, owner)
	if err != nil {
		return err
	}
	if err := c.Apply(op); err != nil {
		return err
	}
	if bind {
		o.bind(op.NodeID, owner)
	}
	return nil
}

// check reports whether owner may write under nodeID and whether that needs
// a new binding. o.mu is held.
func (o *Owners) check(nodeID, owner string) (bind bool, err error) {
	if err := checkOwner(owner); err != nil {
		return false, err
	}
	if cl, ok := o.claims[nodeID]; ok {
		if cl.Owner != owner {
			return false, fmt.Errorf("%w: %q", ErrNodeOwned, nodeID)
		}
		return false, nil
	}
	if err := o.lim.checkNodeID(nodeID); err != nil {
		return false, err
	}
	if len(o.claims) >= o.lim.maxEntries() {
		return false, fmt.Errorf("%w: more than %d bound node ids", ErrTooLarge, o.lim.maxEntries())
	}
	if n := o.lim.MaxNodesPerOwner; n > 0 && o.perOwner[owner] >= n {
		return false, fmt.Errorf("%w: more than %d node ids for one owner", ErrTooLarge, n)
	}
	next := o.size + claimSize(nodeID, Claim{Owner: owner})
	if err := budget(o.size, next, o.lim.maxStateBytes()); err != nil {
		return false, err
	}
	return true, nil
}

// bind records a binding check allowed. o.mu is held.
func (o *Owners) bind(nodeID, owner string) {
	// Merges refuse stamps outside 0..2^53; a real clock is well inside.
	cl := Claim{Owner: owner, Timestamp: min(max(o.lim.now().UnixMilli(), 0), MaxSafeInteger)}
	o.claims[nodeID] = cl
	o.perOwner[owner]++
	o.size += claimSize(nodeID, cl)
	o.enc = nil
}

// Merge merges bindings made elsewhere (another node, the store): per node
// id, the earlier claim wins. Entries with an invalid node id, owner or
// timestamp are skipped. A merge that would pass Limits.MaxEntries bindings
// or MaxStateCeiling bytes returns ErrTooLarge and changes nothing.
func (o *Owners) Merge(claims map[string]Claim) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	win := map[string]Claim{}
	added, next := 0, o.size
	for node, cl := range claims {
		if o.lim.checkNodeID(node) != nil || checkOwner(cl.Owner) != nil || cl.Timestamp < 0 || cl.Timestamp > MaxSafeInteger {
			continue
		}
		cur, ok := o.claims[node]
		if ok && !cl.before(cur) {
			continue
		}
		if ok {
			next -= claimSize(node, cur)
		} else {
			added++
		}
		next += claimSize(node, cl)
		win[node] = cl
	}
	if len(o.claims)+added > o.lim.maxEntries() {
		return fmt.Errorf("%w: more than %d bound node ids", ErrTooLarge, o.lim.maxEntries())
	}
	if err := budget(o.size, next, MaxStateCeiling); err != nil {
		return err
	}
	if len(win) == 0 {
		return nil
	}
	for node, cl := range win {
		if cur, ok := o.claims[node]; ok {
			o.perOwner[cur.Owner]--
			if o.perOwner[cur.Owner] == 0 {
				delete(o.perOwner, cur.Owner)
			}
		}
		o.claims[node] = cl
		o.perOwner[cl.Owner]++
	}
	o.size = next
	o.enc = nil
	return nil
}

// Size returns an upper bound of the length of the encoded bindings.
func (o *Owners) Size() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.size
}

// MarshalJSON encodes the bindings as a JSON object by node id; the
// encoding is cached until the next change.
func (o *Owners) MarshalJSON() ([]byte, error) {
	return o.encoded(), nil
}

// encoded returns the cached encoding, which the caller must not modify.
func (o *Owners) encoded() []byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.enc == nil {
		// Marshalling a map of strings and integers cannot fail.
		o.enc, _ = json.Marshal(o.claims)
	}
	return o.enc
}

// Record is what a server stores for a CRDT key and sends to its other
// nodes: the members of the key's State plus, as the member "owners", its
// node-id bindings. A Record may hold user ids and must never be sent to
// clients. A plain state (stored before bindings existed) decodes as a
// Record without owners, and a server that does not know the member reads
// a Record as a plain state.
type Record struct {
	State
	// Owners are the bindings of an [Owners], by node id.
	Owners map[string]Claim `json:"owners,omitempty"`
}

// AppendRecord appends the encoded Record of c and o (which may be nil) to
// dst. It reuses c.EncodedState and o's cached encoding, so it costs a copy,
// not an encoding.
func AppendRecord(dst []byte, c CRDT, o *Owners) []byte {
	state := c.EncodedState()
	if o == nil || o.Len() == 0 {
		return append(dst, state...)
	}
	// A state is a JSON object: drop its closing brace and add a member.
	dst = append(dst, state[:len(state)-1]...)
	dst = append(dst, `,"owners":`...)
	dst = append(dst, o.encoded()...)
	return append(dst, '}')
}

// MergeRecord decodes a Record (or a plain state) from the store or another
// node and merges its state into c and its bindings into o (which may be
// nil). The state is merged even when the bindings are refused and the
// other way round; the errors of both are joined.
func MergeRecord(c CRDT, o *Owners, b []byte) error {
	var rec Record
	if err := json.Unmarshal(b, &rec); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidState, err)
	}
	err := c.Merge(rec.State)
	if o != nil && rec.Owners != nil {
		err = errors.Join(err, o.Merge(rec.Owners))
	}
	return err
}
