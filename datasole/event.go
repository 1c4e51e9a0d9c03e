package datasole

import (
	"encoding/json"
	"runtime/debug"
	"sync"
	"unicode/utf16"

	"github.com/datasole/datasole-go/datasole/protocol"
)

// EventFunc handles one client event; data is nil when the client sent
// none (and null when it sent null). It runs in the sending connection's
// read loop, so events of one connection are handled in the order sent; hand
// long work to a goroutine.
type EventFunc func(c *Context, data json.RawMessage)

type eventHandler struct {
	fn EventFunc
}

// eventRegistry maps event names to handlers. Handlers are stored as
// copy-on-write slices so dispatch takes no lock.
type eventRegistry struct {
	mu       sync.Mutex
	handlers sync.Map // name -> []*eventHandler
}

// On registers fn for client events named event. Several handlers of one
// event run in registration order. Client events reach only server
// handlers: other clients see them only if a handler sends something. It
// refuses (ErrInvalidRegistration) a nil fn and an empty, reserved ("$ds.")
// or too long name; Start returns the same errors.
func (s *Server) On(event string, fn EventFunc) error {
	if err := s.register("event", event, fn == nil); err != nil {
		return err
	}
	h := &eventHandler{fn: fn}
	r := &s.events
	r.mu.Lock()
	old, _ := r.handlers.Load(event)
	list, _ := old.([]*eventHandler)
	r.handlers.Store(event, append(append([]*eventHandler(nil), list...), h))
	r.mu.Unlock()
	return nil
}

func (c *Conn) handleEvent(f protocol.Frame) {
	var ev protocol.Event
	if err := json.Unmarshal(f.Payload, &ev); err != nil {
		if ok, _ := c.allow("frame", "", 0); !ok {
			return
		}
		c.refuse(0, "bad-event", "malformed event")
		return
	}
	if ok, _ := c.allow("event", ev.Event, 0); !ok {
		return
	}
	if ev.Event == "" || utf16Len(ev.Event) > c.s.opts.MaxEventNameLength {
		c.refuse(0, "bad-event-name", "event name empty or too long")
		return
	}
	v, ok := c.s.events.handlers.Load(ev.Event)
	c.s.obs.EventIn(ok)
	if !ok {
		return
	}
	ctx := &Context{Context: c.ctx, conn: c}
	for _, h := range v.([]*eventHandler) {
		c.callEvent(h.fn, ctx, ev.Data, ev.Event)
	}
}

func (c *Conn) callEvent(fn EventFunc, ctx *Context, data json.RawMessage, name string) {
	defer func() {
		if p := recover(); p != nil {
			c.s.log.Error("datasole: event handler panicked", "event", name, "conn", c.id, "panic", p, "stack", string(debug.Stack()))
		}
	}()
	fn(ctx, data)
}

func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}
