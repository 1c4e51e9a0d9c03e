// Package protocol implements the datasole wire protocol v1: the 9-byte frame
// header, the opcodes, the zlib rule and the payload shapes.
//
// A frame is
//
//	offset 0  opcode         1 byte
//	offset 1  correlationId  uint32, big-endian
//	offset 5  payloadLength  uint32, big-endian
//	offset 9  payload        UTF-8 JSON text
//
// and travels as one binary WebSocket message, zlib-compressed when the encoded
// frame is longer than 256 bytes. docs/protocol.md summarises the protocol;
// the normative text is spec/PROTOCOL.md in the repository.
package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Opcode identifies the kind of a frame.
type Opcode uint8

// Protocol v1 opcodes.
const (
	RPCReq        Opcode = 0x01 // c2s: call a method
	RPCRes        Opcode = 0x02 // s2c: reply to RPCReq, same correlation id
	EventC2S      Opcode = 0x03 // c2s: fire-and-forget event to server handlers
	EventS2C      Opcode = 0x04 // s2c: event pushed by the server
	StatePatch    Opcode = 0x05 // s2c: RFC 6902 patches for one state key
	StateSnapshot Opcode = 0x06 // s2c: complete value of one state key
	Ping          Opcode = 0x07 // c2s: application ping
	Pong          Opcode = 0x08 // s2c: answer to Ping, same correlation id
	Error         Opcode = 0x09 // s2c: a frame was refused (rate limit, …)
	CRDTOp        Opcode = 0x0A // c2s: CRDT operation
	CRDTState     Opcode = 0x0B // s2c: CRDT state after an operation
)

// Sizes and limits of protocol v1.
const (
	// HeaderSize is the length of the frame header.
	HeaderSize = 9
	// MaxPayload is the largest payload a frame may carry.
	MaxPayload = 1 << 20
	// MaxFrame is the largest encoded (uncompressed) frame.
	MaxFrame = HeaderSize + MaxPayload
	// MaxCompressed is the largest compressed message a receiver inflates.
	MaxCompressed = 4 << 20
	// CompressThreshold: a sender compresses a frame iff it is longer than this.
	CompressThreshold = 256
	// MaxEventName is the default limit on event names, in UTF-16 code units.
	MaxEventName = 256
	// ZlibMagic is the first byte of every compressed message. It is never an opcode.
	ZlibMagic = 0x78
)

var opcodeNames = [...]string{
	RPCReq: "RPC_REQ", RPCRes: "RPC_RES", EventC2S: "EVENT_C2S", EventS2C: "EVENT_S2C",
	StatePatch: "STATE_PATCH", StateSnapshot: "STATE_SNAPSHOT", Ping: "PING", Pong: "PONG",
	Error: "ERROR", CRDTOp: "CRDT_OP", CRDTState: "CRDT_STATE",
}

// Valid reports whether op is a protocol v1 opcode.
func (op Opcode) Valid() bool { return op >= RPCReq && op <= CRDTState }

// String returns the v1 name of op, or a hex form for other values.
func (op Opcode) String() string {
	if op.Valid() {
		return opcodeNames[op]
	}
	return fmt.Sprintf("0x%02X", uint8(op))
}

// Frame is one decoded protocol frame. Payload may alias the buffer it was
// decoded from.
type Frame struct {
	Opcode        Opcode
	CorrelationID uint32
	Payload       []byte
}

// DecodeError classifies why a message could not be decoded. Class is one of
// "short", "unknown-opcode", "oversize", "truncated", "bad-zlib",
// "compressed-too-large" or "inflated-too-large".
type DecodeError struct {
	Class string
	Err   error // underlying cause, for bad-zlib
}

// Error returns "datasole protocol: " followed by the class and the cause, if any.
func (e *DecodeError) Error() string {
	if e.Err != nil {
		return "datasole protocol: " + e.Class + ": " + e.Err.Error()
	}
	return "datasole protocol: " + e.Class
}

// Unwrap returns the underlying cause, or nil.
func (e *DecodeError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrShort) and friends match by class.
func (e *DecodeError) Is(target error) bool {
	t, ok := target.(*DecodeError)
	return ok && t.Class == e.Class && t.Err == nil
}

