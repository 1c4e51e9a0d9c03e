package dsfiber

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/datasole/datasole-go/datasole"
)

// errRetired is what a connection answers once its handler has returned.
var errRetired = errors.New("dsfiber: connection already ended")

// guarded passes calls to ws until retire. ServeConn returns when the
// connection has ended, but a write it started may still be running; once
// the upgrade handler returns, fasthttp reuses the hijacked connection for
// another client, so retire waits for calls in flight and refuses later
// ones.
type guarded struct {
	mu      sync.RWMutex
	ws      datasole.WebSocket
	retired bool
}

var _ datasole.WebSocket = (*guarded)(nil)

func (g *guarded) retire() {
	g.mu.Lock()
	g.retired = true
	g.mu.Unlock()
}

// do runs f unless the connection is retired.
func (g *guarded) do(f func(ws datasole.WebSocket) error) error {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.retired {
		return errRetired
	}
	return f(g.ws)
}

func (g *guarded) NextReader() (mt int, r io.Reader, err error) {
	err = g.do(func(ws datasole.WebSocket) error {
		mt, r, err = ws.NextReader()
		return err
	})
	return mt, r, err
}

func (g *guarded) WriteMessage(mt int, data []byte) error {
	return g.do(func(ws datasole.WebSocket) error { return ws.WriteMessage(mt, data) })
}

func (g *guarded) WriteControl(mt int, data []byte, deadline time.Time) error {
	return g.do(func(ws datasole.WebSocket) error { return ws.WriteControl(mt, data, deadline) })
}

func (g *guarded) SetReadDeadline(t time.Time) error {
	return g.do(func(ws datasole.WebSocket) error { return ws.SetReadDeadline(t) })
}

func (g *guarded) SetWriteDeadline(t time.Time) error {
	return g.do(func(ws datasole.WebSocket) error { return ws.SetWriteDeadline(t) })
}

func (g *guarded) SetReadLimit(limit int64) {
	g.do(func(ws datasole.WebSocket) error { ws.SetReadLimit(limit); return nil })
}

func (g *guarded) SetPongHandler(h func(appData string) error) {
	g.do(func(ws datasole.WebSocket) error { ws.SetPongHandler(h); return nil })
}

func (g *guarded) RemoteAddr() net.Addr {
	var a net.Addr
	g.do(func(ws datasole.WebSocket) error { a = ws.RemoteAddr(); return nil })
	return a
}

func (g *guarded) Close() error {
	return g.do(func(ws datasole.WebSocket) error { return ws.Close() })
}
