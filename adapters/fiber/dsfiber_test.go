package dsfiber_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	dsfiber "github.com/datasole/datasole-go/adapters/fiber"
	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/adaptertest"
	"github.com/datasole/datasole-go/datasole/client"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/compress"
	"github.com/gofiber/fiber/v2/middleware/cors"
	"github.com/gofiber/fiber/v2/middleware/logger"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/gofiber/fiber/v2/utils"
	"github.com/valyala/fasthttp"
	"go.uber.org/goleak"
)

// Goroutines fasthttp and Fiber start and never stop (or stop only after
// a sleep), none of them per connection: each ignore names the one function
// that runs it, so a goroutine the adapter leaks still fails the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// fasthttp refreshes its cached Date header every second, from a
		// goroutine started once per process.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		// A stopped server's worker pool cleaner exits only after its
		// sleep (MaxIdleWorkerDuration, 10s).
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		// The compressors' stackless workers are a process-wide pool.
		goleak.IgnoreTopFunction("github.com/valyala/fasthttp/stackless.funcWorker"),
		// Fiber's logger, when its format has ${time}, refreshes the
		// timestamp forever from a goroutine per logger.New.
		goleak.IgnoreAnyFunction("github.com/gofiber/fiber/v2/middleware/logger.New.func1"),
	)
}

var harness = adaptertest.Harness{Name: "fiber", Serve: serve}

func TestAdapter(t *testing.T) { adaptertest.Run(t, harness) }

func BenchmarkRPCEcho(b *testing.B) { adaptertest.BenchRPC(b, harness) }

// serve builds the app the way adaptertest describes: the app's auth
// middleware, then the mount, then the app's routes and its not-found
// handler.
func serve(tb testing.TB, ds *datasole.Server, s adaptertest.Setup) string {
	tb.Helper()
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	if s.Middleware {
		// The order docs/frameworks/fiber.md recommends.
		app.Use(recover.New(), logger.New(logger.Config{Output: io.Discard}), cors.New(), compress.New())
	}
	app.Use(appAuth)
	app.Use(dsfiber.New(ds, dsfiber.Config{
		Next: func(c *fiber.Ctx) bool { return c.Get(adaptertest.SkipHeader) != "" },
		Principal: func(c *fiber.Ctx) *datasole.Principal {
			return adaptertest.PrincipalOf(c.Locals(adaptertest.UserKey))
		},
	}))
	app.Get(adaptertest.AppRoute, func(c *fiber.Ctx) error { return c.SendString(adaptertest.AppBody) })
	app.Use(func(c *fiber.Ctx) error {
		return c.Status(fiber.StatusNotFound).SendString(adaptertest.NotFoundBody)
	})
	return listen(tb, app)
}

// appAuth stands in for the app's auth middleware: it stores the identity
// the test headers claim in c.Locals, copied out of fasthttp's buffers.
func appAuth(c *fiber.Ctx) error {
	h := http.Header{}
	for _, k := range []string{adaptertest.UserHeader, adaptertest.RolesHeader} {
		if v := c.Get(k); v != "" {
			h.Set(k, utils.CopyString(v))
		}
	}
	if id := adaptertest.IdentityFrom(h); id != nil {
		c.Locals(adaptertest.UserKey, id)
	}
	return c.Next()
}

// listen serves app on a loopback port until tb's test ends.
func listen(tb testing.TB, app *fiber.App) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); app.Listener(ln) }()
	tb.Cleanup(func() {
		app.ShutdownWithTimeout(5 * time.Second)
		<-done
	})
	return "http://" + ln.Addr().String()
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newServer(t testing.TB, o datasole.Options) *datasole.Server {
	t.Helper()
	o.Logger = quiet
	ds, err := datasole.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := ds.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ds.HandleRPC("whoami", func(c *datasole.Context, _ json.RawMessage) (any, error) { return c.Principal(), nil })
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ds.Close(ctx)
	})
	return ds
}

func dial(t *testing.T, url string, o client.Options) (*client.Client, error) {
	t.Helper()
	o.Logger, o.NoReconnect = quiet, true
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, url, o)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

func dialStatus(err error) int {
	var de *client.DialError
	if errors.As(err, &de) {
		return de.Status
	}
	return 0
}

func refuseAll(*http.Request) (*datasole.Principal, error) { return nil, datasole.ErrUnauthorized }

