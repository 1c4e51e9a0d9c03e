package crdt

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

var allTypes = []string{TypePNCounter, TypeLWWRegister, TypeLWWMap}

// addSeeds adds every op or remote state of the golden scenarios.
func addSeeds(f *testing.F, pick func(step) json.RawMessage) {
	for _, sc := range loadVectors(f).Scenarios {
		for _, st := range sc.Steps {
			if b := pick(st); b != nil {
				f.Add([]byte(b))
			}
		}
	}
}

// roundTrip checks that a replica's own state survives the wire and merges
// cleanly into a fresh replica, which then holds the same state.
func roundTrip(t *testing.T, c CRDT) {
	b, err := json.Marshal(c.State())
	if err != nil {
		t.Fatal(err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("own state does not decode: %v\n%s", err, b)
	}
	fresh := mustNew(t, c.Type(), c.NodeID(), Limits{})
	if err := fresh.Merge(s); err != nil {
		t.Fatalf("own state does not merge: %v\n%s", err, b)
	}
	if got, want := view(t, fresh.State()), view(t, c.State()); got != want {
		t.Fatalf("round trip changed the state:\n%s\n%s", want, got)
	}
}

// fuzzLimits are the limits fuzzed replicas run with: the defaults, and
// small ones that refusals for size are common under.
var fuzzLimits = []Limits{
	{Now: fixedClock(1_700_000_000_000)},
	{Now: fixedClock(1_700_000_000_000), MaxStateBytes: 512, MaxValueBytes: 64, MaxNodes: 2, MaxSeqJump: 4, MaxEntries: 3},
}

// checkInvariants asserts what must hold after any input: the size bound,
// the cached encoding, and that a refusal changed nothing.
func checkInvariants(t *testing.T, c CRDT, before []byte, err error) {
	t.Helper()
	real, merr := json.Marshal(c.State())
	if merr != nil {
		t.Fatal(merr)
	}
	if len(real) > c.Size() {
		t.Fatalf("encoded state of %d bytes above its bound %d: %s", len(real), c.Size(), real)
	}
	if !bytes.Equal(c.EncodedState(), real) {
		t.Fatalf("stale cached encoding %s, want %s", c.EncodedState(), real)
	}
	if err != nil && !bytes.Equal(before, real) {
		t.Fatalf("refused (%v) but changed:\n%s\n%s", err, before, real)
	}
	if err == nil {
		roundTrip(t, c)
	}
}

// FuzzApply decodes a CRDT_OP's op as the server does and applies it to a
// replica of every type, fresh and after a first op.
func FuzzApply(f *testing.F) {
	addSeeds(f, func(st step) json.RawMessage { return st.Op })
	f.Add([]byte(`{"type":"pn-counter","nodeId":"c1","timestamp":1,"op":"increment","value":1,"seq":3}`))
	f.Add([]byte(`{"type":"pn-counter","nodeId":"c1","timestamp":1,"op":"increment","value":1,"seq":9007199254740992}`))
	f.Add([]byte(`{"type":"lww-map","nodeId":"c1","timestamp":1,"op":"set","key":"f","value":{"a":[{"__proto__":1}]}}`))
	f.Add([]byte(`{"type":"lww-register","nodeId":"c\u2028<","timestamp":9007199254740992,"op":"set","value":"` + strings.Repeat("x", 100) + `"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var op Op
		if json.Unmarshal(data, &op) != nil {
			return
		}
		for _, lim := range fuzzLimits {
			for _, typ := range allTypes {
				c := mustNew(t, typ, "server", lim)
				before := bytes.Clone(c.EncodedState())
				checkInvariants(t, c, before, c.Apply(op))
				// Again, on a replica that already holds the op: duplicates,
				// overwrites and growth past the first.
				before = bytes.Clone(c.EncodedState())
				op.Seq++
				checkInvariants(t, c, before, c.Apply(op))
			}
		}
	})
}

// FuzzMerge decodes a CRDT_STATE's state as the client does (and the
// server for states of other nodes) and merges it.
func FuzzMerge(f *testing.F) {
	addSeeds(f, func(st step) json.RawMessage { return st.RemoteState })
	f.Add([]byte(`{"type":"lww-map","value":{"a":1},"metadata":{"type":"lww-map","nodeId":"X","timestamp":1,"version":1,"fields":{"b":{"timestamp":2,"nodeId":"Y","deleted":true}}}}`))
	f.Add([]byte(`{"type":"lww-map","value":{"a":{"constructor":{}},"b":"<&>"},"metadata":{"type":"lww-map","nodeId":"X","timestamp":1,"version":1}}`))
	f.Add([]byte(`{"type":"pn-counter","value":1,"metadata":{"type":"pn-counter","nodeId":"X","timestamp":1,"version":1,"vector":{"increments":{"a":1,"b":2,"c":3},"decrements":{"\u2028":1}},"seqs":{"a":9007199254740992}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var s State
		if json.Unmarshal(data, &s) != nil {
			return
		}
		for _, lim := range fuzzLimits {
			for _, typ := range allTypes {
				c := mustNew(t, typ, "server", lim)
				before := bytes.Clone(c.EncodedState())
				checkInvariants(t, c, before, c.Merge(s))
			}
		}
	})
}

// FuzzMergeRecord decodes what a server reads from its store or another
// node: a state with owners, or a plain one.
func FuzzMergeRecord(f *testing.F) {
	addSeeds(f, func(st step) json.RawMessage { return st.RemoteState })
	f.Add([]byte(`{"type":"pn-counter","value":1,"metadata":{"type":"pn-counter","nodeId":"X","timestamp":1,"version":1,"vector":{"increments":{"c1":1},"decrements":{}},"seqs":{"c1":1}},"owners":{"c1":{"owner":"alice","timestamp":5},"":{"owner":"x","timestamp":1},"c2":{"owner":"","timestamp":1}}}`))
	f.Add([]byte(`{"owners":{"a":{"owner":"b","timestamp":-1}}}`))
	f.Add([]byte(`{"owners":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, lim := range fuzzLimits {
			for _, typ := range allTypes {
				c := mustNew(t, typ, "server", lim)
				o := NewOwners(lim)
				_ = o.Bind("seed", "owner")
				before := bytes.Clone(c.EncodedState())
				err := MergeRecord(c, o, data)
				var stateErr error
				if err != nil {
					// Only the state part must leave c unchanged when refused.
					var rec Record
					if json.Unmarshal(data, &rec) != nil || c.Type() != rec.Type {
						stateErr = err
					}
				}
				checkInvariants(t, c, before, stateErr)
				enc, _ := json.Marshal(o.Claims())
				if len(enc) > o.Size() || !bytes.Equal(enc, o.encoded()) {
					t.Fatalf("owners encoding %s (cached %s) against bound %d", enc, o.encoded(), o.Size())
				}
				rec := AppendRecord(nil, c, o)
				c2 := mustNew(t, typ, "server", lim)
				o2 := NewOwners(lim)
				if err := MergeRecord(c2, o2, rec); err != nil {
					t.Fatalf("own record %s does not merge: %v", rec, err)
				}
				if !reflect.DeepEqual(o2.Claims(), o.Claims()) {
					t.Fatalf("owners %v came back as %v", o.Claims(), o2.Claims())
				}
			}
		}
	})
}
