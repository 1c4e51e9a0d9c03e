package datasole

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/datasole/datasole-go/datasole/protocol"
	"github.com/gorilla/websocket"
)

// Conn is one client connection (one browser tab, one Go client). It is safe
// for concurrent use.
type Conn struct {
	s           *Server
	ws          WebSocket
	batch       *batchConn // coalesces a drain's writes; nil for adapters' own sockets
	id          string
	userID      string
	principal   *Principal
	remoteAddr  string
	ip          string // the client's address key for per-IP caps and limits (peerKey)
	connectedAt time.Time
	ctx         context.Context
	cancel      context.CancelFunc
	done        chan struct{} // closed when the connection has ended
	expiry      *time.Timer   // closes the connection at the principal's ExpiresAt

	tags map[string]struct{} // guarded by s.hub.mu

	mu      sync.Mutex // guards the fields below
	queue   []outMsg
	writing bool // a writer goroutine is draining queue
	closed  bool // no more frames are accepted
	values  map[string]any

	closeReason string // why the connection ended; guarded by mu
	closeCode   int    // the close code sent or received first; guarded by mu

	writer        sync.WaitGroup // the writer goroutine, while there is one
	inFlight      atomic.Int32
	rpcs          sync.WaitGroup
	badFrames     int    // touched by the reader only
	refusedInARow int    // rate-limit refusals in a row; reader only
	defaultBucket string // rate-limit bucket of frames without a rule of their own
}

type outKind uint8

const (
	outFrame outKind = iota
	outPing
	outClose
)

type outMsg struct {
	data []byte
	kind outKind
	op   protocol.Opcode // of data, for metrics
	code int             // for outClose
}

// ID returns the connection id, unique across the nodes of a cluster.
func (c *Conn) ID() string { return c.id }

// UserID returns the principal's user id, or "$anon:" + the connection id
// for an anonymous principal.
func (c *Conn) UserID() string { return c.userID }

// Principal returns the principal the auth handler produced.
func (c *Conn) Principal() *Principal { return c.principal }

// RemoteAddr returns the peer's network address as the server saw it.
func (c *Conn) RemoteAddr() string { return c.remoteAddr }

// ConnectedAt returns when the connection was established.
func (c *Conn) ConnectedAt() time.Time { return c.connectedAt }

// Context returns a context cancelled when the connection ends.
func (c *Conn) Context() context.Context { return c.ctx }

// Set stores a per-connection value.
func (c *Conn) Set(key string, value any) {
	c.mu.Lock()
	if c.values == nil {
		c.values = make(map[string]any)
	}
	c.values[key] = value
	c.mu.Unlock()
}

// Get returns a per-connection value stored with Set.
func (c *Conn) Get(key string) (any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.values[key]
	return v, ok
}

// Tag adds the connection to a tag (a room): sends to ToTag(tag) reach it,
// and it receives snapshots of the state keys in ForTag(tag).
func (c *Conn) Tag(tag string) { c.s.tagConn(c, tag) }

// Untag removes the connection from a tag.
func (c *Conn) Untag(tag string) { c.s.untagConn(c, tag) }

// Tags returns the connection's tags in no particular order.
func (c *Conn) Tags() []string { return c.s.hub.tagsOf(c) }

// Send pushes an event to this connection only.
func (c *Conn) Send(event string, data any) error {
	return c.s.Send(ToConn(c.id), event, data)
}

// Close closes the connection with a WebSocket close code and reason.
func (c *Conn) Close(code int, reason string) { c.closeNow(code, reason) }

// enqueue queues one encoded message without blocking. It reports false
// when the connection no longer takes frames.
func (c *Conn) enqueue(op protocol.Opcode, msg []byte) bool {
	return c.push(outMsg{data: msg, op: op})
}

func (c *Conn) push(m outMsg) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	if len(c.queue) >= c.s.opts.SendQueueSize && m.kind == outFrame {
		if c.s.opts.SlowConsumer == DropNewest {
			c.mu.Unlock()
			c.s.obs.SendDropped()
			return false
		}
		c.closed = true
		c.closeReason = "slow-consumer"
		c.closeCode = ClosePolicyViolation
		c.queue = nil
		c.mu.Unlock()
		c.s.obs.SendDropped()
		c.s.logSampled("datasole: closing slow consumer", "conn", c.id, "queue", c.s.opts.SendQueueSize)
		go c.closeWS(ClosePolicyViolation, "slow consumer")
		return false
	}
	if m.kind == outClose {
		c.closed = true
		if c.closeCode == 0 {
			c.closeCode = m.code
		}
	}
	c.queue = append(c.queue, m)
	if !c.writing {
		c.writing = true
		c.writer.Add(1)
		go c.writeLoop()
	}
	c.mu.Unlock()
	return true
}

