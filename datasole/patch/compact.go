package patch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/wI2L/jsondiff"
)

// compactor shortens a positional patch list: wherever one replace of a
// subtree is shorter than the operations inside it (typically after an
// insert at the front of an array, which shifts every element), the
// operations give way to that replace. The server pays this once per change;
// every client saves the bytes.
//
// It relies on the shape of jsondiff's output: operations under one pointer
// are contiguous, and every strict ancestor of an operation's path exists in
// both values, so replacing it is valid.
type compactor struct {
	ops  jsondiff.Patch
	new  any
	buf  bytes.Buffer
	enc  *json.Encoder // writes to buf
	ends []int         // ops[i] is encoded as buf[ends[i-1]:ends[i]]
}

func (c *compactor) encodeOps() error {
	c.ends = make([]int, len(c.ops))
	c.enc = json.NewEncoder(&c.buf)
	c.enc.SetEscapeHTML(false)
	for i, op := range c.ops {
		if err := c.encodeOp(op); err != nil {
			return fmt.Errorf("patch: encoding patch: %w", err)
		}
		c.ends[i] = c.buf.Len()
	}
	return nil
}

// encodeOp writes one operation compactly; jsondiff's own marshalling escapes
// HTML and validates every operation twice, and this is the hot path.
func (c *compactor) encodeOp(op jsondiff.Operation) error {
	encode := func(_ *bytes.Buffer, v any) error {
		if err := c.enc.Encode(v); err != nil {
			return err
		}
		c.buf.Truncate(c.buf.Len() - 1) // Encode ends every value with a newline
		return nil
	}
	c.buf.WriteString(`{"op":"`)
	c.buf.WriteString(op.Type)
	c.buf.WriteByte('"')
	if op.Type == jsondiff.OperationMove || op.Type == jsondiff.OperationCopy {
		c.buf.WriteString(`,"from":`)
		if err := encode(&c.buf, op.From); err != nil {
			return err
		}
	}
	c.buf.WriteString(`,"path":`)
	if err := encode(&c.buf, op.Path); err != nil {
		return err
	}
	switch op.Type {
	case jsondiff.OperationAdd, jsondiff.OperationReplace, jsondiff.OperationTest:
		c.buf.WriteString(`,"value":`)
		if err := encode(&c.buf, op.Value); err != nil {
			return err
		}
	}
	c.buf.WriteByte('}')
	return nil
}

func (c *compactor) op(i int) []byte {
	start := 0
	if i > 0 {
		start = c.ends[i-1]
	}
	return c.buf.Bytes()[start:c.ends[i]]
}

// best returns the shortest encoding of ops[lo:hi], all of which lie under
// the node at prefix: either the operations (each child subtree compacted in
// turn) or one replace of the node.
func (c *compactor) best(prefix string, lo, hi int) (pieces [][]byte, size int, err error) {
	for i := lo; i < hi; {
		rest := c.ops[i].Path[len(prefix)+1:]
		seg, _, _ := strings.Cut(rest, "/")
		child := prefix + "/" + seg
		j, node := i+1, c.ops[i].Path != child
		for j < hi && under(c.ops[j].Path, child) {
			node = node && c.ops[j].Path != child
			j++
		}
		if j-i > 1 && node {
			sub, n, err := c.best(child, i, j)
			if err != nil {
				return nil, 0, err
			}
			pieces, size = append(pieces, sub...), size+n
		} else {
			for k := i; k < j; k++ {
				p := c.op(k)
				pieces, size = append(pieces, p), size+len(p)+1
			}
		}
		i = j
	}
	if hi-lo < 2 {
		return pieces, size, nil
	}
	replace, err := c.replaceShorterThan(prefix, size)
	if err != nil || replace == nil {
		return pieces, size, err
	}
	return [][]byte{replace}, len(replace) + 1, nil
}

// replaceShorterThan returns the encoded replace of the node at prefix by its
// new value if that is shorter than limit, and nil otherwise. A size estimate
// with early exit keeps large subtrees from being encoded for nothing.
func (c *compactor) replaceShorterThan(prefix string, limit int) ([]byte, error) {
	v, err := (&applier{doc: c.new}).get(prefix)
	if err != nil {
		return nil, fmt.Errorf("patch: diff produced a path missing from the new value: %w", err)
	}
	overhead := len(`{"op":"replace","path":"","value":}`) + len(prefix)
	if !fitsIn(v, limit-overhead) {
		return nil, nil
	}
	var buf bytes.Buffer
	buf.WriteString(`{"op":"replace","path":`)
	if err := encode(&buf, prefix); err != nil {
		return nil, err
	}
	buf.WriteString(`,"value":`)
	if err := encode(&buf, v); err != nil {
		return nil, err
	}
	buf.WriteByte('}')
	if buf.Len() >= limit {
		return nil, nil
	}
	return buf.Bytes(), nil
}

func under(path, prefix string) bool {
	return strings.HasPrefix(path, prefix) && (len(path) == len(prefix) || path[len(prefix)] == '/')
}

// fitsIn reports whether the JSON encoding of v is likely no longer than
// budget, stopping as soon as the estimate exceeds it. The estimate ignores
// escapes; it only steers the choice, the real encoding decides.
func fitsIn(v any, budget int) bool {
	_, ok := estimate(v, budget)
	return ok
}

func estimate(v any, budget int) (int, bool) {
	n := 0
	switch v := v.(type) {
	case nil, bool:
		n = 5
	case json.Number:
		n = len(v)
	case string:
		n = len(v) + 2
	case []any:
		n = 1 + len(v)
		for _, e := range v {
			m, ok := estimate(e, budget-n)
			if !ok {
				return 0, false
			}
			n += m
		}
	case map[string]any:
		n = 1 + len(v)
		for k, e := range v {
			n += len(k) + 3
			m, ok := estimate(e, budget-n)
			if !ok {
				return 0, false
			}
			n += m
		}
	}
	return n, n <= budget
}
