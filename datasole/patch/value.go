// Package patch turns one JSON value into another with RFC 6902 JSON Patch,
// the way live state travels in protocol v1: the server diffs the old and the
// new value of a state key (Diff) and sends the list in a STATE_PATCH frame;
// clients apply it (Apply) with the rules of the stock client.
//
// Both sides are pure functions over JSON text; nothing here touches the
// network. Diff only emits patches that the stock client applies exactly, and
// never relies on its lenient behaviour (adding past the end of an array,
// removing a missing member, replacing a missing member).
package patch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Sentinel errors.
var (
	// ErrForbiddenKey is returned by Diff and CheckValue for a value holding an
	// object member named __proto__, constructor or prototype: the stock client
	// rejects every patch whose path contains such a segment.
	ErrForbiddenKey = errors.New("patch: forbidden member name")
	// ErrRejected is returned by Apply when the patch list cannot be applied;
	// it wraps the cause. The base value is then kept unchanged.
	ErrRejected = errors.New("patch: patch list rejected")
)

// forbidden reports whether name is one of the member names the stock client
// refuses as a path segment (they would reach JavaScript prototypes).
func forbidden(name string) bool {
	return name == "__proto__" || name == "constructor" || name == "prototype"
}

// CheckValue returns ErrForbiddenKey if v holds an object member named
// __proto__, constructor or prototype at any depth, and a decoding error if v
// is not a single JSON value.
func CheckValue(v json.RawMessage) error {
	tree, err := decode(v)
	if err != nil {
		return err
	}
	return checkTree(tree)
}

func checkTree(v any) error {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if forbidden(k) {
				return fmt.Errorf("%w: %q", ErrForbiddenKey, k)
			}
			if err := checkTree(e); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range v {
			if err := checkTree(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// decode parses exactly one JSON value. Numbers stay json.Number so that they
// travel with their original text (no float64 rounding of large integers).
func decode(raw []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("patch: invalid JSON: %w", err)
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("patch: invalid JSON: data after the value")
	}
	return v, nil
}

// encode writes v as compact JSON without HTML escaping.
func encode(buf *bytes.Buffer, v any) error {
	e := json.NewEncoder(buf)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil {
		return err
	}
	buf.Truncate(buf.Len() - 1) // Encode ends every value with a newline
	return nil
}

// equal compares two decoded JSON values the way JavaScript's deep equality of
// JSON data does: numbers by value, so 1 and 1.0 are equal.
func equal(a, b any) bool {
	switch a := a.(type) {
	case nil:
		return b == nil
	case bool:
		bv, ok := b.(bool)
		return ok && a == bv
	case string:
		bv, ok := b.(string)
		return ok && a == bv
	case json.Number:
		bv, ok := b.(json.Number)
		if !ok {
			return false
		}
		if a == bv {
			return true
		}
		af, aerr := strconv.ParseFloat(string(a), 64)
		bf, berr := strconv.ParseFloat(string(bv), 64)
		return aerr == nil && berr == nil && af == bf
	case []any:
		bv, ok := b.([]any)
		if !ok || len(a) != len(bv) {
			return false
		}
		for i := range a {
			if !equal(a[i], bv[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok || len(a) != len(bv) {
			return false
		}
		for k, av := range a {
			w, ok := bv[k]
			if !ok || !equal(av, w) {
				return false
			}
		}
		return true
	}
	return false
}
