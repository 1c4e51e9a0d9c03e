package crdt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// Strings that encoding/json escapes or treats specially, to make the size
// bound earn its keep.
var fragments = []string{"a", "Z9", "<", ">", "&", "\"", "\\", "\n", "\x00", "\x1f", "\u2028", "\u2029", "é", "日本", "\xff", "\xe2\x82", "🙂", "\x7f"}

func drawString(t *rapid.T, label string, nonEmpty bool) string {
	min := 0
	if nonEmpty {
		min = 1
	}
	parts := rapid.SliceOfN(rapid.SampledFrom(fragments), min, 4).Draw(t, label)
	return strings.Join(parts, "")
}

// drawValue draws a JSON value, sometimes with insignificant whitespace, so
// that compaction is exercised too.
func drawValue(t *rapid.T) json.RawMessage {
	var v any
	switch rapid.IntRange(0, 4).Draw(t, "value kind") {
	case 0:
		v = rapid.IntRange(-1000, 1000).Draw(t, "int")
	case 1:
		v = drawString(t, "string", false)
	case 2:
		v = map[string]any{drawString(t, "member", false): []any{drawString(t, "elem", false), nil, true}}
	case 3:
		v = strings.Repeat("x", rapid.IntRange(0, 600).Draw(t, "long"))
	default:
		return json.RawMessage(` { "a" : [ 1 , 2 ] , "b" : "` + "\\u003c" + `" } `)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// drawTs draws small timestamps and ones with the most digits.
func drawTs(t *rapid.T) int64 {
	if rapid.Bool().Draw(t, "wide ts") {
		return rapid.Int64Range(MaxSafeInteger-3, MaxSafeInteger).Draw(t, "ts")
	}
	return rapid.Int64Range(0, 3).Draw(t, "ts")
}

func drawNode(t *rapid.T) string {
	if rapid.Bool().Draw(t, "plain node") {
		return rapid.SampledFrom([]string{"n1", "n2", "n3"}).Draw(t, "node")
	}
	return drawString(t, "odd node", true)
}

func drawField(t *rapid.T) string {
	for {
		f := drawString(t, "field", true)
		if checkField(f) == nil {
			return f
		}
	}
}

// checkSize asserts what the server relies on: Size bounds the real
// encoding, and EncodedState is that encoding, however it was reached.
func checkSize(t interface{ Fatalf(string, ...any) }, c CRDT) {
	real, err := json.Marshal(c.State())
	if err != nil {
		t.Fatalf("%v", err)
	}
	if len(real) > c.Size() {
		t.Fatalf("%s: encoded state of %d bytes above its bound %d:\n%s", c.Type(), len(real), c.Size(), real)
	}
	if enc := c.EncodedState(); !bytes.Equal(enc, real) {
		t.Fatalf("%s: cached encoding is stale:\n%s\nwant\n%s", c.Type(), enc, real)
	}
}

// remoteOp draws an op of typ from another writer.
func remoteOp(t *rapid.T, typ string) Op {
	op := Op{Type: typ, NodeID: drawNode(t), Timestamp: drawTs(t)}
	switch typ {
	case TypePNCounter:
		op.Op = rapid.SampledFrom([]string{OpIncrement, OpDecrement}).Draw(t, "counter op")
		op.Value = json.RawMessage(fmt.Sprint(rapid.Uint64Range(0, MaxSafeInteger).Draw(t, "amount")))
		op.Seq = rapid.Uint64Range(0, 5).Draw(t, "seq")
	case TypeLWWRegister:
		op.Op, op.Value = OpSet, drawValue(t)
	case TypeLWWMap:
		op.Op, op.Key = OpSet, drawField(t)
		if rapid.IntRange(0, 3).Draw(t, "remove") == 0 {
			op.Op = OpRemove
		} else {
			op.Value = drawValue(t)
		}
	}
	return op
}

// localChange makes a local change of c, returning its error.
func localChange(t *rapid.T, c CRDT) error {
	var err error
	switch c := c.(type) {
	case *PNCounter:
		n := rapid.Uint64Range(0, 1<<40).Draw(t, "amount")
		if rapid.Bool().Draw(t, "inc") {
			_, err = c.Increment(n)
		} else {
			_, err = c.Decrement(n)
		}
	case *LWWRegister:
		_, err = c.Set(drawValue(t), drawTs(t))
	case *LWWMap:
		if rapid.IntRange(0, 3).Draw(t, "delete") == 0 {
			_, err = c.Delete(drawField(t), drawTs(t))
		} else {
			_, err = c.Set(drawField(t), drawValue(t), drawTs(t))
		}
	}
	return err
}

func TestSizeBoundsTheEncodingAndRefusalsChangeNothing(t *testing.T) {
	for _, typ := range allTypes {
		t.Run(typ, func(t *testing.T) {
			rapid.Check(t, func(t *rapid.T) {
				lim := Limits{Now: fixedClock(1_700_000_000_000)}
				if rapid.Bool().Draw(t, "tight") {
					lim.MaxStateBytes = rapid.IntRange(300, 4000).Draw(t, "max state")
					lim.MaxValueBytes = rapid.IntRange(1, 700).Draw(t, "max value")
					lim.MaxNodes = rapid.IntRange(1, 4).Draw(t, "max nodes")
				}
				c := mustNew(t, typ, drawNode(t), lim)
				other := mustNew(t, typ, "other", Limits{Now: lim.Now})
				checkSize(t, c)
				for range rapid.IntRange(1, 40).Draw(t, "steps") {
					before := bytes.Clone(c.EncodedState())
					var err error
					switch rapid.IntRange(0, 3).Draw(t, "step") {
					case 0:
						err = localChange(t, c)
					case 1:
						err = c.Apply(remoteOp(t, typ))
					case 2:
						_ = other.Apply(remoteOp(t, typ))
						err = localChange(t, other)
					default:
						err = c.Merge(other.State())
					}
					if err != nil && !bytes.Equal(before, c.EncodedState()) {
						t.Fatalf("a refused change (%v) changed the state:\n%s\n%s", err, before, c.EncodedState())
					}
					checkSize(t, c)
					if c.Size() > max(MaxStateCeiling, lim.maxStateBytes()) {
						t.Fatalf("size %d past the ceiling", c.Size())
					}
				}
			})
		})
	}
}

// With plain names and numbers of full width, the bound is the encoding
// plus the unused digits of the header and a comma per section, whatever
// the number of entries: an entry counted short by even one byte would
// show.
func TestSizeBoundIsTightForFullWidthNumbers(t *testing.T) {
	const n = 200
	lim := Limits{Now: fixedClock(1_700_000_000_000)}
	inc, seqs, fields, values := Counts{}, Counts{}, map[string]FieldMeta{}, map[string]string{}
	for i := range n {
		node := fmt.Sprintf("go-%016x", i)
		inc[node] = MaxSafeInteger - uint64(i)
		seqs[node] = MaxSafeInteger - uint64(i)
		field := fmt.Sprintf("field%d", i)
		fields[field] = FieldMeta{Timestamp: MaxSafeInteger - int64(i), NodeID: node, Deleted: i%3 == 0}
		if i%3 != 0 {
			values[field] = "some value"
		}
	}
	c, _ := NewPNCounter("server", lim)
	if err := c.Merge(State{Type: TypePNCounter, Metadata: &Metadata{Type: TypePNCounter, NodeID: "X",
		Vector: &Vector{Increments: inc, Decrements: inc}, Seqs: seqs}}); err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(values)
	m, _ := NewLWWMap("server", lim)
	if err := m.Merge(State{Type: TypeLWWMap, Value: raw, Metadata: &Metadata{Type: TypeLWWMap, NodeID: "X", Fields: fields}}); err != nil {
		t.Fatal(err)
	}
	r, _ := NewLWWRegister("server", lim)
	if _, err := r.Set(strings.Repeat("v", 1000), MaxSafeInteger); err != nil {
		t.Fatal(err)
	}
	o := NewOwners(lim)
	claims := map[string]Claim{}
	for i := range n {
		claims[fmt.Sprintf("go-%016x", i)] = Claim{Owner: fmt.Sprintf("user-%016x", i), Timestamp: MaxSafeInteger}
	}
	if err := o.Merge(claims); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		bound int
		real  int
	}{
		{TypePNCounter, c.Size(), len(c.EncodedState())},
		{TypeLWWMap, m.Size(), len(m.EncodedState())},
		{TypeLWWRegister, r.Size(), len(r.EncodedState())},
		{"owners", o.Size(), len(o.encoded())},
	} {
		if tc.bound < tc.real || tc.bound > tc.real+100 {
			t.Errorf("%s: bound %d for %d bytes, want within 100 above", tc.name, tc.bound, tc.real)
		}
	}
}

func FuzzQuotedLen(f *testing.F) {
	for _, s := range fragments {
		f.Add(s)
	}
	f.Add("plain ascii")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if q := quotedLen(s); len(b) > q {
			t.Fatalf("quotedLen(%q) = %d, encoding is %d bytes: %s", s, q, len(b), b)
		}
	})
}

