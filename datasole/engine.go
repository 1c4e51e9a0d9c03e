package datasole

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// engine is a server's machinery for running connections: the goroutine
// pool that reads connections and runs handlers, the bounded RPC executor,
// the RPC deadlines, the write flushers and, for sockets that can be
// polled, the readiness poller. It is made on first use and stopped by
// Close.
type engine struct {
	s    *Server
	once sync.Once

	pool      pool
	exec      executor
	deadlines deadlines
	flush     flushQueue

	pollMu  sync.Mutex
	poll    *poller // nil until a pollable socket arrives; guarded by pollMu
	stopped bool    // guarded by pollMu
}

// engine returns the server's engine, making it on first use.
func (s *Server) engine() *engine {
	e := &s.eng
	e.once.Do(func() {
		e.s = s
		e.pool.init(s.done)
		e.exec.init(&e.pool, s.opts.MaxHandlers)
		e.deadlines.init(s.opts.RPCTimeout)
		e.flush.init(&e.pool)
	})
	return e
}

// stopEngine waits (until ctx is done) for RPC handlers still running after
// their connections ended, then stops the poller, the deadline timer and
// the idle pool goroutines. Close calls it once every connection has ended.
func (s *Server) stopEngine(ctx context.Context) {
	e := s.engine()
	e.exec.wait(ctx)
	e.pollMu.Lock()
	e.stopped = true
	p := e.poll
	e.poll = nil
	e.pollMu.Unlock()
	if p != nil {
		p.stop()
	}
	e.deadlines.stop()
	e.pool.wait(ctx)
}

// pool runs tasks on long-lived goroutines: a task goes to an idle
// goroutine when there is one and starts a new goroutine otherwise. Idle
// goroutines exit after poolIdle, or at once when done is closed, so a
// quiet server holds none.
type pool struct {
	done  <-chan struct{}
	tasks chan task
	wg    sync.WaitGroup
	live  atomic.Int32
}

// poolIdle is how long a pool goroutine waits for work before it exits.
const poolIdle = 10 * time.Second

// task is one unit of pool work. It is a small struct rather than a
// closure so that handing it over allocates nothing.
type task struct {
	kind taskKind
	c    *Conn
	call *rpcCall
	buf  *[]byte // read-drain: bytes the poller already read
	n    int
	q    *flushQueue
	poll *poller
}

type taskKind uint8

const (
	taskRPC   taskKind = iota // run call and then whatever the executor queued
	taskRead                  // read and dispatch c's inbound data
	taskFlush                 // run the write flusher
	taskClose                 // retire the connection c
	taskPoll                  // wait for sockets to become ready
)

func (p *pool) init(done <-chan struct{}) {
	p.done = done
	p.tasks = make(chan task)
}

// run hands t to an idle goroutine or starts one.
func (p *pool) run(t task) {
	select {
	case p.tasks <- t:
		return
	default:
	}
	p.wg.Add(1)
	p.live.Add(1)
	go p.worker(t)
}

func (p *pool) worker(t task) {
	defer p.wg.Done()
	defer p.live.Add(-1)
	idle := time.NewTimer(poolIdle)
	defer idle.Stop()
	for {
		t.run()
		t = task{}
		select {
		case <-p.done:
			// The server is closing: take work that is already waiting,
			// but do not linger.
			select {
			case t = <-p.tasks:
				continue
			default:
				return
			}
		default:
		}
		idle.Reset(poolIdle)
		select {
		case t = <-p.tasks:
		case <-idle.C:
			return
		case <-p.done:
			return
		}
	}
}

// wait waits for the pool's goroutines to exit (they do at once once done
// is closed and they are idle), or for ctx.
func (p *pool) wait(ctx context.Context) {
	finished := make(chan struct{})
	go func() { p.wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-ctx.Done():
	}
}

func (t *task) run() {
	switch t.kind {
	case taskRPC:
		t.c.s.eng.exec.runFrom(t.call)
	case taskRead:
		t.c.readDrain(t.buf, t.n)
	case taskFlush:
		t.q.serve()
	case taskClose:
		t.c.retire()
	case taskPoll:
		t.poll.run()
	}
}

