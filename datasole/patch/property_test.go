package patch

import (
	"encoding/json"
	"errors"
	"strconv"
	"testing"

	"pgregory.net/rapid"
)

// Member names that exercise pointer escaping and look like array indexes.
var keyNames = []string{"a", "b", "id", "", "0", "1", "-", "a/b", "m~n", "~1", "~01", "/", "~", "日本", "x y"}

var numberTexts = []string{"0", "1", "-1", "2.5", "1e3", "1000", "0.1", "12345678901234567890", "-0.000001"}

func drawScalar(t *rapid.T) any {
	switch rapid.IntRange(0, 4).Draw(t, "scalar") {
	case 0:
		return nil
	case 1:
		return rapid.Bool().Draw(t, "bool")
	case 2:
		return json.Number(rapid.SampledFrom(numberTexts).Draw(t, "number"))
	case 3:
		return json.Number(strconv.Itoa(rapid.IntRange(-1000, 1000).Draw(t, "int")))
	default:
		return rapid.SampledFrom([]string{"", "x", "/", "~0", "<&>", "🎉", "line\nbreak"}).Draw(t, "string")
	}
}

func drawValue(t *rapid.T, depth int) any {
	kind := rapid.IntRange(0, 2).Draw(t, "kind")
	if depth <= 0 {
		kind = 0
	}
	switch kind {
	case 1:
		n := rapid.IntRange(0, 5).Draw(t, "len")
		arr := make([]any, n)
		for i := range arr {
			arr[i] = drawValue(t, depth-1)
		}
		return arr
	case 2:
		n := rapid.IntRange(0, 5).Draw(t, "members")
		obj := make(map[string]any, n)
		for range n {
			obj[rapid.SampledFrom(keyNames).Draw(t, "key")] = drawValue(t, depth-1)
		}
		return obj
	default:
		return drawScalar(t)
	}
}

// mutate returns a changed copy of v: the kind of edit a server makes between
// two calls to set a state value. v itself is not modified.
func mutate(t *rapid.T, v any, depth int) any {
	switch c := v.(type) {
	case []any:
		arr := append([]any(nil), c...)
		switch rapid.IntRange(0, 5).Draw(t, "array edit") {
		case 0: // insert at the front
			return append([]any{drawValue(t, depth)}, arr...)
		case 1: // grow at the end
			for range rapid.IntRange(1, 4).Draw(t, "grow by") {
				arr = append(arr, drawValue(t, depth))
			}
			return arr
		case 2: // shrink
			if len(arr) == 0 {
				return arr
			}
			i := rapid.IntRange(0, len(arr)-1).Draw(t, "drop at")
			return append(arr[:i], arr[i+1:]...)
		case 3: // edit one element
			if len(arr) == 0 {
				return drawValue(t, depth)
			}
			i := rapid.IntRange(0, len(arr)-1).Draw(t, "edit at")
			arr[i] = mutate(t, arr[i], depth-1)
			return arr
		case 4: // truncate
			return arr[:rapid.IntRange(0, len(arr)).Draw(t, "keep")]
		default:
			return drawValue(t, depth)
		}
	case map[string]any:
		obj := make(map[string]any, len(c)+1)
		for k, e := range c {
			obj[k] = e
		}
		key := rapid.SampledFrom(keyNames).Draw(t, "member")
		switch rapid.IntRange(0, 3).Draw(t, "object edit") {
		case 0:
			delete(obj, key)
		case 1:
			if e, ok := obj[key]; ok {
				obj[key] = mutate(t, e, depth-1)
			} else {
				obj[key] = drawValue(t, depth-1)
			}
		case 2:
			obj[key] = drawValue(t, depth-1)
		default:
			return drawValue(t, depth)
		}
		return obj
	default:
		return drawValue(t, depth)
	}
}

func TestDiffApplyRoundTripProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var prev json.RawMessage // no value yet
		var cur any
		if rapid.Bool().Draw(t, "starts with a value") {
			cur = drawValue(t, 3)
			prev = mustMarshal(t, cur)
		}
		for step := range rapid.IntRange(1, 8).Draw(t, "steps") {
			cur = mutate(t, cur, 3)
			next := mustMarshal(t, cur)
			patches, err := Diff(prev, next)
			if err != nil {
				t.Fatalf("step %d: Diff(%s, %s): %v", step, prev, next, err)
			}
			var ops []map[string]any
			if err := json.Unmarshal(patches, &ops); err != nil || ops == nil {
				t.Fatalf("step %d: patches %s are not a JSON array: %v", step, patches, err)
			}
			got, err := Apply(prev, patches)
			if err != nil {
				t.Fatalf("step %d: Apply(%s, %s): %v", step, prev, patches, err)
			}
			if !jsonEqual(got, next) {
				t.Fatalf("step %d: Apply(%s, Diff(..., %s)) = %s via %s", step, prev, next, got, patches)
			}
			prev = got
		}
	})
}

func TestDiffRefusesForbiddenMembersProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		old := drawValue(t, 2)
		name := rapid.SampledFrom([]string{"__proto__", "constructor", "prototype"}).Draw(t, "name")
		var next any = map[string]any{name: drawValue(t, 1)}
		for range rapid.IntRange(0, 2).Draw(t, "nesting") {
			if rapid.Bool().Draw(t, "in an array") {
				next = []any{drawScalar(t), next}
			} else {
				next = map[string]any{rapid.SampledFrom(keyNames).Draw(t, "key"): next}
			}
		}
		if _, err := Diff(mustMarshal(t, old), mustMarshal(t, next)); !errors.Is(err, ErrForbiddenKey) {
			t.Fatalf("Diff to %v: err = %v, want ErrForbiddenKey", next, err)
		}
	})
}

func mustMarshal(t *rapid.T, v any) json.RawMessage {
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// jsonEqual compares two JSON texts exactly: same structure, same member
// names, same number texts (Diff keeps numbers as written).
func jsonEqual(a, b []byte) bool {
	av, aerr := decode(a)
	bv, berr := decode(b)
	if aerr != nil || berr != nil {
		return false
	}
	ra, _ := json.Marshal(av) // map keys marshal sorted: a canonical form
	rb, _ := json.Marshal(bv)
	return string(ra) == string(rb)
}