// Decode errors, comparable with errors.Is.
var (
	ErrShort              = &DecodeError{Class: "short"}
	ErrUnknownOpcode      = &DecodeError{Class: "unknown-opcode"}
	ErrOversize           = &DecodeError{Class: "oversize"}
	ErrTruncated          = &DecodeError{Class: "truncated"}
	ErrBadZlib            = &DecodeError{Class: "bad-zlib"}
	ErrCompressedTooLarge = &DecodeError{Class: "compressed-too-large"}
	ErrInflatedTooLarge   = &DecodeError{Class: "inflated-too-large"}
)

// ErrPayloadTooLarge is returned by encoders for payloads over MaxPayload.
var ErrPayloadTooLarge = errors.New("datasole protocol: payload larger than 1 MiB")

// AppendFrame appends the uncompressed encoding of one frame to dst and returns
// the extended buffer. It allocates only when dst lacks capacity.
func AppendFrame(dst []byte, op Opcode, correlationID uint32, payload []byte) ([]byte, error) {
	if len(payload) > MaxPayload {
		return dst, ErrPayloadTooLarge
	}
	dst = append(dst, byte(op))
	dst = binary.BigEndian.AppendUint32(dst, correlationID)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	return append(dst, payload...), nil
}

// putHeader writes the 9-byte header of a frame into b.
func putHeader(b []byte, op Opcode, correlationID uint32, payloadLen int) {
	b[0] = byte(op)
	binary.BigEndian.PutUint32(b[1:5], correlationID)
	binary.BigEndian.PutUint32(b[5:9], uint32(payloadLen))
}

// header checks the fixed part of a frame, in the order of the v1 decoder
// rules, and returns the declared payload length.
func header(b []byte) (int, error) {
	if len(b) < HeaderSize {
		return 0, ErrShort
	}
	if !Opcode(b[0]).Valid() {
		return 0, ErrUnknownOpcode
	}
	n := binary.BigEndian.Uint32(b[5:9])
	if n > MaxPayload {
		return 0, ErrOversize
	}
	return int(n), nil
}

// ParseFrame decodes an uncompressed frame. The payload aliases b. Bytes after
// the frame are ignored, as the reference does.
func ParseFrame(b []byte) (Frame, error) {
	n, err := header(b)
	if err != nil {
		return Frame{}, err
	}
	end := HeaderSize + n
	if len(b) < end {
		return Frame{}, ErrTruncated
	}
	return Frame{
		Opcode:        Opcode(b[0]),
		CorrelationID: binary.BigEndian.Uint32(b[1:5]),
		Payload:       b[HeaderSize:end:end],
	}, nil
}

// IsCompressed reports whether a message is to be inflated: it is at least two
// bytes long and starts with 0x78. Length is never the criterion.
func IsCompressed(msg []byte) bool { return len(msg) >= 2 && msg[0] == ZlibMagic }

// Decode turns one WebSocket message into a frame, inflating it first when it
// is compressed. Inflation stops as soon as the output exceeds MaxFrame, so a
// compression bomb never costs more than that much memory. When the message
// was not compressed, the payload aliases msg; otherwise it is a fresh
// allocation of exactly the frame's size.
func Decode(msg []byte) (Frame, error) {
	if IsCompressed(msg) {
		return decodeCompressed(msg)
	}
	return ParseFrame(msg)
}

// Encode returns the message to send for one frame under the v1 rule: the
// frame itself, or its zlib encoding when the frame is longer than
// CompressThreshold bytes.
func Encode(op Opcode, correlationID uint32, payload []byte) ([]byte, error) {
	if len(payload) > MaxPayload {
		return nil, ErrPayloadTooLarge
	}
	if HeaderSize+len(payload) <= CompressThreshold {
		return AppendFrame(make([]byte, 0, HeaderSize+len(payload)), op, correlationID, payload)
	}
	return compressFrameCopy(op, correlationID, payload), nil
}

// AppendEncode appends to dst the message Encode would return and returns the
// extended buffer. It allocates only when dst lacks capacity, so a sender that
// reuses dst encodes without garbage. On error dst is returned unchanged.
func AppendEncode(dst []byte, op Opcode, correlationID uint32, payload []byte) ([]byte, error) {
	if len(payload) > MaxPayload {
		return dst, ErrPayloadTooLarge
	}
	if HeaderSize+len(payload) <= CompressThreshold {
		return AppendFrame(dst, op, correlationID, payload)
	}
	return compressFrame(dst, op, correlationID, payload), nil
}
