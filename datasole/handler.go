package datasole

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// RejectError is why an upgrade was refused, with the HTTP status to answer.
// Reason is for logs and metrics; it is never sent to the client.
type RejectError struct {
	Status int
	Reason string
	Err    error
}

func (e *RejectError) Error() string { return "datasole: upgrade refused: " + e.Reason }
func (e *RejectError) Unwrap() error { return e.Err }

// Admission is an upgrade request that passed the Origin check, the
// connection limit and authentication. It holds a connection slot until it
// is served or released.
type Admission struct {
	s         *Server
	r         *http.Request
	principal *Principal
	ip        string
	batch     *batchConn // the upgraded connection, when Handler upgraded it
	used      atomic.Bool
}

// Principal returns the authenticated principal.
func (a *Admission) Principal() *Principal { return a.principal }

// Release gives the slot back when the upgrade did not happen.
func (a *Admission) Release() {
	if a.used.CompareAndSwap(false, true) {
		a.s.release(a)
	}
}

// release gives back the slots an admission holds.
func (s *Server) release(a *Admission) {
	s.reserve.Add(-1)
	s.perPeer.mu.Lock()
	decr(s.perPeer.users, a.principal.UserID)
	decr(s.perPeer.ips, a.ip)
	s.perPeer.mu.Unlock()
}

// peerCounts counts connections per user and per IP address, for the
// per-user and per-IP caps.
type peerCounts struct {
	mu    sync.Mutex
	users map[string]int
	ips   map[string]int
}

func decr(m map[string]int, k string) {
	if k == "" {
		return
	}
	if m[k]--; m[k] <= 0 {
		delete(m, k)
	}
}

// admitPeer counts a's user and IP against their caps; false means over.
func (s *Server) admitPeer(a *Admission) (ok bool, reason string) {
	pc := &s.perPeer
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.users == nil {
		pc.users, pc.ips = make(map[string]int), make(map[string]int)
	}
	u := a.principal.UserID
	if max := s.opts.MaxConnectionsPerUser; max > 0 && u != "" && pc.users[u] >= max {
		return false, "max-connections-user"
	}
	if max := s.opts.MaxConnectionsPerIP; max > 0 && pc.ips[a.ip] >= max {
		return false, "max-connections-ip"
	}
	if u != "" {
		pc.users[u]++
	}
	pc.ips[a.ip]++
	return true, ""
}

type principalKey struct{}

// WithPrincipal returns a context carrying an already-authenticated
// principal. An upgrade request with such a context skips Options.Auth:
// adapters use it to pass on the identity from a framework's own auth
// middleware.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFromContext returns the principal stored by WithPrincipal.
func PrincipalFromContext(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok && p != nil
}

// Admit runs the checks that come before a WebSocket upgrade, in order:
// server open (503), Origin policy (403), connection limit (503), then the
// principal — from WithPrincipal if the request context carries one, else
// from Options.Auth (401, 408, 500). Adapters that upgrade by themselves call
// it, upgrade, then hand the connection to ServeConn.
func (s *Server) Admit(r *http.Request) (*Admission, error) {
	if s.closing.Load() {
		return nil, s.reject(http.StatusServiceUnavailable, "shutting down", nil)
	}
	if !s.originAllowed(r) {
		return nil, s.reject(http.StatusForbidden, "origin", nil)
	}
	if n := s.reserve.Add(1); s.opts.MaxConnections > 0 && n > int64(s.opts.MaxConnections) {
		s.reserve.Add(-1)
		return nil, s.reject(http.StatusServiceUnavailable, "max-connections", nil)
	}
	p, err := s.Authenticate(r)
	if err != nil {
		s.reserve.Add(-1)
		return nil, err
	}
	a := &Admission{s: s, r: r, principal: p, ip: hostOf(r.RemoteAddr)}
	if ok, reason := s.admitPeer(a); !ok {
		s.reserve.Add(-1)
		return nil, s.reject(http.StatusTooManyRequests, reason, nil)
	}
	return a, nil
}

