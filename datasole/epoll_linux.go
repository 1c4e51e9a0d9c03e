package datasole

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// poller is the readiness poller: one epoll set (edge triggered) whose
// own descriptor is parked in the Go runtime's netpoller. The goroutine
// that waits on it therefore holds no OS thread and no P while idle, and a
// goroutine it hands a connection to runs at once on the P it frees — an
// epoll_wait blocking in a plain syscall keeps its P until the runtime
// takes it back, tens of microseconds later, which a call one at a time
// pays on every request (BenchmarkRPCSequential). A lone ready socket is
// served by the polling goroutine itself (see run).
type poller struct {
	e    *engine
	epfd int
	file *os.File
	rc   syscall.RawConn
	wg   sync.WaitGroup // goroutines polling or serving inline

	// Owned by the goroutine polling.
	events []syscall.EpollEvent
	found  []*sock
	ready  []*sock

	inline   atomic.Uint64 // token of the poller serving a socket itself; 0: none
	inlineAt atomic.Int64  // when that serve started (engine clock)
	tokens   atomic.Uint64
	ticking  atomic.Bool // the watchdog ticker runs
	quit     chan struct{}

	mu    sync.RWMutex
	socks map[int32]*sock
}

// sock is a socket the engine took over: its own duplicate of the
// descriptor, non-blocking. Reads and writes happen under mu so that a
// descriptor closed meanwhile (and perhaps reused by the kernel) is never
// touched.
type sock struct {
	p       *poller
	fd      int
	c       *Conn
	mu      sync.Mutex
	closed  bool
	pending []byte // bytes the kernel did not take yet
	once    sync.Once
}

func newPoller(e *engine) (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if err := syscall.SetNonblock(epfd, true); err != nil {
		syscall.Close(epfd)
		return nil, err
	}
	f := os.NewFile(uintptr(epfd), "datasole-epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	p := &poller{e: e, epfd: epfd, file: f, rc: rc, socks: make(map[int32]*sock), events: make([]syscall.EpollEvent, 256)}
	p.quit = make(chan struct{})
	p.wg.Add(1)
	e.pool.run(task{kind: taskPoll, poll: p})
	return p, nil
}

// run polls, on a pool goroutine. When one socket alone is ready, the
// goroutine serves it itself (reads, parses, runs the handler, writes the
// reply): a lone request costs no hand-off at all. If that takes longer
// than inlineBudget, a timer starts another goroutine polling and this one
// stops polling once it is done, so a slow handler delays other sockets by
// at most the budget. When several sockets are ready, each goes to a pool
// goroutine.
func (p *poller) run() {
	defer p.wg.Done()
	for {
		err := p.rc.Read(func(uintptr) bool {
			n, err := syscall.EpollWait(p.epfd, p.events, 0)
			if n <= 0 {
				return err != nil && !errors.Is(err, syscall.EINTR) && !errors.Is(err, syscall.EAGAIN)
			}
			p.mu.RLock()
			for _, ev := range p.events[:n] {
				p.found = append(p.found, p.socks[ev.Fd])
			}
			p.mu.RUnlock()
			for i, ev := range p.events[:n] {
				s := p.found[i]
				p.found[i] = nil
				if s == nil {
					continue
				}
				if ev.Events&syscall.EPOLLOUT != 0 {
					s.flush()
				}
				if ev.Events&(syscall.EPOLLIN|syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
					p.ready = append(p.ready, s)
				}
			}
			p.found = p.found[:0]
			return true
		})
		if err != nil {
			return // the epoll file was closed: stop
		}
		if len(p.ready) == 1 {
			s := p.ready[0]
			p.ready = p.ready[:0]
			c := s.c
			c.readable.Store(true)
			if c.paused.Load() || !c.reading.CompareAndSwap(false, true) {
				continue
			}
			c.readable.Store(false)
			token := p.tokens.Add(1)
			p.inlineAt.Store(p.e.deadlines.now())
			p.inline.Store(token)
			p.watchdog()
			p.read(s, true)
			if !p.inline.CompareAndSwap(token, 0) {
				return // took too long: another goroutine polls now
			}
			continue
		}
		for i, s := range p.ready {
			p.ready[i] = nil
			p.onReadable(s)
		}
		p.ready = p.ready[:0]
	}
}

// inlineBudget is how long the polling goroutine may serve a socket itself
// before another goroutine takes over polling. The watchdog checks on a
// ticker rather than arming a timer per request: arming one each time woke
// the runtime's netpoller per call (tens of µs of CPU per sequential call).
const inlineBudget = 2 * time.Millisecond

// watchdog makes sure the ticker that enforces inlineBudget runs. It runs
// while sockets are served inline and stops after a quiet tick.
func (p *poller) watchdog() {
	if p.ticking.Load() || !p.ticking.CompareAndSwap(false, true) {
		return
	}
	p.wg.Add(1) // the polling goroutine counts: no race with stop's Wait
	go p.tick()
}

func (p *poller) tick() {
	defer p.wg.Done()
	t := time.NewTicker(inlineBudget)
	defer t.Stop()
	last := p.tokens.Load()
	for {
		select {
		case <-t.C:
		case <-p.quit:
			p.ticking.Store(false)
			return
		}
		if token := p.inline.Load(); token != 0 && p.e.deadlines.now()-p.inlineAt.Load() > int64(inlineBudget) && p.inline.CompareAndSwap(token, 0) {
			p.wg.Add(1)
			p.e.pool.run(task{kind: taskPoll, poll: p})
		}
		if now := p.tokens.Load(); now != last || p.inline.Load() != 0 {
			last = now
			continue
		}
		// Nothing was served inline for a whole tick: stop, unless a
		// serve started meanwhile.
		p.ticking.Store(false)
		if p.tokens.Load() == last || !p.ticking.CompareAndSwap(false, true) {
			return
		}
	}
}

// add takes over conn for c: duplicates its descriptor, closes conn and
// watches the duplicate.
func (p *poller) add(conn net.Conn, c *Conn) (*sock, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil, errors.New("datasole: socket cannot be polled")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	if cerr := raw.Control(func(orig uintptr) { fd, err = syscall.Dup(int(orig)) }); cerr != nil {
		return nil, cerr
	}
	if err != nil {
		return nil, err
	}
	syscall.CloseOnExec(fd)
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	conn.Close()
	s := &sock{p: p, fd: fd, c: c}
	p.mu.Lock()
	p.socks[int32(fd)] = s
	p.mu.Unlock()
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLOUT | syscall.EPOLLRDHUP | 1<<31 /* EPOLLET */, Fd: int32(fd)}
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		p.mu.Lock()
		delete(p.socks, int32(fd))
		p.mu.Unlock()
		syscall.Close(fd)
		return nil, err
	}
	return s, nil
}

