package dsfiber

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// fakeWS counts the calls that reach it; WriteMessage blocks until
// release is closed, when it is not nil.
type fakeWS struct {
	mu      sync.Mutex
	calls   int
	entered chan struct{}
	release chan struct{}
}

func (f *fakeWS) hit() {
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
}

func (f *fakeWS) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *fakeWS) NextReader() (int, io.Reader, error) { f.hit(); return 2, strings.NewReader("x"), nil }
func (f *fakeWS) WriteMessage(int, []byte) error {
	f.hit()
	if f.release != nil {
		close(f.entered)
		<-f.release
	}
	return nil
}
func (f *fakeWS) WriteControl(int, []byte, time.Time) error { f.hit(); return nil }
func (f *fakeWS) SetReadDeadline(time.Time) error           { f.hit(); return nil }
func (f *fakeWS) SetWriteDeadline(time.Time) error          { f.hit(); return nil }
func (f *fakeWS) SetReadLimit(int64)                        { f.hit() }
func (f *fakeWS) SetPongHandler(func(string) error)         { f.hit() }
func (f *fakeWS) RemoteAddr() net.Addr                      { f.hit(); return &net.TCPAddr{Port: 1} }
func (f *fakeWS) Close() error                              { f.hit(); return nil }

func TestGuarded(t *testing.T) {
	t.Run("before retire every call reaches the connection", func(t *testing.T) {
		f := &fakeWS{}
		g := &guarded{ws: f}
		if _, _, err := g.NextReader(); err != nil {
			t.Fatal(err)
		}
		g.WriteMessage(2, nil)
		g.WriteControl(9, nil, time.Time{})
		g.SetReadDeadline(time.Time{})
		g.SetWriteDeadline(time.Time{})
		g.SetReadLimit(1)
		g.SetPongHandler(nil)
		if g.RemoteAddr() == nil {
			t.Fatal("no remote address")
		}
		g.Close()
		if n := f.count(); n != 9 {
			t.Fatalf("%d calls reached the connection, want 9", n)
		}
	})
	t.Run("after retire no call reaches the connection", func(t *testing.T) {
		f := &fakeWS{}
		g := &guarded{ws: f}
		g.retire()
		if _, _, err := g.NextReader(); !errors.Is(err, errRetired) {
			t.Fatalf("NextReader: %v", err)
		}
		for name, err := range map[string]error{
			"WriteMessage":     g.WriteMessage(2, nil),
			"WriteControl":     g.WriteControl(9, nil, time.Time{}),
			"SetReadDeadline":  g.SetReadDeadline(time.Time{}),
			"SetWriteDeadline": g.SetWriteDeadline(time.Time{}),
			"Close":            g.Close(),
		} {
			if !errors.Is(err, errRetired) {
				t.Fatalf("%s: %v, want errRetired", name, err)
			}
		}
		g.SetReadLimit(1)
		g.SetPongHandler(nil)
		if a := g.RemoteAddr(); a != nil {
			t.Fatalf("RemoteAddr = %v", a)
		}
		if n := f.count(); n != 0 {
			t.Fatalf("%d calls reached a retired connection", n)
		}
	})
	t.Run("retire waits for a write in flight", func(t *testing.T) {
		f := &fakeWS{entered: make(chan struct{}), release: make(chan struct{})}
		g := &guarded{ws: f}
		go g.WriteMessage(2, nil)
		<-f.entered
		retired := make(chan struct{})
		go func() { g.retire(); close(retired) }()
		select {
		case <-retired:
			t.Fatal("retire returned while a write was running")
		case <-time.After(50 * time.Millisecond):
		}
		close(f.release)
		select {
		case <-retired:
		case <-time.After(5 * time.Second):
			t.Fatal("retire did not return after the write ended")
		}
	})
}

// parse reads a raw HTTP request into a fresh fasthttp context, as the
// server does.
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
