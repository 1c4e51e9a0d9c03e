package dsecho_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	dsecho "github.com/datasole/datasole-go/adapters/echo"
	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/adaptertest"
	"github.com/datasole/datasole-go/datasole/client"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// newDS is an anonymous-access server with an "echo" RPC.
func newDS(t *testing.T) *datasole.Server {
	t.Helper()
	ds, err := datasole.New(datasole.Options{Logger: quiet, Auth: datasole.Anonymous})
	if err != nil {
		t.Fatal(err)
	}
	if err := ds.HandleRPC("echo", func(_ *datasole.Context, p json.RawMessage) (any, error) { return p, nil }); err != nil {
		t.Fatal(err)
	}
	if err := ds.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ds.Close(ctx)
	})
	return ds
}

// dialErr connects a Go client and makes one RPC call.
func dialErr(t *testing.T, url string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, url, client.Options{Logger: quiet, NoReconnect: true})
	if err != nil {
		return err
	}
	defer c.Close()
	var got int
	if err := c.Call(ctx, "echo", 7, &got); err != nil || got != 7 {
		return errors.Join(err, errors.New("echo did not return its argument"))
	}
	return nil
}

// rawGet fetches url without the transport's transparent decompression, so
// the test sees what went over the wire.
func rawGet(t *testing.T, url string, h http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestMountNeedsNoRoute(t *testing.T) {
	for _, tc := range []struct {
		name  string
		route func(e *echo.Echo)
	}{
		{"an app with no routes at all serves the datasole path", func(*echo.Echo) {}},
		{"an app with a catch-all route still serves the datasole path", func(e *echo.Echo) {
			e.GET("/*", func(c echo.Context) error { return c.String(http.StatusTeapot, "catch-all") })
		}},
		{"a route on the datasole path itself does not shadow the mount", func(e *echo.Echo) {
			e.GET("/__ds", func(c echo.Context) error { return c.String(http.StatusTeapot, "shadow") })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds := newDS(t)
			e := newApp()
			tc.route(e)
			e.Use(dsecho.Mount(ds))
			url := serve(t, e)
			want, _ := datasole.Asset("datasole.iife.min.js")
			resp, body := rawGet(t, url+"/__ds/datasole.iife.min.js", http.Header{})
			if resp.StatusCode != http.StatusOK || !bytes.Equal(body, want.Body) {
				t.Fatalf("asset: %d, %d bytes", resp.StatusCode, len(body))
			}
			if err := dialErr(t, url); err != nil {
				t.Fatalf("upgrade: %v", err)
			}
		})
	}
}

func TestMountOnGroup(t *testing.T) {
	// Route-style: a group on the server's path whose own middleware
	// authenticates; Echo routes the group's prefix and everything below it
	// through the group's middleware.
	ds, err := datasole.New(datasole.Options{Logger: quiet, Path: "/ws", Auth: func(*http.Request) (*datasole.Principal, error) {
		return nil, datasole.ErrNoCredentials // only the group's middleware admits
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ds.HandleRPC("whoami", func(c *datasole.Context, _ json.RawMessage) (any, error) { return c.UserID(), nil }); err != nil {
		t.Fatal(err)
	}
	if err := ds.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ds.Close(context.Background()) })
	e := newApp()
	login := func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if user := c.Request().Header.Get("X-User"); user != "" {
				c.Set("user", user)
			}
			return next(c)
		}
	}
	e.Group("/ws", login, dsecho.MountWithConfig(ds, dsecho.Config{
		Principal: dsecho.PrincipalFromJWT(func(user string) *datasole.Principal { return &datasole.Principal{UserID: user} }),
	}))
	url := serve(t, e)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, url, client.Options{Path: "/ws", NoReconnect: true, Logger: quiet, Header: http.Header{"X-User": {"alice"}}})
	if err != nil {
		t.Fatalf("upgrade on the group: %v", err)
	}
	defer c.Close()
	var who string
	if err := c.Call(ctx, "whoami", nil, &who); err != nil || who != "alice" {
		t.Fatalf("whoami = %q, %v; want alice from the group's middleware", who, err)
	}
	want, _ := datasole.Asset("datasole.iife.min.js")
	resp, body := rawGet(t, url+"/ws/datasole.iife.min.js", http.Header{})
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, want.Body) {
		t.Fatalf("asset: %d, %d bytes", resp.StatusCode, len(body))
	}
	resp, body = rawGet(t, url+adaptertest.AppRoute, http.Header{})
	if resp.StatusCode != http.StatusOK || string(body) != adaptertest.AppBody {
		t.Fatalf("the app's route: %d %q", resp.StatusCode, body)
	}
}

