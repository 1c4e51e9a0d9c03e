package datasole

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/datasole/datasole-go/datasole/protocol"
	"github.com/gorilla/websocket"
)

// transport is how a connection's frames reach its socket. There are three:
// a polled socket the engine reads on readiness and writes without
// blocking (pollTransport), a net.Conn that cannot be polled (in-process
// TLS) read by a goroutine of its own (netTransport), and a WebSocket an
// adapter upgraded itself and handed to ServeConn (wsTransport).
type transport interface {
	// nonBlocking reports whether write never blocks, so that any
	// goroutine may drain the queue.
	nonBlocking() bool
	// write writes one drain of the queue. It reports whether the drain
	// ended with a close frame, after which the socket is closed.
	write(c *Conn, batch []outMsg) (closing bool, err error)
	// close closes the socket; a blocked read or write returns.
	close()
	// expire makes a blocked write give up within d.
	expire(d time.Duration)
	// resume restarts reading after a pause.
	resume(c *Conn)
}

// write buffers are pooled: a drain borrows one, fills it with every frame
// it writes and gives it back after the single write.
var writeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// maxPooledWriteBuf bounds the write buffers kept in the pool.
const maxPooledWriteBuf = 256 << 10

func getWriteBuf() *[]byte { return writeBufs.Get().(*[]byte) }

func putWriteBuf(b *[]byte) {
	if cap(*b) > maxPooledWriteBuf {
		return
	}
	*b = (*b)[:0]
	writeBufs.Put(b)
}

// appendOut appends the WebSocket frames of batch to dst, counting the data
// frames: one binary message per protocol frame, or, on a connection that
// negotiated batching, BATCH messages carrying runs of frames. It stops
// after a close frame and reports it.
func (c *Conn) appendOut(dst []byte, batch []outMsg) ([]byte, bool) {
	for i := 0; i < len(batch); i++ {
		m := &batch[i]
		switch m.kind {
		case outFrame:
			if c.batching {
				n := batchRun(batch[i:])
				if n > 1 {
					dst = appendBatchMessage(dst, batch[i:i+n])
					for _, it := range batch[i : i+n] {
						c.s.obs.FrameOut(it.op, len(it.data))
					}
					i += n - 1
					continue
				}
			}
			dst = appendWSFrame(dst, wsBinary, m.data)
			c.s.obs.FrameOut(m.op, len(m.data))
		case outPing:
			dst = appendWSFrame(dst, wsPing, nil)
		case outPong:
			dst = appendWSFrame(dst, wsPong, m.data)
		case outClose:
			var p [125]byte
			dst = appendWSFrame(dst, wsClose, closePayload(p[:0], m.code, m.text))
			return dst, true
		}
	}
	return dst, false
}

// batchRun counts the data frames at the start of batch that fit one BATCH
// message.
func batchRun(batch []outMsg) int {
	size := 0
	for i, m := range batch {
		if m.kind != outFrame {
			return i
		}
		size += protocol.BatchItemSize(len(m.data))
		if size > protocol.MaxPayload {
			return i
		}
	}
	return len(batch)
}

// appendBatchMessage appends one WebSocket message holding a BATCH frame of
// the frames in run.
func appendBatchMessage(dst []byte, run []outMsg) []byte {
	size := 0
	for _, m := range run {
		size += protocol.BatchItemSize(len(m.data))
	}
	dst = appendWSHeader(dst, wsBinary, protocol.HeaderSize+size)
	dst = protocol.AppendBatchHeader(dst, len(run), size)
	for _, m := range run {
		dst = protocol.AppendBatchItem(dst, m.data)
	}
	return dst
}

// wsTransport serves a WebSocket an adapter upgraded itself (ServeConn):
// gorilla's or fasthttp's *websocket.Conn. Its reads happen in ServeConn's
// goroutine and its writes in a writer goroutine per drain.
type wsTransport struct {
	ws      WebSocket
	timeout time.Duration
}

func (t *wsTransport) nonBlocking() bool { return false }

func (t *wsTransport) write(c *Conn, batch []outMsg) (bool, error) {
	deadline := time.Now().Add(t.timeout)
	t.ws.SetWriteDeadline(deadline)
	for _, m := range batch {
		var err error
		switch m.kind {
		case outFrame:
			if err = t.ws.WriteMessage(binaryMessage, m.data); err == nil {
				c.s.obs.FrameOut(m.op, len(m.data))
			}
		case outPing:
			err = t.ws.WriteControl(pingMessage, nil, deadline)
		case outPong:
			err = t.ws.WriteControl(pongMessage, m.data, deadline)
		case outClose:
			t.ws.WriteControl(closeMessage, formatClose(m.code, m.text), deadline)
			return true, nil
		}
		if err != nil {
			return false, err
		}
	}
	return false, nil
}

func (t *wsTransport) close() { t.ws.Close() }

// expire closes the socket: the WebSocket libraries allow no deadline
// change while their writer writes, and a close frame the writer had queued
// only matters to a peer that is still reading, which the read loop's end
// says it is not.
func (t *wsTransport) expire(time.Duration) { t.ws.Close() }

func (t *wsTransport) resume(c *Conn) { c.wakeReader() }

// wakeReader wakes a goroutine reader waiting in waitUnpaused.
func (c *Conn) wakeReader() {
	select {
	case c.resumed <- struct{}{}:
	default:
	}
}

