package crdt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// Op is one CRDT operation in v1 wire shape (PROTOCOL.md §5.9), the "op"
// member of a CRDT_OP payload:
//
//	{"type":"pn-counter","nodeId":"c1","timestamp":1711234567890,"op":"increment","value":1,"seq":7}
//	{"type":"lww-map","nodeId":"c1","timestamp":1711234567890,"op":"set","key":"color","value":"blue"}
//
// Seq is an extension member that v1 peers ignore.
type Op struct {
	// Type is the CRDT type name.
	Type string `json:"type"`
	// NodeID is the writer.
	NodeID string `json:"nodeId"`
	// Timestamp is the writer's clock in milliseconds since the Unix epoch.
	Timestamp int64 `json:"timestamp"`
	// Op is "increment" or "decrement" (pn-counter), "set" (register and
	// map) or "remove" (map).
	Op string `json:"op"`
	// Key is the lww-map field.
	Key string `json:"key,omitempty"`
	// Value is the counter amount (absent or null means 1) or the value set.
	Value json.RawMessage `json:"value,omitempty"`
	// Seq numbers a node's pn-counter ops 1, 2, 3, … so that a receiver can
	// drop duplicates (see PNCounter.Apply). Zero means absent.
	Seq uint64 `json:"seq,omitempty"`
}

// State is a replica's state in v1 wire shape (PROTOCOL.md §5.10), the
// "state" member of a CRDT_STATE payload.
type State struct {
	// Type is the CRDT type name.
	Type string `json:"type"`
	// Value is the counter total, the register value (absent until first
	// written) or the object of live map fields.
	Value json.RawMessage `json:"value,omitempty"`
	// Metadata carries what merges need.
	Metadata *Metadata `json:"metadata,omitempty"`
}

// Metadata is the "metadata" member of a [State]. Type, NodeID, Timestamp,
// Version and Vector are the v1 members; Writer, Fields and Seqs are
// extension members that v1 peers ignore.
type Metadata struct {
	// Type repeats the CRDT type name.
	Type string `json:"type"`
	// NodeID is the replica that produced the state.
	NodeID string `json:"nodeId"`
	// Timestamp is the winning write's time (register) or the producer's clock
	// when the state was taken (counter, map).
	Timestamp int64 `json:"timestamp"`
	// Version counts the producer's local changes; it is not comparable
	// across replicas and merges ignore it.
	Version uint64 `json:"version"`
	// Vector holds the per-node counts of a pn-counter.
	Vector *Vector `json:"vector,omitempty"`
	// Writer is the node id of the register's winning write. A state without
	// it (from a v1 peer) is merged as if NodeID had written the value.
	Writer string `json:"writer,omitempty"`
	// Fields holds the (timestamp, nodeId) of every lww-map field, live or
	// deleted. Fields missing here (or a whole v1 state without it) are merged
	// with Timestamp and NodeID, as the v1 reference does.
	Fields map[string]FieldMeta `json:"fields,omitempty"`
	// Seqs holds, per node, the highest pn-counter op sequence number the
	// counts include.
	Seqs map[string]uint64 `json:"seqs,omitempty"`
}

// Vector is the "vector" member of a pn-counter's metadata.
type Vector struct {
	// Increments is the per-node sum of increments.
	Increments Counts `json:"increments"`
	// Decrements is the per-node sum of decrements.
	Decrements Counts `json:"decrements"`
}

// Counts maps node ids to non-negative integer counts. Decoding skips
// entries that are not integers in 0..MaxSafeInteger (as the v1 reference
// skips non-numeric ones) and fails only when the JSON is neither an object
// nor null.
type Counts map[string]uint64

// UnmarshalJSON implements json.Unmarshaler.
func (c *Counts) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("%w: counts are not an object: %w", ErrInvalidState, err)
	}
	out := make(Counts, len(raw))
	for node, v := range raw {
		if n, ok := parseCount(v); ok {
			out[node] = n
		}
	}
	*c = out
	return nil
}

// FieldMeta is the write stamp of one lww-map field in Metadata.Fields.
type FieldMeta struct {
	// Timestamp is the write's time in milliseconds.
	Timestamp int64 `json:"timestamp"`
	// NodeID is the writer.
	NodeID string `json:"nodeId"`
	// Deleted marks a tombstone: the field was removed by this write.
	Deleted bool `json:"deleted,omitempty"`
}

// parseCount accepts a JSON number that is an integer in 0..MaxSafeInteger.
// Strings, null, fractions and negatives are refused.
func parseCount(raw json.RawMessage) (uint64, bool) {
	s := string(bytes.TrimSpace(raw))
	if s == "" || (s[0] != '-' && (s[0] < '0' || s[0] > '9')) {
		return 0, false
	}
	// Plain integers are parsed exactly: as a float, 2^53+1 would round to 2^53.
	if n, err := strconv.ParseUint(s, 10, 64); err == nil {
		return n, n <= MaxSafeInteger
	}
	// Other spellings of an integer (1e2, 5.0, -0) are what a JavaScript
	// peer may write.
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f >= MaxSafeInteger || f != math.Trunc(f) {
		return 0, false
	}
	return uint64(f), true
}

// amount returns a counter op's amount: absent or null means 1.
func (op Op) amount() (uint64, error) {
	if v := bytes.TrimSpace(op.Value); len(v) == 0 || string(v) == "null" {
		return 1, nil
	}
	n, ok := parseCount(op.Value)
	if !ok {
		return 0, fmt.Errorf("%w: amount %s is not an integer in 0..2^53", ErrInvalidOp, op.Value)
	}
	return n, nil
}

// encodeValue turns a Go value (or a json.RawMessage) into compact JSON.
func encodeValue(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("crdt: encode value: %w", err)
	}
	return b, nil
}
