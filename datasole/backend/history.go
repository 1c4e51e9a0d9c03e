package backend

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Position identifies an entry of a history stream: the stream's epoch and
// the entry's offset. Offsets start at 1 in each epoch and grow by one per
// append, with no gaps, across every node sharing the backend. The epoch is
// a random string chosen when the stream's metadata is created, and chosen
// anew whenever the stream's history is lost (expired, deleted, flushed), so
// that a position from before the loss is recognised as stale. Offset 0 is
// the position before the first entry of an epoch.
type Position struct {
	Epoch  string
	Offset uint64
}

// Limits of history streams.
const (
	// DefaultStreamSize is the number of entries kept when
	// StreamOptions.Size is zero.
	DefaultStreamSize = 1000
	// MaxStreamSize is the largest StreamOptions.Size accepted.
	MaxStreamSize = 1 << 20
	// DefaultStreamMetaTTL is how long a stream's epoch and top offset
	// outlive its last append when StreamOptions.MetaTTL is zero.
	DefaultStreamMetaTTL = 24 * time.Hour
)

// StreamOptions bounds a history stream. The bounds are enforced in the
// backend, so a stream costs a node no memory between calls.
type StreamOptions struct {
	// Size is how many of the latest entries are kept, at least: backends
	// that trim approximately (Redis) may keep a few more. Zero means
	// DefaultStreamSize; at most MaxStreamSize.
	Size int
	// TTL is how long the entries are kept after the last append. Zero
	// keeps them (within Size) as long as the backend keeps its data.
	TTL time.Duration
	// MetaTTL is how long the stream's epoch and top offset are kept after
	// the last append (or, for a stream without entries, after the read that
	// created them). Keeping them longer than the entries lets a client that
	// missed nothing while a stream was quiet recover without a spurious
	// ErrUnrecoverable. Zero means DefaultStreamMetaTTL; it is never shorter
	// than TTL, and with a TTL of zero the metadata never expires.
	MetaTTL time.Duration
}

// Resolve returns o with its defaults applied, or an error for values out of
// range. In the result, MetaTTL is zero exactly when TTL is zero (nothing
// expires); otherwise MetaTTL >= TTL > 0.
func (o StreamOptions) Resolve() (StreamOptions, error) {
	switch {
	case o.Size < 0 || o.Size > MaxStreamSize:
		return o, fmt.Errorf("backend: stream size %d out of range [0, %d]", o.Size, MaxStreamSize)
	case o.TTL < 0 || o.MetaTTL < 0:
		return o, fmt.Errorf("backend: negative stream TTL")
	}
	if o.Size == 0 {
		o.Size = DefaultStreamSize
	}
	switch {
	case o.TTL == 0:
		o.MetaTTL = 0
	case o.MetaTTL == 0:
		o.MetaTTL = max(DefaultStreamMetaTTL, o.TTL)
	default:
		o.MetaTTL = max(o.MetaTTL, o.TTL)
	}
	// Backends store expiries in milliseconds.
	if o.TTL > 0 {
		o.TTL = max(o.TTL, time.Millisecond)
		o.MetaTTL = max(o.MetaTTL, time.Millisecond)
	}
	return o, nil
}

// HistoryEntry is one entry of a history stream.
type HistoryEntry struct {
	Offset uint64
	Data   []byte
}

// ErrUnrecoverable is returned by ReadHistory when the entries after the
// given position can no longer all be returned: the position's epoch is not
// the stream's (its history was lost since), entries after it were trimmed
// or expired, or it lies beyond the stream's top.
var ErrUnrecoverable = errors.New("backend: history not recoverable from this position")

// History is implemented by backends that keep bounded event streams: each
// append gets a Position, and a subscriber that lost its connection reads
// what it missed.
type History interface {
	// AppendPublish appends data to stream, trimmed to o.Size entries and
	// expiring as o says, and publishes on channel the envelope
	// EncodeStreamEnvelope(stream, position, data). The append and the
	// publication are one atomic step where the backend allows it (one
	// script on Redis, one statement holding the stream's lock on Postgres,
	// one lock in memory), so every subscriber receives one stream's
	// messages in offset order; backends that cannot promise this implement
	// UnorderedHistory. An empty channel appends without publishing. When
	// the entry was appended but publishing failed, the returned Position
	// is that of the entry and the error says why.
	AppendPublish(ctx context.Context, stream, channel string, data []byte, o StreamOptions) (Position, error)
	// ReadHistory returns the entries after since, oldest first, at most
	// limit of them (limit <= 0: every entry kept), and the stream's top
	// (the position of its last entry). A since with an empty Epoch returns
	// no entries, only the top. When the stream has no metadata yet, it is
	// created with a new epoch and offset 0 (so the position returned now
	// is recognised later), expiring after o.MetaTTL. ErrUnrecoverable is
	// returned, with the current top, when the entries after since cannot
	// all be returned.
	ReadHistory(ctx context.Context, stream string, since Position, limit int, o StreamOptions) ([]HistoryEntry, Position, error)
}