// executor runs RPC handlers on pool goroutines, at most max at once.
// Submitting never blocks: a call that finds every slot taken waits in a
// FIFO and starts, on the goroutine of a call that finished, as soon as a
// slot frees. The connection that sent it stops reading meanwhile (see
// Conn.mustPause), so the FIFO holds at most what was already read.
type executor struct {
	pool    *pool
	max     int
	mu      sync.Mutex
	running int        // handlers running; guarded by mu
	queue   []*rpcCall // waiting for a slot; guarded by mu
	head    int
	idle    chan struct{} // closed when running drops to 0; guarded by mu
}

func (e *executor) init(p *pool, max int) {
	e.pool = p
	e.max = max
}

// submit runs call when a slot is free, or queues it.
func (e *executor) submit(call *rpcCall) {
	e.mu.Lock()
	if e.running < e.max {
		e.running++
		e.mu.Unlock()
		e.pool.run(task{kind: taskRPC, call: call, c: call.c})
		return
	}
	call.c.queued.Add(1)
	e.queue = append(e.queue, call)
	e.mu.Unlock()
}

// run runs call on the calling goroutine when a slot is free, or queues
// it.
func (e *executor) run(call *rpcCall) {
	e.mu.Lock()
	if e.running < e.max {
		e.running++
		e.mu.Unlock()
		e.runFrom(call)
		return
	}
	call.c.queued.Add(1)
	e.queue = append(e.queue, call)
	e.mu.Unlock()
}

// runFrom runs call, then keeps this goroutine for queued calls until
// the queue is empty.
func (e *executor) runFrom(call *rpcCall) {
	for call != nil {
		call.run()
		call = e.next()
	}
}

// next returns a queued call to run in the slot just freed, or releases
// the slot.
func (e *executor) next() *rpcCall {
	e.mu.Lock()
	if e.head < len(e.queue) {
		call := e.queue[e.head]
		e.queue[e.head] = nil
		e.head++
		if e.head == len(e.queue) {
			e.queue, e.head = e.queue[:0], 0
			if cap(e.queue) > 1024 {
				e.queue = nil
			}
		}
		e.mu.Unlock()
		if call.c.queued.Add(-1) == 0 {
			call.c.maybeResume()
		}
		return call
	}
	e.running--
	if e.running == 0 && e.idle != nil {
		close(e.idle)
		e.idle = nil
	}
	e.mu.Unlock()
	return nil
}

// wait returns when no handler runs, or when ctx is done.
func (e *executor) wait(ctx context.Context) {
	e.mu.Lock()
	if e.running == 0 {
		e.mu.Unlock()
		return
	}
	if e.idle == nil {
		e.idle = make(chan struct{})
	}
	idle := e.idle
	e.mu.Unlock()
	select {
	case <-idle:
	case <-ctx.Done():
	}
}

// flushQueue is the set of connections whose send queues have frames that
// a fan-out added. A few pool goroutines (at most flushers) drain them, so
// that a broadcast to many connections neither waits for their sockets nor
// starts a goroutine per connection; frames that arrive while a
// connection waits its turn leave in the same write.
type flushQueue struct {
	pool    *pool
	mu      sync.Mutex
	conns   []*Conn
	spare   []*Conn
	serving int // goroutines draining the queue; guarded by mu
}

// flushers bounds the goroutines flushing fan-out writes.
const flushers = 4

func (q *flushQueue) init(p *pool) { q.pool = p }

// add schedules c's queue to be written.
func (q *flushQueue) add(c *Conn) {
	q.mu.Lock()
	q.conns = append(q.conns, c)
	start := q.serving < flushers && q.serving < len(q.conns)
	if start {
		q.serving++
	}
	q.mu.Unlock()
	if start {
		q.pool.run(task{kind: taskFlush, q: q})
	}
}

// serve drains scheduled connections until none is left.
func (q *flushQueue) serve() {
	for {
		q.mu.Lock()
		batch := q.conns
		if len(batch) == 0 {
			q.serving--
			q.mu.Unlock()
			return
		}
		q.conns = q.spare[:0]
		q.spare = nil
		q.mu.Unlock()
		for i, c := range batch {
			c.drain()
			batch[i] = nil
		}
		q.mu.Lock()
		if q.spare == nil && cap(batch) <= 4096 {
			q.spare = batch[:0]
		}
		q.mu.Unlock()
	}
}
