package datasole

import (
	"sync"

	"github.com/datasole/datasole-go/datasole/protocol"
)

// hooks are the connection lifecycle callbacks: first the subsystems' own
// (state snapshots, CRDT states), then the application's.
type hooks struct {
	mu           sync.RWMutex
	onConnect    []func(*Conn)
	onDisconnect []func(*Conn)
	onCRDTOp     func(*Conn, protocol.Frame)
}

// OnConnect registers fn to run when a connection opens, after the server
// has queued what the client needs to be current.
func (s *Server) OnConnect(fn func(c *Conn)) {
	s.hooks.mu.Lock()
	s.hooks.onConnect = append(s.hooks.onConnect, fn)
	s.hooks.mu.Unlock()
}

// OnDisconnect registers fn to run when a connection has ended.
func (s *Server) OnDisconnect(fn func(c *Conn)) {
	s.hooks.mu.Lock()
	s.hooks.onDisconnect = append(s.hooks.onDisconnect, fn)
	s.hooks.mu.Unlock()
}

func (h *hooks) connected(c *Conn) {
	h.mu.RLock()
	fns := h.onConnect
	h.mu.RUnlock()
	for _, fn := range fns {
		fn(c)
	}
}

func (h *hooks) disconnected(c *Conn) {
	h.mu.RLock()
	fns := h.onDisconnect
	h.mu.RUnlock()
	for _, fn := range fns {
		fn(c)
	}
}

func (h *hooks) crdtOp(c *Conn, f protocol.Frame) {
	h.mu.RLock()
	fn := h.onCRDTOp
	h.mu.RUnlock()
	if fn == nil {
		c.s.obs.FrameIgnored(f.Opcode)
		return
	}
	fn(c, f)
}
