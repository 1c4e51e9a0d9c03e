package datasole

import (
	"encoding/binary"
	"errors"

	"github.com/datasole/datasole-go/datasole/protocol"
)

// The cluster bus carries every server push once, already encoded, with its
// target: each node delivers it to its own connections. A node skips its own
// messages (it delivered them locally when it sent them), so nothing is
// delivered twice. State messages also carry the new value and version, so
// every node's cache can serve snapshots; CRDT messages carry the sender's
// state, which receivers merge (merging is idempotent).
//
// On the wire a bus payload is one message (format 1) or a batch of them
// (format 2: a count, then each message length-prefixed), so that the
// node's publisher can send everything queued during one round trip — or
// during an outage — in one publication, in order.

const busChannel = "bus"

type busKind uint8

const (
	busFrame   busKind = iota + 1 // a push: deliver msg to target
	busState                      // a state change: update the cache, deliver msg
	busCRDT                       // a CRDT state: merge it, deliver our state
	busSession                    // a session change: update the user's copy here
	busGap                        // the origin dropped messages: reload from the store
	busClose                      // close a user's connections (CloseUser)
	busServer                     // a server event for OnServer handlers
	busHistory                    // an event to a kept target: appended to its stream, then delivered
)

// busMsg is one message on the cluster bus.
type busMsg struct {
	kind    busKind
	origin  string
	seq     uint64 // per origin, from 1 in publish order; 0: unsequenced (gap announcements)
	sentAt  int64  // unix nanoseconds, for the lag metric
	target  Target
	op      protocol.Opcode
	msg     []byte // encoded frame (busFrame, busState)
	key     string
	version uint64
	base    uint64 // busState with a STATE_PATCH: the version the patch applies to
	value   []byte // state value (nil: deleted), CRDT state JSON, event data

	appendTried bool // busHistory: an append was attempted (not encoded)
}

const (
	busFormatOne   = 1
	busFormatBatch = 2
)

// maxBusBatch bounds one publication of the publisher; what does not fit
// goes in the next one.
const maxBusBatch = 1 << 20

func (m *busMsg) size() int {
	return 64 + len(m.origin) + len(m.target.id) + len(m.msg) + len(m.key) + len(m.value)
}

func (m *busMsg) appendTo(b []byte) []byte {
	b = append(b, byte(m.kind))
	b = appendBytes(b, []byte(m.origin))
	b = binary.AppendUvarint(b, m.seq)
	b = binary.BigEndian.AppendUint64(b, uint64(m.sentAt))
	b = append(b, byte(m.target.kind))
	b = appendBytes(b, []byte(m.target.id))
	b = append(b, byte(m.op))
	b = appendBytes(b, m.msg)
	b = appendBytes(b, []byte(m.key))
	b = binary.AppendUvarint(b, m.version)
	b = binary.AppendUvarint(b, m.base)
	if m.value == nil {
		return append(b, 0)
	}
	b = append(b, 1)
	return appendBytes(b, m.value)
}

// encodeBus encodes messages as one bus payload.
func encodeBus(msgs []*busMsg) []byte {
	n := 16
	for _, m := range msgs {
		n += m.size()
	}
	b := make([]byte, 0, n)
	if len(msgs) == 1 {
		return msgs[0].appendTo(append(b, busFormatOne))
	}
	b = append(b, busFormatBatch)
	b = binary.AppendUvarint(b, uint64(len(msgs)))
	var scratch []byte
	for _, m := range msgs {
		scratch = m.appendTo(scratch[:0])
		b = appendBytes(b, scratch)
	}
	return b
}

func appendBytes(b, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

var errBadBusMsg = errors.New("datasole: malformed bus message")

// decodeBus decodes a bus payload into its messages. Byte slices of the
// messages alias b.
func decodeBus(b []byte) ([]*busMsg, error) {
	r := busReader{b: b}
	switch r.byte() {
	case busFormatOne:
		m := r.msg()
		if r.err || len(r.b) != 0 {
			return nil, errBadBusMsg
		}
		return []*busMsg{m}, nil
	case busFormatBatch:
		n := r.uvarint()
		if r.err || n == 0 || n > uint64(len(r.b)) { // every message takes bytes
			return nil, errBadBusMsg
		}
		msgs := make([]*busMsg, 0, n)
		for range n {
			inner := busReader{b: r.bytes()}
			m := inner.msg()
			if r.err || inner.err || len(inner.b) != 0 {
				return nil, errBadBusMsg
			}
			msgs = append(msgs, m)
		}
		if len(r.b) != 0 {
			return nil, errBadBusMsg
		}
		return msgs, nil
	}
	return nil, errBadBusMsg
}

type busReader struct {
	b   []byte
	err bool
}

func (r *busReader) msg() *busMsg {
	m := &busMsg{kind: busKind(r.byte())}
	m.origin = string(r.bytes())
	m.seq = r.uvarint()
	m.sentAt = int64(r.uint64())
	m.target.kind = targetKind(r.byte())
	m.target.id = string(r.bytes())
	m.op = protocol.Opcode(r.byte())
	m.msg = r.bytes()
	m.key = string(r.bytes())
	m.version = r.uvarint()
	m.base = r.uvarint()
	if r.byte() == 1 {
		m.value = r.bytes()
	}
	if m.kind < busFrame || m.kind > busHistory || m.target.kind > targetTag {
		r.err = true
	}
	return m
}

func (r *busReader) byte() byte {
	if len(r.b) < 1 {
		r.err = true
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *busReader) uint64() uint64 {
	if len(r.b) < 8 {
		r.err = true
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *busReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *busReader) bytes() []byte {
	n := r.uvarint()
	if r.err || n > uint64(len(r.b)) {
		r.err = true
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}
