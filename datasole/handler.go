package datasole

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/datasole/datasole-go/datasole/protocol"
	"github.com/gorilla/websocket"
)

var upgrader = websocket.Upgrader{
	ReadBufferSize:    1024,
	WriteBufferSize:   1024,
	WriteBufferPool:   &sync.Pool{},                             // the engine writes by itself after the handshake
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
	var hdr http.Header
	if sp := a.Subprotocol(); sp != "" {
		hdr = http.Header{"Sec-Websocket-Protocol": {sp}}
	}
	hj := &hijacker{ResponseWriter: w}
	ws, err := upgrader.Upgrade(hj, r, hdr)
	if err != nil {
		a.Release()
		s.obs.UpgradeRejected("handshake")
		return
	}
	// From here on the engine owns the socket; gorilla's connection object
	// (and its buffers) is dropped. gorilla refuses clients that sent data
	// before the handshake completed, so nothing is left buffered in it.
	_ = ws
	if s.servePolled(hj.conn, a) {
		return
	}
	// Serve from a fresh goroutine and let this one return: the HTTP
	// server then frees its per-connection buffers and this deep stack.
	go s.serveNet(hj.conn, a)
}

// hijacker hands the upgrader the connection net/http hijacks and keeps it
// for the engine.
type hijacker struct {
	http.ResponseWriter
	conn net.Conn
}

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.conn = c
	return c, rw, nil
}

// Subprotocol returns the WebSocket subprotocol to answer the upgrade with:
// "datasole.batch.v1" when the client offered it (the batching extension),
// else "datasole.v1" when offered, else "" (stock v1 clients offer none).
// An offered "datasole.token.…" entry is never selected. Adapters that
// upgrade by themselves put it in Sec-WebSocket-Protocol of the 101.
func (a *Admission) Subprotocol() string {
	if a.r == nil {
		return ""
	}
	return selectSubprotocol(a.r)
}

func selectSubprotocol(r *http.Request) string {
	v1, batch := false, false
	for _, h := range r.Header.Values("Sec-Websocket-Protocol") {
		for p := range strings.SplitSeq(h, ",") {
			switch strings.TrimSpace(p) {
			case protocol.SubprotocolBatch:
				batch = true
			case protocol.SubprotocolV1:
				v1 = true
			}
		}
	}
	switch {
	case batch:
		return protocol.SubprotocolBatch
	case v1:
		return protocol.SubprotocolV1
	}
	return ""
}

// ErrBadHandshake is returned by Handshake for an upgrade request that is
// not a well-formed WebSocket handshake; answer it with 400.
var ErrBadHandshake = errors.New("datasole: not a WebSocket handshake")

// Handshake checks that the admitted request is a WebSocket opening
// handshake the server accepts (GET, Connection: upgrade, Upgrade:
// websocket, version 13, a 16-byte Sec-WebSocket-Key) and returns the
// headers of the 101 response: Upgrade, Connection, Sec-WebSocket-Accept
// and, when negotiated, Sec-WebSocket-Protocol. Adapters that upgrade by
// themselves send them, then call ServeUpgraded. On an error, answer 400
// and Release the admission.
func (a *Admission) Handshake() (http.Header, error) {
	r := a.r
	key := r.Header.Get("Sec-Websocket-Key")
	if raw, err := base64.StdEncoding.DecodeString(key); err != nil || len(raw) != 16 ||
		r.Method != http.MethodGet || !websocket.IsWebSocketUpgrade(r) || r.Header.Get("Sec-Websocket-Version") != "13" {
		a.s.obs.UpgradeRejected("handshake")
		return nil, ErrBadHandshake
	}
	h := http.Header{
		"Upgrade":              {"websocket"},
		"Connection":           {"Upgrade"},
		"Sec-Websocket-Accept": {AcceptKey(key)},
	}
	if sp := a.Subprotocol(); sp != "" {
		h["Sec-Websocket-Protocol"] = []string{sp}
	}
	return h, nil
}

