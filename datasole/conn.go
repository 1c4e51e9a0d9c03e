package datasole

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/datasole/datasole-go/datasole/protocol"
)

// Conn is one client connection (one browser tab, one Go client). It is safe
// for concurrent use.
type Conn struct {
	s           *Server
	t           transport
	adm         *Admission
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
	batching    bool          // the peer negotiated datasole.batch.v1

	tags map[string]struct{} // guarded by s.hub.mu

	mu          sync.Mutex // guards the fields below
	queue       []outMsg
	queuedBytes int
	spare       []outMsg
	writing     bool // a drain is running, scheduled, or waiting for the socket
	closed      bool // no more frames are accepted
	values      map[string]any
	drained     chan struct{} // closed when no RPC is in flight; for shutdown
	closeReason string        // why the connection ended
	closeCode   int           // the close code sent or received first

	writer   sync.WaitGroup // writer goroutines of blocking transports
	inFlight atomic.Int32   // RPCs accepted and not finished
	queued   atomic.Int32   // of those, waiting for an executor slot

	// Reading and its backpressure.
	rmu      sync.Mutex  // orders pause against resume
	paused   atomic.Bool // reading stopped until calls finish
	resumed  chan struct{}
	busy     atomic.Bool  // a message is being dispatched
	lastRead atomic.Int64 // engine clock of the last bytes read
	retired  atomic.Bool
	setup    sync.Mutex // held while the connection is being set up
	opened   bool       // open registered it with the server; guarded by setup

	// Polled sockets only.
	reading  atomic.Bool // a read drain owns the socket's reads
	readable atomic.Bool // the poller saw data while reading was owned
	unsent   atomic.Int64
	blocked  atomic.Bool  // the socket's buffer is full; the drain waits
	blockedT atomic.Int64 // engine clock when it filled

	// Touched by the reader only.
	parser        wsReader
	leftover      []byte   // bytes read but not parsed when reading paused
	pendingCall   *rpcCall // the read drain's latest call, not yet submitted
	batchRest     []byte   // items of a BATCH not dispatched when reading paused
	badFrames     int
	refusedInARow int
	defaultBucket string // rate-limit bucket of frames without a rule of their own
	raw           rawBudget
}

type outKind uint8

const (
	outFrame outKind = iota
	outPing
	outPong
	outClose
)

