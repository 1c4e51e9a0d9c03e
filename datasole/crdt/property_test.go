package crdt

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"pgregory.net/rapid"
)

// Replicas exchange ops and states over a network that delays, reorders and
// duplicates messages. Whatever it does, replicas that have seen everything
// must hold the same state.

type message struct {
	op    *Op
	state *State
}

// kind describes how to make and drive replicas of one CRDT type.
type kind struct {
	typ string
	// local performs a random local change and returns the op to ship.
	local func(t *rapid.T, c CRDT) Op
}

var kinds = []kind{
	{TypePNCounter, func(t *rapid.T, c CRDT) Op {
		n := rapid.Uint64Range(0, 5).Draw(t, "amount")
		var op Op
		var err error
		if rapid.Bool().Draw(t, "increment") {
			op, err = c.(*PNCounter).Increment(n)
		} else {
			op, err = c.(*PNCounter).Decrement(n)
		}
		if err != nil {
			t.Fatal(err)
		}
		return op
	}},
	{TypeLWWRegister, func(t *rapid.T, c CRDT) Op {
		op, err := c.(*LWWRegister).Set(rapid.IntRange(0, 3).Draw(t, "value"), rapid.Int64Range(1000, 1004).Draw(t, "ts"))
		if err != nil {
			t.Fatal(err)
		}
		return op
	}},
	{TypeLWWMap, func(t *rapid.T, c CRDT) Op {
		m := c.(*LWWMap)
		field := rapid.SampledFrom([]string{"a", "b", "c"}).Draw(t, "field")
		ts := rapid.Int64Range(1000, 1004).Draw(t, "ts")
		var op Op
		var err error
		if rapid.IntRange(0, 2).Draw(t, "delete") == 0 {
			op, err = m.Delete(field, ts)
		} else {
			op, err = m.Set(field, rapid.IntRange(0, 3).Draw(t, "value"), ts)
		}
		if err != nil {
			t.Fatal(err)
		}
		return op
	}},
}

// view is a state without what legitimately differs between converged
// replicas: the producer's node id, version and (counter, map) snapshot time.
func view(t interface {
	Helper()
	Fatal(...any)
}, s State) string {
	t.Helper()
	md := *s.Metadata
	md.NodeID, md.Version = "", 0
	if s.Type != TypeLWWRegister {
		md.Timestamp = 0
	}
	s.Metadata = &md
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func deliver(t *rapid.T, c CRDT, m message) {
	var err error
	if m.op != nil {
		err = c.Apply(*m.op)
	} else {
		err = c.Merge(*m.state)
	}
	if err != nil && !isDuplicate(err) {
		t.Fatalf("deliver to %s: %v", c.NodeID(), err)
	}
}

func isDuplicate(err error) bool { return errors.Is(err, ErrDuplicateOp) }

func TestReplicasConvergeUnderDelayReorderAndDuplication(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.typ, func(t *testing.T) {
			rapid.Check(t, func(t *rapid.T) {
				n := rapid.IntRange(3, 5).Draw(t, "replicas")
				replicas := make([]CRDT, n)
				inbox := make([][]message, n)
				for i := range replicas {
					c, err := New(k.typ, fmt.Sprintf("n%d", i), Limits{Now: fixedClock(1_700_000_000_000)})
					if err != nil {
						t.Fatal(err)
					}
					replicas[i] = c
				}
				// Counters: what each node really added, to check that no
				// replica ever counts more.
				truth := map[string][2]uint64{}
				checkNoOvercount := func() {
					if k.typ != TypePNCounter {
						return
					}
					for _, c := range replicas {
						v := c.State().Metadata.Vector
						for node, tr := range truth {
							if v.Increments[node] > tr[0] || v.Decrements[node] > tr[1] {
								t.Fatalf("%s counts %s as +%d −%d, more than its +%d −%d", c.NodeID(), node, v.Increments[node], v.Decrements[node], tr[0], tr[1])
							}
						}
					}
				}
				for range rapid.IntRange(10, 60).Draw(t, "steps") {
					i := rapid.IntRange(0, n-1).Draw(t, "replica")
					switch rapid.IntRange(0, 9).Draw(t, "action") {
					case 0, 1, 2, 3:
						op := k.local(t, replicas[i])
						if k.typ == TypePNCounter {
							tr := truth[op.NodeID]
							amount, _ := op.amount()
							if op.Op == OpIncrement {
								tr[0] += amount
							} else {
								tr[1] += amount
							}
							truth[op.NodeID] = tr
						}
						for j := range replicas {
							if j != i {
								inbox[j] = append(inbox[j], message{op: &op})
							}
						}
					case 4:
						s := replicas[i].State()
						j := rapid.IntRange(0, n-1).Draw(t, "to")
						inbox[j] = append(inbox[j], message{state: &s})
					default:
						if len(inbox[i]) == 0 {
							continue
						}
						x := rapid.IntRange(0, len(inbox[i])-1).Draw(t, "message")
						deliver(t, replicas[i], inbox[i][x])
						if !rapid.Bool().Draw(t, "duplicate later") {
							inbox[i] = append(inbox[i][:x], inbox[i][x+1:]...)
						}
					}
					checkNoOvercount()
				}
				for i := range replicas {
					for len(inbox[i]) > 0 {
						x := rapid.IntRange(0, len(inbox[i])-1).Draw(t, "late message")
						deliver(t, replicas[i], inbox[i][x])
						inbox[i] = append(inbox[i][:x], inbox[i][x+1:]...)
					}
				}
				checkNoOvercount()
				if k.typ == TypePNCounter {
					// Ops the window had to drop are recovered from states.
					states := make([]State, n)
					for i, c := range replicas {
						states[i] = c.State()
					}
					for _, c := range replicas {
						for _, s := range states {
							if err := c.Merge(s); err != nil {
								t.Fatal(err)
							}
						}
					}
					var want int64
					for _, tr := range truth {
						want += int64(tr[0]) - int64(tr[1])
					}
					if got := replicas[0].(*PNCounter).Value(); got != want {
						t.Fatalf("value %d, want %d", got, want)
					}
				}
				first := view(t, replicas[0].State())
				for _, c := range replicas[1:] {
					if got := view(t, c.State()); got != first {
						t.Fatalf("replicas diverged:\n%s: %s\n%s: %s", replicas[0].NodeID(), first, c.NodeID(), got)
					}
				}
			})
		})
	}
}

