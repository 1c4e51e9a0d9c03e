package datasole

import (
	"encoding/binary"
	"time"

	"github.com/datasole/datasole-go/datasole/protocol"
)

// onMessage takes one WebSocket data message off the wire: it charges the
// raw budget first (before anything is inflated or parsed), then refuses
// text, splits BATCH messages of connections that negotiated them, and
// dispatches the frames.
func (c *Conn) onMessage(text bool, msg []byte) {
	if !c.chargeRaw(msg) {
		return
	}
	if text {
		c.s.obs.FrameIn(0, len(msg))
		if ok, _ := c.allow("frame", "", 0); ok {
			c.refuse(0, "text-message", "text messages are not part of the protocol")
		}
		return
	}
	if c.batching && protocol.IsBatch(msg) {
		c.handleBatch(msg)
		return
	}
	c.s.obs.FrameIn(inboundOpcode(msg), len(msg))
	c.handleMessage(msg)
}

// handleBatch dispatches the items of a BATCH message in order, each as a
// frame of its own (rate limits and metrics count items), or refuses a
// malformed one as a whole. When the connection must pause midway, the
// items left are kept (batchRest) and dispatched when it resumes.
func (c *Conn) handleBatch(msg []byte) {
	stop := -1
	err := protocol.SplitBatch(msg, func(item []byte) bool {
		c.s.obs.FrameIn(inboundOpcode(item), len(item))
		c.handleMessage(item)
		if c.ctx.Err() != nil {
			return false
		}
		if c.mustPause() && c.pause() {
			stop = cap(msg) - cap(item) + len(item) // items alias msg
			return false
		}
		return true
	})
	if err != nil {
		c.s.obs.FrameIn(0, len(msg))
		if ok, _ := c.allow("frame", "", 0); ok {
			c.refuse(0, "bad-batch", "malformed batch")
		}
		return
	}
	if stop >= 0 && stop < len(msg) {
		c.batchRest = append([]byte(nil), msg[stop:]...)
	}
}

// drainBatchRest dispatches items kept from a paused BATCH. It reports
// false when the connection paused (or ended) again.
func (c *Conn) drainBatchRest() bool {
	for len(c.batchRest) > 0 {
		n, k := binary.Uvarint(c.batchRest) // checked when the BATCH arrived
		item := c.batchRest[k : k+int(n)]
		c.batchRest = c.batchRest[k+int(n):]
		c.s.obs.FrameIn(inboundOpcode(item), len(item))
		c.handleMessage(item)
		if c.ctx.Err() != nil || c.mustPause() && c.pause() {
			return false
		}
	}
	c.batchRest = nil
	return true
}

func (c *Conn) handleMessage(msg []byte) {
	f, err := protocol.Decode(msg)
	if err != nil {
		if ok, _ := c.allow("frame", "", 0); !ok {
			return
		}
		class := "bad-frame"
		if de, ok := err.(*protocol.DecodeError); ok {
			class = de.Class
		}
		c.refuse(0, class, "malformed frame: "+class)
		return
	}
	switch f.Opcode {
	case protocol.RPCReq:
		c.handleRPC(f)
		return
	case protocol.EventC2S:
		c.handleEvent(f)
		return
	}
	if ok, _ := c.allow("frame", "", f.CorrelationID); !ok {
		return
	}
	switch f.Opcode {
	case protocol.Ping:
		frame, _ := protocol.AppendFrame(make([]byte, 0, protocol.HeaderSize+4), protocol.Pong, f.CorrelationID, protocol.PongPayload)
		c.pushOwn(protocol.Pong, frame)
	case protocol.CRDTOp:
		c.s.hooks.crdtOp(c, f)
	default:
		c.s.obs.FrameIgnored(f.Opcode) // s2c opcodes from a client: ignored, as v1 does
	}
}

// maxBadFrames is how many malformed frames a connection may send before it
// is closed with 1008.
const maxBadFrames = 32

// refuse answers a frame the server could not use with an ERROR frame, counts
// it, and closes peers that keep sending garbage.
func (c *Conn) refuse(correlationID uint32, code, message string) {
	c.s.obs.FrameRefused(code)
	c.s.logSampled("datasole: refused frame", "conn", c.id, "reason", code)
	c.sendError(correlationID, protocol.ErrorBody{Message: message, Code: code})
	c.badFrames++
	if c.badFrames > maxBadFrames {
		c.setCloseReason("abuse")
		c.closeNow(ClosePolicyViolation, "too many malformed frames")
	}
}

// inboundOpcode is the opcode of an uncompressed message, 0 otherwise (the
// opcode of a compressed one is known only after inflating).
func inboundOpcode(msg []byte) protocol.Opcode {
	if len(msg) > 0 && protocol.Opcode(msg[0]).Valid() {
		return protocol.Opcode(msg[0])
	}
	return 0
}

// rawBudget holds a connection's GCRA buckets for RateLimit.RawMessages and
// RawBytes: the work a peer may cause before anything is inflated or
// parsed. Only the reader touches it.
type rawBudget struct {
	msgs, bytes int64 // theoretical arrival times, engine clock
}

// chargeRaw charges one message against the raw budget. Over budget, the
// message is refused unread: an ERROR frame (and, for an uncompressed
// RPC_REQ, an RPC_RES -32029 addressed by its header), counted as
// "rate-limited", and a peer refused CloseAfter times in a row is closed
// with 1008.
func (c *Conn) chargeRaw(msg []byte) bool {
	rl := &c.s.opts.RateLimit
	if rl.Disabled {
		return true
	}
	now := c.s.eng.deadlines.now()
	tm, okM, retryM := gcraUnits(c.raw.msgs, now, rl.RawMessages, int64(rl.RawMessages.cost()))
	tb, okB, retryB := gcraUnits(c.raw.bytes, now, rl.RawBytes, int64(max(len(msg), 1)))
	if okM && okB {
		c.raw.msgs, c.raw.bytes = tm, tb
		return true
	}
	retry := max(retryM, retryB)
	c.s.obs.FrameRefused("rate-limited")
	var id uint32
	if len(msg) >= protocol.HeaderSize && protocol.Opcode(msg[0]).Valid() {
		id = binary.BigEndian.Uint32(msg[1:5])
		if protocol.Opcode(msg[0]) == protocol.RPCReq {
			c.replyError(id, nil, &Error{Code: protocol.CodeRateLimited, Message: "Rate limit exceeded",
				Data: map[string]int64{"retryAfter": retry.Milliseconds()}})
		}
	}
	c.sendErrorBody(id, "Rate limit exceeded", "rate-limited", (int64(retry)+int64(time.Millisecond)-1)/int64(time.Millisecond))
	if c.refusedInARow++; c.refusedInARow >= rl.CloseAfter {
		c.setCloseReason("abuse")
		c.closeNow(ClosePolicyViolation, "rate limit exceeded")
	}
	return false
}

// gcraUnits is the generic cell rate algorithm for a charge of units (a
// message, or its bytes). A single charge larger than the burst passes when
// the bucket is full, so no message is refused forever for its size alone.
func gcraUnits(tat, now int64, r Rule, units int64) (int64, bool, time.Duration) {
	interval := int64(r.Window) / int64(r.Limit)
	if tat < now {
		tat = now
	}
	inc := interval * units
	burst := int64(r.Window)
	if inc > burst {
		inc = burst
	}
	next := tat + inc
	if allowAt := next - burst; now < allowAt {
		return tat, false, time.Duration(allowAt - now)
	}
	return next, true, 0
}
