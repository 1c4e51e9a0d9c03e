package crdt

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"testing"
	"time"
)

// The golden file is crdt.json from the protocol's vectors: it records what
// the v1 reference does, including defects.

type vectors struct {
	FixedNow  int64      `json:"fixed_now"`
	Scenarios []scenario `json:"scenarios"`
}

type scenario struct {
	Name     string                 `json:"name"`
	CRDT     string                 `json:"crdt"`
	Class    string                 `json:"class"`
	Replicas map[string]replicaSpec `json:"replicas"`
	Steps    []step                 `json:"steps"`
}

type replicaSpec struct {
	NodeID           string          `json:"nodeId"`
	InitialValue     json.RawMessage `json:"initial_value"`
	InitialTimestamp *int64          `json:"initial_timestamp"`
}

type step struct {
	On               string            `json:"on"`
	Action           string            `json:"action"`
	Args             []json.RawMessage `json:"args"`
	Op               json.RawMessage   `json:"op"`
	RemoteState      json.RawMessage   `json:"remote_state"`
	RemoteStateDescr string            `json:"remote_state_description"`
	Returns          json.RawMessage   `json:"returns"`
	Throws           bool              `json:"throws"`
	StateAfter       json.RawMessage   `json:"state_after"`
}

func loadVectors(t testing.TB) vectors {
	t.Helper()
	b, err := os.ReadFile("testdata/crdt.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func fixedClock(ms int64) func() time.Time {
	return func() time.Time { return time.UnixMilli(ms) }
}

// errDecode marks input the JSON decoder already refuses (the reference
// ignores it too).
var errDecode = errors.New("decode")

// newReplicas builds a scenario's replicas, writing registers' initial values.
func newReplicas(t *testing.T, sc scenario, lim Limits, now int64) map[string]CRDT {
	t.Helper()
	out := map[string]CRDT{}
	for id, spec := range sc.Replicas {
		c, err := New(sc.CRDT, spec.NodeID, lim)
		if err != nil {
			t.Fatal(err)
		}
		if spec.InitialValue != nil {
			ts := now
			if spec.InitialTimestamp != nil {
				ts = *spec.InitialTimestamp
			}
			if _, err := c.(*LWWRegister).Set(spec.InitialValue, ts); err != nil {
				t.Fatal(err)
			}
		}
		out[id] = c
	}
	return out
}

func arg[T any](t *testing.T, st step, i int, def T) T {
	t.Helper()
	if i >= len(st.Args) {
		return def
	}
	var v T
	if err := json.Unmarshal(st.Args[i], &v); err != nil {
		t.Fatalf("arg %d: %v", i, err)
	}
	return v
}

// runStep performs one scenario step on c and returns the op a local action
// produced.
func runStep(t *testing.T, c CRDT, st step) (*Op, error) {
	t.Helper()
	var op Op
	var err error
	switch st.Action {
	case "increment":
		op, err = c.(*PNCounter).Increment(arg[uint64](t, st, 0, 1))
	case "decrement":
		op, err = c.(*PNCounter).Decrement(arg[uint64](t, st, 0, 1))
	case "set":
		switch c := c.(type) {
		case *LWWRegister:
			op, err = c.Set(st.Args[0], arg[int64](t, st, 1, 0))
		case *LWWMap:
			op, err = c.Set(arg[string](t, st, 0, ""), st.Args[1], arg[int64](t, st, 2, 0))
		}
	case "delete":
		op, err = c.(*LWWMap).Delete(arg[string](t, st, 0, ""), arg[int64](t, st, 1, 0))
	case "apply":
		var remote Op
		if err := json.Unmarshal(st.Op, &remote); err != nil {
			return nil, fmt.Errorf("%w: %w", errDecode, err)
		}
		return nil, c.Apply(remote)
	case "merge":
		s, err := remoteState(st)
		if err != nil {
			return nil, err
		}
		return nil, c.Merge(s)
	default:
		t.Fatalf("unknown action %q", st.Action)
	}
	return &op, err
}

func remoteState(st step) (State, error) {
	var s State
	if st.RemoteState == nil {
		// The one described state: 10,001 fields k0..k10000.
		value := map[string]int{}
		for i := range 10_001 {
			value[fmt.Sprintf("k%d", i)] = i
		}
		b, _ := json.Marshal(value)
		return State{Type: TypeLWWMap, Value: b, Metadata: &Metadata{Type: TypeLWWMap, NodeID: "X", Timestamp: 1000, Version: 1}}, nil
	}
	if err := json.Unmarshal(st.RemoteState, &s); err != nil {
		return s, fmt.Errorf("%w: %w", errDecode, err)
	}
	return s, nil
}

// v1View reduces a state to what the vectors pin down: no version, no
// snapshot-time timestamp for counters and maps, no extension members.
func v1View(t *testing.T, s any) any {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	md, _ := v["metadata"].(map[string]any)
	for _, k := range []string{"version", "writer", "fields", "seqs"} {
		delete(md, k)
	}
	if v["type"] != TypeLWWRegister {
		delete(md, "timestamp")
	}
	return v
}

func jsonView(t *testing.T, x any) any {
	t.Helper()
	b, err := json.Marshal(x)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	delete(v, "seq")
	return v
}

// compatErrors lists the compat steps where the reference silently ignores
// input that this package refuses with an error; the state is unchanged
// either way.
var compatErrors = map[string]error{
	"pn_apply_remote_ops/3":            ErrInvalidOp,    // unknown op name
	"pn_merge_ignores_invalid_input/1": ErrInvalidState, // no metadata
	"pn_merge_ignores_invalid_input/2": errDecode,       // vector is an array
	"reg_merge_rules/4":                ErrInvalidState, // no nodeId
	"map_apply_ops/3":                  ErrInvalidOp,    // op without key
	"map_merge_guards/1":               ErrInvalidState, // no metadata
	"map_merge_guards/2":               ErrInvalidState, // value is not an object
	"map_merge_guards/3":               ErrTooLarge,     // 10,001 fields
}

func TestGoldenCompatScenarios(t *testing.T) {
	v := loadVectors(t)
	for _, sc := range v.Scenarios {
		if sc.Class != "compat" {
			continue
		}
		t.Run(sc.Name, func(t *testing.T) {
			replicas := newReplicas(t, sc, Limits{Now: fixedClock(v.FixedNow)}, v.FixedNow)
			for i, st := range sc.Steps {
				c := replicas[st.On]
				op, err := runStep(t, c, st)
				want := compatErrors[fmt.Sprintf("%s/%d", sc.Name, i)]
				switch {
				case want == nil && err != nil:
					t.Fatalf("step %d (%s): unexpected error %v", i, st.Action, err)
				case want != nil && !errors.Is(err, want):
					t.Fatalf("step %d (%s): error %v, want %v", i, st.Action, err, want)
				}
				if st.Returns != nil {
					if got, want := jsonView(t, op), jsonView(t, st.Returns); !reflect.DeepEqual(got, want) {
						t.Errorf("step %d (%s) returned\n %v\nwant\n %v", i, st.Action, got, want)
					}
				}
				if got, want := v1View(t, c.State()), v1View(t, st.StateAfter); !reflect.DeepEqual(got, want) {
					t.Errorf("step %d (%s) state\n %v\nwant\n %v", i, st.Action, got, want)
				}
			}
		})
	}
}

// TestGoldenDefectScenarios checks the behaviour required instead of each
// reference defect (README of the vectors, defect table).
func TestGoldenDefectScenarios(t *testing.T) {
	v := loadVectors(t)
	now := v.FixedNow
	checks := map[string]func(t *testing.T, sc scenario){
		"pn_value_not_validated": func(t *testing.T, sc scenario) {
			c, _ := NewPNCounter("A", Limits{})
			for i, st := range sc.Steps {
				if _, err := runStep(t, c, st); !errors.Is(err, ErrInvalidOp) {
					t.Errorf("step %d: error %v, want ErrInvalidOp", i, err)
				}
			}
			if c.Value() != 0 {
				t.Errorf("value %d after refused ops, want 0", c.Value())
			}
		},
		"reg_future_timestamp_wins_forever": func(t *testing.T, sc scenario) {
			clock := now
			r, _ := NewLWWRegister("server", Limits{MaxSkew: time.Minute, Now: func() time.Time { return time.UnixMilli(clock) }})
			mustStep(t, r, sc.Steps[0])
			if ts := r.State().Metadata.Timestamp; ts != now+60_000 {
				t.Fatalf("far-future write stamped %d, want it clamped to now+1m = %d", ts, now+60_000)
			}
			clock += 2 * 60_000
			if _, err := r.Set("normal write", clock); err != nil {
				t.Fatal(err)
			}
			if got, _ := r.Value(); string(got) != `"normal write"` {
				t.Errorf("value %s once the clock passed the clamped time, want the normal write", got)
			}
		},
		"map_delete_unknown_key_no_tombstone": func(t *testing.T, sc scenario) {
			m, _ := NewLWWMap("A", Limits{})
			for _, st := range sc.Steps {
				mustStep(t, m, st)
			}
			if _, ok := m.Get("x"); ok {
				t.Error("an older set resurrected a field deleted before it was known")
			}
			if fm := m.State().Metadata.Fields["x"]; fm != (FieldMeta{Timestamp: 1100, NodeID: "A", Deleted: true}) {
				t.Errorf("tombstone %+v, want deleted at 1100 by A", fm)
			}
		},
		"map_merge_uses_state_timestamp": func(t *testing.T, sc scenario) {
			r := newReplicas(t, sc, Limits{Now: fixedClock(now)}, now)
			mustStep(t, r["A"], sc.Steps[0])
			mustStep(t, r["B"], sc.Steps[1])
			b := r["B"].(*LWWMap)
			if err := b.Merge(r["A"].State()); err != nil {
				t.Fatal(err)
			}
			if got, _ := b.Get("a"); string(got) != `"newer write"` {
				t.Errorf("merging a stamped state: a = %s, want the newer write", got)
			}
			// A v1 state has no field stamps: its snapshot time stands for
			// every field, as in the reference.
			mustStep(t, b, sc.Steps[2])
			if got, _ := b.Get("a"); string(got) != `"old write"` {
				t.Errorf("merging a v1 state: a = %s, want the reference outcome", got)
			}
		},
		"map_merge_does_not_propagate_deletes": func(t *testing.T, sc scenario) {
			r := newReplicas(t, sc, Limits{Now: fixedClock(now)}, now)
			for _, st := range sc.Steps {
				if st.Action == "merge" {
					// Ship the sender's own state instead of the recorded v1 one.
					if err := r[st.On].Merge(r["A"].State()); err != nil {
						t.Fatal(err)
					}
					continue
				}
				mustStep(t, r[st.On], st)
			}
			got := r["B"].(*LWWMap).Value()
			if _, ok := got["a"]; ok || string(got["b"]) != "2" {
				t.Errorf("B = %s, want the delete of a propagated: {b:2}", got)
			}
		},
	}
	for _, sc := range v.Scenarios {
		switch sc.Class {
		case "compat":
			continue
		case "defect":
			check, ok := checks[sc.Name]
			if !ok {
				t.Errorf("defect scenario %s has no check of the required behaviour", sc.Name)
				continue
			}
			t.Run(sc.Name, func(t *testing.T) { check(t, sc) })
		default:
			t.Errorf("scenario %s: class %q has no recorded decision", sc.Name, sc.Class)
		}
	}
}

func mustStep(t *testing.T, c CRDT, st step) {
	t.Helper()
	if _, err := runStep(t, c, st); err != nil {
		t.Fatalf("%s on %s: %v", st.Action, st.On, err)
	}
}
