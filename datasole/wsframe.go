package datasole

import (
	"encoding/binary"
	"errors"
)

// The server side of RFC 6455 framing, for sockets the engine reads itself
// (polled ones, and net.Conns read by a goroutine). gorilla/websocket still
// does the opening handshake; after it the engine owns the socket. A parser
// of its own is what lets a connection be read on readiness, a chunk at a
// time, without a goroutine blocked in a reader, and lets the engine stop
// reading one connection (backpressure) while keeping what it already read.

// WebSocket frame opcodes.
const (
	wsContinuation = 0x0
	wsText         = 0x1
	wsBinary       = 0x2
	wsClose        = 0x8
	wsPing         = 0x9
	wsPong         = 0xA
)

// wsError is a violation of RFC 6455 by the peer: it closes the connection
// with code (1002 protocol error, 1009 too big).
type wsError struct {
	code   int
	reason string // for metrics: "protocol-error", "too-big"
	text   string // the close frame's reason text
}

func (e *wsError) Error() string { return "websocket: " + e.text }

var (
	errWSReserved     = &wsError{CloseProtocolError, "protocol-error", "reserved bits set"}
	errWSOpcode       = &wsError{CloseProtocolError, "protocol-error", "unknown opcode"}
	errWSUnmasked     = &wsError{CloseProtocolError, "protocol-error", "client frame not masked"}
	errWSControl      = &wsError{CloseProtocolError, "protocol-error", "bad control frame"}
	errWSContinuation = &wsError{CloseProtocolError, "protocol-error", "unexpected continuation frame"}
	errWSInterleaved  = &wsError{CloseProtocolError, "protocol-error", "data frame inside a fragmented message"}
	errWSLength       = &wsError{CloseProtocolError, "protocol-error", "bad payload length"}
	errWSTooBig       = &wsError{CloseMessageTooBig, "too-big", "message too big"}
)

// wsHandler receives what wsReader parses. message gets a complete data
// message (text reports its type); payload may alias the parser's input and
// is valid only during the call. It returns false to stop parsing (the
// connection pauses reading); wsReader.feed then reports how much it
// consumed. control gets ping, pong and close frames.
type wsHandler interface {
	message(text bool, payload []byte) bool
	control(op byte, payload []byte)
}

// wsReader parses client-to-server WebSocket frames from chunks of bytes as
// they arrive. It keeps only what a frame or message split across chunks
// needs; between messages it holds nothing.
type wsReader struct {
	limit int64 // largest message accepted (1009 above)

	hdr  [14]byte // a header split across chunks
	nhdr int

	inFrame bool // a frame's payload is being read
	op      byte
	fin     bool
	mask    [4]byte
	maskPos int
	left    int64 // payload bytes of the current frame still to come

	msgOp  byte   // data opcode of the message in progress (0: none)
	msgLen int64  // bytes of that message so far
	msg    []byte // the message assembled across frames or chunks
	ctl    []byte // control frame payload
	ctlBuf [125]byte
}

// feed parses data. It returns how many bytes it consumed: all of data
// unless the handler asked to stop. An error is a protocol violation; the
// connection must be closed with its code.
func (r *wsReader) feed(data []byte, h wsHandler) (int, error) {
	consumed := 0
	for {
		if !r.inFrame {
			if consumed == len(data) {
				return consumed, nil
			}
			n, done, err := r.header(data[consumed:])
			consumed += n
			if err != nil {
				return consumed, err
			}
			if !done {
				return consumed, nil
			}
		}
		rest := data[consumed:]
		if r.op != wsContinuation && r.op < wsClose && r.fin && len(r.msg) == 0 && int64(len(rest)) >= r.left {
			// A whole single-frame message inside this chunk: unmasked
			// in place and handed over without a copy.
			p := rest[:r.left]
			unmask(p, r.mask, 0)
			consumed += len(p)
			r.inFrame, r.left, r.msgOp, r.msgLen = false, 0, 0, 0
			if !h.message(r.op == wsText, p) {
				return consumed, nil
			}
			continue
		}
		if r.left > 0 {
			if len(rest) == 0 {
				return consumed, nil
			}
			p := rest[:min(int64(len(rest)), r.left)]
			r.maskPos = unmask(p, r.mask, r.maskPos)
			consumed += len(p)
			r.left -= int64(len(p))
			if r.op >= wsClose {
				r.ctl = append(r.ctl, p...)
			} else {
				r.msg = append(r.msg, p...)
			}
			if r.left > 0 {
				return consumed, nil
			}
		}
		if !r.endFrame(h) {
			return consumed, nil
		}
	}
}

// endFrame finishes a frame whose payload is complete, delivering a control
// frame or a completed message. It returns false when the handler asked to
// stop.
func (r *wsReader) endFrame(h wsHandler) bool {
	r.inFrame = false
	if r.op >= wsClose {
		h.control(r.op, r.ctl)
		r.ctl = nil
		return true
	}
	if !r.fin {
		return true
	}
	p, text := r.msg, r.msgOp == wsText
	r.msg, r.msgOp, r.msgLen = nil, 0, 0 // an idle connection keeps no buffer
	return h.message(text, p)
}

