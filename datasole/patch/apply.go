package patch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// maxCopiedNodes bounds the values "copy" operations may duplicate in one
// Apply, so that a short list of copies cannot grow a value exponentially.
const maxCopiedNodes = 1 << 20

// Apply applies a patch list (a JSON array of RFC 6902 operations) to base and
// returns the result, with the rules of the stock v1 client:
//
//   - An empty list leaves base as it is (a nil base stays nil).
//   - Every operation is screened before any is applied: op must be one of
//     add, remove, replace, move, copy, test, and no segment of path or from
//     (split on "/" before unescaping) may be __proto__, constructor or
//     prototype.
//   - A nil, empty or null base is replaced by [] when the first operation is
//     a root replace with an array value or its path starts with /<digits>,
//     and by {} otherwise.
//   - Operations apply in order to a copy of base; a root add or replace swaps
//     the whole value (any JSON type) and a root remove leaves null.
//
// Unlike the stock client, Apply follows RFC 6902 strictly where the stock
// client is lenient: adding past the end of an array, removing or replacing a
// missing member or index, array indexes with leading zeros, "-" outside an
// add, and paths without a leading "/" are errors.
//
// Any failure rejects the whole list: the error wraps ErrRejected and the
// cause, and base is not modified.
func Apply(base, patches json.RawMessage) (json.RawMessage, error) {
	ops, err := decodeOps(patches)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRejected, err)
	}
	if len(ops) == 0 {
		if len(bytes.TrimSpace(base)) > 0 && !json.Valid(base) {
			return nil, fmt.Errorf("%w: base is not valid JSON", ErrRejected)
		}
		return base, nil
	}
	doc, err := decodeBase(base, ops[0])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRejected, err)
	}
	a := applier{doc: doc}
	for i, op := range ops {
		if err := a.apply(op); err != nil {
			return nil, fmt.Errorf("%w: operation %d (%s %q): %w", ErrRejected, i, op.Op, op.Path, err)
		}
	}
	var buf bytes.Buffer
	if err := encode(&buf, a.doc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRejected, err)
	}
	return buf.Bytes(), nil
}

// operation is one decoded patch operation. Value is nil when absent.
type operation struct {
	Op    string
	Path  string
	From  string
	Value json.RawMessage
}

// wireOperation mirrors the JSON members; nil tells an absent member.
type wireOperation struct {
	Op    *string         `json:"op"`
	Path  *string         `json:"path"`
	From  *string         `json:"from"`
	Value json.RawMessage `json:"value"` // "null" when null, nil when absent
}

var (
	errMissingParent = errors.New("parent does not exist")
	errMissingTarget = errors.New("target does not exist")
	errNotContainer  = errors.New("parent is neither an object nor an array")
	errBadIndex      = errors.New("invalid array index")
	errTestFailed    = errors.New("test failed")
	errCopyLimit     = errors.New("copies exceed the size limit")
)

// decodeOps decodes and screens the whole list before anything is applied.
func decodeOps(patches []byte) ([]operation, error) {
	var wire []wireOperation
	if err := json.Unmarshal(patches, &wire); err != nil {
		return nil, fmt.Errorf("patch list is not an array of operations: %w", err)
	}
	ops := make([]operation, len(wire))
	for i, w := range wire {
		if w.Op == nil {
			return nil, fmt.Errorf("operation %d: missing op", i)
		}
		op := operation{Op: *w.Op}
		switch op.Op {
		case "add", "replace", "test":
			if w.Value == nil {
				return nil, fmt.Errorf("operation %d: %s without value", i, op.Op)
			}
			op.Value = w.Value
		case "move", "copy":
			if w.From == nil {
				return nil, fmt.Errorf("operation %d: %s without from", i, op.Op)
			}
			op.From = *w.From
			if err := screenPointer(op.From); err != nil {
				return nil, fmt.Errorf("operation %d: from: %w", i, err)
			}
		case "remove":
		default:
			return nil, fmt.Errorf("operation %d: disallowed op %q", i, op.Op)
		}
		if w.Path == nil {
			return nil, fmt.Errorf("operation %d: missing path", i)
		}
		op.Path = *w.Path
		if err := screenPointer(op.Path); err != nil {
			return nil, fmt.Errorf("operation %d: path: %w", i, err)
		}
		// The stock client also screens "from" on operations that ignore it.
		if w.From != nil && hasForbiddenSegment(*w.From) {
			return nil, fmt.Errorf("operation %d: from: %w", i, ErrForbiddenKey)
		}
		ops[i] = op
	}
	return ops, nil
}