func TestCoexistence(t *testing.T) {
	for _, tc := range []struct {
		name string
		mw   func(ds *datasole.Server) echo.MiddlewareFunc
		fail int // the status the upgrade is refused with; 0: it succeeds
	}{
		{"Logger in front", func(*datasole.Server) echo.MiddlewareFunc {
			//lint:ignore SA1019 users still run the deprecated Logger in front of the mount
			return middleware.LoggerWithConfig(middleware.LoggerConfig{Output: io.Discard})
		}, 0},
		{"Recover in front", func(*datasole.Server) echo.MiddlewareFunc { return middleware.Recover() }, 0},
		{"CORS in front", func(*datasole.Server) echo.MiddlewareFunc { return middleware.CORS() }, 0},
		{"Gzip in front", func(*datasole.Server) echo.MiddlewareFunc { return middleware.Gzip() }, 0},
		{"ContextTimeout in front", func(*datasole.Server) echo.MiddlewareFunc {
			return middleware.ContextTimeout(time.Second)
		}, 0},
		{"Timeout in front with Skip as its Skipper", func(ds *datasole.Server) echo.MiddlewareFunc {
			//lint:ignore SA1019 users still run the deprecated Timeout; the adapter documents Skip(ds) for it
			return middleware.TimeoutWithConfig(middleware.TimeoutConfig{Skipper: dsecho.Skip(ds), Timeout: time.Second})
		}, 0},
		// http.TimeoutHandler's writer cannot be hijacked: this is why the
		// documentation says to skip it for the datasole path.
		{"Timeout in front without a Skipper breaks the upgrade", func(*datasole.Server) echo.MiddlewareFunc {
			//lint:ignore SA1019 users still run the deprecated Timeout; the adapter documents Skip(ds) for it
			return middleware.TimeoutWithConfig(middleware.TimeoutConfig{Timeout: time.Second})
		}, http.StatusInternalServerError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds := newDS(t)
			e := newApp()
			e.Use(tc.mw(ds), dsecho.Mount(ds))
			url := serve(t, e)

			err := dialErr(t, url)
			var de *client.DialError
			switch {
			case tc.fail == 0 && err != nil:
				t.Fatalf("upgrade: %v", err)
			case tc.fail != 0 && (!errors.As(err, &de) || de.Status != tc.fail):
				t.Fatalf("upgrade: %v, want it refused with %d", err, tc.fail)
			}
			for _, name := range []string{"datasole.iife.min.js", "datasole-worker.iife.min.js", "datasole.mjs", "datasole.d.ts"} {
				want, ok := datasole.Asset(name)
				if !ok {
					t.Fatalf("no asset %s", name)
				}
				resp, body := rawGet(t, url+"/__ds/"+name, http.Header{"Accept-Encoding": {"gzip"}})
				if resp.Header.Get("Content-Encoding") == "gzip" {
					zr, err := gzip.NewReader(bytes.NewReader(body))
					if err != nil {
						t.Fatal(err)
					}
					if body, err = io.ReadAll(zr); err != nil {
						t.Fatal(err)
					}
				}
				if resp.StatusCode != http.StatusOK || !bytes.Equal(body, want.Body) {
					t.Fatalf("%s: %d, %d bytes, want 200 and the asset's %d bytes", name, resp.StatusCode, len(body), len(want.Body))
				}
				if got := resp.Header.Get("Content-Type"); got != want.ContentType {
					t.Fatalf("%s: Content-Type %q, want %q", name, got, want.ContentType)
				}
			}
		})
	}

	t.Run("Gzip compresses the assets and leaves revalidation bodiless", func(t *testing.T) {
		ds := newDS(t)
		e := newApp()
		e.Use(middleware.Gzip(), dsecho.Mount(ds))
		url := serve(t, e)
		want, _ := datasole.Asset("datasole.iife.min.js")
		resp, body := rawGet(t, url+"/__ds/datasole.iife.min.js", http.Header{"Accept-Encoding": {"gzip"}})
		if resp.Header.Get("Content-Encoding") != "gzip" || len(body) >= len(want.Body) {
			t.Fatalf("Content-Encoding %q, %d bytes for %d", resp.Header.Get("Content-Encoding"), len(body), len(want.Body))
		}
		resp, body = rawGet(t, url+"/__ds/datasole.iife.min.js", http.Header{"Accept-Encoding": {"gzip"}, "If-None-Match": {want.ETag}})
		if resp.StatusCode != http.StatusNotModified || len(body) != 0 || resp.Header.Get("Content-Encoding") != "" {
			t.Fatalf("revalidation: %d, %d bytes, Content-Encoding %q", resp.StatusCode, len(body), resp.Header.Get("Content-Encoding"))
		}
	})
}

type token struct{ sub string }

func TestPrincipalFromJWT(t *testing.T) {
	toPrincipal := dsecho.PrincipalFromJWT(func(tok *token) *datasole.Principal {
		return &datasole.Principal{UserID: tok.sub}
	})
	for _, tc := range []struct {
		name   string
		stored any
		want   string // UserID; "" for a nil principal
	}{
		{"a token under \"user\" is mapped", &token{sub: "alice"}, "alice"},
		{"nothing under \"user\" leaves the decision to the server", nil, ""},
		{"a value of another type leaves the decision to the server", "alice", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := echo.New().NewContext(httptest.NewRequest(http.MethodGet, "/__ds", nil), httptest.NewRecorder())
			if tc.stored != nil {
				c.Set("user", tc.stored)
			}
			p := toPrincipal(c)
			if (p == nil) != (tc.want == "") || (p != nil && p.UserID != tc.want) {
				t.Fatalf("got %+v, want user %q", p, tc.want)
			}
		})
	}
}

func TestSkip(t *testing.T) {
	ds := newDS(t)
	skip := dsecho.Skip(ds)
	for _, tc := range []struct {
		path string
		want bool
	}{
		{"/__ds", true},
		{"/__ds/datasole.mjs", true},
		{"/__dsx", false},
		{"/api/__ds", false},
		{"/", false},
	} {
		t.Run(tc.path, func(t *testing.T) {
			c := echo.New().NewContext(httptest.NewRequest(http.MethodGet, tc.path, nil), httptest.NewRecorder())
			if got := skip(c); got != tc.want {
				t.Fatalf("Skip(%s) = %v, want %v", tc.path, got, tc.want)
			}
		})
	}
}
