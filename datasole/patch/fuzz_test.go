package patch

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// FuzzApply feeds Apply the bytes of a STATE_PATCH list, which a client
// receives from the network: it must never panic, must reject with
// ErrRejected, must not touch base, and must return valid JSON on success.
func FuzzApply(f *testing.F) {
	for _, c := range loadCases[applyCase](f, "apply.json") {
		f.Add([]byte(c.Base), []byte(c.Patches))
	}
	f.Add([]byte(`{"a":[1,2]}`), []byte(`[{"op":"copy","from":"/a","path":"/a/-"},{"op":"copy","from":"/a","path":"/a/-"}]`))
	f.Add([]byte(`{"":{"":1}}`), []byte(`[{"op":"move","from":"//","path":"/x"}]`))
	f.Fuzz(func(t *testing.T, base, patches []byte) {
		before := bytes.Clone(base)
		got, err := Apply(base, patches)
		if !bytes.Equal(base, before) {
			t.Fatalf("base modified: %q", base)
		}
		if err != nil {
			if !errors.Is(err, ErrRejected) {
				t.Fatalf("error %v does not wrap ErrRejected", err)
			}
			return
		}
		if len(bytes.TrimSpace(got)) > 0 && !json.Valid(got) { // blank is "no value"
			t.Fatalf("Apply returned invalid JSON %q", got)
		}
	})
}

// FuzzDiff checks that Diff never panics and that, for any two JSON values
// it accepts, applying its patches to old gives new.
func FuzzDiff(f *testing.F) {
	for _, c := range loadCases[diffCase](f, "diff.json") {
		f.Add([]byte(c.Old), []byte(c.New))
	}
	f.Add([]byte(`{"l":[1,2,3]}`), []byte(`{"l":[0,1,2,3],"m":{"a/b":[{"~":1}]}}`))
	f.Add([]byte(`{"constructor":1}`), []byte(`{}`))
	f.Fuzz(func(t *testing.T, old, new []byte) {
		patches, err := Diff(old, new)
		// An empty old means no value, an empty new means null.
		newEmpty := len(bytes.TrimSpace(new)) == 0
		valid := (newEmpty || json.Valid(new)) && (len(bytes.TrimSpace(old)) == 0 || json.Valid(old))
		if err != nil {
			if valid && !errors.Is(err, ErrForbiddenKey) {
				t.Fatalf("Diff(%q, %q): %v", old, new, err)
			}
			return
		}
		if !valid {
			t.Fatalf("Diff(%q, %q) accepted invalid JSON", old, new)
		}
		got, err := Apply(old, patches)
		if err != nil {
			t.Fatalf("Apply(%q, %s): %v", old, patches, err)
		}
		want := new
		if newEmpty {
			want = []byte("null")
		}
		if !jsonEqual(got, want) {
			t.Fatalf("Apply(%q, %s) = %s, want %s", old, patches, got, new)
		}
	})
}
