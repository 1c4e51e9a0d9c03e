// Package load is the load client of the bench harness: WebSocket
// connections that speak each compared server's protocol, and the scenarios
// (rpc, fan-out, idle, churn) run over them from the harness process.
//
// The client is built to stay cheap next to the server on a 2-core machine:
// one goroutine per connection (it reads and writes), requests pipelined
// with a fixed depth, buffers reused, and the writes that become ready while
// the connection processes what it has already received leave in one
// syscall, right before the next read would block.
package load

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Sources spreads outgoing connections over loopback source addresses
// (127.0.0.2, 127.0.0.3, …), each with its own range of ephemeral ports, so
// that 100,000 connections to one port do not exhaust them.
type Sources struct {
	ips  []net.IP
	next atomic.Uint64
}

// NewSources returns n loopback source addresses starting at 127.0.0.2; n
// below 1 means one.
func NewSources(n int) *Sources {
	s := &Sources{}
	for i := range max(n, 1) {
		s.ips = append(s.ips, net.IPv4(127, 0, byte(i/250), byte(2+i%250)))
	}
	return s
}

// Dialer returns a net.Dialer bound to the next source address.
func (s *Sources) Dialer() *net.Dialer {
	ip := s.ips[s.next.Add(1)%uint64(len(s.ips))]
	return &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 10 * time.Second}
}

// Conn is one load connection: the gorilla connection plus the corking
// socket under it.
type Conn struct {
	WS   *websocket.Conn
	cork *corkConn
}

// DialOptions say how to open a load connection.
type DialOptions struct {
	Subprotocols []string
	ReadBuffer   int // gorilla's read buffer; 0 means 4 KiB
	// Cork delays writes until the next read would block (see corkConn).
	Cork bool
}

// Dial opens a WebSocket connection to url from the next source address.
func (s *Sources) Dial(ctx context.Context, url string, o DialOptions) (*Conn, error) {
	c := &Conn{}
	d := websocket.Dialer{
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nc, err := s.Dialer().DialContext(ctx, network, addr)
			if err != nil || !o.Cork {
				return nc, err
			}
			c.cork = &corkConn{Conn: nc}
			return c.cork, nil
		},
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   o.ReadBuffer,
		WriteBufferSize:  4096,
		Subprotocols:     o.Subprotocols,
	}
	ws, resp, err := d.DialContext(ctx, url, http.Header{"Origin": {"http://bench.local"}})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial %s: %w (HTTP %d)", url, err, resp.StatusCode)
		}
		return nil, fmt.Errorf("dial %s: %w", url, err)
	}
	c.WS = ws
	return c, nil
}

// BeforeBlock sets fn to run each time the connection is about to wait for
// the socket, before the corked writes go out; fn may write to the
// connection. Only for corked connections.
func (c *Conn) BeforeBlock(fn func()) { c.cork.beforeBlock = fn }

// corkConn buffers writes and sends them in one syscall when the reader next
// needs bytes from the socket. gorilla writes every message with its own
// syscall; on a connection driven by one goroutine that reacts to the
// replies it reads, this merges the requests that answer one batch of
// replies, as a well-written client would. Only for connections used by one
// goroutine.
type corkConn struct {
	net.Conn
	wbuf        []byte
	beforeBlock func()
	inHook      bool
}

func (c *corkConn) Write(p []byte) (int, error) {
	c.wbuf = append(c.wbuf, p...)
	return len(p), nil
}

func (c *corkConn) Read(p []byte) (int, error) {
	if c.beforeBlock != nil && !c.inHook {
		c.inHook = true
		c.beforeBlock()
		c.inHook = false
	}
	if err := c.Flush(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

// Flush writes what is buffered.
func (c *corkConn) Flush() error {
	if len(c.wbuf) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.wbuf)
	if cap(c.wbuf) > 256<<10 {
		c.wbuf = nil
	} else {
		c.wbuf = c.wbuf[:0]
	}
	return err
}

// Flush sends the corked writes now.
func (c *Conn) Flush() error {
	if c.cork == nil {
		return nil
	}
	return c.cork.Flush()
}

// Close closes the connection at once.
func (c *Conn) Close() error { return c.WS.NetConn().Close() }