func TestPrincipalFromLocals(t *testing.T) {
	ds := newServer(t, datasole.Options{Auth: refuseAll})
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Use(func(c *fiber.Ctx) error {
		switch c.Query("as") {
		case "alice":
			c.Locals("principal", &datasole.Principal{UserID: "alice", Roles: []string{"admin"}})
		case "string":
			c.Locals("principal", "alice") // not a *datasole.Principal
		}
		return c.Next()
	})
	app.Use(dsfiber.New(ds, dsfiber.Config{Principal: dsfiber.PrincipalFromLocals("principal")}))
	url := listen(t, app)

	t.Run("a principal in Locals reaches the RPC context", func(t *testing.T) {
		c, err := dial(t, url+"/?as=alice", client.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var p datasole.Principal
		if err := c.Call(context.Background(), "whoami", nil, &p); err != nil {
			t.Fatal(err)
		}
		if p.UserID != "alice" || !p.HasRole("admin") {
			t.Fatalf("whoami = %+v", p)
		}
	})
	for _, q := range []string{"/?as=string", "/"} {
		t.Run("without one ("+q+") the server's auth handler decides", func(t *testing.T) {
			_, err := dial(t, url+q, client.Options{})
			if dialStatus(err) != http.StatusUnauthorized {
				t.Fatalf("dial: %v, want 401", err)
			}
		})
	}
}

func TestOriginIsCheckedByTheServerBeforeUpgrading(t *testing.T) {
	ds := newServer(t, datasole.Options{Auth: datasole.Anonymous})
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Use(dsfiber.Mount(ds))
	url := listen(t, app)

	// The server's Origin policy answers before any handshake: 403.
	_, err := dial(t, url, client.Options{Header: http.Header{"Origin": {"http://evil.example"}}})
	if dialStatus(err) != http.StatusForbidden {
		t.Fatalf("dial: %v, want 403", err)
	}
	if n := ds.Snapshot().Rejections["origin"]; n != 1 {
		t.Fatalf("origin rejections = %d, want 1", n)
	}
	if n := ds.ConnectionCount(); n != 0 {
		t.Fatalf("%d connections after a refused upgrade", n)
	}
}

func TestAFailedUpgradeGivesTheSlotBack(t *testing.T) {
	ds := newServer(t, datasole.Options{Auth: datasole.Anonymous, MaxConnections: 1})
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Use(dsfiber.Mount(ds))
	url := listen(t, app)

	// An upgrade request without Sec-WebSocket-Key passes Admit, then the
	// websocket handshake fails.
	for range 3 {
		req, _ := http.NewRequest(http.MethodGet, url+"/__ds", nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("broken handshake: %d, want 400", resp.StatusCode)
		}
	}
	c, err := dial(t, url, client.Options{})
	if err != nil {
		t.Fatalf("the only slot is still taken: %v", err)
	}
	var p datasole.Principal
	if err := c.Call(context.Background(), "whoami", nil, &p); err != nil {
		t.Fatal(err)
	}
	_, err = dial(t, url, client.Options{})
	if dialStatus(err) != http.StatusServiceUnavailable {
		t.Fatalf("second connection: %v, want 503 (the cap still holds)", err)
	}
}

// syncBuffer is a bytes.Buffer the logger middleware may write from
// several connections' goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestCommonMiddlewareSeesTheUpgradeAndTheAssets(t *testing.T) {
	ds := newServer(t, datasole.Options{Auth: datasole.Anonymous})
	var log syncBuffer
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Use(recover.New(), logger.New(logger.Config{Output: &log, Format: "${status} ${method} ${path}\n"}),
		cors.New(), compress.New(compress.Config{Level: compress.LevelBestSpeed}))
	app.Use(dsfiber.Mount(ds))
	url := listen(t, app)

	c, err := dial(t, url, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var p datasole.Principal
	if err := c.Call(context.Background(), "whoami", nil, &p); err != nil {
		t.Fatal(err)
	}
	want, _ := datasole.Asset("datasole.iife.min.js")
	for _, enc := range []string{"", "gzip", "br", "deflate"} {
		t.Run("the asset survives Accept-Encoding "+enc, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, url+"/__ds/datasole.iife.min.js", nil)
			req.Header.Set("Accept-Encoding", enc)
			req.Header.Set("Origin", "http://other.example")
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := decode(resp)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK || !bytes.Equal(body, want.Body) {
				t.Fatalf("%d, %d bytes (%s), want 200 and the asset's %d bytes",
					resp.StatusCode, len(body), resp.Header.Get("Content-Encoding"), len(want.Body))
			}
			if resp.Header.Get("Access-Control-Allow-Origin") == "" {
				t.Fatal("the CORS middleware did not see the asset response")
			}
		})
	}
	t.Run("the logger records the upgrade as 101", func(t *testing.T) {
		if !strings.Contains(log.String(), "101 GET /__ds\n") {
			t.Fatalf("log:\n%s", log.String())
		}
	})
}

func TestNextPassesTheDatasolePathToTheApp(t *testing.T) {
	ds := newServer(t, datasole.Options{Auth: datasole.Anonymous})
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	var asked []string
	var mu sync.Mutex
	app.Use(dsfiber.New(ds, dsfiber.Config{Next: func(c *fiber.Ctx) bool {
		mu.Lock()
		asked = append(asked, utils.CopyString(c.Path()))
		mu.Unlock()
		return c.Query("skip") != ""
	}}))
	app.Get("/*", func(c *fiber.Ctx) error { return c.SendString("app " + c.Path()) })
	url := listen(t, app)

	for _, tc := range []struct{ path, wantBody string }{
		{"/__ds/datasole.iife.min.js?skip=1", "app /__ds/datasole.iife.min.js"},
		{"/__ds?skip=1", "app /__ds"},
		{"/elsewhere", "app /elsewhere"},
	} {
		resp, err := http.Get(url + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != tc.wantBody {
			t.Fatalf("GET %s = %q, want %q", tc.path, body, tc.wantBody)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"/__ds/datasole.iife.min.js", "/__ds"}; strings.Join(asked, " ") != strings.Join(want, " ") {
		t.Fatalf("Next was asked about %q, want only the datasole paths %q", asked, want)
	}
}

// decode undoes the Content-Encoding the compress middleware chose.
func decode(resp *http.Response) ([]byte, error) {
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	switch resp.Header.Get("Content-Encoding") {
	case "":
		return raw, nil
	case "gzip":
		var out bytes.Buffer
		_, err := fasthttp.WriteGunzip(&out, raw)
		return out.Bytes(), err
	case "br":
		var out bytes.Buffer
		_, err := fasthttp.WriteUnbrotli(&out, raw)
		return out.Bytes(), err
	case "deflate":
		var out bytes.Buffer
		_, err := fasthttp.WriteInflate(&out, raw)
		return out.Bytes(), err
	}
	return nil, errors.New("unknown encoding " + resp.Header.Get("Content-Encoding"))
}
