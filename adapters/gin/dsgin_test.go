package dsgin_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	dsgin "github.com/datasole/datasole-go/adapters/gin"
	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/adaptertest"
	"github.com/datasole/datasole-go/datasole/client"
	"github.com/gin-contrib/cors"
	ginzip "github.com/gin-contrib/gzip"
	"github.com/gin-gonic/gin"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode) // no debug route dumps in the test output
	goleak.VerifyTestMain(m)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// auth is the app's own auth middleware: it stores the caller's identity
// under a gin key, as session or JWT middleware would.
func auth(c *gin.Context) {
	if id := adaptertest.IdentityFrom(c.Request.Header); id != nil {
		c.Set(adaptertest.UserKey, id)
	}
	c.Next()
}

var config = dsgin.Config{
	Skip: func(c *gin.Context) bool { return c.GetHeader(adaptertest.SkipHeader) != "" },
	Principal: func(c *gin.Context) *datasole.Principal {
		v, _ := c.Get(adaptertest.UserKey)
		return adaptertest.PrincipalOf(v)
	},
}

// app adds the app's own routes, after the middleware as gin requires.
func app(r *gin.Engine) {
	r.GET(adaptertest.AppRoute, func(c *gin.Context) { c.String(http.StatusOK, adaptertest.AppBody) })
	r.NoRoute(func(c *gin.Context) { c.String(http.StatusNotFound, adaptertest.NotFoundBody) })
}

var harness = adaptertest.Harness{
	Name: "gin",
	Serve: func(tb testing.TB, ds *datasole.Server, s adaptertest.Setup) string {
		r := gin.New()
		if s.Middleware {
			// The order docs/frameworks/gin.md recommends: observers and
			// header setters first, then auth, then the mount.
			r.Use(
				gin.LoggerWithWriter(io.Discard),
				gin.RecoveryWithWriter(io.Discard),
				cors.New(cors.Config{AllowAllOrigins: true, AllowMethods: []string{"GET"}, MaxAge: time.Hour}),
				ginzip.Gzip(ginzip.DefaultCompression),
			)
		}
		r.Use(auth, dsgin.New(ds, config))
		app(r)
		return serve(tb, r)
	},
}

func serve(tb testing.TB, h http.Handler) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	hs := &http.Server{Handler: h}
	go hs.Serve(ln)
	tb.Cleanup(func() { hs.Close() })
	return "http://" + ln.Addr().String()
}

func TestMount(t *testing.T) { adaptertest.Run(t, harness) }

func BenchmarkRPCEcho(b *testing.B) { adaptertest.BenchRPC(b, harness) }

