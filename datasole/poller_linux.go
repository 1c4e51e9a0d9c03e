package datasole

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/datasole/datasole-go/datasole/protocol"
)

// servePolled takes over a socket that can be polled and returns at once.
// It reports false, touching nothing, for a socket it cannot poll.
func (s *Server) servePolled(conn net.Conn, a *Admission) bool {
	switch conn.(type) {
	case *net.TCPConn, *net.UnixConn:
	default:
		return false
	}
	if !a.take(s) {
		conn.Close()
		return true
	}
	e := s.engine()
	p, err := e.poller()
	if err != nil {
		s.log.Error("datasole: cannot start the poller; serving with a goroutine per connection", "err", err)
		a.used.Store(false)
		return false
	}
	t := &pollTransport{}
	c := s.newConn(t, a, conn.RemoteAddr().String(), a.Subprotocol() == protocol.SubprotocolBatch)
	c.paused.Store(true) // not read before connOpened has run
	c.setup.Lock()
	defer c.setup.Unlock()
	sk, err := p.add(conn, c)
	if err != nil {
		conn.Close()
		s.release(a)
		s.obs.UpgradeRejected("poller")
		s.logSampled("datasole: cannot poll a connection", "err", err)
		return true
	}
	t.s = sk
	if s.open(c, a) {
		c.maybeResume()
	}
	return true
}

// poller returns the engine's poller, starting it on first use.
func (e *engine) poller() (*poller, error) {
	e.pollMu.Lock()
	defer e.pollMu.Unlock()
	if e.poll != nil {
		return e.poll, nil
	}
	if e.stopped {
		return nil, ErrClosed
	}
	p, err := newPoller(e)
	if err != nil {
		return nil, err
	}
	e.poll = p
	return p, nil
}

// onReadable runs on the poller goroutine when a socket has data. It reads
// one chunk and hands the connection to a pool goroutine, unless the
// connection is paused or already being read.
func (p *poller) onReadable(s *sock) {
	c := s.c
	c.readable.Store(true)
	if c.paused.Load() || !c.reading.CompareAndSwap(false, true) {
		return
	}
	c.readable.Store(false)
	p.read(s, false)
}

// read reads one chunk of a socket whose reads the caller owns, then
// parses and dispatches it here (inline) or on a pool goroutine.
func (p *poller) read(s *sock, inline bool) {
	c := s.c
	buf := getReadBuf()
	n, err := s.read(*buf)
	if n <= 0 {
		putReadBuf(buf)
		c.reading.Store(false)
		if !errors.Is(err, syscall.EAGAIN) {
			s.close() // EOF or a broken socket
		}
		return
	}
	c.lastRead.Store(p.e.deadlines.now())
	if inline {
		c.readDrain(buf, n)
		return
	}
	if n < len(*buf) && c.parser.between() && len(c.leftover) == 0 && len(c.batchRest) == 0 && onlyControl((*buf)[:n]) {
		// Pongs and pings (the heartbeat's traffic) run no application
		// code: handle them here rather than waking a pool goroutine.
		c.feed((*buf)[:n])
		putReadBuf(buf)
		c.reading.Store(false)
		if c.readable.Load() && !c.paused.Load() && c.reading.CompareAndSwap(false, true) {
			c.readable.Store(false)
			p.e.pool.run(task{kind: taskRead, c: c})
		}
		return
	}
	p.e.pool.run(task{kind: taskRead, c: c, buf: buf, n: n})
}

// read buffers are pooled and small: a chunk is parsed at once, and only a
// message split across chunks is copied into a buffer of its own.
var readBufs = sync.Pool{New: func() any { b := make([]byte, readChunk); return &b }}

const readChunk = 16 << 10

func getReadBuf() *[]byte  { return readBufs.Get().(*[]byte) }
func putReadBuf(b *[]byte) { readBufs.Put(b) }