func (p *poller) stop() {
	p.file.Close()
	close(p.quit)
	p.wg.Wait()
}

// read reads what the socket has; syscall.EAGAIN when nothing.
func (s *sock) read(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, net.ErrClosed
	}
	for {
		n, err := syscall.Read(s.fd, b)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if n < 0 {
			n = 0
		}
		return n, err
	}
}

// write writes b without blocking: what the kernel does not take is kept
// and written when the socket is writable again.
func (s *sock) write(b []byte) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return net.ErrClosed
	}
	written := 0
	if len(s.pending) == 0 {
		for written < len(b) {
			n, err := syscall.Write(s.fd, b[written:])
			if n > 0 {
				written += n
			}
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			if errors.Is(err, syscall.EAGAIN) {
				break
			}
			if err != nil {
				s.mu.Unlock()
				s.close()
				return err
			}
		}
	}
	if written < len(b) {
		s.pending = append(s.pending, b[written:]...)
	}
	s.mu.Unlock()
	if written > 0 {
		s.c.written(written)
	}
	return nil
}

// flush writes pending bytes when the socket has become writable.
func (s *sock) flush() {
	s.mu.Lock()
	if s.closed || len(s.pending) == 0 {
		s.mu.Unlock()
		return
	}
	written := 0
	var failed error
	for written < len(s.pending) {
		n, err := syscall.Write(s.fd, s.pending[written:])
		if n > 0 {
			written += n
		}
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if errors.Is(err, syscall.EAGAIN) {
			break
		}
		if err != nil {
			failed = err
			break
		}
	}
	rest := copy(s.pending, s.pending[written:])
	s.pending = s.pending[:rest]
	if rest == 0 && cap(s.pending) > 64<<10 {
		s.pending = nil
	}
	s.mu.Unlock()
	if written > 0 {
		s.c.written(written)
	}
	if failed != nil {
		s.close()
	}
}

// close closes the socket once and retires its connection.
func (s *sock) close() {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.pending = nil
		syscall.Close(s.fd) // also takes it out of the epoll set
		s.mu.Unlock()
		s.p.mu.Lock()
		if s.p.socks[int32(s.fd)] == s {
			delete(s.p.socks, int32(s.fd))
		}
		s.p.mu.Unlock()
		s.c.setCloseReasonCode("closed", 1006)
		s.p.e.pool.run(task{kind: taskClose, c: s.c})
	})
}
