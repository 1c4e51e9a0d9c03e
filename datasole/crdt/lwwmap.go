package crdt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"
)

// LWWMap is a map of JSON values, one last-writer-wins register per field,
// ordered by (timestamp, nodeId). A delete writes a tombstone, also for a
// field never seen, so a delete wins over every older write of that field
// whatever the arrival order. Tombstones are never collected: they count
// toward Limits.MaxEntries with the live fields.
//
// The state carries every field's (timestamp, nodeId) and the tombstones in
// metadata.fields, so merges are true per-field LWW merges and deletes
// propagate through states. A v1 state has no metadata.fields; its fields
// are merged as if written at metadata.timestamp by metadata.nodeId, as the
// v1 reference does, and its deletes cannot be seen.
//
// Field names must be non-empty and not __proto__, constructor or prototype;
// values must not hold object members of those names at any depth. Writes
// are bounded by Limits.MaxValueBytes per value and Limits.MaxStateBytes for
// the whole state, field names and stamps included.
//
// An LWWMap is safe for concurrent use.
type LWWMap struct {
	mu      sync.Mutex
	node    string
	lim     Limits
	fields  map[string]write
	version uint64
	size    int // upper bound of the encoded state
	enc     encoding
}

// NewLWWMap returns an empty map for replica nodeID.
func NewLWWMap(nodeID string, lim Limits) (*LWWMap, error) {
	if err := lim.checkNodeID(nodeID); err != nil {
		return nil, err
	}
	base := len(`{"type":"lww-map","value":{},"metadata":{"type":"lww-map","nodeId":,"timestamp":,"version":,"fields":{}}}`) +
		quotedLen(nodeID) + 2*wordWidth
	return &LWWMap{node: nodeID, lim: lim, fields: map[string]write{}, size: base}, nil
}

// fieldSize bounds what field, written as w, adds to the encoded state: its
// stamp in metadata.fields and, when live, its value.
func fieldSize(field string, w write) int {
	q := quotedLen(field)
	n := q + len(`:{"timestamp":,"nodeId":},`) + safeWidth + quotedLen(w.node)
	if w.deleted {
		return n + len(`,"deleted":true`)
	}
	return n + q + len(`:,`) + len(w.value)
}

// Type returns "lww-map".
func (m *LWWMap) Type() string { return TypeLWWMap }

// NodeID returns the replica's node id.
func (m *LWWMap) NodeID() string { return m.node }

func checkField(field string) error {
	if field == "" {
		return fmt.Errorf("%w: empty field name", ErrInvalidOp)
	}
	if forbiddenField(field) {
		return fmt.Errorf("%w: %q", ErrForbiddenField, field)
	}
	return nil
}

// Set writes field = v (any value encoding/json accepts, or a
// json.RawMessage) at timestamp ts (milliseconds) and returns the op to
// send. The write takes effect only if it wins; the op is returned either
// way. With Limits.MaxSkew set, ts is clamped first. A value holding a
// forbidden member name is refused with ErrForbiddenValue, one past
// Limits.MaxValueBytes or a write that would grow the state past
// Limits.MaxStateBytes with ErrTooLarge.
func (m *LWWMap) Set(field string, v any, ts int64) (Op, error) {
	if err := checkField(field); err != nil {
		return Op{}, err
	}
	b, err := encodeValue(v)
	if err != nil {
		return Op{}, err
	}
	if err := m.lim.checkEncoded(b); err != nil {
		return Op{}, err
	}
	op := Op{Type: TypeLWWMap, NodeID: m.node, Timestamp: ts, Op: OpSet, Key: field, Value: b}
	return m.local(op, write{value: b, node: m.node})
}

// Delete removes field at timestamp ts (milliseconds), leaving a tombstone,
// and returns the op to send.
func (m *LWWMap) Delete(field string, ts int64) (Op, error) {
	if err := checkField(field); err != nil {
		return Op{}, err
	}
	op := Op{Type: TypeLWWMap, NodeID: m.node, Timestamp: ts, Op: OpRemove, Key: field}
	return m.local(op, write{node: m.node, deleted: true})
}

func (m *LWWMap) local(op Op, w write) (Op, error) {
	if op.Timestamp < 0 || op.Timestamp > MaxSafeInteger {
		return Op{}, fmt.Errorf("%w: timestamp %d out of range", ErrInvalidOp, op.Timestamp)
	}
	op.Timestamp = m.lim.clamp(op.Timestamp)
	w.ts = op.Timestamp
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.offer(op.Key, w); err != nil {
		return Op{}, err
	}
	return op, nil
}

// offer installs w for field if it wins; a new field must fit MaxEntries
// and the state MaxStateBytes.
func (m *LWWMap) offer(field string, w write) error {
	cur, ok := m.fields[field]
	if ok && !w.beats(cur) {
		return nil
	}
	if !ok && len(m.fields) >= m.lim.maxEntries() {
		return fmt.Errorf("%w: more than %d fields", ErrTooLarge, m.lim.maxEntries())
	}
	next := m.size + fieldSize(field, w)
	if ok {
		next -= fieldSize(field, cur)
	}
	if err := budget(m.size, next, m.lim.maxStateBytes()); err != nil {
		return err
	}
	m.fields[field] = w
	m.size = next
	m.version++
	m.enc.reset()
	return nil
}

