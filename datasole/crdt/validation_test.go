package crdt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole/patch"
)

func mustNew(t interface {
	Helper()
	Fatal(...any)
}, typ, node string, lim Limits) CRDT {
	t.Helper()
	c, err := New(typ, node, lim)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestApplyRefusesInvalidOps(t *testing.T) {
	long := strings.Repeat("n", 129)
	cases := []struct {
		name string
		typ  string
		op   string
		want []error // nil: accepted
	}{
		{"a counter increment with an amount is accepted", TypePNCounter, `{"type":"pn-counter","nodeId":"c1","timestamp":1,"op":"increment","value":3}`, nil},
		{"a counter amount of zero is accepted", TypePNCounter, `{"type":"pn-counter","nodeId":"c1","timestamp":1,"op":"increment","value":0}`, nil},
		{"a counter amount written with an exponent is accepted", TypePNCounter, `{"type":"pn-counter","nodeId":"c1","timestamp":1,"op":"decrement","value":1e2}`, nil},
		{"a counter amount of null counts as one", TypePNCounter, `{"type":"pn-counter","nodeId":"c1","timestamp":1,"op":"increment","value":null}`, nil},
		{"a counter amount of exactly 2^53 is accepted", TypePNCounter, `{"type":"pn-counter","nodeId":"c1","timestamp":1,"op":"increment","value":9007199254740992}`, nil},
		{"a negative amount is refused", TypePNCounter, `{"type":"pn-counter","nodeId":"c1","timestamp":1,"op":"increment","value":-5}`, []error{ErrInvalidOp}},
		{"a string amount is refused", TypePNCounter, `{"type":"pn-counter","nodeId":"c1","timestamp":1,"op":"increment","value":"5"}`, []error{ErrInvalidOp}},
		{"a fractional amount is refused", TypePNCounter, `{"type":"pn-counter","nodeId":"c1","timestamp":1,"op":"increment","value":1.5}`, []error{ErrInvalidOp}},
		{"an amount above 2^53 is refused", TypePNCounter, `{"type":"pn-counter","nodeId":"c1","timestamp":1,"op":"increment","value":9007199254740993}`, []error{ErrInvalidOp}},
		{"an amount that is an object is refused", TypePNCounter, `{"type":"pn-counter","nodeId":"c1","timestamp":1,"op":"increment","value":{}}`, []error{ErrInvalidOp}},
		{"an unknown counter op is refused", TypePNCounter, `{"type":"pn-counter","nodeId":"c1","timestamp":1,"op":"set","value":1}`, []error{ErrInvalidOp}},
		{"an op of another type is refused", TypePNCounter, `{"type":"lww-register","nodeId":"c1","timestamp":1,"op":"set","value":1}`, []error{ErrTypeMismatch}},
		{"an op without type is refused", TypeLWWMap, `{"nodeId":"c1","timestamp":1,"op":"set","key":"a","value":1}`, []error{ErrTypeMismatch}},
		{"an empty node id is refused", TypePNCounter, `{"type":"pn-counter","nodeId":"","timestamp":1,"op":"increment"}`, []error{ErrInvalidOp, ErrInvalidNodeID}},
		{"a node id over 128 bytes is refused", TypeLWWRegister, `{"type":"lww-register","nodeId":"` + long + `","timestamp":1,"op":"set","value":1}`, []error{ErrInvalidOp, ErrInvalidNodeID}},
		{"a negative timestamp is refused", TypeLWWRegister, `{"type":"lww-register","nodeId":"c1","timestamp":-1,"op":"set","value":1}`, []error{ErrInvalidOp}},
		{"a timestamp above 2^53 is refused", TypeLWWMap, `{"type":"lww-map","nodeId":"c1","timestamp":9007199254740993,"op":"set","key":"a","value":1}`, []error{ErrInvalidOp}},
		{"a seq above 2^53 is refused", TypePNCounter, `{"type":"pn-counter","nodeId":"c1","timestamp":1,"op":"increment","seq":9007199254740993}`, []error{ErrInvalidOp}},
		{"a register set of null is accepted", TypeLWWRegister, `{"type":"lww-register","nodeId":"c1","timestamp":1,"op":"set","value":null}`, nil},
		{"a register set without value is refused", TypeLWWRegister, `{"type":"lww-register","nodeId":"c1","timestamp":1,"op":"set"}`, []error{ErrInvalidOp}},
		{"a register remove is refused", TypeLWWRegister, `{"type":"lww-register","nodeId":"c1","timestamp":1,"op":"remove"}`, []error{ErrInvalidOp}},
		{"a map set is accepted", TypeLWWMap, `{"type":"lww-map","nodeId":"c1","timestamp":1,"op":"set","key":"color","value":"blue"}`, nil},
		{"a map remove of an unknown field is accepted", TypeLWWMap, `{"type":"lww-map","nodeId":"c1","timestamp":1,"op":"remove","key":"color"}`, nil},
		{"a map op without key is refused", TypeLWWMap, `{"type":"lww-map","nodeId":"c1","timestamp":1,"op":"set","value":1}`, []error{ErrInvalidOp}},
		{"a map set without value is refused", TypeLWWMap, `{"type":"lww-map","nodeId":"c1","timestamp":1,"op":"set","key":"a"}`, []error{ErrInvalidOp}},
		{"a map field __proto__ is refused", TypeLWWMap, `{"type":"lww-map","nodeId":"c1","timestamp":1,"op":"set","key":"__proto__","value":1}`, []error{ErrInvalidOp, ErrForbiddenField}},
		{"a map field constructor is refused", TypeLWWMap, `{"type":"lww-map","nodeId":"c1","timestamp":1,"op":"remove","key":"constructor"}`, []error{ErrInvalidOp, ErrForbiddenField}},
		{"a map field prototype is refused", TypeLWWMap, `{"type":"lww-map","nodeId":"c1","timestamp":1,"op":"set","key":"prototype","value":1}`, []error{ErrInvalidOp, ErrForbiddenField}},
		{"an unknown map op is refused", TypeLWWMap, `{"type":"lww-map","nodeId":"c1","timestamp":1,"op":"delete","key":"a"}`, []error{ErrInvalidOp}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var op Op
			if err := json.Unmarshal([]byte(tc.op), &op); err != nil {
				t.Fatal(err)
			}
			c := mustNew(t, tc.typ, "server", Limits{})
			before := view(t, c.State())
			err := c.Apply(op)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			for _, want := range tc.want {
				if !errors.Is(err, want) {
					t.Errorf("error %v, want %v", err, want)
				}
			}
			if after := view(t, c.State()); after != before {
				t.Errorf("a refused op changed the state:\n%s\n%s", before, after)
			}
		})
	}
}

