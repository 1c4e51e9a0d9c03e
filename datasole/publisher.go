package datasole

import (
	"context"
	"sync"
	"time"
)

// publisher sends this node's bus messages in order from one goroutine, so
// that no caller — an event handler, a state update, a CRDT op — ever waits
// on the backend. Whatever is queued while a publication is under way, or
// while the backend is down, leaves in the next one as a batch: a burst
// after an outage costs a few publications, not one per message.
//
// Messages carry a sequence number per node, so receivers drop duplicates
// (a publication the backend took just as its call timed out is sent
// again) and notice losses. The queue is bounded in bytes. What does not fit is dropped, counted, and
// announced to the other nodes with a gap message as soon as the bus works
// again; they then reload state and CRDTs from the store (versions repair
// them). Pushes dropped that way are lost: events are delivered at most once
// across nodes during an outage (docs/deployment.md).
type publisher struct {
	s       *Server
	limit   int // bytes the queue may hold
	mu      sync.Mutex
	queue   []*busMsg
	bytes   int
	dropped bool   // messages were dropped since the last successful publication
	seq     uint64 // of the last message queued
	wake    chan struct{}
	stop    chan struct{}
	stopped chan struct{}
	drain   context.Context // set by close: how long to keep trying
}

// publishQueueBytes bounds the messages a node holds for the bus.
const publishQueueBytes = 32 << 20

func newPublisher(s *Server) *publisher {
	return &publisher{s: s, limit: publishQueueBytes, wake: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
}

func (p *publisher) start() { go p.run() }

// enqueue queues m for the bus without blocking. On a server with its own
// in-memory backend no other node can listen: only kept events, which come
// back through the bus to be delivered, are published.
func (p *publisher) enqueue(m *busMsg) {
	if p.s.ownBackend != nil && m.kind != busHistory {
		return
	}
	m.origin = p.s.nodeID
	m.sentAt = time.Now().UnixNano()
	n := m.size()
	p.mu.Lock()
	if p.bytes+n > p.limit {
		p.dropped = true
		p.mu.Unlock()
		p.s.backendError("publish-overflow", errPublishOverflow)
	} else {
		p.seq++
		m.seq = p.seq
		p.queue = append(p.queue, m)
		p.bytes += n
		p.mu.Unlock()
	}
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

var errPublishOverflow = errorString("datasole: bus publish queue full; messages dropped")

type errorString string

func (e errorString) Error() string { return string(e) }

// take removes up to maxBusBatch bytes of messages from the queue, with a
// gap announcement first when messages were dropped.
func (p *publisher) take() []*busMsg {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*busMsg
	if p.dropped {
		out = append(out, &busMsg{kind: busGap, origin: p.s.nodeID, sentAt: time.Now().UnixNano()})
	}
	size := 0
	i := 0
	for ; i < len(p.queue); i++ {
		n := p.queue[i].size()
		if i > 0 && size+n > maxBusBatch {
			break
		}
		size += n
		out = append(out, p.queue[i])
		p.queue[i] = nil
	}
	p.queue = p.queue[i:]
	if len(p.queue) == 0 {
		p.queue = nil
	}
	p.bytes -= size
	return out
}

func (p *publisher) run() {
	defer close(p.stopped)
	backoff := 50 * time.Millisecond
	var batch []*busMsg // taken and not yet sent
	for {
		if len(batch) == 0 {
			batch = p.take()
		}
		if len(batch) == 0 {
			select {
			case <-p.wake:
				continue
			case <-p.stop:
				if batch = p.take(); len(batch) == 0 {
					return
				}
				continue
			}
		}
		n, err := p.send(batch)
		batch = batch[n:]
		if err == nil {
			backoff = 50 * time.Millisecond
			continue
		}
		p.s.backendError("publish", err)
		select {
		case <-time.After(backoff):
		case <-p.stop:
			if p.drain == nil || p.drain.Err() != nil {
				return
			}
			select {
			case <-time.After(backoff):
			case <-p.drain.Done():
				return
			}
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// send publishes the head of batch: a run of ordinary messages as one
// publication, or one kept event appended to its stream. It returns how
// many messages it sent.
func (p *publisher) send(batch []*busMsg) (int, error) {
	if batch[0].kind == busHistory {
		if err := p.appendHistory(batch[0]); err != nil {
			return 0, err
		}
		return 1, nil
	}
	n := 1
	for n < len(batch) && batch[n].kind != busHistory {
		n++
	}
	ctx, cancel := context.WithTimeout(p.ctx(), busTimeout)
	defer cancel()
	if err := p.s.opts.Backend.Publish(ctx, busChannel, encodeBus(batch[:n])); err != nil {
		return 0, err
	}
	if batch[0].kind == busGap {
		p.mu.Lock()
		p.dropped = false
		p.mu.Unlock()
	}
	return n, nil
}

// ctx is the context publications run under: unbounded while the server
// runs, the drain deadline once it closes.
func (p *publisher) ctx() context.Context {
	select {
	case <-p.stop:
		if p.drain != nil {
			return p.drain
		}
	default:
	}
	return context.Background()
}

// close publishes what is queued, trying until ctx is done, then stops.
func (p *publisher) close(ctx context.Context) {
	p.drain = ctx
	close(p.stop)
	select {
	case <-p.stopped:
	case <-ctx.Done():
		<-p.stopped
	}
}