// Apply applies a remote "set" (needs key and value; null is a value) or
// "remove" (needs key) op. Values are checked as in Set.
func (m *LWWMap) Apply(op Op) error {
	if err := m.lim.checkOp(op, TypeLWWMap); err != nil {
		return err
	}
	if err := checkField(op.Key); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidOp, err)
	}
	w := write{ts: m.lim.clamp(op.Timestamp), node: op.NodeID}
	switch op.Op {
	case OpSet:
		if len(op.Value) == 0 {
			return fmt.Errorf("%w: set without value", ErrInvalidOp)
		}
		b, err := m.lim.opValue(op.Value)
		if err != nil {
			return err
		}
		w.value = b
	case OpRemove:
		w.deleted = true
	default:
		return fmt.Errorf("%w: op %q on lww-map", ErrInvalidOp, op.Op)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.offer(op.Key, w)
}

// Merge merges a remote map state field by field. The state needs an
// object value, a valid metadata.timestamp and metadata.nodeId (used for
// fields that metadata.fields does not stamp). Forbidden field names,
// values holding forbidden member names and malformed field entries are
// skipped, as the v1 reference skips forbidden names. A merge that would
// exceed MaxEntries fields or MaxStateCeiling bytes returns ErrTooLarge and
// changes nothing.
func (m *LWWMap) Merge(s State) error {
	if err := checkState(s, TypeLWWMap); err != nil {
		return err
	}
	md := s.Metadata
	if err := m.lim.checkNodeID(md.NodeID); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidState, err)
	}
	if md.Timestamp < 0 || md.Timestamp > MaxSafeInteger {
		return fmt.Errorf("%w: timestamp %d out of range", ErrInvalidState, md.Timestamp)
	}
	var values map[string]json.RawMessage
	if err := json.Unmarshal(s.Value, &values); err != nil || values == nil {
		return fmt.Errorf("%w: value is not an object", ErrInvalidState)
	}
	if len(values) > m.lim.maxEntries() || len(md.Fields) > m.lim.maxEntries() {
		return fmt.Errorf("%w: %d values, %d stamps", ErrTooLarge, len(values), len(md.Fields))
	}
	incoming := make(map[string]write, len(values))
	for field, v := range values {
		fm, stamped := md.Fields[field]
		if !stamped {
			fm = FieldMeta{Timestamp: md.Timestamp, NodeID: md.NodeID}
		}
		if fm.Deleted || !m.validStamp(fm) || checkField(field) != nil {
			continue
		}
		b, err := encodeValue(v)
		if err != nil || checkMembers(b) != nil {
			continue
		}
		incoming[field] = write{value: b, ts: m.lim.clamp(fm.Timestamp), node: fm.NodeID}
	}
	for field, fm := range md.Fields {
		if _, live := values[field]; live || !fm.Deleted || !m.validStamp(fm) || checkField(field) != nil {
			continue
		}
		incoming[field] = write{ts: m.lim.clamp(fm.Timestamp), node: fm.NodeID, deleted: true}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	added, next := 0, m.size
	for field, w := range incoming {
		cur, ok := m.fields[field]
		switch {
		case !ok:
			added++
		case !w.beats(cur):
			delete(incoming, field)
			continue
		default:
			next -= fieldSize(field, cur)
		}
		next += fieldSize(field, w)
	}
	if len(m.fields)+added > m.lim.maxEntries() {
		return fmt.Errorf("%w: more than %d fields", ErrTooLarge, m.lim.maxEntries())
	}
	if err := budget(m.size, next, MaxStateCeiling); err != nil {
		return err
	}
	if len(incoming) == 0 {
		return nil
	}
	for field, w := range incoming {
		m.fields[field] = w
	}
	m.size = next
	m.version++
	m.enc.reset()
	return nil
}

func (m *LWWMap) validStamp(fm FieldMeta) bool {
	return fm.Timestamp >= 0 && fm.Timestamp <= MaxSafeInteger && m.lim.checkNodeID(fm.NodeID) == nil
}

// State returns the map in v1 shape (value = live fields) with every
// field's stamp, tombstones included, in metadata.fields.
func (m *LWWMap) State() State {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stateLocked()
}

// EncodedState returns the encoded State, cached until the next change.
func (m *LWWMap) EncodedState() json.RawMessage {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.enc.get(m.stateLocked)
}

// Size returns an upper bound of len(EncodedState()).
func (m *LWWMap) Size() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.size
}

func (m *LWWMap) stateLocked() State {
	live := make(map[string]json.RawMessage, len(m.fields))
	meta := make(map[string]FieldMeta, len(m.fields))
	for field, w := range m.fields {
		meta[field] = FieldMeta{Timestamp: w.ts, NodeID: w.node, Deleted: w.deleted}
		if !w.deleted {
			live[field] = w.value
		}
	}
	// Marshalling a map of valid RawMessages cannot fail.
	value, _ := json.Marshal(live)
	md := &Metadata{
		Type:      TypeLWWMap,
		NodeID:    m.node,
		Timestamp: m.lim.now().UnixMilli(),
		Version:   m.version,
	}
	if len(meta) > 0 {
		md.Fields = meta
	}
	return State{Type: TypeLWWMap, Value: value, Metadata: md}
}

// Value returns the live fields.
func (m *LWWMap) Value() map[string]json.RawMessage {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]json.RawMessage, len(m.fields))
	for field, w := range m.fields {
		if !w.deleted {
			out[field] = bytes.Clone(w.value)
		}
	}
	return out
}

// Get returns the value of field and whether it is live.
func (m *LWWMap) Get(field string) (json.RawMessage, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w, ok := m.fields[field]
	if !ok || w.deleted {
		return nil, false
	}
	return bytes.Clone(w.value), true
}
