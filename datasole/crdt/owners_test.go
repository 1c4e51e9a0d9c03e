package crdt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

func incOp(node string, seq uint64) Op {
	return Op{Type: TypePNCounter, NodeID: node, Op: OpIncrement, Seq: seq}
}

// Finding 3: with bindings, nobody writes under a node id that another
// owner used first.
func TestOwnersStopImpersonation(t *testing.T) {
	c, _ := NewPNCounter("server", Limits{})
	o := NewOwners(Limits{})
	alice, _ := NewPNCounter("c1", Limits{})
	op, _ := alice.Increment(1)
	if err := o.Apply(c, op, "alice"); err != nil {
		t.Fatal(err)
	}
	before := bytes.Clone(c.EncodedState())
	for _, evil := range []Op{incOp("c1", MaxSafeInteger), incOp("c1", 2), incOp("c1", 0)} {
		if err := o.Apply(c, evil, "mallory"); !errors.Is(err, ErrNodeOwned) {
			t.Fatalf("op %+v by another owner: error %v, want ErrNodeOwned", evil, err)
		}
	}
	if !bytes.Equal(before, c.EncodedState()) {
		t.Fatal("a refused op changed the counter")
	}
	for range 3 {
		op, _ := alice.Increment(1)
		if err := o.Apply(c, op, "alice"); err != nil {
			t.Fatalf("alice's next op: %v", err)
		}
	}
	if c.Value() != 4 {
		t.Fatalf("value %d, want 4", c.Value())
	}
	if cl, ok := o.Owner("c1"); !ok || cl.Owner != "alice" {
		t.Fatalf("c1 bound to %+v", cl)
	}
	if err := o.Apply(c, incOp("m1", 1), "mallory"); err != nil {
		t.Fatalf("mallory under her own node id: %v", err)
	}
}

func TestOwnersBindOnlyWhatApplied(t *testing.T) {
	c, _ := NewPNCounter("server", Limits{MaxNodes: 2})
	o := NewOwners(Limits{})
	bad := incOp("n1", 1)
	bad.Value = json.RawMessage(`-1`)
	if err := o.Apply(c, bad, "mallory"); !errors.Is(err, ErrInvalidOp) {
		t.Fatalf("error %v, want ErrInvalidOp", err)
	}
	if _, ok := o.Owner("n1"); ok {
		t.Fatal("a refused op bound its node id")
	}
	if err := c.Apply(incOp("n2", 1)); err != nil { // counted before bindings existed
		t.Fatal(err)
	}
	if err := o.Apply(c, incOp("n2", 1), "mallory"); !errors.Is(err, ErrDuplicateOp) {
		t.Fatalf("error %v, want ErrDuplicateOp", err)
	}
	if _, ok := o.Owner("n2"); ok {
		t.Fatal("a duplicate bound its node id")
	}
	if err := o.Apply(c, incOp("n2", 2), "bob"); err != nil {
		t.Fatal(err)
	}
	if err := o.Apply(c, incOp("n3", 1), "bob"); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a node past MaxNodes: error %v, want ErrTooLarge", err)
	}
	if o.Len() != 1 {
		t.Fatalf("%d bindings, want 1", o.Len())
	}
}