// Authenticate returns the request's principal: the one stored with
// WithPrincipal, or the result of Options.Auth within Options.AuthTimeout.
// Errors are *RejectError with status 401, 408 or 500.
func (s *Server) Authenticate(r *http.Request) (*Principal, error) {
	if p, ok := PrincipalFromContext(r.Context()); ok {
		return p, nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.AuthTimeout)
	defer cancel()
	type result struct {
		p   *Principal
		err error
	}
	ch := make(chan result, 1)
	go func() {
		defer func() {
			if rec := recover(); rec != nil {
				s.log.Error("datasole: auth handler panicked", "panic", rec)
				ch <- result{err: errors.New("auth handler panicked")}
			}
		}()
		p, err := s.opts.Auth(r.WithContext(ctx))
		ch <- result{p, err}
	}()
	select {
	case res := <-ch:
		switch {
		case res.err == nil:
			if res.p == nil {
				res.p = &Principal{}
			}
			return res.p, nil
		case errors.Is(res.err, ErrUnauthorized):
			s.log.Debug("datasole: upgrade unauthorized", "remote", r.RemoteAddr, "err", res.err)
			return nil, s.reject(http.StatusUnauthorized, "unauthorized", res.err)
		default:
			s.log.Error("datasole: auth handler failed", "remote", r.RemoteAddr, "err", res.err)
			return nil, s.reject(http.StatusInternalServerError, "auth-error", res.err)
		}
	case <-ctx.Done():
		return nil, s.reject(http.StatusRequestTimeout, "auth-timeout", ctx.Err())
	}
}

func (s *Server) reject(status int, reason string, err error) error {
	s.stats.countRejection(reason)
	s.obs.UpgradeRejected(reason)
	s.logSampled("datasole: upgrade refused", "status", status, "reason", reason)
	return &RejectError{Status: status, Reason: reason, Err: err}
}

func (s *Server) originAllowed(r *http.Request) bool {
	if s.opts.CheckOrigin != nil {
		return s.opts.CheckOrigin(r)
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true // not a browser: cross-site hijacking needs one
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, allowed := range s.opts.AllowedOrigins {
		if originMatches(allowed, u) {
			return true
		}
	}
	return false
}

func originMatches(pattern string, origin *url.URL) bool {
	if pattern == "*" {
		return true
	}
	p, err := url.Parse(pattern)
	if err != nil || !strings.EqualFold(p.Scheme, origin.Scheme) {
		return false
	}
	if rest, ok := strings.CutPrefix(p.Host, "*."); ok {
		host := strings.ToLower(origin.Host)
		return strings.HasSuffix(host, "."+strings.ToLower(rest))
	}
	return strings.EqualFold(p.Host, origin.Host)
}

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
		s.stats.countRejection("handshake")
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
	s.acquireSession(c)
	s.attach(c)
	defer s.wg.Done()
	s.stats.ConnectionsOpened.Add(1)
	s.obs.ConnOpened()
	s.hooks.connected(c)
	c.readLoop()
	c.closeNow(CloseGoingAway, "")
	c.writer.Wait() // the socket is closed: the writer stops at once; after this nothing touches ws
	s.hub.remove(c)
	s.release(a) // before the counters move, so a caller seeing them sees the slot free
	s.hooks.disconnected(c)
	s.releaseSession(c)
	s.stats.ConnectionsClosed.Add(1)
	c.setCloseReason("closed")
	s.obs.ConnClosed(c.closeReason)
	close(c.done)
}

func (s *Server) newConn(ws WebSocket, a *Admission) *Conn {
	ctx, cancel := context.WithCancel(context.Background())
	id := s.nodeID + "-" + itoa(s.connSeq.Add(1))
	user := a.principal.UserID
	if user == "" {
		user = id
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