// writeLoop drains the queue. It runs only while there is something to
// write, so an idle connection costs no writer goroutine.
func (c *Conn) writeLoop() {
	defer c.writer.Done()
	var spare []outMsg
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.writing = false
			c.mu.Unlock()
			return
		}
		batch := c.queue
		c.queue = spare
		c.mu.Unlock()

		deadline := time.Now().Add(c.s.opts.WriteTimeout)
		c.ws.SetWriteDeadline(deadline)
		coalesce := c.batch != nil && len(batch) > 1 // one frame needs no copy
		if coalesce {
			c.batch.begin()
		}
		for i, m := range batch {
			var err error
			switch m.kind {
			case outFrame:
				err = c.ws.WriteMessage(binaryMessage, m.data)
				if err == nil {
					c.s.obs.FrameOut(m.op, len(m.data))
				}
			case outPing:
				err = c.ws.WriteControl(pingMessage, nil, deadline)
			case outClose:
				c.ws.WriteControl(closeMessage, formatClose(m.code, "Server shutting down"), deadline)
				c.flushBatch()
				c.ws.Close()
				c.cancel()
				return
			}
			if err != nil {
				c.setCloseReason("write-error")
				c.closeNow(CloseGoingAway, "")
				return
			}
			batch[i] = outMsg{}
		}
		if coalesce {
			if err := c.batch.flush(); err != nil {
				c.setCloseReason("write-error")
				c.closeNow(CloseGoingAway, "")
				return
			}
		}
		if cap(batch) <= 64 {
			spare = batch[:0]
		} else {
			spare = nil
		}
	}
}

func (c *Conn) setCloseReason(r string) {
	c.mu.Lock()
	if c.closeReason == "" {
		c.closeReason = r
	}
	c.mu.Unlock()
}

func (c *Conn) flushBatch() {
	if c.batch != nil {
		c.batch.tryFlush()
	}
}

// closeNow stops taking frames, sends a close frame and closes the socket.
func (c *Conn) closeNow(code int, reason string) {
	c.mu.Lock()
	if c.closeCode == 0 {
		c.closeCode = code
	}
	already := c.closed && c.queue == nil && !c.writing
	c.closed = true
	c.queue = nil
	c.mu.Unlock()
	if already {
		c.cancel()
		c.ws.Close()
		return
	}
	c.closeWS(code, reason)
}

func (c *Conn) closeWS(code int, reason string) {
	c.ws.WriteControl(closeMessage, formatClose(code, reason), time.Now().Add(time.Second))
	c.flushBatch() // the close frame may sit in a batch the writer has open
	c.ws.Close()
	c.cancel()
}

// shutdown lets RPCs in flight finish and queued frames drain, then closes
// with 1001. It returns when the connection has ended or ctx is done.
func (c *Conn) shutdown(ctx context.Context) {
	rpcsDone := make(chan struct{})
	go func() { c.rpcs.Wait(); close(rpcsDone) }()
	select {
	case <-rpcsDone:
	case <-ctx.Done():
	case <-c.done:
		return
	}
	c.setCloseReason("shutdown")
	if !c.push(outMsg{kind: outClose, code: CloseGoingAway}) {
		c.closeNow(CloseGoingAway, "Server shutting down")
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		c.closeNow(CloseGoingAway, "Server shutting down")
	}
}

// readLoop runs in the goroutine that serves the connection until it ends.
func (c *Conn) readLoop() {
	hb := c.s.opts.HeartbeatInterval
	alive := func() {
		if hb > 0 {
			c.ws.SetReadDeadline(time.Now().Add(2 * hb))
		}
	}
	c.ws.SetReadLimit(c.s.opts.MaxMessageSize)
	c.ws.SetPongHandler(func(string) error { alive(); return nil })
	alive()
	buf := new(bytes.Buffer)
	for {
		mt, r, err := c.ws.NextReader()
		if err != nil {
			c.noteReadError(err)
			return
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			c.noteReadError(err) // read limit (gorilla has sent 1009) or a broken link
			return
		}
		alive()
		msg := buf.Bytes()
		c.s.obs.FrameIn(inboundOpcode(msg), len(msg))
		if mt != binaryMessage {
			if ok, _ := c.allow("frame", "", 0); ok {
				c.refuse(0, "text-message", "text messages are not part of the protocol")
			}
		} else {
			c.handleMessage(msg)
		}
		if c.ctx.Err() != nil {
			return
		}
		if buf.Cap() > 64<<10 {
			buf = new(bytes.Buffer) // do not keep a large buffer for an idle peer
		}
	}
}

// noteReadError records why reading ended: the peer's close code, a
// message over the read limit (1009), or a broken link (1006).
func (c *Conn) noteReadError(err error) {
	reason, code := "closed", 1006
	var ce *websocket.CloseError
	switch {
	case errors.As(err, &ce):
		code = ce.Code
	case errors.Is(err, websocket.ErrReadLimit):
		reason, code = "too-big", CloseMessageTooBig
	}
	c.mu.Lock()
	if c.closeCode == 0 {
		c.closeReason, c.closeCode = reason, code
	}
	c.mu.Unlock()
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
		c.enqueue(protocol.Pong, frame)
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

func (c *Conn) sendErrorBody(correlationID uint32, message, code string, retryAfterMS int64) {
	c.sendError(correlationID, protocol.ErrorBody{Message: message, Code: code, RetryAfter: retryAfterMS})
}

func (c *Conn) sendError(correlationID uint32, body protocol.ErrorBody) {
	payload, _ := marshal(body)
	c.sendFrame(protocol.Error, correlationID, payload)
}

// sendFrame encodes one frame for this connection alone.
func (c *Conn) sendFrame(op protocol.Opcode, correlationID uint32, payload []byte) error {
	msg, err := protocol.Encode(op, correlationID, payload)
	if err != nil {
		return err
	}
	c.enqueue(op, msg)
	return nil
}

// inboundOpcode is the opcode of an uncompressed message, 0 otherwise (the
// opcode of a compressed one is known only after inflating).
func inboundOpcode(msg []byte) protocol.Opcode {
	if len(msg) > 0 && protocol.Opcode(msg[0]).Valid() {
		return protocol.Opcode(msg[0])
	}
	return 0
}
