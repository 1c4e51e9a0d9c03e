package backend

import (
	"sync"
	"sync/atomic"
)

// Dispatcher hands the messages a backend receives to its local
// subscriptions. Each subscription gets a bounded queue and one goroutine, so
// that handlers run in message order without ever blocking the caller of
// Dispatch. Backend implementations use it so that they all share these
// semantics; applications do not need it.
type Dispatcher struct {
	queue int

	mu     sync.RWMutex
	subs   map[string]map[*subscription]struct{}
	gapFns []func()
	closed bool
	wg     sync.WaitGroup

	gap     chan struct{} // capacity 1: pending gap notifications coalesce
	gapDone chan struct{}
}

type subscription struct {
	ch      chan []byte
	done    chan struct{}
	stopped atomic.Bool
}

// NewDispatcher returns a Dispatcher whose subscriptions buffer up to queue
// messages each; queue <= 0 means DefaultSubscriberQueue.
func NewDispatcher(queue int) *Dispatcher {
	if queue <= 0 {
		queue = DefaultSubscriberQueue
	}
	d := &Dispatcher{
		queue:   queue,
		subs:    make(map[string]map[*subscription]struct{}),
		gap:     make(chan struct{}, 1),
		gapDone: make(chan struct{}),
	}
	go d.notifyGaps()
	return d
}

// Subscribe registers handler for channel. It returns ErrClosed after Close.
func (d *Dispatcher) Subscribe(channel string, handler func(msg []byte)) (cancel func(), err error) {
	s := &subscription{ch: make(chan []byte, d.queue), done: make(chan struct{})}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, ErrClosed
	}
	set := d.subs[channel]
	if set == nil {
		set = make(map[*subscription]struct{})
		d.subs[channel] = set
	}
	set[s] = struct{}{}
	d.wg.Add(1)
	d.mu.Unlock()

	go func() {
		defer d.wg.Done()
		for {
			select {
			case <-s.done:
				return
			case msg := <-s.ch:
				if s.stopped.Load() {
					return
				}
				handler(msg)
			}
		}
	}()

	var once sync.Once
	return func() {
		once.Do(func() {
			d.mu.Lock()
			if set := d.subs[channel]; set != nil {
				if _, ok := set[s]; ok {
					delete(set, s)
					if len(set) == 0 {
						delete(d.subs, channel)
					}
					s.stop()
				}
			}
			d.mu.Unlock()
		})
	}, nil
}

func (s *subscription) stop() {
	s.stopped.Store(true)
	close(s.done)
}

// Dispatch queues msg for every subscription of channel and returns without
// waiting for handlers. It takes ownership of msg: one subscription gets msg
// itself and every other one a copy. A subscription whose queue is full
// loses the message, and a gap is reported.
func (d *Dispatcher) Dispatch(channel string, msg []byte) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	left := len(d.subs[channel])
	for s := range d.subs[channel] {
		left--
		m := msg
		if left > 0 {
			// Copy before msg itself is handed over, last.
			m = append([]byte(nil), msg...)
		}
		select {
		case s.ch <- m:
		default:
			d.signalGap()
		}
	}
}

// OnGap registers fn to be called after messages may have been lost. Calls
// are made from one goroutine and coalesce: several gaps in quick
// succession may produce a single call. OnGap implements GapNotifier.
func (d *Dispatcher) OnGap(fn func()) {
	d.mu.Lock()
	d.gapFns = append(d.gapFns, fn)
	d.mu.Unlock()
}

// Gap reports that messages may have been lost. It never blocks, and does
// nothing after Close.
func (d *Dispatcher) Gap() {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if !d.closed {
		d.signalGap()
	}
}

// signalGap must be called with d.mu held and d not closed.
func (d *Dispatcher) signalGap() {
	select {
	case d.gap <- struct{}{}:
	default:
	}
}

func (d *Dispatcher) notifyGaps() {
	defer close(d.gapDone)
	for range d.gap {
		d.mu.RLock()
		fns := d.gapFns
		d.mu.RUnlock()
		for _, fn := range fns {
			fn()
		}
	}
}

// Close cancels every subscription and waits until their handlers and the
// gap callbacks have returned. Later calls to Subscribe fail with ErrClosed;
// later calls to Dispatch do nothing.
func (d *Dispatcher) Close() {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.closed = true
	for _, set := range d.subs {
		for s := range set {
			s.stop()
		}
	}
	d.subs = nil
	d.mu.Unlock()
	d.wg.Wait()
	close(d.gap)
	<-d.gapDone
}