func screenPointer(ptr string) error {
	if ptr != "" && ptr[0] != '/' {
		return fmt.Errorf("%q does not start with /", ptr)
	}
	if hasForbiddenSegment(ptr) {
		return fmt.Errorf("%q: %w", ptr, ErrForbiddenKey)
	}
	return nil
}

// decodeBase returns a fresh tree for base, inferring an empty container for
// a missing or null value the way the stock client does.
func decodeBase(base []byte, first operation) (any, error) {
	if len(bytes.TrimSpace(base)) > 0 {
		doc, err := decode(base)
		if err != nil {
			return nil, fmt.Errorf("base: %w", err)
		}
		if doc != nil {
			return doc, nil
		}
	}
	if first.Path == "" && first.Op == "replace" {
		if v := bytes.TrimSpace(first.Value); len(v) > 0 && v[0] == '[' {
			return []any{}, nil
		}
	}
	if startsWithIndex(first.Path) {
		return []any{}, nil
	}
	return map[string]any{}, nil
}

// startsWithIndex reports whether ptr is /<digits> or starts with /<digits>/.
func startsWithIndex(ptr string) bool {
	if !strings.HasPrefix(ptr, "/") {
		return false
	}
	seg, _, _ := strings.Cut(ptr[1:], "/")
	if seg == "" {
		return false
	}
	for i := 0; i < len(seg); i++ {
		if seg[i] < '0' || seg[i] > '9' {
			return false
		}
	}
	return true
}

// applier holds the document being patched; it is a private copy of base.
type applier struct {
	doc    any
	copied int
}

func (a *applier) apply(op operation) error {
	switch op.Op {
	case "add":
		v, err := decode(op.Value)
		if err != nil {
			return err
		}
		return a.add(op.Path, v)
	case "remove":
		if op.Path == "" {
			a.doc = nil // the stock client leaves null; RFC 6902 leaves it open
			return nil
		}
		_, err := a.remove(op.Path)
		return err
	case "replace":
		v, err := decode(op.Value)
		if err != nil {
			return err
		}
		if op.Path == "" {
			a.doc = v
			return nil
		}
		parent, key, err := a.parent(op.Path)
		if err != nil {
			return err
		}
		switch p := parent.(type) {
		case map[string]any:
			if _, ok := p[key]; !ok {
				return errMissingTarget
			}
			p[key] = v
		case []any:
			i, err := index(key, len(p)-1)
			if err != nil {
				return err
			}
			p[i] = v
		}
		return nil
	case "move":
		if op.From == op.Path {
			_, err := a.get(op.From)
			return err
		}
		if strings.HasPrefix(op.Path, op.From+"/") {
			return errors.New("cannot move a value into itself")
		}
		v, err := a.remove(op.From)
		if err != nil {
			return fmt.Errorf("from: %w", err)
		}
		return a.add(op.Path, v)
	case "copy":
		v, err := a.get(op.From)
		if err != nil {
			return fmt.Errorf("from: %w", err)
		}
		c, err := a.deepCopy(v)
		if err != nil {
			return err
		}
		return a.add(op.Path, c)
	case "test":
		want, err := decode(op.Value)
		if err != nil {
			return err
		}
		got, err := a.get(op.Path)
		if err != nil {
			return fmt.Errorf("%w: %w", errTestFailed, err)
		}
		if !equal(got, want) {
			return errTestFailed
		}
		return nil
	}
	return fmt.Errorf("disallowed op %q", op.Op)
}