func TestMergeRefusesInvalidStates(t *testing.T) {
	cases := []struct {
		name  string
		typ   string
		state string
		want  error
	}{
		{"a state of another type is refused", TypePNCounter, `{"type":"lww-map","value":{},"metadata":{"type":"lww-map","nodeId":"X","timestamp":1,"version":1}}`, ErrTypeMismatch},
		{"a counter state without metadata is refused", TypePNCounter, `{"type":"pn-counter","value":3}`, ErrInvalidState},
		{"a counter state without vector is refused", TypePNCounter, `{"type":"pn-counter","value":3,"metadata":{"type":"pn-counter","nodeId":"X","timestamp":1,"version":1}}`, ErrInvalidState},
		{"a register state without writer or node id is refused", TypeLWWRegister, `{"type":"lww-register","value":1,"metadata":{"type":"lww-register","timestamp":1,"version":1}}`, ErrInvalidState},
		{"a register state with a negative timestamp is refused", TypeLWWRegister, `{"type":"lww-register","value":1,"metadata":{"type":"lww-register","nodeId":"X","timestamp":-1,"version":1}}`, ErrInvalidState},
		{"a map state whose value is not an object is refused", TypeLWWMap, `{"type":"lww-map","value":[1],"metadata":{"type":"lww-map","nodeId":"X","timestamp":1,"version":1}}`, ErrInvalidState},
		{"a map state whose value is null is refused", TypeLWWMap, `{"type":"lww-map","value":null,"metadata":{"type":"lww-map","nodeId":"X","timestamp":1,"version":1}}`, ErrInvalidState},
		{"a map state without node id is refused", TypeLWWMap, `{"type":"lww-map","value":{"a":1},"metadata":{"type":"lww-map","timestamp":1,"version":1}}`, ErrInvalidState},
		{"a map state above the field limit is refused", TypeLWWMap, `{"type":"lww-map","value":{"a":1,"b":2,"c":3},"metadata":{"type":"lww-map","nodeId":"X","timestamp":1,"version":1}}`, ErrTooLarge},
		{"a map state whose tombstones pass the field limit is refused", TypeLWWMap, `{"type":"lww-map","value":{"a":1},"metadata":{"type":"lww-map","nodeId":"X","timestamp":1,"version":1,"fields":{"b":{"timestamp":1,"nodeId":"X","deleted":true},"c":{"timestamp":1,"nodeId":"X","deleted":true}}}}`, ErrTooLarge},
		{"a counter state with more nodes than the limit is refused", TypePNCounter, `{"type":"pn-counter","value":3,"metadata":{"type":"pn-counter","nodeId":"X","timestamp":1,"version":1,"vector":{"increments":{"X":1,"Y":1},"decrements":{"Z":1}}}}`, ErrTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var s State
			if err := json.Unmarshal([]byte(tc.state), &s); err != nil {
				t.Fatal(err)
			}
			c := mustNew(t, tc.typ, "server", Limits{MaxEntries: 2})
			before := view(t, c.State())
			if err := c.Merge(s); !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if after := view(t, c.State()); after != before {
				t.Errorf("a refused state changed the replica:\n%s\n%s", before, after)
			}
		})
	}
}

