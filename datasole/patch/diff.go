package patch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/wI2L/jsondiff"
)

// rootReplaceOverhead is the length of {"op":"replace","path":"","value":} plus
// the list brackets: what a root replace costs besides the value itself.
const rootReplaceOverhead = len(`[{"op":"replace","path":"","value":}]`)

// Diff returns the RFC 6902 patch list (a JSON array) that turns old into new
// under the stock client's rules.
//
// A nil or empty old means "no value yet"; a nil or empty new stands for null.
// When either root is not an object or array, when the root changes between
// object and array, or when old has no value, the list is a single
// {"op":"replace","path":"","value":new}. Otherwise objects are compared by
// member and arrays by position, and the whole list is swapped for a root
// replace when that is shorter. Equal values give the empty list [].
//
// Diff returns ErrForbiddenKey, and no patches, if new holds a member named
// __proto__, constructor or prototype at any depth; it never emits a path
// with such a segment.
func Diff(old, new json.RawMessage) (json.RawMessage, error) {
	if bytes.Equal(old, new) && len(bytes.TrimSpace(new)) > 0 && !mayHoldForbidden(new) && json.Valid(new) {
		return json.RawMessage("[]"), nil // setting the same value again is common
	}
	newTree, err := decodeOrNull(new)
	if err != nil {
		return nil, fmt.Errorf("new value: %w", err)
	}
	if err := checkTree(newTree); err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(old)) == 0 {
		return rootReplace(newTree)
	}
	oldTree, err := decode(old)
	if err != nil {
		return nil, fmt.Errorf("old value: %w", err)
	}
	if !sameContainerKind(oldTree, newTree) {
		return rootReplace(newTree)
	}
	ops, err := jsondiff.CompareWithoutMarshal(oldTree, newTree)
	if err != nil {
		return nil, fmt.Errorf("patch: diff: %w", err)
	}
	// A member of old named like a prototype property would surface in a remove
	// path, which the stock client refuses: send the whole value instead.
	for _, op := range ops {
		if hasForbiddenSegment(op.Path) || hasForbiddenSegment(op.From) {
			return rootReplace(newTree)
		}
	}
	c := compactor{ops: ops, new: newTree}
	if err := c.encodeOps(); err != nil {
		return nil, err
	}
	pieces, _, err := c.best("", 0, len(ops))
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, c.buf.Len()+2)
	out = append(out, '[')
	for i, p := range pieces {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, p...)
	}
	return append(out, ']'), nil
}

// mayHoldForbidden reports whether raw could contain a forbidden member name,
// spelled out or hidden behind \u escapes.
func mayHoldForbidden(raw []byte) bool {
	return bytes.Contains(raw, []byte(`\u`)) || bytes.Contains(raw, []byte("__proto__")) ||
		bytes.Contains(raw, []byte("constructor")) || bytes.Contains(raw, []byte("prototype"))
}

// decodeOrNull decodes raw, reading an empty input as null.
func decodeOrNull(raw []byte) (any, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	return decode(raw)
}

// sameContainerKind reports whether a and b are both objects or both arrays:
// the only case in which a member-wise diff is meaningful at the root.
func sameContainerKind(a, b any) bool {
	switch a.(type) {
	case map[string]any:
		_, ok := b.(map[string]any)
		return ok
	case []any:
		_, ok := b.([]any)
		return ok
	}
	return false
}

func rootReplace(v any) (json.RawMessage, error) {
	var buf bytes.Buffer
	if err := encode(&buf, v); err != nil {
		return nil, fmt.Errorf("patch: encoding new value: %w", err)
	}
	return wrapRootReplace(buf.Bytes()), nil
}

func wrapRootReplace(value []byte) json.RawMessage {
	out := make([]byte, 0, len(value)+rootReplaceOverhead)
	out = append(out, `[{"op":"replace","path":"","value":`...)
	out = append(out, value...)
	return append(out, "}]"...)
}

// hasForbiddenSegment applies the stock client's screen: the raw pointer split
// on "/" (before unescaping) must not contain a prototype-related name.
func hasForbiddenSegment(ptr string) bool {
	for ptr != "" {
		seg, rest, _ := strings.Cut(ptr, "/")
		if forbidden(seg) {
			return true
		}
		ptr = rest
	}
	return false
}
