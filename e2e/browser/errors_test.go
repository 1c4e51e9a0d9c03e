package browser

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/datasole/datasole-go/datasole"
	"github.com/gorilla/websocket"
)

// failure is how h.fail reports a connection attempt.
type failure struct {
	OK              bool   `json:"ok"`
	Code            string `json:"code"`
	Status          int    `json:"status"`
	Message         string `json:"message"`
	IsDatasoleError bool   `json:"isDatasoleError"`
}

func letMeIn(r *http.Request) (*datasole.Principal, error) {
	if r.URL.Query().Get("token") != "let-me-in" {
		return nil, datasole.ErrUnauthorized
	}
	return &datasole.Principal{UserID: "ann"}, nil
}

// TestRefusedConnectionsSayWhy: browsers report every refused upgrade as
// close code 1006; the client asks the server (the probe) and rejects with an
// error that names the cause and the fix.
func TestRefusedConnectionsSayWhy(t *testing.T) {
	for _, mode := range []struct{ name, options string }{
		{"in worker mode", `useWorker: true`},
		{"on the page thread", `useWorker: false`},
	} {
		t.Run(mode.name, func(t *testing.T) {
			for _, tc := range []struct {
				name    string
				opts    datasole.Options
				page    func(s *site) string // the page's URL
				prepare func(t *testing.T, s *site)
				options string
				code    string
				status  int
				fix     string
			}{
				{name: "no token", opts: datasole.Options{Auth: letMeIn},
					code: "unauthorized", status: 401, fix: "none was sent; pass one as auth.token"},
				{name: "a wrong token", opts: datasole.Options{Auth: letMeIn}, options: `auth: {token: "guess"}`,
					code: "unauthorized", status: 401, fix: "did not accept the credential in auth.token"},
				{name: "a page on a foreign origin", opts: datasole.Options{Auth: letMeIn},
					page:    func(s *site) string { return strings.Replace(s.url("/harness.html"), "127.0.0.1", "localhost", 1) },
					options: `url: "` + "URL" + `", auth: {token: "let-me-in"}`,
					code:    "forbidden-origin", status: 403, fix: "refused this page's origin (http://localhost:"},
				{name: "a wrong path", options: `path: "/ws"`,
					code: "not-found", status: 404, fix: `the client's path option ("/ws") must equal the server's Options.Path`},
				{name: "a full server", opts: datasole.Options{MaxConnections: 1},
					prepare: func(t *testing.T, s *site) { holdConnection(t, s) },
					code:    "over-capacity", status: 503, fix: "Options.MaxConnections"},
				{name: "a stopped server", prepare: func(_ *testing.T, s *site) { s.stop() },
					code: "unreachable", fix: "could not be reached"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					s := startSite(t, nil, echoServer(tc.opts))
					page := s.url("/harness.html")
					if tc.page != nil {
						page = tc.page(s)
					}
					tb := openTab(t, page)
					if tc.prepare != nil {
						tc.prepare(t, s)
					}
					options := strings.Replace(tc.options, "URL", s.url(""), 1)
					got := eval[failure](t, tb, `h.fail({`+mode.options+`, `+options+`})`)
					if got.OK || !got.IsDatasoleError {
						t.Fatalf("connect: %+v, want a DatasoleError", got)
					}
					if got.Code != tc.code || got.Status != tc.status || !strings.Contains(got.Message, tc.fix) {
						t.Errorf("got code %q, status %d, message %q\nwant code %q, status %d, a message with %q",
							got.Code, got.Status, got.Message, tc.code, tc.status, tc.fix)
					}
					// The state change says why as well.
					if c := eval[[]map[string]any](t, tb, `h.closes`); len(c) == 0 || c[len(c)-1]["code"] != tc.code {
						t.Errorf("connection state errors: %v, want the last to be %q", c, tc.code)
					}
				})
			}
		})
	}
}

// holdConnection takes a connection slot until the test ends.
func holdConnection(t *testing.T, s *site) {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+s.addr+"/__ds", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() }) // the slot was taken before the upgrade was answered
}

// TestAnAllowedForeignOriginConnects: the same page on an origin the server
// allows connects, and a failure there is read through the probe's CORS headers.
func TestAnAllowedForeignOriginConnects(t *testing.T) {
	fromLocalhost := func(r *http.Request) bool {
		u, err := url.Parse(r.Header.Get("Origin"))
		return err == nil && u.Hostname() == "localhost"
	}
	s := startSite(t, nil, echoServer(datasole.Options{Auth: letMeIn, CheckOrigin: fromLocalhost}))
	tb := openTab(t, strings.Replace(s.url("/harness.html"), "127.0.0.1", "localhost", 1))
	if got := eval[failure](t, tb, `h.fail({url: "`+s.url("")+`", auth: {token: "let-me-in"}})`); !got.OK {
		t.Fatalf("connect: %+v", got)
	}
	got := eval[failure](t, tb, `h.fail({url: "`+s.url("")+`", auth: {token: "guess"}})`)
	if got.Code != "unauthorized" || got.Status != 401 {
		t.Errorf("a wrong token from an allowed foreign origin: %+v, want unauthorized (401)", got)
	}
}

// TestClosesAfterOpenSayWhy: a server that ends a session (4001) or revokes a
// credential (4003) closes the socket with that code; the client reports it.
func TestClosesAfterOpenSayWhy(t *testing.T) {
	for _, tc := range []struct {
		code int
		want string
	}{
		{datasole.CloseSessionExpired, "session-expired"},
		{datasole.CloseRevoked, "revoked"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			s := startSite(t, nil, echoServer(datasole.Options{Auth: letMeIn}))
			tb := openTab(t, s.url("/harness.html"))
			if got := eval[failure](t, tb, `h.fail({auth: {token: "let-me-in"}})`); !got.OK {
				t.Fatalf("connect: %+v", got)
			}
			// The server answers calls once the connection is registered, so
			// after this reply CloseUser finds it.
			if got := eval[map[string]any](t, tb, `h.call("whoami")`); got["result"] != "ann" {
				t.Fatalf("whoami: %v", got)
			}
			s.ds.CloseUser("ann", tc.code, "bye")
			tb.waitFor(t, `h.closes.length > 0`)
			c := eval[[]map[string]any](t, tb, `h.closes`)
			if c[0]["code"] != tc.want || c[0]["closeCode"] != float64(tc.code) || !strings.Contains(c[0]["message"].(string), "bye") {
				t.Errorf("close reported as %v, want code %q and close code %d", c[0], tc.want, tc.code)
			}
		})
	}
}
