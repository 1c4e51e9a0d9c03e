package datasole_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/client"
	"github.com/datasole/datasole-go/datasole/protocol"
	"github.com/gorilla/websocket"
)

// probe sends what the browser client sends after a failed upgrade: a plain
// GET of the endpoint URL with ds-probe=1.
func probe(t *testing.T, url string, query string, hdr http.Header) *http.Response {
	t.Helper()
	u := url + "/__ds?ds-probe=1"
	if query != "" {
		u += "&" + query
	}
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

// tokenAuth admits the token "good" from ?token= or from the subprotocol
// datasole.token.good, as a server that accepts both would.
func tokenAuth(r *http.Request) (*datasole.Principal, error) {
	tok := r.URL.Query().Get("token")
	for _, p := range strings.Split(r.Header.Get("Sec-WebSocket-Protocol"), ",") {
		if t, ok := strings.CutPrefix(strings.TrimSpace(p), "datasole.token."); ok {
			tok = t
		}
	}
	switch tok {
	case "":
		return nil, datasole.ErrNoCredentials
	case "good":
		return &datasole.Principal{UserID: "ann"}, nil
	}
	return nil, datasole.ErrUnauthorized
}

// rejections counts refused upgrades as the metrics see them.
type rejections struct {
	datasole.NopObserver
	mu      sync.Mutex
	reasons []string
}

func (o *rejections) UpgradeRejected(reason string) {
	o.mu.Lock()
	o.reasons = append(o.reasons, reason)
	o.mu.Unlock()
}

func (o *rejections) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.reasons)
}

func TestAProbeAnswersWithTheStatusTheUpgradeGot(t *testing.T) {
	slow := func(r *http.Request) (*datasole.Principal, error) {
		<-r.Context().Done() // gives up only when AuthTimeout expires
		return nil, r.Context().Err()
	}
	failing := func(*http.Request) (*datasole.Principal, error) { return nil, errors.New("database down") }
	panicking := func(*http.Request) (*datasole.Principal, error) { panic("bug") }
	page := http.Header{"Origin": {"https://app.example"}}
	for _, tc := range []struct {
		name  string
		opts  datasole.Options
		query string
		hdr   http.Header
		want  int
	}{
		{"an open server would admit anyone", datasole.Options{}, "", nil, http.StatusNoContent},
		{"no token is 401", datasole.Options{Auth: tokenAuth}, "", nil, http.StatusUnauthorized},
		{"a wrong token is 401", datasole.Options{Auth: tokenAuth}, "token=bad", nil, http.StatusUnauthorized},
		{"the right token would be admitted", datasole.Options{Auth: tokenAuth}, "token=good", nil, http.StatusNoContent},
		{"a token in the offered subprotocols reaches the auth handler", datasole.Options{Auth: tokenAuth}, "",
			http.Header{"Datasole-Protocol": {"datasole.v1, datasole.batch.v1, datasole.token.good"}}, http.StatusNoContent},
		{"a wrong token in the offered subprotocols is 401", datasole.Options{Auth: tokenAuth}, "",
			http.Header{"Datasole-Protocol": {"datasole.v1, datasole.token.bad"}}, http.StatusUnauthorized},
		{"a foreign origin is 403, before auth", datasole.Options{Auth: tokenAuth}, "token=good", page, http.StatusForbidden},
		{"an allowed origin passes", datasole.Options{Auth: tokenAuth, AllowedOrigins: []string{"https://app.example"}}, "token=good", page, http.StatusNoContent},
		{"an auth handler that fails is 500", datasole.Options{Auth: failing}, "", nil, http.StatusInternalServerError},
		{"an auth handler that panics is 500", datasole.Options{Auth: panicking}, "", nil, http.StatusInternalServerError},
		{"an auth handler slower than AuthTimeout is 408", datasole.Options{Auth: slow, AuthTimeout: 50 * time.Millisecond}, "", nil, http.StatusRequestTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obs := &rejections{}
			tc.opts.Observer = obs
			ts := startServer(t, tc.opts, nil)
			res := probe(t, ts.url, tc.query, tc.hdr)
			if res.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.want)
			}
			if got := res.Header.Get("Datasole-Probe"); got != "1" {
				t.Errorf("Datasole-Probe = %q, want 1", got)
			}
			if got := res.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
			if n := obs.count(); n != 0 {
				t.Errorf("the probe counted %d refused upgrades (%v); the upgrade it explains already did", n, obs.reasons)
			}
			if n := ts.ds.ConnectionCount(); n != 0 {
				t.Errorf("%d connections after a probe", n)
			}
		})
	}
}