func TestOwnersBind(t *testing.T) {
	t.Run("a server binds its own node id so that clients cannot use it", func(t *testing.T) {
		c, _ := NewPNCounter("server-1", Limits{})
		o := NewOwners(Limits{})
		if err := o.Bind(c.NodeID(), "$server"); err != nil {
			t.Fatal(err)
		}
		if err := o.Apply(c, incOp("server-1", 9), "mallory"); !errors.Is(err, ErrNodeOwned) {
			t.Fatalf("error %v, want ErrNodeOwned", err)
		}
		if err := o.Bind(c.NodeID(), "$server"); err != nil {
			t.Fatalf("binding again to the same owner: %v", err)
		}
	})
	t.Run("bad owners and node ids are refused", func(t *testing.T) {
		o := NewOwners(Limits{})
		for _, tc := range []struct {
			node, owner string
			want        error
		}{
			{"n", "", ErrInvalidOwner},
			{"n", strings.Repeat("o", MaxOwnerLen+1), ErrInvalidOwner},
			{"", "alice", ErrInvalidNodeID},
			{strings.Repeat("n", 129), "alice", ErrInvalidNodeID},
		} {
			if err := o.Bind(tc.node, tc.owner); !errors.Is(err, tc.want) {
				t.Errorf("Bind(%.10q, %.10q): error %v, want %v", tc.node, tc.owner, err, tc.want)
			}
		}
		if o.Len() != 0 {
			t.Fatal("a refused binding was kept")
		}
	})
	t.Run("MaxNodesPerOwner bounds one owner's node ids", func(t *testing.T) {
		o := NewOwners(Limits{MaxNodesPerOwner: 2})
		for i := range 2 {
			if err := o.Bind(fmt.Sprint("n", i), "mallory"); err != nil {
				t.Fatal(err)
			}
		}
		if err := o.Bind("n2", "mallory"); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("error %v, want ErrTooLarge", err)
		}
		if err := o.Bind("n2", "alice"); err != nil {
			t.Fatalf("another owner: %v", err)
		}
	})
	t.Run("MaxEntries and MaxStateBytes bound the bindings", func(t *testing.T) {
		o := NewOwners(Limits{MaxEntries: 3})
		for i := range 3 {
			if err := o.Bind(fmt.Sprint("n", i), fmt.Sprint("u", i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := o.Bind("n3", "u3"); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("past MaxEntries: error %v, want ErrTooLarge", err)
		}
		o = NewOwners(Limits{MaxStateBytes: 200})
		err := o.Bind("n0", strings.Repeat("u", 100))
		if err == nil {
			err = o.Bind("n1", strings.Repeat("u", 100))
		}
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("past MaxStateBytes: error %v, want ErrTooLarge", err)
		}
	})
}

// Two server nodes bind the same node id at about the same time; once
// they exchanged records, both hold the earlier claim.
func TestOwnersMergeEarliestClaimWins(t *testing.T) {
	clock := int64(1000)
	lim := Limits{Now: func() time.Time { return time.UnixMilli(clock) }}
	a, b := NewOwners(lim), NewOwners(lim)
	if err := a.Bind("c1", "alice"); err != nil {
		t.Fatal(err)
	}
	clock++
	if err := b.Bind("c1", "mallory"); err != nil {
		t.Fatal(err)
	}
	if err := b.Bind("m1", "mallory"); err != nil {
		t.Fatal(err)
	}
	if err := a.Merge(b.Claims()); err != nil {
		t.Fatal(err)
	}
	if err := b.Merge(a.Claims()); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.Claims(), b.Claims()) {
		t.Fatalf("bindings differ:\n%v\n%v", a.Claims(), b.Claims())
	}
	if cl, _ := b.Owner("c1"); cl.Owner != "alice" {
		t.Fatalf("c1 bound to %+v, want alice's earlier claim", cl)
	}
	if err := b.Bind("c1", "mallory"); !errors.Is(err, ErrNodeOwned) {
		t.Fatalf("mallory after the merge: error %v, want ErrNodeOwned", err)
	}
	if err := b.Bind("n9", "mallory"); err != nil {
		t.Fatal(err)
	}
}

func TestOwnersMergeIsCommutativeAssociativeAndIdempotent(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		draw := func(label string) map[string]Claim {
			return rapid.MapOf(rapid.SampledFrom([]string{"a", "b", "c", "d", ""}), rapid.Custom(func(t *rapid.T) Claim {
				return Claim{Owner: rapid.SampledFrom([]string{"u1", "u2", "u3", ""}).Draw(t, "owner"), Timestamp: rapid.Int64Range(-1, 3).Draw(t, "ts")}
			})).Draw(t, label)
		}
		join := func(sets ...map[string]Claim) map[string]Claim {
			o := NewOwners(Limits{})
			for _, s := range sets {
				if err := o.Merge(s); err != nil {
					t.Fatal(err)
				}
			}
			return o.Claims()
		}
		x, y, z := draw("x"), draw("y"), draw("z")
		if got, want := join(x, y), join(y, x); !reflect.DeepEqual(got, want) {
			t.Fatalf("x⊔y = %v\ny⊔x = %v", got, want)
		}
		if got, want := join(join(x, y), z), join(x, join(y, z)); !reflect.DeepEqual(got, want) {
			t.Fatalf("(x⊔y)⊔z = %v\nx⊔(y⊔z) = %v", got, want)
		}
		if got, want := join(x, x), join(x); !reflect.DeepEqual(got, want) {
			t.Fatalf("x⊔x = %v\nx = %v", got, want)
		}
	})
}

