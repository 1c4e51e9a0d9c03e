package backend

import (
	"log/slog"
	"sync"
	"sync/atomic"
)

// DefaultSubscriberQueueBytes bounds how many bytes a subscription buffers
// while its handler is busy, unless configured otherwise. It is sized for
// the burst a node receives when a backend outage ends and publishers flush
// what they held back: 64 MiB holds 65,536 messages of 1 KiB.
const DefaultSubscriberQueueBytes = 64 << 20

// messageOverhead is what each queued message counts against the byte bound
// on top of its length, so that a flood of empty messages is bounded too.
const messageOverhead = 64

// DispatcherOptions configures NewDispatcher. The zero value is ready to use.
type DispatcherOptions struct {
	// QueueBytes bounds each subscription's queue: the sum of the lengths of
	// the messages waiting for its handler, plus 64 bytes per message. Zero
	// means DefaultSubscriberQueueBytes.
	QueueBytes int
	// Logger receives a warning when a subscription drops messages, once per
	// run of drops. Nil means slog.Default().
	Logger *slog.Logger
}

// Dispatcher hands the messages a backend receives to its local
// subscriptions. Each subscription gets a queue bounded in bytes and one
// goroutine, so that handlers run in message order without ever blocking the
// caller of Dispatch. Backend implementations use it so that they all share
// these semantics; applications do not need it.
type Dispatcher struct {
	maxBytes int
	log      *slog.Logger

	mu     sync.RWMutex
	subs   map[string]map[*subscription]struct{}
	gapFns []func()
	closed bool
	wg     sync.WaitGroup

	gap     chan struct{} // capacity 1: pending gap notifications coalesce
	gapDone chan struct{}
}

// subscription is one handler's queue. Dispatch appends under mu; the
// subscription's goroutine takes the whole queue at once.
type subscription struct {
	channel string
	wake    chan struct{} // capacity 1
	done    chan struct{}
	stopped atomic.Bool

	mu       sync.Mutex
	queue    [][]byte
	bytes    int  // of the messages not yet handed to the handler
	dropping bool // messages were dropped since the last one was queued
}

// NewDispatcher returns a Dispatcher configured by opts.
func NewDispatcher(opts DispatcherOptions) *Dispatcher {
	if opts.QueueBytes <= 0 {
		opts.QueueBytes = DefaultSubscriberQueueBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	d := &Dispatcher{
		maxBytes: opts.QueueBytes,
		log:      opts.Logger,
		subs:     make(map[string]map[*subscription]struct{}),
		gap:      make(chan struct{}, 1),
		gapDone:  make(chan struct{}),
	}
	go d.notifyGaps()
	return d
}

// Subscribe registers handler for channel. It returns ErrClosed after Close.
func (d *Dispatcher) Subscribe(channel string, handler func(msg []byte)) (cancel func(), err error) {
	s := &subscription{channel: channel, wake: make(chan struct{}, 1), done: make(chan struct{})}
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
		s.run(handler)
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

// run calls handler with every queued message, in order, until stopped.
func (s *subscription) run(handler func(msg []byte)) {
	var batch [][]byte
	for {
		select {
		case <-s.done:
			return
		case <-s.wake:
		}
		s.mu.Lock()
		batch, s.queue = s.queue, batch[:0]
		s.mu.Unlock()
		for i, msg := range batch {
			batch[i] = nil
			if s.stopped.Load() {
				return
			}
			// A message counts against the bound until its handler gets it.
			s.mu.Lock()
			s.bytes -= len(msg) + messageOverhead
			s.mu.Unlock()
			handler(msg)
		}
	}
}

func (s *subscription) stop() {
	s.stopped.Store(true)
	close(s.done)
}

// push queues msg unless that would exceed max bytes. It reports whether
// msg was queued and whether this is the first drop of a run.
func (s *subscription) push(msg []byte, max int) (queued, firstDrop bool) {
	size := len(msg) + messageOverhead
	s.mu.Lock()
	if s.bytes+size > max && s.bytes > 0 {
		first := !s.dropping
		s.dropping = true
		s.mu.Unlock()
		return false, first
	}
	s.queue = append(s.queue, msg)
	s.bytes += size
	s.dropping = false
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return true, false
}

// Dispatch queues msg for every subscription of channel and returns without
// waiting for handlers. It takes ownership of msg: one subscription gets msg
// itself and every other one a copy. A subscription whose queue would grow
// past its byte bound loses the message, and a gap is reported. A message
// larger than the bound is still queued when the queue is empty.
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
		if queued, first := s.push(m, d.maxBytes); !queued {
			if first {
				d.log.Warn("backend: bus subscription queue full, dropping messages",
					"channel", channel, "queue_bytes", d.maxBytes)
			}
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