func TestAProbeAnswersCrossOriginPagesWithCORSHeaders(t *testing.T) {
	ts := startServer(t, datasole.Options{AllowedOrigins: []string{"https://app.example"}}, nil)
	for _, origin := range []string{"https://app.example", "https://evil.example"} {
		res := probe(t, ts.url, "", http.Header{"Origin": {origin}})
		if got := res.Header.Get("Access-Control-Allow-Origin"); got != origin {
			t.Errorf("%s: Access-Control-Allow-Origin = %q", origin, got)
		}
		if got := res.Header.Get("Access-Control-Allow-Credentials"); got != "true" {
			t.Errorf("%s: Access-Control-Allow-Credentials = %q", origin, got)
		}
		if got := res.Header.Get("Access-Control-Expose-Headers"); got != "Datasole-Probe" {
			t.Errorf("%s: Access-Control-Expose-Headers = %q", origin, got)
		}
	}
	// The preflight of a probe that carries the offered subprotocols.
	req, _ := http.NewRequest(http.MethodOptions, ts.url+"/__ds?ds-probe=1", nil)
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("Access-Control-Request-Method", "GET")
	req.Header.Set("Access-Control-Request-Headers", "datasole-protocol")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNoContent || res.Header.Get("Access-Control-Allow-Headers") != "Datasole-Protocol" ||
		res.Header.Get("Access-Control-Allow-Methods") != "GET" {
		t.Errorf("preflight: %d %v", res.StatusCode, res.Header)
	}
}

func TestAProbeTakesNoConnectionSlot(t *testing.T) {
	ts := startServer(t, datasole.Options{MaxConnections: 1, MaxConnectionsPerIP: 1}, nil)
	for range 5 {
		if res := probe(t, ts.url, "", nil); res.StatusCode != http.StatusNoContent {
			t.Fatalf("probe with a free slot: %d", res.StatusCode)
		}
	}
	dial(t, ts.url, client.Options{NoReconnect: true}) // the one slot is still free
	if res := probe(t, ts.url, "", nil); res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
		t.Errorf("probe of a full server: %d (Retry-After %q), want 503 with Retry-After", res.StatusCode, res.Header.Get("Retry-After"))
	}
}

func TestAProbeReportsThePerPeerCaps(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts datasole.Options
	}{
		{"per IP", datasole.Options{MaxConnectionsPerIP: 1}},
		{"per user", datasole.Options{MaxConnectionsPerUser: 1, Auth: tokenAuth}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, tc.opts, nil)
			dial(t, ts.url, client.Options{NoReconnect: true, Token: "good"})
			if res := probe(t, ts.url, "token=good", nil); res.StatusCode != http.StatusTooManyRequests {
				t.Errorf("status %d, want 429", res.StatusCode)
			}
		})
	}
}

func TestAProbeOfAServerNotStartedOrClosedIs503(t *testing.T) {
	ds, err := datasole.New(quietOptions(datasole.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(ds.Handler())
	defer hs.Close()
	if res := probe(t, hs.URL, "", nil); res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("not started: %d, want 503", res.StatusCode)
	}
	if err := ds.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if res := probe(t, hs.URL, "", nil); res.StatusCode != http.StatusNoContent {
		t.Errorf("started: %d, want 204", res.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ds.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if res := probe(t, hs.URL, "", nil); res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("closed: %d, want 503", res.StatusCode)
	}
}

func TestOnlyMarkedPlainRequestsAreProbes(t *testing.T) {
	ts := startServer(t, datasole.Options{}, nil)
	// Without the marker a plain GET is refused as before.
	res, err := http.Get(ts.url + "/__ds")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUpgradeRequired || res.Header.Get("Datasole-Probe") != "" {
		t.Errorf("plain GET: %d %v, want 426 without a probe answer", res.StatusCode, res.Header)
	}
	// A wrong path is 404, marker or not.
	res, err = http.Get(ts.url + "/elsewhere?ds-probe=1")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("wrong path: %d, want 404", res.StatusCode)
	}
	// Other methods are not probes.
	res, err = http.Post(ts.url+"/__ds?ds-probe=1", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUpgradeRequired {
		t.Errorf("POST: %d, want 426", res.StatusCode)
	}
	// An upgrade that carries the marker is an upgrade.
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(ts.url, "http")+"/__ds?ds-probe=1", nil)
	if err != nil {
		t.Fatalf("upgrade with the marker: %v", err)
	}
	defer ws.Close()
	c := &rawConn{t: t, ws: ws}
	c.sendFrame(protocol.Ping, 0, "null")
	c.next(protocol.Pong)
}

func TestAProbeShowsTheAuthHandlerTheUpgradesQueryAsItWas(t *testing.T) {
	const query = "sig=a%2Bb~c&token=x%20y&z"
	var seen []string
	var mu sync.Mutex
	ts := startServer(t, datasole.Options{Auth: func(r *http.Request) (*datasole.Principal, error) {
		mu.Lock()
		seen = append(seen, r.URL.RawQuery)
		mu.Unlock()
		return &datasole.Principal{}, nil
	}}, nil)
	if res := probe(t, ts.url, "", nil); res.StatusCode != http.StatusNoContent {
		t.Fatalf("status %d", res.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodGet, ts.url+"/__ds?"+query+"&ds-probe=1", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[0] != "" || seen[1] != query {
		t.Errorf("the auth handler saw the queries %q, want %q then %q", seen, "", query)
	}
}