func TestOwnersMergeLimits(t *testing.T) {
	o := NewOwners(Limits{MaxEntries: 2})
	if err := o.Merge(map[string]Claim{"a": {"u", 1}, "b": {"u", 1}, "": {"u", 1}, "c": {"", 1}, "d": {"u", -1}}); err != nil {
		t.Fatal(err)
	}
	if o.Len() != 2 {
		t.Fatalf("%d bindings, want the 2 valid ones", o.Len())
	}
	before := bytes.Clone(o.encoded())
	if err := o.Merge(map[string]Claim{"e": {"u", 1}}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("error %v, want ErrTooLarge", err)
	}
	if !bytes.Equal(before, o.encoded()) {
		t.Fatal("a refused merge changed the bindings")
	}
}

// The owners travel with the state between servers and the store, never in
// what clients receive.
func TestRecords(t *testing.T) {
	lim := Limits{Now: fixedClock(1_700_000_000_000)}
	c, _ := NewPNCounter("server-1", lim)
	o := NewOwners(lim)
	if err := o.Apply(c, incOp("c1", 1), "user-secret-42"); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(c.EncodedState(), []byte("user-secret-42")) {
		t.Fatal("the client state holds an owner")
	}
	rec := AppendRecord(nil, c, o)
	if !bytes.Contains(rec, []byte(`"owners":{"c1":{"owner":"user-secret-42","timestamp":1700000000000}}`)) {
		t.Fatalf("record %s lacks the owners", rec)
	}
	t.Run("a record restores state and owners on another node", func(t *testing.T) {
		c2, _ := NewPNCounter("server-2", lim)
		o2 := NewOwners(lim)
		if err := MergeRecord(c2, o2, rec); err != nil {
			t.Fatal(err)
		}
		if c2.Value() != 1 || c2.State().Metadata.Seqs["c1"] != 1 || !reflect.DeepEqual(o2.Claims(), o.Claims()) {
			t.Fatalf("restored %s %v, want c1's op and %v", c2.EncodedState(), o2.Claims(), o.Claims())
		}
		if err := o2.Apply(c2, incOp("c1", 2), "mallory"); !errors.Is(err, ErrNodeOwned) {
			t.Fatalf("error %v, want ErrNodeOwned", err)
		}
	})
	t.Run("a server that does not know owners reads a record as a state", func(t *testing.T) {
		var s State
		if err := json.Unmarshal(rec, &s); err != nil {
			t.Fatal(err)
		}
		c3, _ := NewPNCounter("server-3", lim)
		if err := c3.Merge(s); err != nil || c3.Value() != 1 {
			t.Fatalf("value %d, err %v", c3.Value(), err)
		}
	})
	t.Run("a plain state stored before owners existed is a record without owners", func(t *testing.T) {
		c4, _ := NewPNCounter("server-4", lim)
		o4 := NewOwners(lim)
		if err := MergeRecord(c4, o4, c.EncodedState()); err != nil {
			t.Fatal(err)
		}
		if c4.Value() != 1 || o4.Len() != 0 {
			t.Fatalf("value %d, %d owners", c4.Value(), o4.Len())
		}
		if got := AppendRecord(nil, c4, o4); !bytes.Equal(got, c4.EncodedState()) {
			t.Fatalf("record without owners %s, want the plain state", got)
		}
	})
	t.Run("a malformed record is refused", func(t *testing.T) {
		if err := MergeRecord(c, o, []byte(`{"type":`)); !errors.Is(err, ErrInvalidState) {
			t.Fatalf("error %v, want ErrInvalidState", err)
		}
	})
	t.Run("the owners' encoding is cached until a change", func(t *testing.T) {
		a, b := o.encoded(), o.encoded()
		if &a[0] != &b[0] {
			t.Fatal("encoded again without a change")
		}
		if err := o.Bind("c9", "bob"); err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(a, o.encoded()) {
			t.Fatal("stale encoding after a change")
		}
		want, _ := json.Marshal(o.Claims())
		if got, _ := json.Marshal(o); !bytes.Equal(got, want) {
			t.Fatalf("MarshalJSON %s, want %s", got, want)
		}
	})
}
