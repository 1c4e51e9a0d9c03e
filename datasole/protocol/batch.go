package protocol

import (
	"encoding/binary"
	"errors"
)

// The batching extension carries several v1 messages in one WebSocket
// message. It is used only on connections that negotiated the subprotocol
// SubprotocolBatch at the upgrade; v1 peers never see it.
//
// A BATCH frame has the usual 9-byte header — opcode 0x0C, correlationId =
// the number of items (informational), payloadLength N ≤ MaxPayload — and a
// payload of items back to back, each uvarint(len) followed by len bytes of
// one v1 message exactly as it would travel alone: a raw frame (first byte
// 0x01–0x0B) or a zlib-compressed one (first byte 0x78). BATCH frames never
// nest and are never compressed themselves.

// Batch is the opcode of a BATCH frame. It is not a v1 opcode: Valid
// reports false for it and Decode refuses it.
const Batch Opcode = 0x0C

// Subprotocols of the WebSocket upgrade.
const (
	// SubprotocolV1 is plain protocol v1. Clients of this module offer it
	// first, so servers that echo the first offer pick it.
	SubprotocolV1 = "datasole.v1"
	// SubprotocolBatch is protocol v1 with the batching extension.
	SubprotocolBatch = "datasole.batch.v1"
	// SubprotocolTokenPrefix starts an offered subprotocol that carries a
	// credential ("datasole.token.<token>"), kept out of URLs. Servers
	// never select it.
	SubprotocolTokenPrefix = "datasole.token."
)

// ErrBadBatch is returned for a malformed BATCH frame; receivers refuse it
// as a whole (ERROR code "bad-batch").
var ErrBadBatch = errors.New("datasole protocol: bad-batch")

// BatchItemSize returns how many payload bytes an item of n bytes takes.
func BatchItemSize(n int) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], uint64(n)) + n
}

// AppendBatchHeader appends the header of a BATCH frame holding items items
// in payloadLen bytes.
func AppendBatchHeader(dst []byte, items, payloadLen int) []byte {
	dst = append(dst, byte(Batch))
	dst = binary.BigEndian.AppendUint32(dst, uint32(items))
	return binary.BigEndian.AppendUint32(dst, uint32(payloadLen))
}

// AppendBatchItem appends one item (an encoded v1 message) to a BATCH
// payload.
func AppendBatchItem(dst, msg []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(msg)))
	return append(dst, msg...)
}

// AppendBatch appends a complete BATCH frame holding msgs. It fails when
// msgs do not fit one frame or one of them is not a v1 message.
func AppendBatch(dst []byte, msgs [][]byte) ([]byte, error) {
	size := 0
	for _, m := range msgs {
		if !isItem(m) {
			return dst, ErrBadBatch
		}
		size += BatchItemSize(len(m))
	}
	if size > MaxPayload {
		return dst, ErrPayloadTooLarge
	}
	dst = AppendBatchHeader(dst, len(msgs), size)
	for _, m := range msgs {
		dst = AppendBatchItem(dst, m)
	}
	return dst, nil
}

// IsBatch reports whether a message is a BATCH frame (by its first byte).
func IsBatch(msg []byte) bool { return len(msg) > 0 && msg[0] == byte(Batch) }

// SplitBatch checks a BATCH message as a whole and then calls fn with each
// item in order. Items alias msg. It returns ErrBadBatch, without calling
// fn, when the header or any item is malformed: a short header, a payload
// length that is over MaxPayload or not the rest of the message, a
// truncated or empty item, or an item that is not a v1 message (nested
// BATCH included). fn returning false stops the iteration.
func SplitBatch(msg []byte, fn func(item []byte) bool) error {
	items, err := checkBatch(msg)
	if err != nil {
		return err
	}
	p := msg[HeaderSize:]
	for range items {
		n, k := binary.Uvarint(p)
		item := p[k : k+int(n)]
		p = p[k+int(n):]
		if !fn(item) {
			return nil
		}
	}
	return nil
}

// checkBatch validates a BATCH message and returns how many items it holds.
func checkBatch(msg []byte) (int, error) {
	if len(msg) < HeaderSize || msg[0] != byte(Batch) {
		return 0, ErrBadBatch
	}
	n := binary.BigEndian.Uint32(msg[5:9])
	if n > MaxPayload || int(n) != len(msg)-HeaderSize {
		return 0, ErrBadBatch
	}
	p := msg[HeaderSize:]
	items := 0
	for len(p) > 0 {
		l, k := binary.Uvarint(p)
		if k <= 0 || l == 0 || l > uint64(len(p)-k) {
			return 0, ErrBadBatch
		}
		if !isItem(p[k : k+int(l)]) {
			return 0, ErrBadBatch
		}
		p = p[k+int(l):]
		items++
	}
	if items == 0 {
		return 0, ErrBadBatch
	}
	return items, nil
}

// isItem reports whether m can be a BATCH item: a v1 frame or a compressed
// message, by its first byte.
func isItem(m []byte) bool {
	return len(m) > 0 && (Opcode(m[0]).Valid() || m[0] == ZlibMagic)
}
