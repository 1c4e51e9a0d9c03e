package crdt

import (
	"encoding/json"
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

func FuzzApply(f *testing.F) {
	addSeeds(f, func(st step) json.RawMessage { return st.Op })
	f.Add([]byte(`{"type":"pn-counter","nodeId":"c1","timestamp":1,"op":"increment","value":1,"seq":3}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var op Op
		if json.Unmarshal(data, &op) != nil {
			return
		}
		for _, typ := range allTypes {
			c := mustNew(t, typ, "server", Limits{})
			if c.Apply(op) == nil {
				roundTrip(t, c)
			}
		}
	})
}

func FuzzMerge(f *testing.F) {
	addSeeds(f, func(st step) json.RawMessage { return st.RemoteState })
	f.Add([]byte(`{"type":"lww-map","value":{"a":1},"metadata":{"type":"lww-map","nodeId":"X","timestamp":1,"version":1,"fields":{"b":{"timestamp":2,"nodeId":"Y","deleted":true}}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var s State
		if json.Unmarshal(data, &s) != nil {
			return
		}
		for _, typ := range allTypes {
			c := mustNew(t, typ, "server", Limits{})
			if c.Merge(s) == nil {
				roundTrip(t, c)
			}
		}
	})
}
