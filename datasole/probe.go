package datasole

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Browsers hide the HTTP status of a refused WebSocket upgrade: a missing
// token, a forbidden origin and a full server all look like close code
// 1006. So after a failed upgrade the browser client sends a probe — a plain
// GET of the same URL with the query parameter ds-probe=1 — and the server
// answers it with the status the upgrade got: 401 (no or bad credential), 403
// (origin), 429 (per-user or per-IP cap), 503 (connection limit, not started,
// shutting down), 408 or 500 (auth timed out or failed), or 204 when the
// upgrade would have been admitted. A wrong path answers 404 as before.
//
// The probe runs the checks of Admit in Admit's order, with the same Origin
// policy and the same auth handler, but takes no connection slot and counts
// nothing in the metrics. Its answer carries the status and nothing else (no
// reason, no principal), so it tells a client only what the upgrade told it.
// Probes are rate-limited per IP address and bounded in number at once, as
// each may run the auth handler.
const (
	// probeParam is the query parameter that marks a probe.
	probeParam = "ds-probe"
	// probeProtocolHeader carries the subprotocols the client offered when
	// they hold a credential (datasole.token.…): fetch cannot send
	// Sec-WebSocket-Protocol, so the probe passes them on under this name.
	probeProtocolHeader = "Datasole-Protocol"
	// probeAnswerHeader marks answers to probes: "1", or "limited" when the
	// probe itself was refused for coming too often.
	probeAnswerHeader = "Datasole-Probe"
	// maxProbesInFlight bounds the probes running at once in the process.
	maxProbesInFlight = 64
)

// probeRule admits bursts of 30 probes per IP address, then one every two
// seconds: a client probes once per failed connection attempt, and its
// retries are seconds apart.
var probeRule = Rule{Limit: 30, Window: time.Minute}

// probes holds the probe limits of every server in the process; bucket keys
// name the server, so servers do not share budgets.
var probes = struct {
	limiter  *MemoryLimiter
	inFlight atomic.Int64
}{limiter: NewMemoryLimiter()}

// serveProbe answers r if it is a probe (or its CORS preflight) and reports
// whether it did. serveHTTP calls it for requests at the path; upgrades,
// even with the marker, are not probes.
func (s *Server) serveProbe(w http.ResponseWriter, r *http.Request) bool {
	if !strings.Contains(r.URL.RawQuery, probeParam) || r.URL.Query().Get(probeParam) == "" || websocket.IsWebSocketUpgrade(r) {
		return false
	}
	h := w.Header()
	// Any page may read the status: it is all the answer holds, and a page
	// whose origin is refused learns only that (the Origin check comes first).
	if origin := r.Header.Get("Origin"); origin != "" {
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
		h.Set("Access-Control-Expose-Headers", probeAnswerHeader)
		h.Add("Vary", "Origin")
	}
	h.Set("Cache-Control", "no-store")
	switch r.Method {
	case http.MethodOptions: // preflight of a probe that carries probeProtocolHeader
		h.Set("Access-Control-Allow-Methods", "GET")
		h.Set("Access-Control-Allow-Headers", probeProtocolHeader)
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return true
	case http.MethodGet, http.MethodHead:
	default:
		return false
	}
	if !s.probeAllowed(r) {
		h.Set(probeAnswerHeader, "limited")
		h.Set("Retry-After", "2")
		w.WriteHeader(http.StatusTooManyRequests)
		return true
	}
	defer probes.inFlight.Add(-1)
	status := s.probeStatus(probeRequest(r))
	h.Set(probeAnswerHeader, "1")
	if status == http.StatusServiceUnavailable {
		h.Set("Retry-After", "5")
	}
	if status == http.StatusNoContent {
		w.WriteHeader(status)
		return true
	}
	http.Error(w, http.StatusText(status), status)
	return true
}

// probeAllowed takes a probe from r's address budget and a place among the
// probes in flight; the caller gives the place back when it took one.
func (s *Server) probeAllowed(r *http.Request) bool {
	ok, _, _ := probes.limiter.Allow(context.Background(), probeKey(s, hostOf(r.RemoteAddr)), probeRule)
	if !ok {
		return false
	}
	if probes.inFlight.Add(1) > maxProbesInFlight {
		probes.inFlight.Add(-1)
		return false
	}
	return true
}

func probeKey(s *Server, ip string) string { return "probe:" + s.nodeID + ":" + ip }

// probeRequest is r as the upgrade carried it: without the probe marker,
// and with the offered subprotocols where auth handlers look for them.
func probeRequest(r *http.Request) *http.Request {
	r2 := r.Clone(r.Context())
	// The rest of the query stays byte for byte as the upgrade sent it: an
	// auth handler may check it (a signed URL, say).
	parts := strings.Split(r2.URL.RawQuery, "&")
	kept := parts[:0]
	for _, p := range parts {
		if k, _, _ := strings.Cut(p, "="); k != probeParam {
			kept = append(kept, p)
		}
	}
	r2.URL.RawQuery = strings.Join(kept, "&")
	r2.RequestURI = r2.URL.RequestURI()
	if p := r2.Header.Get(probeProtocolHeader); p != "" {
		r2.Header.Set("Sec-WebSocket-Protocol", p)
		r2.Header.Del(probeProtocolHeader)
	}
	return r2
}

// probeStatus runs Admit's checks in Admit's order without taking a slot or
// counting a rejection, and returns the status the upgrade would get.
func (s *Server) probeStatus(r *http.Request) int {
	switch {
	case s.closing.Load(), !s.started.Load():
		return http.StatusServiceUnavailable
	case !s.originAllowed(r):
		return http.StatusForbidden
	case s.opts.MaxConnections > 0 && s.reserve.Load() >= int64(s.opts.MaxConnections):
		return http.StatusServiceUnavailable
	}
	p, status := s.probeAuth(r)
	if p == nil {
		return status
	}
	pc := &s.perPeer
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if max := s.opts.MaxConnectionsPerUser; max > 0 && p.UserID != "" && pc.users[p.UserID] >= max {
		return http.StatusTooManyRequests
	}
	if max := s.opts.MaxConnectionsPerIP; max > 0 && pc.ips[hostOf(r.RemoteAddr)] >= max {
		return http.StatusTooManyRequests
	}
	return http.StatusNoContent
}

// probeAuth runs the auth step of Admit — the principal from WithPrincipal,
// else Options.Auth within Options.AuthTimeout — and returns the principal,
// or nil and the status Authenticate would refuse with. Unlike Authenticate
// it neither counts nor logs a refusal: the upgrade it explains already did.
func (s *Server) probeAuth(r *http.Request) (*Principal, int) {
	if p, ok := PrincipalFromContext(r.Context()); ok {
		return p, 0
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
				ch <- result{err: errors.New("auth handler panicked")}
			}
		}()
		p, err := s.opts.Auth(r.WithContext(ctx))
		ch <- result{p, err}
	}()
	select {
	case res := <-ch:
		switch {
		case res.err == nil && res.p == nil:
			return &Principal{}, 0
		case res.err == nil:
			return res.p, 0
		case errors.Is(res.err, ErrUnauthorized):
			return nil, http.StatusUnauthorized
		}
		return nil, http.StatusInternalServerError
	case <-ctx.Done():
		return nil, http.StatusRequestTimeout
	}
}
