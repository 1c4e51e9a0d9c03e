package dsfiber

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

func parse(t testing.TB, raw string) *fasthttp.RequestCtx {
	fc := new(fasthttp.RequestCtx)
	var req fasthttp.Request
	if err := req.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		t.Skip("not a request fasthttp accepts")
	}
	fc.Init(&req, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 4242}, nil)
	return fc
}

func rawUpgrade(target, origin, user string) string {
	return "GET " + target + " HTTP/1.1\r\nHost: app.example\r\nOrigin: " + origin +
		"\r\nX-User: " + user + "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
}

type view struct{ method, host, uri, path, query, origin, user, remote string }

func snapshot(r *http.Request, keep func(string) string) view {
	return view{
		keep(r.Method), keep(r.Host), keep(r.RequestURI), keep(r.URL.Path), keep(r.URL.RawQuery),
		keep(r.Header.Get("Origin")), keep(r.Header.Get("X-User")), keep(r.RemoteAddr),
	}
}

// FuzzRequest checks the *http.Request view of an upgrade request: it
// carries what Admit and auth handlers read, and none of its strings
// change when fasthttp reuses the request's buffers.
func FuzzRequest(f *testing.F) {
	f.Add("/__ds?token=abc&x=%20y", "https://app.example", "alice")
	f.Add("/__ds", "", "")
	f.Add("/__ds/%E2%9C%93?a=1&a=2", "http://evil.example:8080", "bob,carol")
	f.Add("*", "null", "x")
	app := fiber.New()
	f.Fuzz(func(t *testing.T, target, origin, user string) {
		fc := parse(t, rawUpgrade(target, origin, user))
		c := app.AcquireCtx(fc)
		defer app.ReleaseCtx(c)
		r, err := request(c)
		if err != nil {
			return // fasthttp accepted a target net/http cannot parse: refused with 400
		}
		want := snapshot(r, strings.Clone) // copies: what the view said before the buffers changed
		if want.remote != "192.0.2.1:4242" || want.host != "app.example" || want.method != http.MethodGet {
			t.Fatalf("request view: %+v", want)
		}
		if r.URL.RequestURI() == "" || r.Header.Get("Host") != "" {
			t.Fatalf("URL %q, Host header %q", r.URL.RequestURI(), r.Header.Get("Host"))
		}
		// Overwrite the buffers the view was made from.
		junk := parse(t, rawUpgrade(strings.Repeat("/", len(target)), strings.Repeat("z", len(origin)), strings.Repeat("z", len(user))))
		junk.Request.CopyTo(&fc.Request)
		got := snapshot(r, func(s string) string { return s })
		if got != want {
			t.Fatalf("the view changed with fasthttp's buffers:\n got %+v\nwant %+v", got, want)
		}
	})
}