// readWS is the read loop of a wsTransport connection.
func (c *Conn) readWS(ws WebSocket) {
	ws.SetReadLimit(c.s.opts.MaxMessageSize)
	ws.SetPongHandler(func(string) error { c.lastRead.Store(c.s.eng.deadlines.now()); return nil })
	var buf []byte
	for c.waitUnpaused() {
		if len(c.batchRest) > 0 && !c.drainBatchRest() {
			continue
		}
		mt, r, err := ws.NextReader()
		if err != nil {
			c.noteReadError(err)
			return
		}
		buf, err = readAll(buf[:0], r)
		if err != nil {
			c.noteReadError(err) // read limit (gorilla has sent 1009) or a broken link
			return
		}
		c.lastRead.Store(c.s.eng.deadlines.now())
		c.message(mt == textMessage, buf)
		if c.ctx.Err() != nil {
			return
		}
		if cap(buf) > 64<<10 {
			buf = nil // do not keep a large buffer for an idle peer
		}
	}
}

func readAll(dst []byte, r io.Reader) ([]byte, error) {
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

// noteReadError records why reading a wsTransport ended: the peer's close
// code, a message over the read limit (1009), or a broken link (1006).
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

// netTransport serves a socket that cannot be polled (a *tls.Conn, say): a
// goroutine of the connection reads it with the engine's frame parser, and
// a writer goroutine per drain writes each drain in one call.
type netTransport struct {
	conn    net.Conn
	timeout time.Duration
	once    sync.Once
}

func (t *netTransport) nonBlocking() bool { return false }

func (t *netTransport) write(c *Conn, batch []outMsg) (bool, error) {
	b := getWriteBuf()
	var closing bool
	*b, closing = c.appendOut((*b)[:0], batch)
	t.conn.SetWriteDeadline(time.Now().Add(t.timeout))
	_, err := t.conn.Write(*b)
	putWriteBuf(b)
	return closing, err
}

func (t *netTransport) close()                 { t.once.Do(func() { t.conn.Close() }) }
func (t *netTransport) expire(d time.Duration) { t.conn.SetWriteDeadline(time.Now().Add(d)) }
func (t *netTransport) resume(c *Conn)         { c.wakeReader() }

// readNet is the read loop of a netTransport connection.
func (c *Conn) readNet(conn net.Conn) {
	buf := make([]byte, 4096)
	for c.waitUnpaused() {
		if len(c.batchRest) > 0 && !c.drainBatchRest() {
			continue
		}
		if len(c.leftover) > 0 && !c.feedLeftover() {
			continue
		}
		n, err := conn.Read(buf)
		if n > 0 {
			c.lastRead.Store(c.s.eng.deadlines.now())
			c.feed(buf[:n])
		}
		if err != nil {
			c.setCloseReasonCode("closed", 1006)
			return
		}
		if c.ctx.Err() != nil {
			return
		}
	}
}

// setCloseReasonCode records why the connection ended unless a reason was
// recorded already.
func (c *Conn) setCloseReasonCode(reason string, code int) {
	c.mu.Lock()
	if c.closeCode == 0 {
		c.closeReason, c.closeCode = reason, code
	}
	c.mu.Unlock()
}

// feed parses a chunk the reader read. When the connection pauses, what is
// left of the chunk is kept for later (the chunk's buffer is reused).
func (c *Conn) feed(data []byte) {
	n, err := c.parser.feed(data, c)
	if err != nil {
		c.protocolError(err)
		return
	}
	if n < len(data) {
		c.leftover = append(c.leftover, data[n:]...)
	}
}

// feedLeftover parses bytes kept from before a pause. It reports whether
// they were all parsed.
func (c *Conn) feedLeftover() bool {
	n, err := c.parser.feed(c.leftover, c)
	if err != nil {
		c.leftover = nil
		c.protocolError(err)
		return true
	}
	if n == len(c.leftover) {
		c.leftover = nil
		return true
	}
	c.leftover = c.leftover[n:]
	return false
}

// protocolError closes a connection that broke RFC 6455 (1002) or sent a
// message over the limit (1009), counting it by reason and code.
func (c *Conn) protocolError(err error) {
	we, ok := err.(*wsError)
	if !ok {
		we = &wsError{CloseProtocolError, "protocol-error", err.Error()}
	}
	c.s.logSampled("datasole: closing connection", "conn", c.id, "reason", we.reason, "err", we.text)
	c.setCloseReasonCode(we.reason, we.code)
	c.closeNow(we.code, we.text)
}

// message implements wsHandler: it dispatches one data message and asks
// the parser to stop when the connection must pause.
func (c *Conn) message(text bool, payload []byte) bool {
	c.busy.Store(true)
	c.onMessage(text, payload)
	c.busy.Store(false)
	if c.ctx.Err() != nil || len(c.batchRest) > 0 {
		// Items of a BATCH that paused midway go before anything after
		// it, even if the pause has ended already.
		return false
	}
	return !(c.mustPause() && c.pause())
}

// control implements wsHandler for ping, pong and close frames.
func (c *Conn) control(op byte, payload []byte) {
	switch op {
	case wsPing:
		c.push(outMsg{kind: outPong, data: append([]byte(nil), payload...)}, true)
	case wsPong:
		// lastRead was updated when the bytes were read.
	case wsClose:
		code, err := parseClose(payload)
		if err != nil {
			c.protocolError(errWSControl)
			return
		}
		c.setCloseReasonCode("closed", code)
		echo := code
		if code == 1005 {
			echo = 0 // an empty close frame answers an empty one
		}
		c.closeNow(echo, "")
	}
}