// UnorderedHistory is implemented by History backends whose subscribers may
// receive one stream's messages out of offset order, because appending and
// publishing are two steps there and appends from several nodes can
// interleave (Compose). A subscriber that sees an offset jump can wait for
// the missing message or read it with ReadHistory, and drops offsets it has
// already seen. The method does nothing; implementing it is the statement.
type UnorderedHistory interface {
	History
	UnorderedHistory()
}

// NewEpoch returns a fresh random epoch for a history stream.
func NewEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// StreamMessage is what a subscriber of a history channel receives, decoded
// by DecodeStreamEnvelope.
type StreamMessage struct {
	Stream   string
	Position Position
	Data     []byte
}

// ErrBadEnvelope is returned by DecodeStreamEnvelope for bytes that are not
// a well-formed envelope.
var ErrBadEnvelope = errors.New("backend: malformed stream envelope")

// envelopeMagic starts every envelope: "dsh" and the format version.
const envelopeMagic = "dsh\x01"

// maxEpochLen bounds an envelope's epoch, whose length is one byte.
const maxEpochLen = 255

// EncodeStreamEnvelope returns the bytes AppendPublish publishes: the magic
// "dsh\x01", the stream's length (4 bytes, big-endian) and bytes, the
// epoch's length (1 byte) and bytes, the offset (8 bytes, big-endian), then
// data to the end. Backends build the same bytes in their own language (Lua,
// SQL); this layout is part of the backend contract. An epoch longer than
// 255 bytes is truncated.
func EncodeStreamEnvelope(stream string, pos Position, data []byte) []byte {
	epoch := pos.Epoch
	if len(epoch) > maxEpochLen {
		epoch = epoch[:maxEpochLen]
	}
	b := make([]byte, 0, len(envelopeMagic)+4+len(stream)+1+len(epoch)+8+len(data))
	b = append(b, envelopeMagic...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(stream)))
	b = append(b, stream...)
	b = append(b, byte(len(epoch)))
	b = append(b, epoch...)
	b = binary.BigEndian.AppendUint64(b, pos.Offset)
	return append(b, data...)
}

// DecodeStreamEnvelope parses an envelope made by EncodeStreamEnvelope. The
// returned Data aliases msg. Anything else, including an envelope with an
// empty epoch or offset 0, gives an error matching ErrBadEnvelope.
func DecodeStreamEnvelope(msg []byte) (StreamMessage, error) {
	var m StreamMessage
	rest, ok := cutPrefix(msg, envelopeMagic)
	if !ok {
		return m, fmt.Errorf("%w: no magic", ErrBadEnvelope)
	}
	if len(rest) < 4 {
		return m, fmt.Errorf("%w: truncated", ErrBadEnvelope)
	}
	n := binary.BigEndian.Uint32(rest)
	rest = rest[4:]
	if uint64(n) > uint64(len(rest)) {
		return m, fmt.Errorf("%w: stream length %d beyond the message", ErrBadEnvelope, n)
	}
	m.Stream, rest = string(rest[:n]), rest[n:]
	if len(rest) < 1 {
		return m, fmt.Errorf("%w: truncated", ErrBadEnvelope)
	}
	e := int(rest[0])
	rest = rest[1:]
	if e == 0 || e+8 > len(rest) {
		return m, fmt.Errorf("%w: bad epoch length %d", ErrBadEnvelope, e)
	}
	m.Position.Epoch, rest = string(rest[:e]), rest[e:]
	m.Position.Offset, m.Data = binary.BigEndian.Uint64(rest), rest[8:]
	if m.Position.Offset == 0 {
		return m, fmt.Errorf("%w: offset 0", ErrBadEnvelope)
	}
	return m, nil
}

func cutPrefix(b []byte, prefix string) ([]byte, bool) {
	if len(b) < len(prefix) || string(b[:len(prefix)]) != prefix {
		return nil, false
	}
	return b[len(prefix):], true
}
