package crdt_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/datasole/datasole-go/datasole/crdt"
)

// Two replicas count independently and exchange states; both end with the
// total.
func ExamplePNCounter() {
	a, _ := crdt.NewPNCounter("a", crdt.Limits{})
	b, _ := crdt.NewPNCounter("b", crdt.Limits{})
	_, _ = a.Increment(5)
	_, _ = b.Increment(3)
	_, _ = b.Decrement(1)

	_ = a.Merge(b.State())
	_ = b.Merge(a.State())
	fmt.Println(a.Value(), b.Value())
	// Output: 7 7
}

// An op that reaches a replica twice, say after a reconnect, counts once.
func ExamplePNCounter_Apply() {
	client, _ := crdt.NewPNCounter("c1", crdt.Limits{})
	server, _ := crdt.NewPNCounter("server", crdt.Limits{})

	op, _ := client.Increment(1)
	fmt.Println(server.Apply(op))
	fmt.Println(server.Apply(op))
	fmt.Println(server.Value())
	// Output:
	// <nil>
	// crdt: duplicate op: node "c1" seq 1
	// 1
}

// Equal timestamps are decided by node id, whatever the arrival order.
func ExampleLWWRegister() {
	r, _ := crdt.NewLWWRegister("server", crdt.Limits{})
	_ = r.Apply(crdt.Op{Type: crdt.TypeLWWRegister, NodeID: "c2", Timestamp: 1000, Op: crdt.OpSet, Value: json.RawMessage(`"from c2"`)})
	_ = r.Apply(crdt.Op{Type: crdt.TypeLWWRegister, NodeID: "c1", Timestamp: 1000, Op: crdt.OpSet, Value: json.RawMessage(`"from c1"`)})
	v, _ := r.Value()
	fmt.Println(string(v))
	// Output: "from c2"
}

// A delete travels in the state as a tombstone, so it reaches a replica
// that only ever receives states.
func ExampleLWWMap() {
	a, _ := crdt.NewLWWMap("a", crdt.Limits{})
	b, _ := crdt.NewLWWMap("b", crdt.Limits{})
	_, _ = a.Set("color", "blue", 1000)
	_, _ = a.Set("size", 3, 1000)
	_ = b.Merge(a.State())

	_, _ = a.Delete("color", 1001)
	_ = b.Merge(a.State())
	out, _ := json.Marshal(b.Value())
	fmt.Println(string(out))
	// Output: {"size":3}
}

// A server clamps client timestamps to its clock plus a skew, so a write
// stamped far in the future cannot pin a value forever.
func ExampleLimits() {
	now := time.UnixMilli(1_700_000_000_000)
	r, _ := crdt.NewLWWRegister("server", crdt.Limits{MaxSkew: time.Minute, Now: func() time.Time { return now }})
	_ = r.Apply(crdt.Op{Type: crdt.TypeLWWRegister, NodeID: "c1", Timestamp: 9_999_999_999_999, Op: crdt.OpSet, Value: json.RawMessage(`"stuck?"`)})
	fmt.Println(r.State().Metadata.Timestamp - now.UnixMilli())
	// Output: 60000
}

// New creates a CRDT by its wire type name, as a server does on the first
// op for a key; the state is what a CRDT_STATE frame carries.
func ExampleNew() {
	c, err := crdt.New("lww-map", "server", crdt.Limits{Now: func() time.Time { return time.UnixMilli(1_700_000_000_000) }})
	if err != nil {
		panic(err)
	}
	var op crdt.Op
	_ = json.Unmarshal([]byte(`{"type":"lww-map","nodeId":"c1","timestamp":1000,"op":"set","key":"color","value":"blue"}`), &op)
	if err := c.Apply(op); err != nil {
		panic(err)
	}
	state, _ := json.Marshal(c.State())
	fmt.Println(string(state))
	// Output: {"type":"lww-map","value":{"color":"blue"},"metadata":{"type":"lww-map","nodeId":"server","timestamp":1700000000000,"version":1,"fields":{"color":{"timestamp":1000,"nodeId":"c1"}}}}
}