func TestEncodedStateIsCachedUntilAChange(t *testing.T) {
	for _, typ := range allTypes {
		t.Run(typ, func(t *testing.T) {
			c := mustNew(t, typ, "server", Limits{})
			op := Op{Type: typ, NodeID: "c1", Timestamp: 5, Op: OpSet, Key: "f", Value: json.RawMessage(`1`)}
			if typ == TypePNCounter {
				op.Op, op.Key = OpIncrement, ""
			}
			a, b := c.EncodedState(), c.EncodedState()
			if &a[0] != &b[0] {
				t.Fatal("EncodedState encoded an unchanged state again")
			}
			if err := c.Apply(op); err != nil {
				t.Fatal(err)
			}
			d := c.EncodedState()
			if bytes.Equal(a, d) {
				t.Fatalf("EncodedState still %s after a change", d)
			}
			if view(t, mustState(t, d)) != view(t, c.State()) {
				t.Fatalf("EncodedState %s is not the state", d)
			}
			// A losing write changes nothing and keeps the cache.
			if typ != TypePNCounter {
				old := op
				old.Timestamp = 1
				if err := c.Apply(old); err != nil {
					t.Fatal(err)
				}
				if e := c.EncodedState(); &e[0] != &d[0] {
					t.Error("a write that lost dropped the cached encoding")
				}
			}
		})
	}
}