func TestMergeSkipsMalformedEntries(t *testing.T) {
	t.Run("counter entries with bad counts or node ids are skipped, the rest merged", func(t *testing.T) {
		c, _ := NewPNCounter("A", Limits{})
		var s State
		long := strings.Repeat("n", 129)
		if err := json.Unmarshal([]byte(`{"type":"pn-counter","metadata":{"type":"pn-counter","nodeId":"X","timestamp":1,"version":1,
			"vector":{"increments":{"X":"7","Y":2,"Z":-1,"W":1.5,"`+long+`":4},"decrements":{"V":null}}}}`), &s); err != nil {
			t.Fatal(err)
		}
		if err := c.Merge(s); err != nil {
			t.Fatal(err)
		}
		if c.Value() != 2 {
			t.Errorf("value %d, want 2 (only Y merged)", c.Value())
		}
	})
	t.Run("map fields with forbidden names or bad stamps are skipped, the rest merged", func(t *testing.T) {
		m, _ := NewLWWMap("A", Limits{})
		var s State
		if err := json.Unmarshal([]byte(`{"type":"lww-map","value":{"__proto__":1,"ok":1,"bad":2,"":3},"metadata":{"type":"lww-map","nodeId":"X","timestamp":1,"version":1,
			"fields":{"bad":{"timestamp":-4,"nodeId":"X"},"ghost":{"timestamp":1,"nodeId":"X"}}}}`), &s); err != nil {
			t.Fatal(err)
		}
		if err := m.Merge(s); err != nil {
			t.Fatal(err)
		}
		got, _ := json.Marshal(m.Value())
		if string(got) != `{"ok":1}` {
			t.Errorf("value %s, want {\"ok\":1}", got)
		}
		if len(m.State().Metadata.Fields) != 1 {
			t.Errorf("fields %v, want only ok", m.State().Metadata.Fields)
		}
	})
}