// readDrain parses and dispatches what the poller read, then reads the
// socket until it has nothing more, the connection pauses or it ends.
func (c *Conn) readDrain(buf *[]byte, n int) {
	nc := c.t.(*pollTransport).s
	// drained: a read came back short, so the socket had nothing more at
	// that moment; with edge-triggered epoll, later data brings a new
	// event. Reading again would only cost a syscall returning EAGAIN.
	drained := false
	if buf != nil && (len(c.leftover) > 0 || len(c.batchRest) > 0) {
		// Bytes kept from before a pause come first: the new chunk goes
		// after them.
		c.leftover = append(c.leftover, (*buf)[:n]...)
		drained = n < len(*buf)
		putReadBuf(buf)
		buf = nil
	}
	for {
		if buf != nil {
			drained = n < len(*buf)
			c.feed((*buf)[:n])
			putReadBuf(buf)
			buf = nil
		}
		for c.ctx.Err() == nil && !c.paused.Load() {
			if len(c.batchRest) > 0 {
				if !c.drainBatchRest() {
					break
				}
				continue
			}
			if len(c.leftover) > 0 {
				if !c.feedLeftover() {
					break
				}
				continue
			}
			if drained {
				break
			}
			b := getReadBuf()
			k, err := nc.read(*b)
			if k > 0 {
				drained = k < len(*b)
				c.lastRead.Store(c.s.eng.deadlines.now())
				c.feed((*b)[:k])
				putReadBuf(b)
				continue
			}
			putReadBuf(b)
			if !errors.Is(err, syscall.EAGAIN) {
				nc.close() // EOF or a broken socket: retires c
			}
			break
		}
		call := c.pendingCall
		c.pendingCall = nil
		c.reading.Store(false)
		// The poller may have seen new data while this goroutine owned the
		// reads, or a resume may have come: take them over.
		if c.ctx.Err() == nil && !c.paused.Load() && c.readable.Load() && c.reading.CompareAndSwap(false, true) {
			c.readable.Store(false)
			drained = false
			if call != nil {
				c.s.eng.exec.submit(call)
			}
			continue
		}
		if call != nil {
			// Reading is released (another goroutine may read meanwhile):
			// run the last call here when a slot is free.
			c.s.eng.exec.run(call)
		}
		return
	}
}

// pollTransport writes a polled socket without blocking.
type pollTransport struct {
	s *sock
}

func (t *pollTransport) nonBlocking() bool { return true }

func (t *pollTransport) write(c *Conn, batch []outMsg) (bool, error) {
	b := getWriteBuf()
	var closing bool
	*b, closing = c.appendOut((*b)[:0], batch)
	c.unsent.Add(int64(len(*b)))
	err := t.s.write(*b)
	putWriteBuf(b)
	if err != nil {
		return closing, err
	}
	if !closing && c.unsent.Load() > 0 {
		// The socket's buffer is full: the rest is kept and written when
		// the socket is writable; until then frames wait in the queue.
		c.mu.Lock()
		c.blockedT.Store(c.s.eng.deadlines.now())
		c.blocked.Store(true)
		if c.unsent.Load() == 0 {
			c.blocked.Store(false)
		}
		c.mu.Unlock()
	}
	return closing, nil
}

// written reports that n bytes reached the socket.
func (c *Conn) written(n int) {
	if c.unsent.Add(int64(-n)) == 0 && c.blocked.Load() {
		c.mu.Lock()
		resume := c.blocked.Load() && c.unsent.Load() == 0
		if resume {
			c.blocked.Store(false)
		}
		c.mu.Unlock()
		if resume {
			c.s.eng.flush.add(c)
		}
	}
}

func (t *pollTransport) close() {
	if t.s != nil {
		t.s.close()
	}
}

func (t *pollTransport) expire(time.Duration) {}

// resume reads a connection whose reading was paused (or that was waiting
// for connOpened).
func (t *pollTransport) resume(c *Conn) {
	// readable tells a read drain that still owns the reads (it paused and
	// has not let go yet) to go on reading: the data waiting in the socket
	// brings no new edge.
	c.readable.Store(true)
	if c.reading.CompareAndSwap(false, true) {
		c.readable.Store(false)
		c.s.eng.pool.run(task{kind: taskRead, c: c})
	}
}