func mustState(t *testing.T, b []byte) State {
	t.Helper()
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// The attack of finding 1, replayed on one replica: huge values, and
// thousands of client-chosen node ids.
func TestStateBudget(t *testing.T) {
	big := func(n int) json.RawMessage { return json.RawMessage(`"` + strings.Repeat("x", n-2) + `"`) }
	setOp := func(field string, v json.RawMessage) Op {
		return Op{Type: TypeLWWMap, NodeID: "mallory", Timestamp: 1, Op: OpSet, Key: field, Value: v}
	}
	t.Run("lww-map sets of 900 KB values are refused and change nothing", func(t *testing.T) {
		m, _ := NewLWWMap("server", Limits{})
		before := bytes.Clone(m.EncodedState())
		for i := range 40 {
			if err := m.Apply(setOp(fmt.Sprint("f", i), big(900_000))); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("set %d: error %v, want ErrTooLarge", i, err)
			}
		}
		if !bytes.Equal(before, m.EncodedState()) {
			t.Fatalf("state changed: %s", m.EncodedState())
		}
	})
	t.Run("values up to MaxValueBytes fill the map up to MaxStateBytes, then growth is refused", func(t *testing.T) {
		m, _ := NewLWWMap("server", Limits{})
		if err := m.Apply(setOp("over", big(DefaultMaxValueBytes+1))); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("value one byte past the limit: error %v, want ErrTooLarge", err)
		}
		if err := m.Apply(setOp("at", big(DefaultMaxValueBytes))); err != nil {
			t.Fatalf("value at the limit: %v", err)
		}
		var err error
		for i := 0; err == nil; i++ {
			err = m.Apply(setOp(fmt.Sprint("f", i), big(DefaultMaxValueBytes)))
		}
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("error %v, want ErrTooLarge", err)
		}
		if got := len(m.EncodedState()); got > DefaultMaxStateBytes || m.Size() > DefaultMaxStateBytes {
			t.Fatalf("state of %d bytes (bound %d), want at most %d", got, m.Size(), DefaultMaxStateBytes)
		}
		// A full map still takes writes that do not grow it.
		if err := m.Apply(setOp("at", big(10))); err != nil {
			t.Errorf("shrinking a value of a full map: %v", err)
		}
		if err := m.Apply(setOp("at", big(DefaultMaxValueBytes))); err != nil {
			t.Errorf("growing it back into the freed room: %v", err)
		}
		if err := m.Apply(Op{Type: TypeLWWMap, NodeID: "mallory", Timestamp: 2, Op: OpRemove, Key: "at"}); err != nil {
			t.Errorf("deleting a field of a full map: %v", err)
		}
		if _, err := m.Set("new", 1, 3); !errors.Is(err, ErrTooLarge) && err != nil {
			t.Errorf("local set: %v", err)
		}
	})
	t.Run("a local map set past MaxValueBytes is refused", func(t *testing.T) {
		m, _ := NewLWWMap("c1", Limits{MaxValueBytes: 10})
		if _, err := m.Set("f", "0123456789", 1); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("error %v, want ErrTooLarge", err)
		}
		if len(m.Value()) != 0 {
			t.Fatal("the refused value was stored")
		}
	})
	t.Run("a huge field name is bounded by the state budget", func(t *testing.T) {
		m, _ := NewLWWMap("server", Limits{})
		op := Op{Type: TypeLWWMap, NodeID: "mallory", Timestamp: 1, Op: OpRemove, Key: strings.Repeat("k", 300_000)}
		if err := m.Apply(op); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("error %v, want ErrTooLarge", err)
		}
	})
	t.Run("lww-register values past MaxValueBytes are refused", func(t *testing.T) {
		r, _ := NewLWWRegister("server", Limits{})
		err := r.Apply(Op{Type: TypeLWWRegister, NodeID: "mallory", Timestamp: 1, Op: OpSet, Value: big(600_000)})
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("error %v, want ErrTooLarge", err)
		}
		if _, ok := r.Value(); ok {
			t.Fatal("the refused value was stored")
		}
		if _, err := r.Set(strings.Repeat("x", 70_000), 1); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("local set: error %v, want ErrTooLarge", err)
		}
	})
	t.Run("8,000 client-chosen counter node ids stop at MaxNodes", func(t *testing.T) {
		c, _ := NewPNCounter("server", Limits{})
		refused := 0
		for i := range 8000 {
			err := c.Apply(Op{Type: TypePNCounter, NodeID: fmt.Sprintf("sybil-%04d-%s", i, strings.Repeat("n", 100)), Op: OpIncrement})
			if errors.Is(err, ErrTooLarge) {
				refused++
			} else if err != nil {
				t.Fatal(err)
			}
		}
		if refused == 0 {
			t.Fatal("no node id was refused")
		}
		if n := len(c.State().Metadata.Vector.Increments); n > DefaultMaxNodes {
			t.Fatalf("%d nodes, want at most %d", n, DefaultMaxNodes)
		}
		if c.Size() > DefaultMaxStateBytes {
			t.Fatalf("state bound %d past %d", c.Size(), DefaultMaxStateBytes)
		}
		// Known nodes keep counting when the counter is full.
		if _, err := c.Increment(1); err != nil {
			t.Errorf("the server's own increment: %v", err)
		}
		if err := c.Apply(Op{Type: TypePNCounter, NodeID: fmt.Sprintf("sybil-%04d-%s", 0, strings.Repeat("n", 100)), Op: OpIncrement}); err != nil {
			t.Errorf("a known node's increment: %v", err)
		}
	})
	t.Run("MaxNodes counts the replica's own node", func(t *testing.T) {
		c, _ := NewPNCounter("server", Limits{MaxNodes: 2})
		if err := c.Apply(Op{Type: TypePNCounter, NodeID: "a", Op: OpIncrement}); err != nil {
			t.Fatal(err)
		}
		if err := c.Apply(Op{Type: TypePNCounter, NodeID: "b", Op: OpIncrement}); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("error %v, want ErrTooLarge", err)
		}
	})
	t.Run("MaxStateBytes above the ceiling means the ceiling", func(t *testing.T) {
		lim := Limits{MaxStateBytes: 10 << 20, MaxValueBytes: 10 << 20}
		if lim.maxStateBytes() != MaxStateCeiling || lim.maxValueBytes() != MaxStateCeiling {
			t.Fatalf("state %d value %d, want both %d", lim.maxStateBytes(), lim.maxValueBytes(), MaxStateCeiling)
		}
		r, _ := NewLWWRegister("server", lim)
		if _, err := r.Set(strings.Repeat("x", MaxStateCeiling), 1); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("error %v, want ErrTooLarge", err)
		}
	})
}

