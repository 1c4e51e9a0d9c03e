package datasole

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
)

func TestProbesAreRateLimitedPerAddressAndServer(t *testing.T) {
	// A frozen clock: nothing refills while the test runs, however slow the machine.
	frozen := time.Unix(1_700_000_000, 0)
	saved := probes.limiter
	probes.limiter = NewMemoryLimiter()
	probes.limiter.now = func() time.Time { return frozen }
	t.Cleanup(func() { probes.limiter = saved })

	newServer := func() *Server {
		s, err := New(Options{Auth: Anonymous})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close(context.Background()) })
		return s
	}
	a, b := newServer(), newServer()
	get := func(s *Server, remote string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, "/__ds?ds-probe=1", nil)
		r.RemoteAddr = remote
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)
		return w
	}
	for i := range probeRule.Limit {
		if w := get(a, "192.0.2.1:1000"); w.Code != http.StatusNoContent {
			t.Fatalf("probe %d: %d, want 204", i+1, w.Code)
		}
	}
	w := get(a, "192.0.2.1:2000") // another port of the same address
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Datasole-Probe") != "limited" || w.Header().Get("Retry-After") == "" {
		t.Fatalf("probe over the budget: %d %v, want 429 marked limited with Retry-After", w.Code, w.Header())
	}
	if w := get(a, "192.0.2.2:1000"); w.Code != http.StatusNoContent {
		t.Errorf("another address: %d, want 204", w.Code)
	}
	if w := get(b, "192.0.2.1:1000"); w.Code != http.StatusNoContent {
		t.Errorf("the same address at another server: %d, want 204", w.Code)
	}
	// Time passing refills the budget.
	frozen = frozen.Add(probeRule.Window / time.Duration(probeRule.Limit))
	if w := get(a, "192.0.2.1:1000"); w.Code != http.StatusNoContent {
		t.Errorf("after a refill interval: %d, want 204", w.Code)
	}
	if n := probes.inFlight.Load(); n != 0 {
		t.Errorf("%d probes still counted in flight", n)
	}
}

func TestProbesInFlightAreBounded(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, maxProbesInFlight)
	s, err := New(Options{Auth: func(r *http.Request) (*Principal, error) {
		entered <- struct{}{}
		<-release
		return &Principal{}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	get := func(remote string) int {
		r := httptest.NewRequest(http.MethodGet, "/__ds?ds-probe=1", nil)
		r.RemoteAddr = remote
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)
		return w.Code
	}
	codes := make(chan int, maxProbesInFlight)
	for i := range maxProbesInFlight {
		go func() { codes <- get("198.51.100." + itoa(uint64(i)) + ":1") }()
	}
	for range maxProbesInFlight {
		<-entered // every one of them is inside the auth handler
	}
	if code := get("203.0.113.9:1"); code != http.StatusTooManyRequests {
		t.Errorf("a probe beyond %d in flight: %d, want 429", maxProbesInFlight, code)
	}
	close(release)
	for range maxProbesInFlight {
		if code := <-codes; code != http.StatusNoContent {
			t.Errorf("a probe in flight ended with %d", code)
		}
	}
	if n := probes.inFlight.Load(); n != 0 {
		t.Errorf("%d probes still counted in flight", n)
	}
}

// FuzzProbe sends hostile probe requests: any query, Origin and
// Datasole-Protocol header. The server answers each with one of the statuses
// an upgrade could get (or 426 when it is not a probe), and never panics.
func FuzzProbe(f *testing.F) {
	f.Add("ds-probe=1", "", "", "GET")
	f.Add("ds-probe=1&token=x%00y", "https://evil.example", "datasole.v1, datasole.token.abc", "GET")
	f.Add("ds-probe=&ds-probe=1;x", "null", ",,,", "OPTIONS")
	f.Add("ds-probe=1&%zz", "http://[::1", "datasole.token.", "HEAD")
	f.Add("token=a&ds-probe=yes", "https://a.example:99999", "\x00\xff", "POST")
	s, err := New(Options{Auth: func(r *http.Request) (*Principal, error) {
		if r.URL.Query().Get("token") == "" && r.Header.Get("Sec-WebSocket-Protocol") == "" {
			return nil, ErrNoCredentials
		}
		return &Principal{UserID: r.URL.Query().Get("token")}, nil
	}})
	if err != nil {
		f.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		f.Fatal(err)
	}
	defer s.Close(context.Background())
	allowed := map[int]bool{204: true, 401: true, 403: true, 405: true, 408: true, 426: true, 429: true, 500: true, 503: true}
	f.Fuzz(func(t *testing.T, query, origin, protocols, method string) {
		r := &http.Request{
			Method:     method,
			URL:        &url.URL{Path: "/__ds", RawQuery: query},
			Header:     http.Header{"Origin": {origin}, "Datasole-Protocol": {protocols}},
			Host:       "server.example",
			RemoteAddr: "192.0.2.7:1234",
		}
		r = r.WithContext(context.Background())
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)
		if !allowed[w.Code] {
			t.Errorf("status %d for %q %q %q %q", w.Code, method, query, origin, protocols)
		}
		if w.Header().Get("Datasole-Probe") != "" && w.Body.Len() > 64 {
			t.Errorf("a probe answer of %d bytes: %q", w.Body.Len(), w.Body.String())
		}
	})
}
