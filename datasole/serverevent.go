package datasole

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/datasole/datasole-go/datasole/protocol"
)

// Server events are raised by server code (Emit) and handled by server code
// (OnServer) on every node of the cluster: the emitting node runs its
// handlers from its own queue at once, the other nodes when the event
// arrives on the cluster bus through the emitter's ordered publisher. Each
// node runs the handlers of one event once, and the events of one emitting
// node in the order it emitted them. Handlers run on one goroutine per node,
// never on the bus goroutine, so a slow handler delays later server events
// but never the rest of the cluster's traffic.
//
// Server events are a namespace of their own: clients cannot raise them,
// and client events (On) never reach OnServer handlers.

// ServerEventFunc handles one server event. data is the event's JSON, nil
// when it was emitted with nil data. ctx ends when the server has closed
// (after queued events had their chance to run).
type ServerEventFunc func(ctx context.Context, data json.RawMessage)

// ErrServerEventBacklog is returned by Emit when this node's server event
// handlers are so far behind (serverEventQueue events or
// serverEventQueueBytes bytes) that the event cannot be queued. Nothing was
// sent; try again later.
var ErrServerEventBacklog = errors.New("datasole: server event handlers are behind; event not sent")

const (
	serverEventQueue      = 4096     // events waiting for this node's handlers
	serverEventQueueBytes = 16 << 20 // and their data
)

// serverEvents is the registry of OnServer handlers and the node's queue of
// server events waiting for them. A goroutine drains the queue while it
// holds events, one event at a time, in arrival order.
type serverEvents struct {
	s        *Server
	regMu    sync.Mutex
	handlers sync.Map // name -> []ServerEventFunc, copy-on-write

	mu      sync.Mutex
	queue   []serverEvent
	bytes   int
	running bool // a goroutine is draining queue
	closed  bool
	idle    chan struct{} // closed by the drainer when it stops; nil while none runs

	// ctx is the handlers' context, cancelled by close.
	ctx    context.Context
	cancel context.CancelFunc
}

type serverEvent struct {
	name string
	data json.RawMessage
}

func newServerEvents(s *Server) *serverEvents {
	e := &serverEvents{s: s}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	return e
}

// OnServer registers fn for server events named name, raised by Emit on
// any node of the cluster, this one included. Several handlers of one name
// run in registration order. Handlers run on this node's server event
// goroutine, one event at a time: hand long work to a goroutine of its own.
// A panic is recovered and logged. It refuses (ErrInvalidRegistration) a
// nil fn and an empty, reserved ("$ds.") or too long name; Start returns
// the same errors.
func (s *Server) OnServer(name string, fn ServerEventFunc) error {
	if err := s.register("server event", name, fn == nil); err != nil {
		return err
	}
	e := s.serverEvents
	e.regMu.Lock()
	old, _ := e.handlers.Load(name)
	list, _ := old.([]ServerEventFunc)
	e.handlers.Store(name, append(append([]ServerEventFunc(nil), list...), fn))
	e.regMu.Unlock()
	return nil
}

// Emit raises a server event: the OnServer handlers of name run once on
// every node of the cluster, this one included, with data encoded as JSON
// (json.RawMessage is sent as is). This node's handlers are queued at once,
// not after a round trip through the backend; other nodes receive the event
// through this node's ordered bus publisher, so every node handles the
// events emitted here in the order Emit was called. Emit never waits on
// handlers or on the backend. Across nodes, delivery is exactly once while
// the backend works and at most once during an outage (what the publisher
// cannot hold is dropped, see docs/server.md).
//
// It returns an error, and sends nothing, for a name OnServer would refuse,
// data that does not encode or is larger than 1 MiB, a ctx already done,
// ErrServerEventBacklog when this node's handlers are far behind, and
// ErrClosed once Close has started.
func (s *Server) Emit(ctx context.Context, name string, data any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if problem := s.nameProblem(name); problem != "" {
		return fmt.Errorf("datasole: Emit %q: %s", name, problem)
	}
	raw, err := marshalData(data)
	if err != nil {
		return fmt.Errorf("datasole: Emit %q: %w", name, err)
	}
	if given, ok := data.(json.RawMessage); ok { // the caller's bytes: check and copy them
		if given != nil && !json.Valid(given) {
			return fmt.Errorf("datasole: Emit %q: data is not valid JSON", name)
		}
		raw = append(json.RawMessage(nil), given...)
	}
	if len(raw) > protocol.MaxPayload {
		return fmt.Errorf("datasole: Emit %q: data of %d bytes is larger than %d", name, len(raw), protocol.MaxPayload)
	}
	if s.closing.Load() {
		return ErrClosed
	}
	return s.serverEvents.emit(serverEvent{name: name, data: raw})
}

// nameProblem says what is wrong with a handler or event name, or "".
func (s *Server) nameProblem(name string) string {
	switch {
	case name == "":
		return "the name is empty"
	case strings.HasPrefix(name, reservedPrefix):
		return "names starting with " + reservedPrefix + " are reserved for protocol extensions"
	case utf16Len(name) > s.opts.MaxEventNameLength:
		return fmt.Sprintf("the name is longer than %d UTF-16 code units (Options.MaxEventNameLength)", s.opts.MaxEventNameLength)
	}
	return ""
}