func TestMergesAreHeldToTheCeiling(t *testing.T) {
	const fill = 200_000
	// Four replicas, each within its own budget, whose union passes the
	// budget of one: merges still combine them.
	union, _ := NewLWWMap("server", Limits{})
	for i := range 4 {
		w, _ := NewLWWMap(fmt.Sprint("node", i), Limits{})
		if _, err := w.Set(fmt.Sprint("f", i), strings.Repeat("x", 60_000), 1); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Set(fmt.Sprint("g", i), strings.Repeat("x", 60_000), 1); err != nil {
			t.Fatal(err)
		}
		if err := union.Merge(w.State()); err != nil {
			t.Fatalf("merge %d: %v", i, err)
		}
	}
	if len(union.EncodedState()) <= DefaultMaxStateBytes {
		t.Fatalf("union of %d bytes, want it past the op budget", len(union.EncodedState()))
	}
	// A state past the ceiling is refused as a whole.
	value := map[string]string{}
	for i := range MaxStateCeiling/fill + 1 {
		value[fmt.Sprint("h", i)] = strings.Repeat("y", fill)
	}
	raw, _ := json.Marshal(value)
	huge := State{Type: TypeLWWMap, Value: raw, Metadata: &Metadata{Type: TypeLWWMap, NodeID: "X", Timestamp: 1}}
	before := bytes.Clone(union.EncodedState())
	if err := union.Merge(huge); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("error %v, want ErrTooLarge", err)
	}
	if !bytes.Equal(before, union.EncodedState()) {
		t.Fatal("a refused merge changed the state")
	}
}