func TestLimits(t *testing.T) {
	t.Run("a map refuses a new field beyond MaxEntries and counts tombstones", func(t *testing.T) {
		m, _ := NewLWWMap("A", Limits{MaxEntries: 2})
		if _, err := m.Set("a", 1, 1); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Delete("gone", 1); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Set("c", 1, 1); !errors.Is(err, ErrTooLarge) {
			t.Errorf("third field: error %v, want ErrTooLarge", err)
		}
		if _, err := m.Set("a", 2, 2); err != nil {
			t.Errorf("overwriting a known field: %v", err)
		}
	})
	t.Run("a counter refuses a new node beyond MaxEntries", func(t *testing.T) {
		c, _ := NewPNCounter("A", Limits{MaxEntries: 2})
		if err := c.Apply(Op{Type: TypePNCounter, NodeID: "B", Op: OpIncrement}); err != nil {
			t.Fatal(err)
		}
		if err := c.Apply(Op{Type: TypePNCounter, NodeID: "C", Op: OpIncrement}); !errors.Is(err, ErrTooLarge) {
			t.Errorf("third node: error %v, want ErrTooLarge", err)
		}
	})
	t.Run("a counter entry never passes 2^53", func(t *testing.T) {
		c, _ := NewPNCounter("A", Limits{})
		if _, err := c.Increment(MaxSafeInteger); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Increment(1); !errors.Is(err, ErrTooLarge) {
			t.Errorf("error %v, want ErrTooLarge", err)
		}
		if _, err := c.Decrement(MaxSafeInteger + 1); !errors.Is(err, ErrTooLarge) {
			t.Errorf("error %v, want ErrTooLarge", err)
		}
		if c.Value() != MaxSafeInteger {
			t.Errorf("value %d after refused changes, want 2^53", c.Value())
		}
	})
	t.Run("MaxNodeIDLen bounds node ids", func(t *testing.T) {
		if _, err := New(TypeLWWMap, "abcd", Limits{MaxNodeIDLen: 3}); !errors.Is(err, ErrInvalidNodeID) {
			t.Errorf("error %v, want ErrInvalidNodeID", err)
		}
		if _, err := New(TypeLWWMap, strings.Repeat("n", 128), Limits{}); err != nil {
			t.Errorf("128-byte node id: %v", err)
		}
	})
	t.Run("New refuses unknown types and empty node ids", func(t *testing.T) {
		if _, err := New("g-counter", "A", Limits{}); !errors.Is(err, ErrUnknownType) {
			t.Errorf("error %v, want ErrUnknownType", err)
		}
		if _, err := New(TypePNCounter, "", Limits{}); !errors.Is(err, ErrInvalidNodeID) {
			t.Errorf("error %v, want ErrInvalidNodeID", err)
		}
	})
	t.Run("local writes refuse invalid timestamps and forbidden fields", func(t *testing.T) {
		r, _ := NewLWWRegister("A", Limits{})
		if _, err := r.Set(1, -1); !errors.Is(err, ErrInvalidOp) {
			t.Errorf("register: error %v, want ErrInvalidOp", err)
		}
		if _, err := r.Set(func() {}, 1); err == nil {
			t.Error("register accepted a value JSON cannot encode")
		}
		m, _ := NewLWWMap("A", Limits{})
		if _, err := m.Set("__proto__", 1, 1); !errors.Is(err, ErrForbiddenField) {
			t.Errorf("map: error %v, want ErrForbiddenField", err)
		}
		if _, err := m.Delete("", 1); !errors.Is(err, ErrInvalidOp) {
			t.Errorf("map: error %v, want ErrInvalidOp", err)
		}
	})
}

func TestClamp(t *testing.T) {
	now := time.UnixMilli(1_000_000)
	cases := []struct {
		name string
		ts   int64
		want int64
	}{
		{"a past timestamp is kept", 10, 10},
		{"a timestamp within the skew is kept", 1_030_000, 1_030_000},
		{"a timestamp at the limit is kept", 1_060_000, 1_060_000},
		{"a timestamp beyond the skew is clamped", 9_999_999_999_999, 1_060_000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Clamp(tc.ts, now, time.Minute); got != tc.want {
				t.Errorf("Clamp(%d) = %d, want %d", tc.ts, got, tc.want)
			}
		})
	}
}

