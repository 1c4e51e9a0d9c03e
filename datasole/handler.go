package datasole

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

var upgrader = websocket.Upgrader{
	ReadBufferSize:    1024,
	WriteBufferSize:   4096,
	WriteBufferPool:   &sync.Pool{},                             // idle connections hold no write buffer
	EnableCompression: false,                                    // v1: permessage-deflate MUST NOT be negotiated
	CheckOrigin:       func(*http.Request) bool { return true }, // Admit checked it
	HandshakeTimeout:  10 * time.Second,
	Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
		http.Error(w, http.StatusText(status), status)
	},
}

// Handler returns the http.Handler that serves the datasole path: the
// WebSocket upgrade at Options.Path and the browser runtime below it. Other
// paths answer 404; use Match to route.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Match reports whether r is for the datasole path (the upgrade path or an
// asset below it). Middleware adapters call it to decide what to serve.
func (s *Server) Match(r *http.Request) bool {
	p := r.URL.Path
	return p == s.opts.Path || strings.HasPrefix(p, s.opts.Path+"/")
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if name, ok := strings.CutPrefix(p, s.opts.Path+"/"); ok {
		s.serveAsset(w, r, name)
		return
	}
	if p != s.opts.Path {
		http.NotFound(w, r)
		return
	}
	if s.serveProbe(w, r) {
		return
	}
	if !websocket.IsWebSocketUpgrade(r) {
		w.Header().Set("Upgrade", "websocket")
		http.Error(w, "datasole: expected a WebSocket upgrade", http.StatusUpgradeRequired)
		return
	}
	a, err := s.Admit(r)
	if err != nil {
		status := http.StatusInternalServerError
		var re *RejectError
		if errors.As(err, &re) {
			status = re.Status
		}
		if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "5")
		}
		http.Error(w, http.StatusText(status), status)
		return
	}
	hj := &hijacker{ResponseWriter: w}
	ws, err := upgrader.Upgrade(hj, r, nil)
	if err != nil {
		a.Release()
		s.obs.UpgradeRejected("handshake")
		return
	}
	// Serve from a fresh goroutine and let this one return: the HTTP
	// server then frees its per-connection buffers and this deep stack, which
	// an idle WebSocket would otherwise hold for its whole life.
	a.batch = hj.conn
	go s.ServeConn(ws, a)
}

// ServeConn runs an upgraded connection admitted by Admit until it ends. It
// blocks; call it from the goroutine that owns the connection. When it
// returns, nothing uses ws any more, so an adapter may recycle it.
func (s *Server) ServeConn(ws WebSocket, a *Admission) {
	if a == nil || a.s != s || !a.used.CompareAndSwap(false, true) {
		ws.Close()
		return
	}
	c := s.newConn(ws, a)
	s.closeMu.Lock()
	if s.closing.Load() {
		s.closeMu.Unlock()
		c.closeNow(CloseGoingAway, "Server shutting down")
		s.release(a)
		return
	}
	s.wg.Add(1)
	s.closeMu.Unlock()
	defer s.wg.Done()
	s.connOpened(c)
	c.readLoop()
	c.closeNow(CloseGoingAway, "")
	c.writer.Wait() // the socket is closed: the writer stops at once; after this nothing touches ws
	s.connClosed(c, a)
}

func (s *Server) newConn(ws WebSocket, a *Admission) *Conn {
	ctx, cancel := context.WithCancel(context.Background())
	id := s.nodeID + "-" + itoa(s.connSeq.Add(1))
	user := a.principal.UserID
	if user == "" {
		user = anonymousPrefix + id
	}
	remote := a.r.RemoteAddr
	if addr := ws.RemoteAddr(); addr != nil && remote == "" {
		remote = addr.String()
	}
	c := &Conn{
		s:           s,
		ws:          ws,
		batch:       a.batch,
		id:          id,
		userID:      user,
		principal:   a.principal,
		remoteAddr:  remote,
		ip:          a.ip,
		connectedAt: time.Now(),
		ctx:         ctx,
		cancel:      cancel,
		done:        make(chan struct{}),
	}
	c.defaultBucket = bucketPrefix(s.opts.RateLimit.By, c) + "*"
	return c
}

func itoa(n uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}
