package datasole_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/datasole/datasole-go/datasole"
	"github.com/gorilla/websocket"
)

func TestRequestTokenLookupOrder(t *testing.T) {
	cases := []struct {
		name   string
		target string
		hdr    http.Header
		want   string
	}{
		{"nothing", "/__ds", nil, ""},
		{"the query parameter", "/__ds?token=q", nil, "q"},
		{"the subprotocol entry before the query", "/__ds?token=q",
			http.Header{"Sec-Websocket-Protocol": {"datasole.v1, datasole.batch.v1, datasole.token.p"}}, "p"},
		{"the subprotocol entry in a repeated header", "/__ds",
			http.Header{"Sec-Websocket-Protocol": {"datasole.v1", "datasole.token.p2"}}, "p2"},
		{"the Authorization header before everything", "/__ds?token=q",
			http.Header{"Authorization": {"Bearer  h "}, "Sec-Websocket-Protocol": {"datasole.token.p"}}, "h"},
		{"not a Basic Authorization header", "/__ds?token=q",
			http.Header{"Authorization": {"Basic dTpw"}}, "q"},
		{"not an empty token entry", "/__ds?token=q",
			http.Header{"Sec-Websocket-Protocol": {"datasole.token."}}, "q"},
		{"not a protocol entry with another prefix", "/__ds",
			http.Header{"Sec-Websocket-Protocol": {"datasole.tokenx, x.datasole.token.y"}}, ""},
	}
	for _, tc := range cases {
		t.Run("finds "+tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tc.target, nil)
			for k, v := range tc.hdr {
				r.Header[k] = v
			}
			if got := datasole.RequestToken(r); got != tc.want {
				t.Fatalf("RequestToken = %q, want %q", got, tc.want)
			}
		})
	}
}

// upgrade dials the datasole path offering protocols.
func upgrade(t *testing.T, url string, protocols []string, hdr http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{Subprotocols: protocols}
	ws, resp, err := d.DialContext(t.Context(), "ws"+strings.TrimPrefix(url, "http")+"/__ds", hdr)
	if ws != nil {
		t.Cleanup(func() { ws.Close() })
	}
	return ws, resp, err
}

// A token sent as a subprotocol entry authenticates the upgrade, stays out of
// the request URL, and is not echoed in the handshake response.
func TestTokenInSubprotocolAuthenticatesAndIsNotEchoed(t *testing.T) {
	const token = "s3cr3t-token"
	var logged []string
	ds, err := datasole.New(quietOptions(datasole.Options{Auth: func(r *http.Request) (*datasole.Principal, error) {
		if datasole.RequestToken(r) != token {
			return nil, datasole.ErrUnauthorized
		}
		return &datasole.Principal{UserID: "tok-user"}, nil
	}}))
	if err != nil {
		t.Fatal(err)
	}
	if err := ds.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	users := make(chan string, 1)
	ds.OnConnect(func(c *datasole.Conn) { users <- c.UserID() })
	// An access-log middleware in front of the server, as apps mount one.
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		logged = append(logged, r.Method+" "+r.URL.RequestURI())
		ds.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(func() { ds.Close(context.Background()); hs.Close() })

	ws, resp, err := upgrade(t, hs.URL, []string{"datasole.v1", datasole.TokenProtocolPrefix + token}, nil)
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	if got := <-users; got != "tok-user" {
		t.Fatalf("connected as %q", got)
	}
	if p := resp.Header.Get("Sec-WebSocket-Protocol"); strings.Contains(p, token) {
		t.Fatalf("the handshake echoed the token: %q", p)
	}
	if ws.Subprotocol() != "" && ws.Subprotocol() != "datasole.v1" {
		t.Fatalf("selected subprotocol %q", ws.Subprotocol())
	}
	for _, l := range logged {
		if strings.Contains(l, token) {
			t.Fatalf("the access log line %q carries the token", l)
		}
	}
	if _, resp, err := upgrade(t, hs.URL, []string{"datasole.v1", datasole.TokenProtocolPrefix + "wrong"}, nil); err == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a wrong token: err %v, status %v; want 401", err, resp)
	}
}

// FuzzRequestToken feeds hostile Authorization and Sec-WebSocket-Protocol
// headers: RequestToken never panics and only returns what the request
// carries, without surrounding whitespace or separators.
func FuzzRequestToken(f *testing.F) {
	f.Add("Bearer abc", "datasole.v1, datasole.token.x", "q")
	f.Add("bearer", ",,,datasole.token.", "")
	f.Add("Bearer \t", " datasole.token.a,datasole.token.b ", "%zz")
	f.Add("Basic x", "datasole.token.\x00", "a b")
	f.Fuzz(func(t *testing.T, authz, protocols, query string) {
		r := httptest.NewRequest(http.MethodGet, "/__ds", nil)
		r.URL.RawQuery = "token=" + query
		r.Header.Set("Authorization", authz)
		r.Header.Set("Sec-WebSocket-Protocol", protocols)
		got := datasole.RequestToken(r)
		if got == "" {
			return
		}
		if got != strings.TrimSpace(got) {
			t.Fatalf("token %q has surrounding space", got)
		}
		if !strings.Contains(authz, got) && !strings.Contains(protocols, got) && !strings.Contains(r.URL.Query().Get("token"), got) {
			t.Fatalf("token %q is in none of the inputs", got)
		}
		if p := datasole.ProtocolToken(r); strings.Contains(p, ",") {
			t.Fatalf("protocol token %q spans entries", p)
		}
	})
}