func newServer(t *testing.T, o datasole.Options) *datasole.Server {
	t.Helper()
	o.Logger = quiet
	if o.Auth == nil {
		o.Auth = datasole.Anonymous
	}
	ds, err := datasole.New(o)
	if err != nil {
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

func dial(t *testing.T, url string, h http.Header) (*client.Client, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, url, client.Options{NoReconnect: true, Logger: quiet, Header: h})
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

func call(t *testing.T, c *client.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.CallRaw(ctx, "echo", 1); err != nil {
		t.Fatalf("echo: %v", err)
	}
}

func handleEcho(t *testing.T, ds *datasole.Server) {
	t.Helper()
	if err := ds.HandleRPC("echo", func(_ *datasole.Context, p json.RawMessage) (any, error) { return p, nil }); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer collects a logger's output written from server goroutines.
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

func TestMountWithoutRoutes(t *testing.T) {
	// Gin runs r.Use middleware for unmatched paths through its not-found
	// chain; these pin that down for both orders of Use and NoRoute and for
	// an engine with no routes at all.
	setups := []struct {
		name  string
		build func(ds *datasole.Server) *gin.Engine
	}{
		{"an engine with no routes and no NoRoute serves the datasole path", func(ds *datasole.Server) *gin.Engine {
			r := gin.New()
			r.Use(dsgin.Mount(ds))
			return r
		}},
		{"NoRoute set before Use still lets the mount see unmatched paths", func(ds *datasole.Server) *gin.Engine {
			r := gin.New()
			r.NoRoute(func(c *gin.Context) { c.String(http.StatusNotFound, "app 404") })
			r.Use(dsgin.Mount(ds))
			return r
		}},
		{"a catch-all route does not shadow the mount", func(ds *datasole.Server) *gin.Engine {
			r := gin.New()
			r.Use(dsgin.Mount(ds))
			r.GET("/*any", func(c *gin.Context) { c.String(http.StatusOK, "catch-all") })
			return r
		}},
	}
	want, _ := datasole.Asset("datasole.iife.min.js")
	for _, s := range setups {
		t.Run(s.name, func(t *testing.T) {
			ds := newServer(t, datasole.Options{})
			handleEcho(t, ds)
			url := serve(t, s.build(ds))
			resp, err := http.Get(url + "/__ds/datasole.iife.min.js")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !bytes.Equal(body, want.Body) ||
				resp.Header.Get("Content-Type") != want.ContentType || resp.Header.Get("ETag") != want.ETag {
				t.Fatalf("asset: %d %q, %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
			}
			c, err := dial(t, url, nil)
			if err != nil {
				t.Fatalf("upgrade: %v", err)
			}
			call(t, c)
		})
	}
}

func TestMountAsRoutes(t *testing.T) {
	// Route-style: the mount as the handler of the server's path and of
	// everything below it, in a group whose middleware authenticates.
	ds := newServer(t, datasole.Options{Path: "/ws", Auth: func(*http.Request) (*datasole.Principal, error) {
		return nil, datasole.ErrNoCredentials // only the group's middleware admits
	}})
	if err := ds.HandleRPC("whoami", func(c *datasole.Context, _ json.RawMessage) (any, error) {
		return c.UserID(), nil
	}); err != nil {
		t.Fatal(err)
	}
	r := gin.New()
	r.GET("/api/hello", func(c *gin.Context) { c.String(http.StatusOK, "hello") })
	api := r.Group("/", func(c *gin.Context) {
		if user := c.GetHeader("X-User"); user != "" {
			c.Set("principal", &datasole.Principal{UserID: user})
		}
		c.Next()
	})
	mount := dsgin.New(ds, dsgin.Config{Principal: dsgin.PrincipalFromKey("principal")})
	api.GET("/ws", mount)
	api.GET("/ws/*asset", mount)
	url := serve(t, r)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, url, client.Options{Path: "/ws", NoReconnect: true, Logger: quiet, Header: http.Header{"X-User": {"alice"}}})
	if err != nil {
		t.Fatalf("upgrade on the route: %v", err)
	}
	defer c.Close()
	var who string
	if err := c.Call(ctx, "whoami", nil, &who); err != nil || who != "alice" {
		t.Fatalf("whoami = %q, %v; want alice from the group's middleware", who, err)
	}
	want, _ := datasole.Asset("datasole.iife.min.js")
	for path, status := range map[string]int{"/ws/datasole.iife.min.js": http.StatusOK, "/api/hello": http.StatusOK, "/__ds": http.StatusNotFound} {
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != status {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, status)
		}
		if path == "/ws/datasole.iife.min.js" && !bytes.Equal(body, want.Body) {
			t.Errorf("GET %s: not the runtime asset (%d bytes)", path, len(body))
		}
	}
}

func TestMiddlewareCoexistence(t *testing.T) {
	t.Run("gin.Logger logs the upgrade as 101 and the asset as 200", func(t *testing.T) {
		ds := newServer(t, datasole.Options{})
		handleEcho(t, ds)
		var log syncBuffer
		r := gin.New()
		r.Use(gin.LoggerWithConfig(gin.LoggerConfig{Output: &log, Formatter: func(p gin.LogFormatterParams) string {
			return p.Path + " " + http.StatusText(p.StatusCode) + "\n"
		}}))
		r.Use(dsgin.Mount(ds))
		url := serve(t, r)
		c, err := dial(t, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		call(t, c)
		resp, err := http.Get(url + "/__ds/datasole.iife.min.js")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		// gin.Logger writes after the response has gone out, so wait for it.
		for _, line := range []string{"/__ds Switching Protocols\n", "/__ds/datasole.iife.min.js OK\n"} {
			for deadline := time.Now().Add(5 * time.Second); !strings.Contains(log.String(), line); time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("log %q lacks %q", log.String(), line)
				}
			}
		}
	})

	t.Run("gin.Recovery in front does not turn a refused upgrade into a 500", func(t *testing.T) {
		ds := newServer(t, datasole.Options{Auth: func(*http.Request) (*datasole.Principal, error) {
			return nil, datasole.ErrUnauthorized
		}})
		r := gin.New()
		r.Use(gin.RecoveryWithWriter(io.Discard), dsgin.Mount(ds))
		_, err := dial(t, serve(t, r), nil)
		var de *client.DialError
		if !errors.As(err, &de) || de.Status != http.StatusUnauthorized {
			t.Fatalf("dial: %v, want 401", err)
		}
	})

	t.Run("CORS headers from gin-contrib/cors reach the asset response", func(t *testing.T) {
		ds := newServer(t, datasole.Options{})
		r := gin.New()
		r.Use(cors.New(cors.Config{AllowOrigins: []string{"https://app.example"}, AllowMethods: []string{"GET"}}), dsgin.Mount(ds))
		req, _ := http.NewRequest(http.MethodGet, serve(t, r)+"/__ds/datasole.iife.min.js", nil)
		req.Header.Set("Origin", "https://app.example")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
			t.Fatalf("%d, Access-Control-Allow-Origin %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
		}
	})

	t.Run("gin-contrib/gzip in front compresses the asset and leaves the upgrade alone", func(t *testing.T) {
		ds := newServer(t, datasole.Options{})
		handleEcho(t, ds)
		r := gin.New()
		r.Use(ginzip.Gzip(ginzip.DefaultCompression), dsgin.Mount(ds))
		url := serve(t, r)
		req, _ := http.NewRequest(http.MethodGet, url+"/__ds/datasole.iife.min.js", nil)
		req.Header.Set("Accept-Encoding", "gzip") // set by hand, so the transport leaves the body compressed
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.Header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("Content-Encoding %q, want gzip", resp.Header.Get("Content-Encoding"))
		}
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(zr)
		want, _ := datasole.Asset("datasole.iife.min.js")
		if err != nil || !bytes.Equal(body, want.Body) {
			t.Fatalf("decompressed asset: %d bytes, %v; want the embedded %d bytes", len(body), err, len(want.Body))
		}
		c, err := dial(t, url, http.Header{"Accept-Encoding": {"gzip"}})
		if err != nil {
			t.Fatal(err)
		}
		call(t, c)
	})
}

