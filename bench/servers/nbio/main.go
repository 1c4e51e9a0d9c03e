// Command nbio is the second floor of the comparison: a bare lesismal/nbio
// echo server. nbio reads with epoll, so an idle connection holds no
// goroutine. Every message is written back as it came; a publication is
// written to every connection from the publishing goroutine (nbio's writes
// do not block: what the socket does not take is queued by the engine).
package main

import (
	"context"
	"net/http"
	"sync"

	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"

	"github.com/datasole/datasole-go/bench/internal/serverkit"
)

type server struct {
	mu    sync.Mutex
	conns map[*websocket.Conn]struct{}
}

func (s *server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func (s *server) Publish(msg []byte) {
	s.mu.Lock()
	all := make([]*websocket.Conn, 0, len(s.conns))
	for c := range s.conns {
		all = append(all, c)
	}
	s.mu.Unlock()
	for _, c := range all {
		c.WriteMessage(websocket.BinaryMessage, msg)
	}
}

func main() {
	serverkit.Main("nbio", func(addr string) (serverkit.Server, func(context.Context) error, error) {
		s := &server{conns: make(map[*websocket.Conn]struct{})}
		up := websocket.NewUpgrader()
		up.CheckOrigin = func(*http.Request) bool { return true }
		up.OnOpen(func(c *websocket.Conn) {
			s.mu.Lock()
			s.conns[c] = struct{}{}
			s.mu.Unlock()
		})
		up.OnClose(func(c *websocket.Conn, err error) {
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		})
		up.OnMessage(func(c *websocket.Conn, mt websocket.MessageType, data []byte) {
			c.WriteMessage(mt, data)
		})
		mux := http.NewServeMux()
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			if _, err := up.Upgrade(w, r, nil); err != nil {
				return
			}
		})
		engine := nbhttp.NewEngine(nbhttp.Config{
			Network:                 "tcp",
			Addrs:                   []string{addr},
			Handler:                 mux,
			ReleaseWebsocketPayload: true,
		})
		if err := engine.Start(); err != nil {
			return nil, nil, err
		}
		return s, engine.Shutdown, nil
	})
}