// header reads a frame header from b, possibly completing one started in an
// earlier chunk. It reports the bytes it took and whether the header is
// complete.
func (r *wsReader) header(b []byte) (int, bool, error) {
	taken := 0
	need := 2
	for {
		if r.nhdr >= 2 {
			if r.hdr[1]&0x80 == 0 {
				r.nhdr = 0
				return taken, false, errWSUnmasked // refused before waiting for a mask
			}
			need = headerLen(r.hdr[1])
		}
		if r.nhdr >= need {
			break
		}
		if taken == len(b) {
			return taken, false, nil
		}
		k := copy(r.hdr[r.nhdr:need], b[taken:])
		r.nhdr += k
		taken += k
	}
	h := r.hdr[:need]
	r.nhdr = 0
	b0, b1 := h[0], h[1]
	if b0&0x70 != 0 {
		return taken, false, errWSReserved
	}
	op := b0 & 0x0F
	fin := b0&0x80 != 0
	switch op {
	case wsContinuation, wsText, wsBinary, wsClose, wsPing, wsPong:
	default:
		return taken, false, errWSOpcode
	}
	if b1&0x80 == 0 {
		return taken, false, errWSUnmasked
	}
	var n int64
	switch l := b1 & 0x7F; l {
	case 126:
		n = int64(binary.BigEndian.Uint16(h[2:4]))
	case 127:
		u := binary.BigEndian.Uint64(h[2:10])
		if u>>63 != 0 {
			return taken, false, errWSLength
		}
		n = int64(u)
	default:
		n = int64(l)
	}
	copy(r.mask[:], h[need-4:need])
	r.maskPos = 0
	if op >= wsClose {
		if !fin || n > 125 {
			return taken, false, errWSControl
		}
		r.ctl = r.ctlBuf[:0]
	} else {
		switch {
		case op == wsContinuation && r.msgOp == 0:
			return taken, false, errWSContinuation
		case op != wsContinuation && r.msgOp != 0:
			return taken, false, errWSInterleaved
		}
		if r.msgLen+n > r.limit {
			return taken, false, errWSTooBig
		}
		r.msgLen += n
		if op != wsContinuation {
			r.msgOp = op
		}
	}
	r.op, r.fin, r.left, r.inFrame = op, fin, n, true
	return taken, true, nil
}

// between reports whether the parser is between messages: no frame,
// header or message in progress.
func (r *wsReader) between() bool { return !r.inFrame && r.nhdr == 0 && r.msgOp == 0 }

// onlyControl reports whether b holds nothing but complete, masked control
// frames (pings, pongs, a close).
func onlyControl(b []byte) bool {
	for len(b) > 0 {
		if len(b) < 6 || b[0]&0x0F < wsClose || b[1]&0x80 == 0 {
			return false
		}
		n := 6 + int(b[1]&0x7F)
		if b[1]&0x7F > 125 || len(b) < n {
			return false
		}
		b = b[n:]
	}
	return true
}

// headerLen is the length of a client frame header given its second byte.
func headerLen(b1 byte) int {
	switch b1 & 0x7F {
	case 126:
		return 2 + 2 + 4
	case 127:
		return 2 + 8 + 4
	}
	return 2 + 4
}

// unmask XORs p with the mask starting at mask position pos and returns the
// position after p.
func unmask(p []byte, mask [4]byte, pos int) int {
	if len(p) >= 8 {
		// Eight bytes at a time.
		var m [8]byte
		for i := range m {
			m[i] = mask[(pos+i)&3]
		}
		m64 := binary.LittleEndian.Uint64(m[:])
		for len(p) >= 8 {
			binary.LittleEndian.PutUint64(p, binary.LittleEndian.Uint64(p)^m64)
			p = p[8:]
		}
	}
	for i := range p {
		p[i] ^= mask[pos&3]
		pos++
	}
	return pos & 3
}

// appendWSHeader appends the header of an unmasked server frame.
func appendWSHeader(dst []byte, op byte, n int) []byte {
	b0 := 0x80 | op
	switch {
	case n <= 125:
		return append(dst, b0, byte(n))
	case n <= 0xFFFF:
		return append(dst, b0, 126, byte(n>>8), byte(n))
	}
	dst = append(dst, b0, 127)
	return binary.BigEndian.AppendUint64(dst, uint64(n))
}

// appendWSFrame appends one unmasked server frame.
func appendWSFrame(dst []byte, op byte, payload []byte) []byte {
	return append(appendWSHeader(dst, op, len(payload)), payload...)
}

// closePayload is the payload of a close frame: the code and a reason cut
// to fit a control frame.
func closePayload(dst []byte, code int, reason string) []byte {
	if code == 1005 || code == 1006 || code == 0 {
		return dst
	}
	if len(reason) > 123 {
		reason = reason[:123]
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(code))
	return append(dst, reason...)
}

// parseClose returns the code of a close frame's payload (1005 when it has
// none) or an error for a malformed one.
func parseClose(p []byte) (int, error) {
	switch {
	case len(p) == 0:
		return 1005, nil
	case len(p) == 1:
		return 0, errWSControl
	}
	code := int(binary.BigEndian.Uint16(p))
	switch {
	case code < 1000, code == 1004, code == 1005, code == 1006, code > 1014 && code < 3000, code >= 5000:
		return 0, errors.New("websocket: invalid close code")
	}
	return code, nil
}