func TestTimestampsAreClampedOnApplyMergeAndSet(t *testing.T) {
	const now, limit = 1_000_000, 1_060_000
	lim := Limits{MaxSkew: time.Minute, Now: fixedClock(now)}
	future := int64(5_000_000)

	r, _ := NewLWWRegister("S", lim)
	if err := r.Apply(Op{Type: TypeLWWRegister, NodeID: "c1", Timestamp: future, Op: OpSet, Value: json.RawMessage(`1`)}); err != nil {
		t.Fatal(err)
	}
	if ts := r.State().Metadata.Timestamp; ts != limit {
		t.Errorf("apply: timestamp %d, want %d", ts, limit)
	}
	if err := r.Merge(State{Type: TypeLWWRegister, Value: json.RawMessage(`2`), Metadata: &Metadata{Type: TypeLWWRegister, NodeID: "X", Timestamp: future}}); err != nil {
		t.Fatal(err)
	}
	if ts := r.State().Metadata.Timestamp; ts != limit {
		t.Errorf("merge: timestamp %d, want %d", ts, limit)
	}

	m, _ := NewLWWMap("S", lim)
	op, err := m.Set("a", 1, future)
	if err != nil {
		t.Fatal(err)
	}
	if op.Timestamp != limit {
		t.Errorf("set: op timestamp %d, want %d", op.Timestamp, limit)
	}
	if err := m.Merge(State{Type: TypeLWWMap, Value: json.RawMessage(`{}`), Metadata: &Metadata{Type: TypeLWWMap, NodeID: "X", Timestamp: 1,
		Fields: map[string]FieldMeta{"b": {Timestamp: future, NodeID: "X", Deleted: true}}}}); err != nil {
		t.Fatal(err)
	}
	if fm := m.State().Metadata.Fields["b"]; fm.Timestamp != limit {
		t.Errorf("merged tombstone timestamp %d, want %d", fm.Timestamp, limit)
	}
}

func TestRegisterTiesAreBrokenByNodeIDInAnyOrder(t *testing.T) {
	b := Op{Type: TypeLWWRegister, NodeID: "B", Timestamp: 1010, Op: OpSet, Value: json.RawMessage(`"from B"`)}
	c := Op{Type: TypeLWWRegister, NodeID: "C", Timestamp: 1010, Op: OpSet, Value: json.RawMessage(`"from C"`)}
	for _, order := range [][]Op{{b, c}, {c, b}} {
		r, _ := NewLWWRegister("A", Limits{})
		for _, op := range order {
			if err := r.Apply(op); err != nil {
				t.Fatal(err)
			}
		}
		if got, _ := r.Value(); string(got) != `"from C"` {
			t.Errorf("applying %s then %s: value %s, want the greater node id's", order[0].NodeID, order[1].NodeID, got)
		}
		if w := r.State().Metadata.Writer; w != "C" {
			t.Errorf("writer %q, want C", w)
		}
	}
}

func TestCounterSeqs(t *testing.T) {
	t.Run("Increment and Decrement number a node's ops 1, 2, 3", func(t *testing.T) {
		c, _ := NewPNCounter("A", Limits{})
		for want := uint64(1); want <= 3; want++ {
			local := c.Increment
			if want == 2 {
				local = c.Decrement
			}
			op, err := local(1)
			if err != nil || op.Seq != want {
				t.Fatalf("op seq %d (%v), want %d", op.Seq, err, want)
			}
		}
	})
	t.Run("an op applied twice counts once and reports ErrDuplicateOp", func(t *testing.T) {
		w, _ := NewPNCounter("c1", Limits{})
		op, _ := w.Increment(5)
		r, _ := NewPNCounter("server", Limits{})
		if err := r.Apply(op); err != nil {
			t.Fatal(err)
		}
		if err := r.Apply(op); !errors.Is(err, ErrDuplicateOp) {
			t.Errorf("second apply: error %v, want ErrDuplicateOp", err)
		}
		if r.Value() != 5 {
			t.Errorf("value %d, want 5", r.Value())
		}
	})
	t.Run("ops without seq count every time, as in v1", func(t *testing.T) {
		r, _ := NewPNCounter("server", Limits{})
		op := Op{Type: TypePNCounter, NodeID: "c1", Op: OpIncrement}
		_ = r.Apply(op)
		_ = r.Apply(op)
		if r.Value() != 2 {
			t.Errorf("value %d, want 2", r.Value())
		}
	})
	t.Run("seqs covered by a merged state are duplicates, later ones count", func(t *testing.T) {
		w, _ := NewPNCounter("c1", Limits{})
		ops := make([]Op, 4)
		for i := range ops {
			ops[i], _ = w.Increment(1)
		}
		r, _ := NewPNCounter("server", Limits{})
		if err := r.Apply(ops[0]); err != nil {
			t.Fatal(err)
		}
		w3, _ := NewPNCounter("c1", Limits{})
		for range 3 {
			_, _ = w3.Increment(1)
		}
		if err := r.Merge(w3.State()); err != nil { // c1 at seq 3
			t.Fatal(err)
		}
		if err := r.Apply(ops[1]); !errors.Is(err, ErrDuplicateOp) {
			t.Errorf("seq 2 after a state at seq 3: error %v, want ErrDuplicateOp", err)
		}
		if err := r.Apply(ops[3]); err != nil {
			t.Errorf("seq 4: %v", err)
		}
		if r.Value() != 4 {
			t.Errorf("value %d, want 4", r.Value())
		}
	})
	t.Run("a replica reusing a node id continues its seqs after merging its old state", func(t *testing.T) {
		old, _ := NewPNCounter("c1", Limits{})
		_, _ = old.Increment(2)
		_, _ = old.Increment(3)
		fresh, _ := NewPNCounter("c1", Limits{})
		if err := fresh.Merge(old.State()); err != nil {
			t.Fatal(err)
		}
		op, _ := fresh.Increment(1)
		if op.Seq != 3 || fresh.Value() != 6 {
			t.Errorf("seq %d value %d, want 3 and 6", op.Seq, fresh.Value())
		}
	})
}

