// Command gorilla is the floor of the comparison: a bare gorilla/websocket
// echo server with no protocol work. Every message is written back as it
// came; a publication is prepared once and written to every connection by a
// few parallel workers (no writer goroutine per connection, so an idle
// connection costs only its reader).
package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/datasole/datasole-go/bench/internal/serverkit"
)

type conn struct {
	mu sync.Mutex // serialises writes: the echo and the publisher
	ws *websocket.Conn
}

type server struct {
	up    websocket.Upgrader
	mu    sync.Mutex
	conns map[*conn]struct{}
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws, err := s.up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &conn{ws: ws}
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		ws.Close()
	}()
	var buf []byte
	for {
		mt, r, err := ws.NextReader()
		if err != nil {
			return
		}
		buf, err = readAll(r, buf[:0])
		if err != nil {
			return
		}
		c.mu.Lock()
		err = ws.WriteMessage(mt, buf)
		c.mu.Unlock()
		if err != nil {
			return
		}
		if cap(buf) > 64<<10 {
			buf = nil
		}
	}
}

func readAll(r io.Reader, b []byte) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

func (s *server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func (s *server) Publish(msg []byte) {
	pm, err := websocket.NewPreparedMessage(websocket.BinaryMessage, msg)
	if err != nil {
		return
	}
	s.mu.Lock()
	all := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		all = append(all, c)
	}
	s.mu.Unlock()
	workers := min(runtime.GOMAXPROCS(0), len(all))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(all); i += workers {
				c := all[i]
				c.mu.Lock()
				c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
				err := c.ws.WritePreparedMessage(pm)
				c.mu.Unlock()
				if err != nil {
					c.ws.Close() // a slow or dead subscriber: its reader ends it
				}
			}
		})
	}
	wg.Wait()
}

func main() {
	serverkit.Main("gorilla", func(addr string) (serverkit.Server, func(context.Context) error, error) {
		s := &server{
			up: websocket.Upgrader{
				ReadBufferSize:  1024,
				WriteBufferPool: new(sync.Pool),
				CheckOrigin:     func(*http.Request) bool { return true },
			},
			conns: make(map[*conn]struct{}),
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, nil, err
		}
		hs := &http.Server{Handler: s}
		go hs.Serve(ln)
		return s, hs.Shutdown, nil
	})
}