// A replica checks a change against its byte budget before applying it: a
// write that would grow the state past Limits.MaxStateBytes is refused and
// changes nothing, while writes that do not grow it still apply.
func ExampleLimits_budget() {
	m, _ := crdt.NewLWWMap("server", crdt.Limits{MaxStateBytes: 4096, MaxValueBytes: 1024})
	big := strings.Repeat("x", 1000)

	err := m.Apply(crdt.Op{Type: crdt.TypeLWWMap, NodeID: "c1", Timestamp: 1, Op: crdt.OpSet, Key: "f", Value: json.RawMessage(`"` + strings.Repeat("x", 2000) + `"`)})
	fmt.Println(errors.Is(err, crdt.ErrTooLarge))

	for i := 0; ; i++ {
		if _, err = m.Set(fmt.Sprint("f", i), big, 1); err != nil {
			break
		}
	}
	fmt.Println(len(m.Value()), errors.Is(err, crdt.ErrTooLarge), m.Size() <= 4096)

	_, err = m.Set("f0", "short now", 2) // shrinks: always allowed
	fmt.Println(err)
	// Output:
	// true
	// 3 true true
	// <nil>
}

// Values holding members that would reach JavaScript prototypes are refused,
// wherever they sit.
func ExampleErrForbiddenValue() {
	m, _ := crdt.NewLWWMap("server", crdt.Limits{})
	err := m.Apply(crdt.Op{Type: crdt.TypeLWWMap, NodeID: "c1", Timestamp: 1, Op: crdt.OpSet, Key: "profile", Value: json.RawMessage(`{"tags":[{"__proto__":{"admin":true}}]}`)})
	fmt.Println(errors.Is(err, crdt.ErrForbiddenValue), len(m.Value()))
	// Output: true 0
}

// A server passes each client op through Owners.Apply with the sender's
// identity: the first writer under a node id owns it, and nobody else can
// write under it, so nobody can poison another client's op numbers.
func ExampleOwners() {
	votes, _ := crdt.NewPNCounter("server", crdt.Limits{})
	owners := crdt.NewOwners(crdt.Limits{})
	_ = owners.Bind(votes.NodeID(), "$server") // no client writes as the server

	alice, _ := crdt.NewPNCounter("c1", crdt.Limits{})
	op, _ := alice.Increment(1)
	fmt.Println(owners.Apply(votes, op, "alice"))

	forged := crdt.Op{Type: crdt.TypePNCounter, NodeID: "c1", Op: crdt.OpIncrement, Seq: crdt.MaxSafeInteger}
	fmt.Println(errors.Is(owners.Apply(votes, forged, "mallory"), crdt.ErrNodeOwned))

	op, _ = alice.Increment(1)
	fmt.Println(owners.Apply(votes, op, "alice"), votes.Value())
	// Output:
	// <nil>
	// true
	// <nil> 2
}

// A server stores a CRDT with its bindings as a Record and restores both
// from it; what it sends to clients is EncodedState, without the bindings.
func ExampleAppendRecord() {
	now := crdt.Limits{Now: func() time.Time { return time.UnixMilli(1_700_000_000_000) }}
	votes, _ := crdt.NewPNCounter("server", now)
	owners := crdt.NewOwners(now)
	_ = owners.Apply(votes, crdt.Op{Type: crdt.TypePNCounter, NodeID: "c1", Op: crdt.OpIncrement, Seq: 1}, "alice")

	stored := crdt.AppendRecord(nil, votes, owners)
	fmt.Println(string(stored))
	fmt.Println(string(votes.EncodedState()))

	restored, _ := crdt.NewPNCounter("server", now)
	restoredOwners := crdt.NewOwners(now)
	_ = crdt.MergeRecord(restored, restoredOwners, stored)
	claim, _ := restoredOwners.Owner("c1")
	fmt.Println(restored.Value(), claim.Owner)
	// Output:
	// {"type":"pn-counter","value":1,"metadata":{"type":"pn-counter","nodeId":"server","timestamp":1700000000000,"version":1,"vector":{"increments":{"c1":1,"server":0},"decrements":{"server":0}},"seqs":{"c1":1}},"owners":{"c1":{"owner":"alice","timestamp":1700000000000}}}
	// {"type":"pn-counter","value":1,"metadata":{"type":"pn-counter","nodeId":"server","timestamp":1700000000000,"version":1,"vector":{"increments":{"c1":1,"server":0},"decrements":{"server":0}},"seqs":{"c1":1}}}
	// 1 alice
}