func TestSeqWindow(t *testing.T) {
	cases := []struct {
		name string
		seqs []uint64
		want []bool
	}{
		{"in-order seqs are all new", []uint64{1, 2, 3}, []bool{true, true, true}},
		{"a repeated seq is refused", []uint64{1, 2, 2, 1}, []bool{true, true, false, false}},
		{"a gap is accepted and filled later, once", []uint64{1, 4, 3, 2, 3}, []bool{true, true, true, true, false}},
		{"a seq 64 below the highest is still tracked", []uint64{1, 66, 2, 2}, []bool{true, true, true, false}},
		{"a seq 65 or more below the highest is refused", []uint64{67, 2}, []bool{true, false}},
		{"a jump of more than 64 forgets the old window safely", []uint64{1, 200, 1, 199}, []bool{true, true, false, true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var w seqWindow
			for i, seq := range tc.seqs {
				if got := w.accept(seq); got != tc.want[i] {
					t.Errorf("accept(%d) = %v, want %v", seq, got, tc.want[i])
				}
			}
		})
	}
}

func TestConcurrentUse(t *testing.T) {
	c, _ := NewPNCounter("A", Limits{})
	m, _ := NewLWWMap("A", Limits{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				if _, err := c.Increment(1); err != nil {
					t.Error(err)
				}
				if err := c.Apply(Op{Type: TypePNCounter, NodeID: fmt.Sprintf("B%d", g), Op: OpIncrement, Seq: uint64(i + 1)}); err != nil {
					t.Error(err)
				}
				_ = c.Merge(c.State())
				if _, err := m.Set("f", i, int64(i)); err != nil {
					t.Error(err)
				}
				_ = m.Value()
			}
		})
	}
	wg.Wait()
	if c.Value() != 1600 {
		t.Errorf("value %d, want 1600", c.Value())
	}
}