// A state at the ceiling, under a 2 KiB key that needs escaping
// everywhere, still fits one CRDT_STATE frame.
func TestStateAtTheCeilingFitsAFrame(t *testing.T) {
	m, _ := NewLWWMap("server", Limits{MaxStateBytes: MaxStateCeiling, MaxValueBytes: MaxStateCeiling})
	for i := 0; ; i++ {
		if _, err := m.Set(fmt.Sprint("f", i), strings.Repeat("<", 10_000), 1); err != nil {
			if !errors.Is(err, ErrTooLarge) {
				t.Fatal(err)
			}
			break
		}
	}
	for n := 5000; n > 0; n /= 2 { // top up with smaller values
		for i := 0; ; i++ {
			if _, err := m.Set(fmt.Sprint("t", n, "-", i), strings.Repeat("a", n), 1); err != nil {
				break
			}
		}
	}
	payload, err := json.Marshal(struct {
		Key   string          `json:"key"`
		State json.RawMessage `json:"state"`
	}{strings.Repeat("<", 2048), m.EncodedState()})
	if err != nil {
		t.Fatal(err)
	}
	if len(payload) > 1<<20 {
		t.Fatalf("payload of %d bytes does not fit a frame", len(payload))
	}
	if len(m.EncodedState()) < MaxStateCeiling-10_000 {
		t.Fatalf("state of %d bytes: the test did not fill it", len(m.EncodedState()))
	}
}

// Applying an op costs the op, not the state: an op on a large map
// allocates far less than one encoding of the map would.
func TestApplyDoesNotEncodeTheState(t *testing.T) {
	m, _ := NewLWWMap("server", Limits{})
	for i := range 200 {
		if _, err := m.Set(fmt.Sprint("f", i), strings.Repeat("x", 1000), 1); err != nil {
			t.Fatal(err)
		}
	}
	stateLen := len(m.EncodedState())
	i := 0
	bytesPerOp := testingBytesPerRun(50, func() {
		i++
		if err := m.Apply(Op{Type: TypeLWWMap, NodeID: "c1", Timestamp: int64(i + 1), Op: OpSet, Key: "f7", Value: json.RawMessage(`"short"`)}); err != nil {
			t.Fatal(err)
		}
	})
	if bytesPerOp > uint64(stateLen/8) {
		t.Errorf("%d bytes allocated per op on a %d-byte state", bytesPerOp, stateLen)
	}
}

// testingBytesPerRun returns the bytes f allocates on the heap per call.
func testingBytesPerRun(runs int, f func()) uint64 {
	f() // warm up
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(runs)
}
