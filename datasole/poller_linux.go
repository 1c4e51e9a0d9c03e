package datasole

import (
	"errors"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/datasole/datasole-go/datasole/protocol"
	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/logging"
)

// poller reads sockets on readiness with lesismal/nbio (epoll, edge
// triggered). A connection with nothing to read holds no goroutine and no
// buffer: the poller goroutine reads a chunk into a pooled buffer when data
// arrives and hands it to a pool goroutine that parses and dispatches it,
// keeps reading until the socket is drained, and goes back to the pool.
// Writes never block: what the socket cannot take at once nbio keeps and
// writes when the socket is writable again; meanwhile the connection's own
// queue holds further frames (so its limits still decide about slow
// consumers).
type poller struct {
	e  *engine
	g  *nbio.Engine
	mu sync.Mutex // serializes AddConn, so OnOpen finds the Conn in adding
	// adding is the connection AddConn is registering.
	adding *pollRef
	// lastHandoff is when onRead last handed a connection to the pool
	// (engine clock); only the poller goroutine touches it.
	lastHandoff int64
}

// pollRef is the session nbio keeps for a socket. The Conn is published
// through an atomic pointer: the poller goroutine first sees it by way of
// epoll, which orders memory but which the race detector cannot see.
type pollRef struct{ c atomic.Pointer[Conn] }

func connOf(nc *nbio.Conn) *Conn {
	if ref, ok := nc.Session().(*pollRef); ok {
		return ref.c.Load()
	}
	return nil
}

var quietNBIO sync.Once

func newPoller(e *engine) (*poller, error) {
	quietNBIO.Do(func() { logging.SetLevel(logging.LevelError) })
	p := &poller{e: e}
	p.g = nbio.NewEngine(nbio.Config{
		Name:           "datasole",
		NPoller:        max(1, runtime.GOMAXPROCS(0)/2),
		EpollMod:       nbio.EPOLLET,
		ReadBufferSize: 1024, // the poller's own buffer; the engine reads into pooled ones
	})
	p.g.OnOpen(func(nc *nbio.Conn) { nc.SetSession(p.adding) })
	p.g.OnRead(p.onRead)
	p.g.OnWrittenSize(func(nc *nbio.Conn, _ []byte, n int) {
		if c := connOf(nc); c != nil {
			c.written(n)
		}
	})
	p.g.OnClose(func(nc *nbio.Conn, err error) {
		if c := connOf(nc); c != nil {
			c.setCloseReasonCode("closed", 1006)
			e.pool.run(task{kind: taskClose, c: c})
		}
	})
	if err := p.g.Start(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *poller) stop() { p.g.Stop() }

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
	ref := new(pollRef)
	ref.c.Store(c)
	c.setup.Lock()
	defer c.setup.Unlock()
	p.mu.Lock()
	p.adding = ref
	nc, err := p.g.AddConn(conn)
	p.adding = nil
	p.mu.Unlock()
	if err != nil {
		conn.Close()
		s.release(a)
		s.obs.UpgradeRejected("poller")
		s.logSampled("datasole: cannot poll a connection", "err", err)
		return true
	}
	t.nc = nc
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

// onRead runs on the poller goroutine when a socket has data. It reads one
// chunk and hands the connection to a pool goroutine, unless the
// connection is paused or already being read.
func (p *poller) onRead(nc *nbio.Conn) {
	c := connOf(nc)
	if c == nil {
		return
	}
	c.readable.Store(true)
	if c.paused.Load() || !c.reading.CompareAndSwap(false, true) {
		return
	}
	c.readable.Store(false)
	buf := getReadBuf()
	n, err := nc.Read(*buf)
	if n <= 0 {
		putReadBuf(buf)
		c.reading.Store(false)
		if err != nil && !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EINTR) || err == nil {
			nc.Close() // EOF or a broken socket
		}
		return
	}
	c.lastRead.Store(p.e.deadlines.now())
	if n < len(*buf) && c.parser.between() && onlyControl((*buf)[:n]) {
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
	// The pool goroutine was made runnable on this goroutine's P, which
	// then sits in the next epoll_wait; until the runtime takes the P
	// back (tens of µs) or another P steals the goroutine, nothing runs
	// it. When sockets become ready in quick succession (a busy server),
	// yield so that the handed-over work runs at once; for a lone event
	// the other P picks it up sooner than the yield costs.
	now := p.e.deadlines.now()
	if now-p.lastHandoff < int64(busyGap) {
		runtime.Gosched()
	}
	p.lastHandoff = now
}

// busyGap is how close two hand-offs must be for the poller to yield.
const busyGap = 20 * time.Microsecond

// read buffers are pooled and small: a chunk is parsed at once, and only a
// message split across chunks is copied into a buffer of its own.
var readBufs = sync.Pool{New: func() any { b := make([]byte, readChunk); return &b }}

const readChunk = 16 << 10

func getReadBuf() *[]byte  { return readBufs.Get().(*[]byte) }
func putReadBuf(b *[]byte) { readBufs.Put(b) }

// readDrain parses and dispatches what the poller read, then reads the
// socket until it has nothing more, the connection pauses or it ends.
func (c *Conn) readDrain(buf *[]byte, n int) {
	nc := c.t.(*pollTransport).nc
	// drained: a read came back short, so the socket had nothing more at
	// that moment; with edge-triggered epoll, later data brings a new
	// event. Reading again would only cost a syscall returning EAGAIN.
	drained := false
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
			k, err := nc.Read(*b)
			if k > 0 {
				drained = k < len(*b)
				c.lastRead.Store(c.s.eng.deadlines.now())
				c.feed((*b)[:k])
				putReadBuf(b)
				continue
			}
			putReadBuf(b)
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			if err == nil || !errors.Is(err, syscall.EAGAIN) {
				nc.Close() // EOF or a broken socket: OnClose retires c
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
	nc *nbio.Conn
}

func (t *pollTransport) nonBlocking() bool { return true }

func (t *pollTransport) write(c *Conn, batch []outMsg) (bool, error) {
	b := getWriteBuf()
	var closing bool
	*b, closing = c.appendOut((*b)[:0], batch)
	c.unsent.Add(int64(len(*b)))
	_, err := t.nc.Write(*b)
	putWriteBuf(b)
	if err != nil {
		return closing, err
	}
	if !closing && c.unsent.Load() > 0 {
		// The socket's buffer is full: nbio keeps the rest and writes it
		// when the socket is writable; until then frames wait in the queue.
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

// written is nbio's report that n bytes reached the socket.
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
	if t.nc != nil {
		t.nc.Close()
	}
}

func (t *pollTransport) expire(time.Duration) {}

// resume reads a connection whose reading was paused (or that was waiting
// for connOpened).
func (t *pollTransport) resume(c *Conn) {
	if c.reading.CompareAndSwap(false, true) {
		c.readable.Store(false)
		c.s.eng.pool.run(task{kind: taskRead, c: c})
	}
}