// AcceptKey returns the Sec-WebSocket-Accept value for a client's
// Sec-WebSocket-Key (RFC 6455 §4.2.2), for adapters that write the 101
// response themselves.
func AcceptKey(key string) string {
	h := sha1.New()
	h.Write([]byte(key))
	h.Write([]byte("258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// ServeConn runs a connection admitted by Admit that the adapter upgraded
// with its own WebSocket library (gorilla's or fasthttp's
// *websocket.Conn). It blocks; call it from the goroutine that owns the
// connection. When it returns, nothing uses ws any more, so an adapter may
// recycle it. Adapters that can hand over the raw socket should prefer
// ServeUpgraded: the engine then reads it on readiness, without a
// goroutine per idle connection.
func (s *Server) ServeConn(ws WebSocket, a *Admission) {
	if !a.take(s) {
		ws.Close()
		return
	}
	t := &wsTransport{ws: ws, timeout: s.opts.WriteTimeout}
	remote := ""
	if addr := ws.RemoteAddr(); addr != nil {
		remote = addr.String()
	}
	c := s.newConn(t, a, remote, false)
	if !s.open(c, a) {
		return
	}
	c.readWS(ws)
	c.retire()
}

// ServeUpgraded runs a connection admitted by Admit on which the adapter
// has completed the WebSocket handshake itself: it sent the 101 response
// (with Sec-WebSocket-Accept from AcceptKey and Sec-WebSocket-Protocol set
// to a.Subprotocol() when that is not empty) and hands over the raw
// socket, with nothing of the client's left unread in its own buffers.
//
// A socket that can be polled (*net.TCPConn, *net.UnixConn) is taken over:
// the engine keeps its own duplicate of the descriptor and reads it on
// readiness, ServeUpgraded returns at once and closing conn afterwards does
// not affect the connection. Any other net.Conn (a *tls.Conn) is served
// until the connection ends, and ServeUpgraded returns only then.
func (s *Server) ServeUpgraded(conn net.Conn, a *Admission) {
	if !s.servePolled(conn, a) {
		s.serveNet(conn, a)
	}
}

// take marks a as used by s; it is false for a foreign or spent admission.
func (a *Admission) take(s *Server) bool {
	return a != nil && a.s == s && a.used.CompareAndSwap(false, true)
}

// serveNet serves a socket that cannot be polled with a goroutine reader
// (the calling goroutine) until the connection ends.
func (s *Server) serveNet(conn net.Conn, a *Admission) {
	if !a.take(s) {
		conn.Close()
		return
	}
	conn.SetDeadline(time.Time{}) // deadlines an HTTP server left on the socket
	t := &netTransport{conn: conn, timeout: s.opts.WriteTimeout}
	c := s.newConn(t, a, conn.RemoteAddr().String(), a.Subprotocol() == protocol.SubprotocolBatch)
	if !s.open(c, a) {
		return
	}
	c.readNet(conn)
	c.retire()
}

// open registers a new connection with the server, unless it is closing,
// and runs connOpened. It reports false (having closed c and given the
// admission back) when the server is closing.
func (s *Server) open(c *Conn, a *Admission) bool {
	s.closeMu.Lock()
	if s.closing.Load() {
		s.closeMu.Unlock()
		c.closeNow(CloseGoingAway, "Server shutting down")
		c.writer.Wait()
		c.t.close()
		s.release(a)
		return false
	}
	s.wg.Add(1)
	c.opened = true
	s.closeMu.Unlock()
	s.connOpened(c)
	return true
}

func (s *Server) newConn(t transport, a *Admission, peer string, batching bool) *Conn {
	e := s.engine()
	ctx, cancel := context.WithCancel(context.Background())
	id := s.nodeID + "-" + itoa(s.connSeq.Add(1))
	user := a.principal.UserID
	if user == "" {
		user = anonymousPrefix + id
	}
	remote := a.r.RemoteAddr
	if remote == "" {
		remote = peer
	}
	c := &Conn{
		s:           s,
		t:           t,
		adm:         a,
		id:          id,
		userID:      user,
		principal:   a.principal,
		remoteAddr:  remote,
		ip:          a.ip,
		connectedAt: time.Now(),
		ctx:         ctx,
		cancel:      cancel,
		done:        make(chan struct{}),
		resumed:     make(chan struct{}, 1),
		batching:    batching,
	}
	a.r = nil // the request, headers and all, is not kept for the connection's life
	c.parser.limit = s.opts.MaxMessageSize
	c.lastRead.Store(e.deadlines.now())
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