func TestSkip(t *testing.T) {
	ds := newServer(t, datasole.Options{})
	r := gin.New()
	r.Use(dsgin.New(ds, dsgin.Config{Skip: func(c *gin.Context) bool { return c.Query("raw") != "" }}))
	r.GET("/__ds/datasole.iife.min.js", func(c *gin.Context) { c.String(http.StatusOK, "the app's own copy") })
	tests := []struct {
		name, path, want string
	}{
		{"a skipped request goes on to the app's route", "/__ds/datasole.iife.min.js?raw=1", "the app's own copy"},
		{"an unskipped request is served by datasole", "/__ds/datasole.iife.min.js", ""},
	}
	asset, _ := datasole.Asset("datasole.iife.min.js")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, tt.path, nil))
			want := tt.want
			if want == "" {
				want = string(asset.Body)
			}
			if w.Code != http.StatusOK || w.Body.String() != want {
				t.Fatalf("%d, %d bytes; want 200 and %d bytes", w.Code, w.Body.Len(), len(want))
			}
		})
	}
}

func TestPrincipalFromKey(t *testing.T) {
	tests := []struct {
		name  string
		v     any
		want  string
		admit bool
	}{
		{"a stored *datasole.Principal is used as it is", &datasole.Principal{UserID: "p"}, "p", true},
		{"a stored string (gin.BasicAuth's user) becomes the user id", "basic", "basic", true},
		{"an empty string leaves the decision to the server", "", "", false},
		{"another type leaves the decision to the server", 42, "", false},
		{"no value leaves the decision to the server", nil, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := newServer(t, datasole.Options{Auth: func(*http.Request) (*datasole.Principal, error) {
				return nil, datasole.ErrNoCredentials
			}})
			got := make(chan string, 1)
			if err := ds.HandleRPC("whoami", func(c *datasole.Context, _ json.RawMessage) (any, error) {
				got <- c.UserID()
				return nil, nil
			}); err != nil {
				t.Fatal(err)
			}
			r := gin.New()
			r.Use(func(c *gin.Context) {
				if tt.v != nil {
					c.Set(gin.AuthUserKey, tt.v)
				}
			}, dsgin.New(ds, dsgin.Config{Principal: dsgin.PrincipalFromKey(gin.AuthUserKey)}))
			c, err := dial(t, serve(t, r), nil)
			if !tt.admit {
				var de *client.DialError
				if !errors.As(err, &de) || de.Status != http.StatusUnauthorized {
					t.Fatalf("dial: %v, want the server's auth handler to refuse with 401", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := c.CallRaw(ctx, "whoami", nil); err != nil {
				t.Fatal(err)
			}
			if id := <-got; id != tt.want {
				t.Fatalf("user id %q, want %q", id, tt.want)
			}
		})
	}
}