// Finding 13: map and register values get the checks live state values
// get; a forbidden member name anywhere in a value is refused.
func TestForbiddenMemberNamesInValues(t *testing.T) {
	bad := []string{
		`{"__proto__":{"admin":true}}`,
		`{"a":[1,{"constructor":{"prototype":1}}]}`,
		`[{"x":{"prototype":null}}]`,
	}
	good := []string{`"__proto__"`, `{"proto":1,"__proto":2}`, `["constructor"]`, `null`}
	for _, v := range bad {
		t.Run("map and register refuse "+v, func(t *testing.T) {
			m, _ := NewLWWMap("server", Limits{})
			err := m.Apply(Op{Type: TypeLWWMap, NodeID: "mallory", Timestamp: 1, Op: OpSet, Key: "f", Value: json.RawMessage(v)})
			for _, want := range []error{ErrInvalidOp, ErrForbiddenValue, patch.ErrForbiddenKey} {
				if !errors.Is(err, want) {
					t.Errorf("map apply: error %v, want %v", err, want)
				}
			}
			if _, err := m.Set("f", json.RawMessage(v), 1); !errors.Is(err, ErrForbiddenValue) {
				t.Errorf("map set: error %v, want ErrForbiddenValue", err)
			}
			r, _ := NewLWWRegister("server", Limits{})
			if err := r.Apply(Op{Type: TypeLWWRegister, NodeID: "mallory", Timestamp: 1, Op: OpSet, Value: json.RawMessage(v)}); !errors.Is(err, ErrForbiddenValue) || !errors.Is(err, ErrInvalidOp) {
				t.Errorf("register apply: error %v, want ErrInvalidOp and ErrForbiddenValue", err)
			}
			if _, err := r.Set(json.RawMessage(v), 1); !errors.Is(err, ErrForbiddenValue) {
				t.Errorf("register set: error %v, want ErrForbiddenValue", err)
			}
			if err := r.Merge(State{Type: TypeLWWRegister, Value: json.RawMessage(v), Metadata: &Metadata{Type: TypeLWWRegister, NodeID: "X", Timestamp: 1}}); !errors.Is(err, ErrForbiddenValue) {
				t.Errorf("register merge: error %v, want ErrForbiddenValue", err)
			}
			if len(m.Value()) != 0 {
				t.Errorf("map holds %v", m.Value())
			}
			if _, ok := r.Value(); ok {
				t.Error("register holds the value")
			}
		})
	}
	t.Run("a merged map state loses its fields with forbidden members, keeps the rest", func(t *testing.T) {
		m, _ := NewLWWMap("server", Limits{})
		s := State{Type: TypeLWWMap, Value: json.RawMessage(`{"bad":` + bad[0] + `,"ok":1}`), Metadata: &Metadata{Type: TypeLWWMap, NodeID: "X", Timestamp: 1}}
		if err := m.Merge(s); err != nil {
			t.Fatal(err)
		}
		if got, _ := json.Marshal(m.Value()); string(got) != `{"ok":1}` {
			t.Errorf("value %s, want {\"ok\":1}", got)
		}
	})
	for _, v := range good {
		t.Run("values that only look alike are accepted: "+v, func(t *testing.T) {
			m, _ := NewLWWMap("server", Limits{})
			if err := m.Apply(Op{Type: TypeLWWMap, NodeID: "c1", Timestamp: 1, Op: OpSet, Key: "f", Value: json.RawMessage(v)}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Finding 3, on the counter: a seq far past a node's highest known seq is
// refused, so one op cannot turn the node's later ops into duplicates.
func TestSeqJumps(t *testing.T) {
	victim, _ := NewPNCounter("victim", Limits{})
	server, _ := NewPNCounter("server", Limits{})
	first, _ := victim.Increment(1)
	if err := server.Apply(first); err != nil {
		t.Fatal(err)
	}
	poison := Op{Type: TypePNCounter, NodeID: "victim", Op: OpIncrement, Seq: MaxSafeInteger}
	if err := server.Apply(poison); !errors.Is(err, ErrSeqJump) || !errors.Is(err, ErrInvalidOp) {
		t.Fatalf("error %v, want ErrInvalidOp and ErrSeqJump", err)
	}
	for range 3 {
		op, _ := victim.Increment(1)
		if err := server.Apply(op); err != nil {
			t.Fatalf("the victim's next op: %v", err)
		}
	}
	if server.Value() != 4 {
		t.Fatalf("value %d, want 4", server.Value())
	}
	t.Run("a new node may start anywhere up to MaxSeqJump", func(t *testing.T) {
		c, _ := NewPNCounter("server", Limits{MaxSeqJump: 10})
		if err := c.Apply(Op{Type: TypePNCounter, NodeID: "a", Op: OpIncrement, Seq: 10}); err != nil {
			t.Fatal(err)
		}
		if err := c.Apply(Op{Type: TypePNCounter, NodeID: "b", Op: OpIncrement, Seq: 11}); !errors.Is(err, ErrSeqJump) {
			t.Fatalf("error %v, want ErrSeqJump", err)
		}
		if err := c.Apply(Op{Type: TypePNCounter, NodeID: "a", Op: OpIncrement, Seq: 20}); err != nil {
			t.Fatalf("a jump of exactly MaxSeqJump: %v", err)
		}
		if err := c.Apply(Op{Type: TypePNCounter, NodeID: "a", Op: OpIncrement, Seq: 15}); err != nil {
			t.Fatalf("a late op inside the window: %v", err)
		}
	})
	t.Run("merged states are not held to MaxSeqJump", func(t *testing.T) {
		c, _ := NewPNCounter("server", Limits{MaxSeqJump: 10})
		s := State{Type: TypePNCounter, Metadata: &Metadata{Type: TypePNCounter, NodeID: "X", Vector: &Vector{Increments: Counts{"a": 5}, Decrements: Counts{}}, Seqs: map[string]uint64{"a": 1000}}}
		if err := c.Merge(s); err != nil {
			t.Fatal(err)
		}
		if err := c.Apply(Op{Type: TypePNCounter, NodeID: "a", Op: OpIncrement, Seq: 1001}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a local op never takes a seq past 2^53", func(t *testing.T) {
		c, _ := NewPNCounter("A", Limits{})
		s := State{Type: TypePNCounter, Metadata: &Metadata{Type: TypePNCounter, NodeID: "X", Vector: &Vector{Increments: Counts{}, Decrements: Counts{}}, Seqs: map[string]uint64{"A": MaxSafeInteger}}}
		if err := c.Merge(s); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Increment(1); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("error %v, want ErrTooLarge", err)
		}
	})
}

func TestReset(t *testing.T) {
	for _, typ := range allTypes {
		t.Run(typ+" becomes a fresh replica that merged the state", func(t *testing.T) {
			lim := Limits{Now: fixedClock(1_700_000_000_000)}
			server := mustNew(t, typ, "server", lim)
			client := mustNew(t, typ, "c1", lim)
			change := func(c CRDT, ts int64) {
				var err error
				switch c := c.(type) {
				case *PNCounter:
					_, err = c.Increment(uint64(ts))
				case *LWWRegister:
					_, err = c.Set(ts, ts)
				case *LWWMap:
					_, err = c.Set(fmt.Sprint("f", ts), ts, ts)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			change(server, 5)
			change(client, 7) // the local change the server refused
			v := client.State().Metadata.Version
			if err := client.(interface{ Reset(State) error }).Reset(server.State()); err != nil {
				t.Fatal(err)
			}
			want := mustNew(t, typ, "c1", lim)
			if err := want.Merge(server.State()); err != nil {
				t.Fatal(err)
			}
			if got, w := view(t, client.State()), view(t, want.State()); got != w {
				t.Fatalf("after reset\n%s\nwant\n%s", got, w)
			}
			checkSize(t, client)
			if client.State().Metadata.Version <= v {
				t.Error("version did not grow")
			}
			bad := State{Type: "other"}
			before := bytes.Clone(client.EncodedState())
			if err := client.(interface{ Reset(State) error }).Reset(bad); !errors.Is(err, ErrTypeMismatch) {
				t.Fatalf("error %v, want ErrTypeMismatch", err)
			}
			if !bytes.Equal(before, client.EncodedState()) {
				t.Fatal("a refused reset changed the replica")
			}
		})
	}
	t.Run("a counter's own ops continue after the state's seq", func(t *testing.T) {
		c, _ := NewPNCounter("c1", Limits{})
		for range 3 {
			_, _ = c.Increment(1)
		}
		s := c.State()
		_, _ = c.Increment(1)
		if err := c.Reset(s); err != nil {
			t.Fatal(err)
		}
		if op, _ := c.Increment(1); op.Seq != 4 || c.Value() != 4 {
			t.Fatalf("seq %d value %d, want 4 and 4", op.Seq, c.Value())
		}
	})
}
