package crdt_test

import (
	"encoding/json"
	"fmt"
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
