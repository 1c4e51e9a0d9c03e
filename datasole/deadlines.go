package datasole

import (
	"context"
	"sync"
	"time"
)

// deadlines times out running RPC handlers with one goroutine and one
// timer for the whole server, instead of a timer per call. Every call gets
// the same timeout, so deadlines arrive in the order calls start: the
// pending calls form a FIFO list (O(1) to add and to remove when a call
// finishes), and the goroutine only ever sleeps until the head's deadline.
// It is not woken when a call finishes; it finds the list moved on when it
// wakes and sleeps again until the new head's deadline.
type deadlines struct {
	timeout time.Duration
	base    time.Time // deadlines are nanoseconds since base (monotonic)

	mu         sync.Mutex
	head, tail *rpcCall
	armed      bool // the goroutine sleeps until a deadline; guarded by mu
	running    bool // the goroutine was started; guarded by mu
	stopped    bool // guarded by mu
	wake       chan struct{}
	quit       chan struct{}
	wg         sync.WaitGroup
}

func (d *deadlines) init(timeout time.Duration) {
	d.timeout = timeout
	d.base = time.Now()
	d.wake = make(chan struct{}, 1)
	d.quit = make(chan struct{})
}

func (d *deadlines) now() int64 { return int64(time.Since(d.base)) }

// add starts call's clock and returns its deadline.
func (d *deadlines) add(call *rpcCall) time.Time {
	at := d.now() + int64(d.timeout)
	d.mu.Lock()
	call.deadline = at
	call.linked = true
	call.prev, call.next = d.tail, nil
	if d.tail != nil {
		d.tail.next = call
	} else {
		d.head = call
	}
	d.tail = call
	signal := !d.armed
	d.armed = true
	if !d.running && !d.stopped {
		d.running = true
		d.wg.Add(1)
		go d.loop()
	}
	d.mu.Unlock()
	if signal {
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
	return d.base.Add(time.Duration(at))
}

// remove takes a finished call off the list.
func (d *deadlines) remove(call *rpcCall) {
	d.mu.Lock()
	d.unlink(call)
	d.mu.Unlock()
}

func (d *deadlines) unlink(call *rpcCall) {
	if !call.linked {
		return
	}
	call.linked = false
	if call.prev != nil {
		call.prev.next = call.next
	} else {
		d.head = call.next
	}
	if call.next != nil {
		call.next.prev = call.prev
	} else {
		d.tail = call.prev
	}
	call.prev, call.next = nil, nil
}

func (d *deadlines) loop() {
	defer d.wg.Done()
	t := time.NewTimer(time.Hour)
	t.Stop()
	var expired []*rpcCall
	wasEmpty := false
	for {
		d.mu.Lock()
		now := d.now()
		for d.head != nil && d.head.deadline <= now {
			call := d.head
			d.unlink(call)
			expired = append(expired, call)
		}
		var wait time.Duration
		switch {
		case d.head != nil:
			d.armed, wasEmpty = true, false
			wait = time.Duration(d.head.deadline - now)
		case !wasEmpty:
			// The list is empty, but calls that start from now on end
			// after now+timeout: sleep that long while staying armed, so
			// that a server answering one quick call at a time does not
			// wake this goroutine for each.
			d.armed, wasEmpty = true, true
			wait = d.timeout
		default:
			d.armed = false // empty for a whole timeout: sleep until a call comes
		}
		d.mu.Unlock()
		for i, call := range expired {
			call.expire()
			expired[i] = nil
		}
		expired = expired[:0]
		if wait > 0 {
			t.Reset(wait)
			select {
			case <-t.C:
			case <-d.quit:
				t.Stop()
				return
			}
			continue
		}
		select {
		case <-d.wake:
		case <-d.quit:
			return
		}
	}
}

// stop ends the goroutine; calls still listed are no longer timed out.
func (d *deadlines) stop() {
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		return
	}
	d.stopped = true
	d.mu.Unlock()
	close(d.quit)
	d.wg.Wait()
}

// rpcCtx is the context of one RPC handler: cancelled at the call's
// deadline or when its connection ends. It makes its Done channel only when
// a handler asks for it, and watches the connection's context only then,
// so a handler that never looks costs no channel and no registration.
type rpcCtx struct {
	parent   context.Context // the connection's context
	deadline time.Time

	mu         sync.Mutex
	done       chan struct{}
	err        error
	afters     map[*afterFunc]struct{}
	stopParent func() bool
}

type afterFunc struct{ f func() }

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (r *rpcCtx) Deadline() (time.Time, bool) { return r.deadline, true }

func (r *rpcCtx) Value(key any) any { return r.parent.Value(key) }

func (r *rpcCtx) Done() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done == nil {
		if r.err != nil {
			r.done = closedChan
			return r.done
		}
		r.done = make(chan struct{})
		r.watchParent()
	}
	return r.done
}

func (r *rpcCtx) Err() error {
	r.mu.Lock()
	err := r.err
	r.mu.Unlock()
	if err != nil {
		return err
	}
	if perr := r.parent.Err(); perr != nil {
		r.cancel(perr)
		return perr
	}
	return nil
}

// AfterFunc lets contexts derived from this one (context.WithCancel and
// friends) follow it without a goroutine of their own.
func (r *rpcCtx) AfterFunc(f func()) (stop func() bool) {
	r.mu.Lock()
	if r.err != nil {
		r.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	a := &afterFunc{f: f}
	if r.afters == nil {
		r.afters = make(map[*afterFunc]struct{})
	}
	r.afters[a] = struct{}{}
	r.watchParent()
	r.mu.Unlock()
	return func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		if _, ok := r.afters[a]; ok {
			delete(r.afters, a)
			return true
		}
		return false
	}
}

// watchParent cancels r when the connection ends; r.mu is held.
func (r *rpcCtx) watchParent() {
	if r.stopParent == nil {
		parent := r.parent
		r.stopParent = context.AfterFunc(parent, func() { r.cancel(parent.Err()) })
	}
}

func (r *rpcCtx) cancel(err error) {
	r.mu.Lock()
	if r.err != nil {
		r.mu.Unlock()
		return
	}
	r.err = err
	if r.done != nil {
		close(r.done)
	}
	afters := r.afters
	r.afters = nil
	stop := r.stopParent
	r.mu.Unlock()
	for a := range afters {
		go a.f()
	}
	if stop != nil {
		stop()
	}
}

// release stops watching the connection once the handler has returned.
func (r *rpcCtx) release() {
	r.mu.Lock()
	stop := r.stopParent
	r.stopParent = nil
	r.mu.Unlock()
	if stop != nil {
		stop()
	}
}