// emit queues ev for this node's handlers and for the bus in one step, so
// that the other nodes see this node's events in the order its handlers do.
func (e *serverEvents) emit(ev serverEvent) error {
	_, local := e.handlers.Load(ev.name) // no handler here: nothing to queue
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.closed:
		return ErrClosed
	case local && !e.roomLocked(ev):
		return ErrServerEventBacklog
	}
	if local {
		e.pushLocked(ev)
	}
	e.s.pub.enqueue(&busMsg{kind: busServer, key: ev.name, value: ev.data})
	return nil
}

// deliverRemote queues an event another node emitted. It is called on the
// bus goroutine and never waits: when the handlers are too far behind, the
// event is dropped and counted.
func (e *serverEvents) deliverRemote(m *busMsg) {
	if _, ok := e.handlers.Load(m.key); !ok {
		return
	}
	var data json.RawMessage
	if m.value != nil {
		data = append(json.RawMessage(nil), m.value...) // m aliases the bus buffer
	}
	ev := serverEvent{name: m.key, data: data}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	if !e.roomLocked(ev) {
		e.mu.Unlock()
		e.s.backendError("server-event-overflow", ErrServerEventBacklog)
		return
	}
	e.pushLocked(ev)
	e.mu.Unlock()
}

func (e *serverEvents) roomLocked(ev serverEvent) bool {
	return len(e.queue) < serverEventQueue && e.bytes+len(ev.data) <= serverEventQueueBytes
}

// pushLocked appends ev and starts a drainer if none runs.
func (e *serverEvents) pushLocked(ev serverEvent) {
	e.queue = append(e.queue, ev)
	e.bytes += len(ev.data)
	if !e.running {
		e.running = true
		e.idle = make(chan struct{})
		go e.drain(e.idle)
	}
}

// drain runs the handlers of queued events, in order, until the queue is
// empty.
func (e *serverEvents) drain(idle chan struct{}) {
	defer close(idle)
	for {
		e.mu.Lock()
		if len(e.queue) == 0 {
			e.queue = nil
			e.running = false
			e.mu.Unlock()
			return
		}
		ev := e.queue[0]
		e.queue[0] = serverEvent{}
		e.queue = e.queue[1:]
		e.bytes -= len(ev.data)
		e.mu.Unlock()
		e.handle(ev)
	}
}

func (e *serverEvents) handle(ev serverEvent) {
	v, ok := e.handlers.Load(ev.name)
	if !ok {
		return
	}
	for _, fn := range v.([]ServerEventFunc) {
		e.call(fn, ev)
	}
}

func (e *serverEvents) call(fn ServerEventFunc, ev serverEvent) {
	defer func() {
		if p := recover(); p != nil {
			e.s.log.Error("datasole: server event handler panicked", "event", ev.name, "panic", p, "stack", string(debug.Stack()))
		}
	}()
	fn(e.ctx, ev.data)
}

// close refuses further events, lets the queued ones run until ctx ends,
// then drops what is left, cancels the handlers' context and waits for the
// handler running, if any, to return. Server.Close calls it once the
// connections have ended.
func (e *serverEvents) close(ctx context.Context) {
	e.mu.Lock()
	e.closed = true
	idle := e.idle
	e.mu.Unlock()
	if idle != nil {
		select {
		case <-idle:
		case <-ctx.Done():
			e.mu.Lock()
			dropped := len(e.queue)
			e.queue, e.bytes = nil, 0
			e.mu.Unlock()
			if dropped > 0 {
				e.s.log.Warn("datasole: server events dropped at shutdown", "events", dropped)
			}
			e.cancel()
			<-idle
		}
	}
	e.cancel()
}

// ServerEvent describes one server event of a contract and its payload type
// T: raised by server code on any node with Emit, handled by Handle's
// handlers on every node. Declare it once in a package the nodes share:
//
//	var OrderPlaced = datasole.NewServerEvent[Order]("order.placed")
type ServerEvent[T any] struct {
	name string
}

// NewServerEvent declares a typed server event.
func NewServerEvent[T any](name string) ServerEvent[T] { return ServerEvent[T]{name: name} }

// Name returns the event's name on the cluster bus.
func (e ServerEvent[T]) Name() string { return e.name }

// Handle registers fn for this event on s, as OnServer does. Data that does
// not decode into T (a node running another version of the contract, say)
// is logged, sampled, and skips fn.
func (e ServerEvent[T]) Handle(s *Server, fn func(ctx context.Context, data T)) error {
	if fn == nil {
		return s.OnServer(e.name, nil)
	}
	return s.OnServer(e.name, func(ctx context.Context, raw json.RawMessage) {
		var v T
		if err := decodeParams(raw, &v); err != nil {
			s.logSampled("datasole: server event data does not decode", "event", e.name, "err", err)
			return
		}
		fn(ctx, v)
	})
}

// Emit raises the event on every node, as Server.Emit does.
func (e ServerEvent[T]) Emit(ctx context.Context, s *Server, data T) error {
	return s.Emit(ctx, e.name, data)
}
