//go:build !linux

package datasole

import (
	"net"
	"time"
)

// Without epoll the engine serves every socket with a goroutine reader.

type poller struct{}

func (p *poller) stop() {}

func (p *poller) run() {}

func (s *Server) servePolled(net.Conn, *Admission) bool { return false }

func (c *Conn) readDrain(*[]byte, int) {}

type pollTransport struct{}

func (t *pollTransport) nonBlocking() bool                   { return true }
func (t *pollTransport) write(*Conn, []outMsg) (bool, error) { return true, nil }
func (t *pollTransport) close()                              {}
func (t *pollTransport) expire(time.Duration)                {}
func (t *pollTransport) resume(*Conn)                        {}
