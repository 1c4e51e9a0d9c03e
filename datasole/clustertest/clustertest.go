// Package clustertest is the multi-node test suite every backend runs: three
// datasole servers, each with its own backend client, and Go clients spread
// across them. It checks that pushes, state changes and CRDT operations
// started on any node reach every right client exactly once, in order per
// key, and that a late joiner on another node gets the current snapshot.
package clustertest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/datasole/datasole-go/datasole/client"
	"github.com/datasole/datasole-go/datasole/crdt"
)

// NewBackend returns a backend client for one node. All the clients it
// returns must share one store and bus (one Redis, one Postgres, or memory
// backends joined with MemoryOptions.Peer); the function closes them when
// the test ends.
type NewBackend func(t *testing.T) backend.Backend

// NewCluster returns a NewBackend for a fresh, empty namespace (a new key
// prefix, or a new memory store), so that each scenario starts clean.
type NewCluster func(t *testing.T) NewBackend

// Node is one server of the test cluster.
type Node struct {
	DS  *datasole.Server
	URL string
	hs  *httptest.Server
}

// Start runs n nodes on loopback, each on its own backend client.
func Start(t *testing.T, n int, newBackend NewBackend, setup func(*datasole.Server)) []*Node {
	t.Helper()
	nodes := make([]*Node, n)
	for i := range nodes {
		ds, err := datasole.New(datasole.Options{
			Backend: newBackend(t),
			Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
			Auth: func(r *http.Request) (*datasole.Principal, error) {
				return &datasole.Principal{UserID: r.URL.Query().Get("token")}, nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := ds.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		ds.HandleRPC("sset", func(c *datasole.Context, p json.RawMessage) (any, error) {
			return nil, c.Session().Set("note", p)
		})
		ds.HandleRPC("sget", func(c *datasole.Context, _ json.RawMessage) (any, error) {
			v, _ := c.Session().Get("note")
			return v, nil
		})
		ds.HandleRPC("join", func(c *datasole.Context, p json.RawMessage) (any, error) {
			var tag string
			json.Unmarshal(p, &tag)
			c.Conn().Tag(tag)
			return nil, nil
		})
		if setup != nil {
			setup(ds)
		}
		hs := httptest.NewServer(ds.Handler())
		nodes[i] = &Node{DS: ds, URL: hs.URL, hs: hs}
	}
	t.Cleanup(func() {
		for _, nd := range nodes {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			nd.DS.Close(ctx)
			cancel()
			nd.hs.Close()
		}
	})
	return nodes
}

// Dial connects a client as user to node.
func Dial(t testing.TB, nd *Node, user string) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, nd.URL, client.Options{Token: user, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

type inbox struct {
	mu  sync.Mutex
	got []string
}

func (b *inbox) add(s string) { b.mu.Lock(); b.got = append(b.got, s); b.mu.Unlock() }
func (b *inbox) list() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.got...)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Run runs the whole multi-node suite.
func Run(t *testing.T, newCluster NewCluster) {
	t.Run("pushes reach every right client on every node exactly once", func(t *testing.T) { testPushes(t, newCluster(t)) })
	t.Run("state set on any node converges everywhere, in order, late joiners included", func(t *testing.T) { testState(t, newCluster(t)) })
	t.Run("crdt ops on any node are applied once and converge everywhere", func(t *testing.T) { testCRDT(t, newCluster(t)) })
	t.Run("a restarted node restores state and crdts from the store", func(t *testing.T) { testRestore(t, newCluster(t)) })
	t.Run("a session change on one node reaches the user's connection on another", func(t *testing.T) { testSessions(t, newCluster(t)) })
}

// MemoryCluster is a NewCluster of memory backends joined as peers: nodes in
// one process sharing one store and bus, the way processes share one Redis.
func MemoryCluster(t *testing.T) NewBackend {
	var mu sync.Mutex
	var first *backend.Memory
	return func(t *testing.T) backend.Backend {
		mu.Lock()
		defer mu.Unlock()
		var b *backend.Memory
		if first == nil {
			b = backend.NewMemory(backend.MemoryOptions{})
			first = b
		} else {
			b = backend.NewMemory(backend.MemoryOptions{Peer: first})
		}
		t.Cleanup(func() { b.Close() })
		return b
	}
}

func testPushes(t *testing.T, newBackend NewBackend) {
	nodes := Start(t, 3, newBackend, nil)
	ctx := context.Background()
	type member struct {
		user, tag string
		node      int
	}
	members := []member{{"ann", "red", 0}, {"ann", "blue", 1}, {"bob", "red", 2}, {"cid", "blue", 0}, {"dee", "", 1}}
	boxes := make([]*inbox, len(members))
	for i, m := range members {
		c := Dial(t, nodes[m.node], m.user)
		boxes[i] = &inbox{}
		box := boxes[i]
		c.On("note", func(d json.RawMessage) { box.add(string(d)) })
		if m.tag != "" {
			if err := c.Call(ctx, "join", m.tag, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, nd := range nodes {
		want := 0
		for _, m := range members {
			if m.node == i {
				want++
			}
		}
		eventually(t, "every member to be attached", func() bool { return nd.DS.ConnectionCount() == want })
	}
	// Each node sends one push of each kind.
	for i, nd := range nodes {
		nd.DS.Broadcast("note", fmt.Sprintf("all-%d", i))
		nd.DS.Send(datasole.ToUser("ann"), "note", fmt.Sprintf("ann-%d", i))
		nd.DS.Send(datasole.ToTag("red"), "note", fmt.Sprintf("red-%d", i))
	}
	want := func(m member) []string {
		var w []string
		for i := range nodes {
			w = append(w, fmt.Sprintf(`"all-%d"`, i))
			if m.user == "ann" {
				w = append(w, fmt.Sprintf(`"ann-%d"`, i))
			}
			if m.tag == "red" {
				w = append(w, fmt.Sprintf(`"red-%d"`, i))
			}
		}
		return w
	}
	for i, m := range members {
		w := want(m)
		eventually(t, fmt.Sprintf("%s@%d to get %d notes", m.user, m.node, len(w)), func() bool { return len(boxes[i].list()) >= len(w) })
	}
	time.Sleep(100 * time.Millisecond) // duplicates would arrive by now
	for i, m := range members {
		got := boxes[i].list()
		w := want(m)
		if len(got) != len(w) {
			t.Fatalf("%s@node%d got %v, want each of %v exactly once", m.user, m.node, got, w)
		}
		seen := map[string]int{}
		for _, g := range got {
			seen[g]++
		}
		for _, x := range w {
			if seen[x] != 1 {
				t.Fatalf("%s@node%d got %v, want each of %v exactly once", m.user, m.node, got, w)
			}
		}
	}
}

func testState(t *testing.T, newBackend NewBackend) {
	nodes := Start(t, 3, newBackend, nil)
	ctx := context.Background()
	clients := []*client.Client{Dial(t, nodes[0], "a"), Dial(t, nodes[1], "b"), Dial(t, nodes[2], "c")}
	var mu sync.Mutex
	seen := make([][]int, len(clients))
	for i, c := range clients {
		c.SubscribeStateRaw("dash", func(v json.RawMessage, _ uint64) {
			var d struct{ N int }
			json.Unmarshal(v, &d)
			mu.Lock()
			seen[i] = append(seen[i], d.N)
			mu.Unlock()
		})
	}
	const steps = 30
	for i := 1; i <= steps; i++ {
		// Updates rotate over the nodes; each is a read-modify-write.
		err := nodes[i%3].DS.UpdateState(ctx, "dash", func(old json.RawMessage) (any, error) {
			var d struct{ N int }
			json.Unmarshal(old, &d)
			return map[string]int{"N": d.N + 1}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range clients {
		deadline := time.Now().Add(10 * time.Second)
		for {
			v, ver, _ := c.StateRaw("dash")
			if string(v) == fmt.Sprintf(`{"N":%d}`, steps) {
				break
			}
			if time.Now().After(deadline) {
				nv, nver, _ := nodes[i].DS.GetState("dash")
				t.Fatalf("client %d holds v%d %s; its node holds v%d %s; want N=%d", i, ver, v, nver, nv, steps)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	mu.Lock()
	for i, s := range seen {
		for j := 1; j < len(s); j++ {
			if s[j] <= s[j-1] {
				t.Fatalf("client %d saw values out of order: %v", i, s)
			}
		}
	}
	mu.Unlock()
	for i, nd := range nodes {
		_, ver, _ := nd.DS.GetState("dash")
		if ver != steps {
			t.Fatalf("node %d has version %d, want %d: an update was lost or doubled", i, ver, steps)
		}
	}
	late := Dial(t, nodes[2], "late")
	eventually(t, "a late joiner on another node to get the snapshot", func() bool {
		v, ver, _ := late.StateRaw("dash")
		return string(v) == fmt.Sprintf(`{"N":%d}`, steps) && ver == steps
	})
	// Per-user state set on one node reaches that user on another node only.
	nodes[0].DS.SetStateIn(ctx, datasole.ForUser("b"), "cart", []string{"tea"})
	eventually(t, "user b on node 1 to see its cart", func() bool {
		v, _, _ := clients[1].StateRaw("cart")
		return string(v) == `["tea"]`
	})
	if _, _, ok := clients[2].StateRaw("cart"); ok {
		t.Fatal("another user's state leaked across nodes")
	}
}

func testCRDT(t *testing.T, newBackend NewBackend) {
	nodes := Start(t, 3, newBackend, func(ds *datasole.Server) {
		ds.RegisterCRDTType("votes", datasole.Global(), crdt.TypePNCounter)
	})
	ctx := context.Background()
	var counters []*client.Counter
	for i, nd := range nodes {
		c := Dial(t, nd, fmt.Sprintf("u%d", i))
		k, err := c.Counter("votes")
		if err != nil {
			t.Fatal(err)
		}
		counters = append(counters, k)
	}
	for round := range 5 {
		for i, k := range counters {
			if err := k.Increment(ctx, uint64(i+1)); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
	const want = 5 * (1 + 2 + 3)
	for i, k := range counters {
		eventually(t, fmt.Sprintf("client %d to converge on %d", i, want), func() bool { return k.Value() == want })
	}
	for i, nd := range nodes {
		c, _ := nd.DS.CRDT("votes")
		eventually(t, fmt.Sprintf("node %d to converge", i), func() bool { return string(c.State().Value) == fmt.Sprint(want) })
	}
}

func testRestore(t *testing.T, newBackend NewBackend) {
	setup := func(ds *datasole.Server) { ds.RegisterCRDTType("likes", datasole.Global(), crdt.TypeLWWMap) }
	first := Start(t, 1, newBackend, setup)
	ctx := context.Background()
	if err := first[0].DS.SetState(ctx, "kept", map[string]int{"x": 7}); err != nil {
		t.Fatal(err)
	}
	if err := first[0].DS.UpdateCRDT(ctx, "likes", func(c crdt.CRDT) error {
		_, err := c.(*crdt.LWWMap).Set("a", 1, time.Now().UnixMilli())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	first[0].DS.Close(ctx)

	second := Start(t, 1, newBackend, setup)
	v, ver, ok := second[0].DS.GetState("kept")
	if !ok || string(v) != `{"x":7}` || ver != 1 {
		t.Fatalf("restored state %s v%d %v", v, ver, ok)
	}
	c, _ := second[0].DS.CRDT("likes")
	var got map[string]any
	json.Unmarshal(c.State().Value, &got)
	if !reflect.DeepEqual(got, map[string]any{"a": float64(1)}) {
		t.Fatalf("restored crdt %s", c.State().Value)
	}
}

func testSessions(t *testing.T, newBackend NewBackend) {
	nodes := Start(t, 2, newBackend, nil)
	ctx := context.Background()
	onA := Dial(t, nodes[0], "sam")
	onB := Dial(t, nodes[1], "sam")
	for _, nd := range nodes {
		eventually(t, "both connections to be attached", func() bool { return nd.DS.ConnectionCount() == 1 })
	}
	if err := onA.Call(ctx, "sset", "hello", nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the session change to reach node 1", func() bool {
		var v string
		return onB.Call(ctx, "sget", nil, &v) == nil && v == "hello"
	})
}

// Flow sets key on from to {"n": n} for n = start, start+1, … until the
// client to holds the latest value, and returns that n. While the store is
// down a change fails and is tried again; after a bus outage a change
// published before the subscription came back is repaired by the next one.
// It fails the test after 20 s.
func Flow(t testing.TB, from *datasole.Server, to *client.Client, key string, start int) int {
	t.Helper()
	ctx := context.Background()
	want := func(n int) string { return fmt.Sprintf(`{"n":%d}`, n) }
	deadline := time.Now().Add(20 * time.Second)
	for n := start; time.Now().Before(deadline); {
		if err := from.SetState(ctx, key, map[string]int{"n": n}); err != nil {
			time.Sleep(20 * time.Millisecond) // the store is not back yet
			continue
		}
		for wait := time.Now().Add(200 * time.Millisecond); time.Now().Before(wait); time.Sleep(5 * time.Millisecond) {
			if v, _, _ := to.StateRaw(key); string(v) == want(n) {
				return n
			}
		}
		n++
	}
	t.Fatalf("changes of %q never reached the client", key)
	return 0
}
