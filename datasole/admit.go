package datasole

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
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

// ErrReservedUserID refuses a principal whose UserID starts with "$anon:",
// the namespace of anonymous connections.
var ErrReservedUserID = errors.New("datasole: user id in the reserved anonymous namespace")

// Admission is an upgrade request that passed the Origin check, the
// connection limit and authentication. It holds a connection slot until it
// is served or released.
type Admission struct {
	s         *Server
	r         *http.Request
	principal *Principal
	ip        string
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
		if ip, err := netip.ParseAddr(hostOf(a.r.RemoteAddr)); err == nil && (ip.IsPrivate() || ip.IsLoopback()) && len(s.trusted) == 0 {
			s.logSampled("datasole: the per-IP connection cap was reached from a private address; behind a proxy, set Options.TrustedProxies so clients are told apart", "ip", a.ip)
		}
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
		return nil, s.reject(http.StatusServiceUnavailable, "shutting-down", nil)
	}
	if !s.started.Load() {
		return nil, s.reject(http.StatusServiceUnavailable, "not-started", ErrNotStarted, "fix", "call Server.Start before serving")
	}
	if !s.originAllowed(r) {
		return nil, s.reject(http.StatusForbidden, "origin", nil, "origin", r.Header.Get("Origin"), "host", r.Host,
			"fix", "add the origin to Options.AllowedOrigins (or set Options.CheckOrigin)")
	}
	if n := s.reserve.Add(1); s.opts.MaxConnections > 0 && n > int64(s.opts.MaxConnections) {
		s.reserve.Add(-1)
		return nil, s.reject(http.StatusServiceUnavailable, "max-connections", nil, "limit", s.opts.MaxConnections, "fix", "raise Options.MaxConnections or add nodes")
	}
	p, err := s.Authenticate(r)
	if err != nil {
		s.reserve.Add(-1)
		return nil, err
	}
	a := &Admission{s: s, r: r, principal: p, ip: peerKey(s.clientIP(r))}
	if ok, reason := s.admitPeer(a); !ok {
		s.reserve.Add(-1)
		fix := "raise Options.MaxConnectionsPerUser"
		if reason == "max-connections-ip" {
			fix = "raise Options.MaxConnectionsPerIP"
		}
		return nil, s.reject(http.StatusTooManyRequests, reason, nil, "ip", a.ip, "user", p.UserID, "fix", fix)
	}
	return a, nil
}

// Authenticate returns the request's principal: the one stored with
// WithPrincipal, or the result of Options.Auth within Options.AuthTimeout.
// Errors are *RejectError with status 401, 408 or 500.
func (s *Server) Authenticate(r *http.Request) (*Principal, error) {
	if p, ok := PrincipalFromContext(r.Context()); ok {
		if strings.HasPrefix(p.UserID, anonymousPrefix) {
			return nil, s.reject(http.StatusInternalServerError, "auth-error", ErrReservedUserID)
		}
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
		case res.err == nil && res.p != nil && strings.HasPrefix(res.p.UserID, anonymousPrefix):
			s.log.Error("datasole: auth handler returned a user id in the reserved anonymous namespace", "prefix", anonymousPrefix)
			return nil, s.reject(http.StatusInternalServerError, "auth-error", ErrReservedUserID)
		case res.err == nil:
			if res.p == nil {
				res.p = &Principal{}
			}
			return res.p, nil
		case errors.Is(res.err, ErrUnauthorized):
			return nil, s.reject(http.StatusUnauthorized, "unauthorized", res.err, "remote", r.RemoteAddr, "err", res.err)
		default:
			s.log.Error("datasole: auth handler failed", "remote", r.RemoteAddr, "err", res.err)
			return nil, s.reject(http.StatusInternalServerError, "auth-error", res.err)
		}
	case <-ctx.Done():
		return nil, s.reject(http.StatusRequestTimeout, "auth-timeout", ctx.Err(), "fix", "the auth handler took longer than Options.AuthTimeout")
	}
}

// reject counts a refused upgrade and logs it (sampled) with what the
// operator needs: the reason, the offending value and the option to change.
func (s *Server) reject(status int, reason string, err error, details ...any) error {
	s.obs.UpgradeRejected(reason)
	s.logSampled("datasole: upgrade refused", append([]any{"status", status, "reason", reason}, details...)...)
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

// hostOf is the host of a "host:port" address.
func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// clientIP is the address of the client that made r: the socket's peer,
// or — when the peer is a trusted proxy — the last address in
// X-Forwarded-For that is not a trusted proxy itself.
func (s *Server) clientIP(r *http.Request) string {
	peer := hostOf(r.RemoteAddr)
	if len(s.trusted) == 0 || !s.isTrusted(peer) {
		return peer
	}
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			hop := strings.TrimSpace(parts[j])
			if hop == "" {
				continue
			}
			if !s.isTrusted(hop) {
				if _, err := netip.ParseAddr(hop); err != nil {
					return peer // garbage: do not let a header pick the key
				}
				return hop
			}
		}
	}
	return peer
}

func (s *Server) isTrusted(ip string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range s.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// peerKey is the key per-IP caps and rate limits count a client under:
// its IPv4 address, or its IPv6 /64 — one subscriber's whole prefix, which a
// client can rotate through at will.
func peerKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}