type outMsg struct {
	data []byte
	kind outKind
	op   protocol.Opcode // of data, for metrics
	code int             // for outClose
	text string          // for outClose
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

// enqueue queues one encoded message without blocking; fan-out calls it.
// It reports false when the connection no longer takes frames.
func (c *Conn) enqueue(op protocol.Opcode, msg []byte) bool {
	return c.push(outMsg{data: msg, op: op}, false)
}

// pushOwn queues a message this connection's own work produced (an RPC
// reply, a PONG, an ERROR). On a polled socket the calling goroutine writes
// it at once if no write is in flight: no hand-off for a reply.
func (c *Conn) pushOwn(op protocol.Opcode, msg []byte) bool {
	return c.push(outMsg{data: msg, op: op}, true)
}

// push queues m. inline lets the caller write it itself on a socket whose
// writes never block.
func (c *Conn) push(m outMsg, inline bool) bool {
	o := &c.s.opts
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	if m.kind == outFrame && len(c.queue) > 0 &&
		(len(c.queue) >= o.SendQueueSize || c.queuedBytes+len(m.data) > o.SendQueueBytes) {
		if o.SlowConsumer == DropNewest {
			c.mu.Unlock()
			c.s.obs.SendDropped()
			return false
		}
		c.closed = true
		c.closeReason = "slow-consumer"
		c.closeCode = ClosePolicyViolation
		c.queue, c.queuedBytes = nil, 0
		c.mu.Unlock()
		c.s.obs.SendDropped()
		c.s.logSampled("datasole: closing slow consumer", "conn", c.id, "queue", o.SendQueueSize, "queueBytes", o.SendQueueBytes)
		// Its socket buffer is full: a close frame could not get through.
		c.cancel()
		c.t.close()
		return false
	}
	if m.kind == outClose {
		c.closed = true
		if c.closeCode == 0 {
			c.closeCode = m.code
		}
	}
	c.queue = append(c.queue, m)
	c.queuedBytes += len(m.data)
	start := c.startWriterLocked()
	c.mu.Unlock()
	if start {
		c.startDrain(inline)
	}
	return true
}

// startWriterLocked marks a drain as started unless one is; c.mu is held.
// A blocking transport's writer goroutine is counted here, under c.mu, so
// that retire, which waits for it after marking the connection closed,
// cannot miss one.
func (c *Conn) startWriterLocked() bool {
	if c.writing {
		return false
	}
	c.writing = true
	if !c.t.nonBlocking() {
		c.writer.Add(1)
	}
	return true
}

func (c *Conn) startDrain(inline bool) {
	switch {
	case !c.t.nonBlocking():
		go func() {
			defer c.writer.Done()
			c.drain()
		}()
	case inline:
		c.drain()
	default:
		c.s.eng.flush.add(c)
	}
}

// drain writes the queue until it is empty, one write per round: whatever
// became ready while a write was in flight leaves in the next one.
func (c *Conn) drain() {
	for {
		c.mu.Lock()
		if len(c.queue) == 0 || c.blocked.Load() {
			if !c.blocked.Load() {
				c.writing = false
			}
			c.mu.Unlock()
			return
		}
		batch := c.queue
		c.queue, c.spare = c.spare[:0], nil
		c.queuedBytes = 0
		c.mu.Unlock()

		closing, err := c.t.write(c, batch)
		for i := range batch {
			batch[i] = outMsg{}
		}
		if cap(batch) <= 64 {
			c.mu.Lock()
			if c.spare == nil {
				c.spare = batch[:0]
			}
			c.mu.Unlock()
		}
		if closing || err != nil {
			if err != nil {
				c.setCloseReason("write-error")
			}
			c.mu.Lock()
			c.closed = true
			c.queue = nil
			c.writing = false
			c.mu.Unlock()
			c.cancel()
			c.t.close()
			return
		}
	}
}

// countOut records the frames of a written batch.
func (c *Conn) countOut(batch []outMsg) {
	for _, m := range batch {
		if m.kind == outFrame {
			c.s.obs.FrameOut(m.op, len(m.data))
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

// closeNow stops taking frames, drops what is queued, sends a close frame
// and closes the socket. A second call closes the socket at once.
func (c *Conn) closeNow(code int, reason string) {
	c.mu.Lock()
	if c.closeCode == 0 {
		c.closeCode = code
	}
	if c.closed || code == 1006 {
		c.closed = true
		c.queue = nil
		c.mu.Unlock()
		c.cancel()
		c.t.close()
		return
	}
	c.closed = true
	c.queue = append(c.queue[:0], outMsg{kind: outClose, code: code, text: reason})
	c.queuedBytes = 0
	start := c.startWriterLocked()
	c.mu.Unlock()
	c.cancel()
	if start {
		c.startDrain(true)
	}
}

// closeDead closes a connection without a close frame (a dead peer, a
// protocol violation already answered), recording why.
func (c *Conn) closeDead(reason string, code int) {
	c.mu.Lock()
	if c.closeCode == 0 {
		c.closeReason, c.closeCode = reason, code
	}
	c.closed = true
	c.queue = nil
	c.mu.Unlock()
	c.cancel()
	c.t.close()
}

// shutdown lets RPCs in flight finish and queued frames drain, then closes
// with 1001. It returns when the connection has ended or ctx is done.
func (c *Conn) shutdown(ctx context.Context) {
	c.mu.Lock()
	var idle chan struct{}
	if c.inFlight.Load() > 0 {
		if c.drained == nil {
			c.drained = make(chan struct{})
		}
		idle = c.drained
	}
	c.mu.Unlock()
	if idle != nil {
		select {
		case <-idle:
		case <-ctx.Done():
		case <-c.done:
			return
		}
	}
	c.setCloseReason("shutdown")
	if !c.push(outMsg{kind: outClose, code: CloseGoingAway, text: "Server shutting down"}, false) {
		c.closeNow(CloseGoingAway, "Server shutting down")
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		c.closeNow(CloseGoingAway, "Server shutting down")
	}
}

// callDone is called when an RPC of this connection has finished.
func (c *Conn) callDone() {
	n := c.inFlight.Add(-1)
	if n == 0 {
		c.mu.Lock()
		if c.drained != nil && c.inFlight.Load() == 0 {
			close(c.drained)
			c.drained = nil
		}
		c.mu.Unlock()
	}
	if int(n) < c.s.opts.MaxInFlight {
		c.maybeResume()
	}
}

// mustPause reports whether the connection must stop reading: it has
// MaxInFlight calls running, or a call waiting for an executor slot.
func (c *Conn) mustPause() bool {
	return int(c.inFlight.Load()) >= c.s.opts.MaxInFlight || c.queued.Load() > 0
}

// pause stops reading unless the reason went away meanwhile; the reader
// calls it and stops when it returns true.
func (c *Conn) pause() bool {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.paused.Store(true)
	if !c.mustPause() {
		c.paused.Store(false)
		return false
	}
	return true
}

// maybeResume restarts reading a paused connection once it may read again.
func (c *Conn) maybeResume() {
	if !c.paused.Load() {
		return
	}
	c.rmu.Lock()
	if !c.paused.Load() || c.mustPause() {
		c.rmu.Unlock()
		return
	}
	c.paused.Store(false)
	c.lastRead.Store(c.s.eng.deadlines.now()) // the wait was ours, not the peer's silence
	c.rmu.Unlock()
	c.t.resume(c)
}

// waitUnpaused blocks a goroutine reader while the connection is paused.
// It returns false when the connection ended.
func (c *Conn) waitUnpaused() bool {
	for c.paused.Load() {
		select {
		case <-c.resumed:
		case <-c.ctx.Done():
			return false
		}
	}
	return true
}

// heartbeat is the connection's part of a heartbeat tick: close it if the
// peer has been silent for two intervals, else queue a ping. Data left
// unread because the server is busy with this connection (reading paused,
// a handler running) is not silence.
func (c *Conn) heartbeat(now int64, interval time.Duration) {
	if c.paused.Load() || c.busy.Load() || c.reading.Load() {
		c.lastRead.Store(now)
	} else if now-c.lastRead.Load() > int64(2*interval) {
		c.closeDead("heartbeat", 1006)
		return
	}
	if c.blocked.Load() && now-c.blockedT.Load() > int64(c.s.opts.WriteTimeout) {
		c.setCloseReason("write-timeout")
		c.closeDead("write-timeout", 1006)
		return
	}
	c.push(outMsg{kind: outPing}, false)
}

// retire ends a connection whose reading has stopped: it stops taking
// frames, lets a close frame already queued go out (a blocked write gives
// up within a second), closes the socket, waits for its writer and hands
// the connection to connClosed. It runs once.
func (c *Conn) retire() {
	if !c.retired.CompareAndSwap(false, true) {
		return
	}
	c.setup.Lock() // a socket may end while its setup is still running
	c.setup.Unlock()
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.t.expire(time.Second)
	c.writer.Wait() // after this nothing writes to the socket
	c.t.close()
	if c.opened {
		c.s.connClosed(c, c.adm)
		c.s.wg.Done()
	}
}

// sendErrorBody, sendError and sendFrame answer this connection alone.
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
	c.pushOwn(op, msg)
	return nil
}
