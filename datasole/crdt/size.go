package crdt

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/datasole/datasole-go/datasole/patch"
)

// Size accounting. Each replica keeps an upper bound of the length of its
// encoded state, json.Marshal(State()), and updates it with every change
// from the sizes of what the change adds and removes. Numbers are counted
// at their widest (16 digits for values in 0..2^53+1, 20 for any int64 or
// uint64), so increments never grow the bound, and every entry is counted
// with a trailing comma. The property tests check the bound against the
// real encoding.

const (
	// safeWidth is the widest decimal of an integer in 0..2^53+1.
	safeWidth = 16
	// wordWidth is the widest decimal of an int64 (with sign) or uint64.
	wordWidth = 20
)

// quotedLen returns an upper bound of the length of s encoded as a JSON
// string by encoding/json: the quotes, every byte that needs an escape
// counted as a six-byte \u escape, every invalid UTF-8 byte as \ufffd and
// U+2028 and U+2029 as their escapes.
func quotedLen(s string) int {
	n := 2
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b < 0x20 || b == '"' || b == '\\' || b == '<' || b == '>' || b == '&' {
				n += 6
			} else {
				n++
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			n += 6
		case r == '\u2028' || r == '\u2029':
			n += 6
		default:
			n += size
		}
		i += size
	}
	return n
}

// opValue returns the compact encoding of a remote op's value if it is one
// JSON value within Limits.MaxValueBytes and free of forbidden member
// names. A value too large is refused with ErrTooLarge, any other with
// ErrInvalidOp.
func (l Limits) opValue(v []byte) ([]byte, error) {
	b, err := encodeValue(json.RawMessage(v))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidOp, err)
	}
	if err := l.checkEncoded(b); err != nil {
		if errors.Is(err, ErrTooLarge) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalidOp, err)
	}
	return b, nil
}

// checkEncoded checks an already compact encoding for size and forbidden
// member names.
func (l Limits) checkEncoded(b []byte) error {
	if len(b) > l.maxValueBytes() {
		return fmt.Errorf("%w: value of %d bytes (%d allowed)", ErrTooLarge, len(b), l.maxValueBytes())
	}
	return checkMembers(b)
}

// checkMembers refuses a value holding a forbidden member name, as live
// state values are refused.
func checkMembers(b []byte) error {
	if err := patch.CheckValue(b); err != nil {
		return fmt.Errorf("%w: %w", ErrForbiddenValue, err)
	}
	return nil
}

// budget decides whether a change from size cur to size next is allowed
// under limit: a change that does not grow the state always is.
func budget(cur, next, limit int) error {
	if next > cur && next > limit {
		return fmt.Errorf("%w: state of %d bytes (%d allowed)", ErrTooLarge, next, limit)
	}
	return nil
}

// encoding caches the JSON encoding of a replica's state between changes.
type encoding struct{ b json.RawMessage }

// get returns the cached encoding, making it with state if there is none.
func (e *encoding) get(state func() State) json.RawMessage {
	if e.b == nil {
		// Marshalling a State of valid RawMessages cannot fail.
		e.b, _ = json.Marshal(state())
	}
	return e.b
}

// reset drops the cached encoding after a change.
func (e *encoding) reset() { e.b = nil }