func TestCounterOpsCountOnceWhenReorderedAndDuplicated(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var ops []Op
		var want int64
		for i := range rapid.IntRange(1, 3).Draw(t, "writers") {
			w, _ := NewPNCounter(fmt.Sprintf("w%d", i), Limits{})
			for range rapid.IntRange(0, 40).Draw(t, "ops") {
				n := rapid.Uint64Range(1, 9).Draw(t, "amount")
				op, err := w.Increment(n)
				if err != nil {
					t.Fatal(err)
				}
				ops = append(ops, op)
				want += int64(n)
			}
		}
		// Every op at least once, some twice, in any order.
		deliveries := append([]Op(nil), ops...)
		for _, op := range ops {
			if rapid.Bool().Draw(t, "duplicate") {
				deliveries = append(deliveries, op)
			}
		}
		deliveries = rapid.Permutation(deliveries).Draw(t, "order")
		r, _ := NewPNCounter("server", Limits{})
		for _, op := range deliveries {
			if err := r.Apply(op); err != nil && !isDuplicate(err) {
				t.Fatal(err)
			}
		}
		if r.Value() != want {
			t.Fatalf("value %d, want %d", r.Value(), want)
		}
	})
}

// randomState draws a state of type typ written by several nodes.
func randomState(t *rapid.T, typ string) State {
	if typ == TypePNCounter {
		nodes := []string{"a", "b", "c", "x"}
		counts := func(label string) Counts {
			return rapid.MapOf(rapid.SampledFrom(nodes), rapid.Uint64Range(0, 20)).Draw(t, label)
		}
		return State{Type: typ, Metadata: &Metadata{
			Type:   typ,
			NodeID: rapid.SampledFrom(nodes).Draw(t, "node"),
			Vector: &Vector{Increments: counts("inc"), Decrements: counts("dec")},
			Seqs:   counts("seqs"),
		}}
	}
	k := kinds[1]
	if typ == TypeLWWMap {
		k = kinds[2]
	}
	nodes := []string{"a", "b", "c"}
	writers := make([]CRDT, len(nodes))
	for i, node := range nodes {
		writers[i], _ = New(typ, node, Limits{})
	}
	r := writers[0]
	for range rapid.IntRange(0, 8).Draw(t, "writes") {
		op := k.local(t, writers[rapid.IntRange(0, len(nodes)-1).Draw(t, "writer")])
		if err := r.Apply(op); err != nil {
			t.Fatal(err)
		}
	}
	return r.State()
}

func TestMergeIsCommutativeAssociativeAndIdempotent(t *testing.T) {
	for _, typ := range []string{TypePNCounter, TypeLWWRegister, TypeLWWMap} {
		t.Run(typ, func(t *testing.T) {
			rapid.Check(t, func(t *rapid.T) {
				join := func(states ...State) State {
					r, _ := New(typ, "x", Limits{})
					for _, s := range states {
						if err := r.Merge(s); err != nil {
							t.Fatal(err)
						}
					}
					return r.State()
				}
				a, b, c := randomState(t, typ), randomState(t, typ), randomState(t, typ)
				if got, want := view(t, join(a, b)), view(t, join(b, a)); got != want {
					t.Fatalf("a⊔b = %s\nb⊔a = %s", got, want)
				}
				if got, want := view(t, join(join(a, b), c)), view(t, join(a, join(b, c))); got != want {
					t.Fatalf("(a⊔b)⊔c = %s\na⊔(b⊔c) = %s", got, want)
				}
				if got, want := view(t, join(a, a)), view(t, join(a)); got != want {
					t.Fatalf("a⊔a = %s\na = %s", got, want)
				}
				if got, want := view(t, join(join(a, b), b)), view(t, join(a, b)); got != want {
					t.Fatalf("(a⊔b)⊔b = %s\na⊔b = %s", got, want)
				}
			})
		})
	}
}
