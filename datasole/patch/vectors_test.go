package patch

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"testing"
)

// loadCases reads a golden vector file copied from the protocol specification.
func loadCases[T any](t testing.TB, name string) []T {
	t.Helper()
	raw, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var cases []T
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(cases) == 0 {
		t.Fatalf("%s holds no cases", name)
	}
	return cases
}

// sameJSON reports whether two JSON texts hold equal values; an empty text
// stands for null (no value).
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	return reflect.DeepEqual(mustUnmarshal(t, a), mustUnmarshal(t, b))
}

func mustUnmarshal(t *testing.T, raw []byte) any {
	t.Helper()
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("invalid JSON %s: %v", raw, err)
	}
	return v
}

type applyCase struct {
	Name    string          `json:"name"`
	Base    json.RawMessage `json:"base"`
	Patches json.RawMessage `json:"patches"`
	Result  json.RawMessage `json:"result"`
	Error   bool            `json:"error"`
	Class   string          `json:"class"`
}

// quirkDecisions says, for every lenient behaviour of the stock client listed
// in apply.json, whether Apply reproduces it ("match") or rejects the list as
// RFC 6902 requires ("reject"). A server never relies on either.
var quirkDecisions = map[string]string{
	// The root has no parent to remove it from; null is the natural "no value".
	"root_remove_gives_null": "match",
	// "-" is an ordinary member name of the inferred {} base.
	"undefined_base_dash_path":           "match",
	"undefined_base_remove_first":        "reject",
	"arr_add_beyond_length_appends":      "reject",
	"arr_remove_out_of_range_noop":       "reject",
	"arr_remove_dash_noop":               "reject",
	"arr_replace_out_of_range_pads_null": "reject",
	"arr_replace_dash_appends":           "reject",
	"arr_index_leading_zero":             "reject",
	"arr_non_numeric_index_ignored":      "reject",
	"obj_remove_missing_key_noop":        "reject",
	"obj_replace_missing_key_creates":    "reject",
	"path_without_leading_slash":         "reject",
	"path_two_segments_without_slash":    "reject",
}

func TestApplyVectors(t *testing.T) {
	for _, c := range loadCases[applyCase](t, "apply.json") {
		wantReject := c.Error
		if c.Class == "quirk" {
			decision, ok := quirkDecisions[c.Name]
			if !ok {
				t.Errorf("quirk case %s has no documented decision", c.Name)
				continue
			}
			wantReject = decision == "reject"
		}
		bases := []json.RawMessage{c.Base}
		if string(c.Base) == "null" {
			bases = append(bases, nil) // null and "no value" behave the same
		}
		for _, base := range bases {
			name := c.Name
			if base == nil {
				name += " without a value"
			}
			t.Run(name, func(t *testing.T) {
				before := bytes.Clone(base)
				got, err := Apply(base, c.Patches)
				if !bytes.Equal(base, before) {
					t.Fatalf("base was modified: %s", base)
				}
				if wantReject {
					if !errors.Is(err, ErrRejected) {
						t.Fatalf("Apply = %s, %v; want ErrRejected", got, err)
					}
					if got != nil {
						t.Fatalf("a rejected list returned a value: %s", got)
					}
					return
				}
				if err != nil {
					t.Fatalf("Apply: %v", err)
				}
				if !sameJSON(t, got, c.Result) {
					t.Fatalf("Apply = %s, want %s", got, c.Result)
				}
			})
		}
	}
}

type diffCase struct {
	Name  string          `json:"name"`
	Old   json.RawMessage `json:"old"`
	New   json.RawMessage `json:"new"`
	Class string          `json:"class"`
}

func TestDiffVectors(t *testing.T) {
	for _, c := range loadCases[diffCase](t, "diff.json") {
		t.Run(c.Name, func(t *testing.T) {
			patches, err := Diff(c.Old, c.New)
			if len(c.Name) > len("forbidden_key_") && c.Name[:len("forbidden_key_")] == "forbidden_key_" {
				if !errors.Is(err, ErrForbiddenKey) || patches != nil {
					t.Fatalf("Diff = %s, %v; want ErrForbiddenKey", patches, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Diff: %v", err)
			}
			assertStockSafe(t, patches)
			got, err := Apply(c.Old, patches)
			if err != nil {
				t.Fatalf("Apply(old, %s): %v", patches, err)
			}
			want := c.New
			if want == nil {
				want = json.RawMessage("null") // a deleted value reaches clients as null
			}
			if !sameJSON(t, got, want) {
				t.Fatalf("Apply(old, %s) = %s, want %s", patches, got, want)
			}
		})
	}
}

// assertStockSafe checks what the stock client needs beyond a correct result:
// an array of allowed ops whose paths it does not refuse.
func assertStockSafe(t *testing.T, patches json.RawMessage) {
	t.Helper()
	var ops []struct {
		Op   string  `json:"op"`
		Path string  `json:"path"`
		From *string `json:"from"`
	}
	if err := json.Unmarshal(patches, &ops); err != nil {
		t.Fatalf("patches %s: %v", patches, err)
	}
	if ops == nil {
		t.Fatalf("patches %s: not an array", patches)
	}
	for _, op := range ops {
		switch op.Op {
		case "add", "remove", "replace", "move", "copy":
		default:
			t.Fatalf("patches %s: op %q", patches, op.Op)
		}
		if hasForbiddenSegment(op.Path) || op.From != nil && hasForbiddenSegment(*op.From) {
			t.Fatalf("patches %s: forbidden segment", patches)
		}
	}
}