func (a *applier) add(path string, v any) error {
	if path == "" {
		a.doc = v
		return nil
	}
	parent, key, err := a.parent(path)
	if err != nil {
		return err
	}
	switch p := parent.(type) {
	case map[string]any:
		p[key] = v
	case []any:
		i := len(p)
		if key != "-" {
			if i, err = index(key, len(p)); err != nil {
				return err
			}
		}
		return a.setContainer(path, slices.Insert(p, i, v))
	}
	return nil
}

// remove deletes the value at path (not the root) and returns it.
func (a *applier) remove(path string) (any, error) {
	if path == "" {
		return nil, errors.New("cannot remove the root here")
	}
	parent, key, err := a.parent(path)
	if err != nil {
		return nil, err
	}
	switch p := parent.(type) {
	case map[string]any:
		v, ok := p[key]
		if !ok {
			return nil, errMissingTarget
		}
		delete(p, key)
		return v, nil
	case []any:
		i, err := index(key, len(p)-1)
		if err != nil {
			return nil, err
		}
		v := p[i]
		return v, a.setContainer(path, slices.Delete(p, i, i+1))
	}
	return nil, errNotContainer
}

// setContainer stores a resized array back into its own parent, since growing
// or shrinking a Go slice can move it.
func (a *applier) setContainer(path string, arr []any) error {
	parentPath := path[:strings.LastIndexByte(path, '/')]
	if parentPath == "" {
		a.doc = arr
		return nil
	}
	grand, key, err := a.parent(parentPath)
	if err != nil {
		return err
	}
	switch g := grand.(type) {
	case map[string]any:
		g[key] = arr
	case []any:
		i, err := index(key, len(g)-1)
		if err != nil {
			return err
		}
		g[i] = arr
	}
	return nil
}

// parent resolves every segment of path but the last, which it returns
// unescaped. The parent must be an object or an array.
func (a *applier) parent(path string) (any, string, error) {
	cut := strings.LastIndexByte(path, '/')
	parent, err := a.get(path[:cut])
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", errMissingParent, err)
	}
	switch parent.(type) {
	case map[string]any, []any:
	default:
		return nil, "", errNotContainer
	}
	return parent, unescape(path[cut+1:]), nil
}

// get resolves a JSON Pointer (RFC 6901) against the document.
func (a *applier) get(path string) (any, error) {
	cur := a.doc
	if path == "" {
		return cur, nil
	}
	for _, seg := range strings.Split(path[1:], "/") {
		key := unescape(seg)
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[key]
			if !ok {
				return nil, errMissingTarget
			}
			cur = v
		case []any:
			i, err := index(key, len(c)-1)
			if err != nil {
				return nil, err
			}
			cur = c[i]
		default:
			return nil, errNotContainer
		}
	}
	return cur, nil
}

var unescaper = strings.NewReplacer("~1", "/", "~0", "~")

func unescape(seg string) string {
	if !strings.Contains(seg, "~") {
		return seg
	}
	return unescaper.Replace(seg)
}

// index parses an RFC 6901 array index (no sign, no leading zero) that must
// not exceed max.
func index(key string, max int) (int, error) {
	if key == "" || len(key) > 1 && key[0] == '0' {
		return 0, fmt.Errorf("%w: %q", errBadIndex, key)
	}
	for i := 0; i < len(key); i++ {
		if key[i] < '0' || key[i] > '9' {
			return 0, fmt.Errorf("%w: %q", errBadIndex, key)
		}
	}
	i, err := strconv.Atoi(key)
	if err != nil || i > max {
		return 0, fmt.Errorf("%w: %q out of range", errBadIndex, key)
	}
	return i, nil
}

// deepCopy duplicates v so that a copied value and its source never share
// maps or slices, counting nodes against maxCopiedNodes.
func (a *applier) deepCopy(v any) (any, error) {
	a.copied++
	if a.copied > maxCopiedNodes {
		return nil, errCopyLimit
	}
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			c, err := a.deepCopy(e)
			if err != nil {
				return nil, err
			}
			m[k] = c
		}
		return m, nil
	case []any:
		s := make([]any, len(v))
		for i, e := range v {
			c, err := a.deepCopy(e)
			if err != nil {
				return nil, err
			}
			s[i] = c
		}
		return s, nil
	}
	return v, nil
}
