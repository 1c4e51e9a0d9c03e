package dshttp_test

import (
	"context"
	"log"
	"net"
	"net/http"
	"testing"
	"time"

	dshttp "github.com/datasole/datasole-go/adapters/stdlib"
	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/adaptertest"
	"github.com/datasole/datasole-go/datasole/client"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type userKey struct{}

// auth is the app's own auth middleware: it stores the caller's identity in
// the request context.
func auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := adaptertest.IdentityFrom(r.Header); id != nil {
			r = r.WithContext(context.WithValue(r.Context(), userKey{}, id))
		}
		next.ServeHTTP(w, r)
	})
}

// statusWriter is a logging middleware's ResponseWriter; Unwrap lets the
// upgrade reach the connection through it.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int)        { w.status = code; w.ResponseWriter.WriteHeader(code) }
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func logging(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		_ = sw.status // a real logger would log it
	})
}

func recovery(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				http.Error(w, "internal error", http.StatusInternalServerError)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		next.ServeHTTP(w, r)
	})
}

func app() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+adaptertest.AppRoute, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(adaptertest.AppBody))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(adaptertest.NotFoundBody))
	})
	return mux
}

var options = dshttp.Options{
	Skipper: func(r *http.Request) bool { return r.Header.Get(adaptertest.SkipHeader) != "" },
	Principal: func(r *http.Request) *datasole.Principal {
		return adaptertest.PrincipalOf(r.Context().Value(userKey{}))
	},
}

func serve(tb testing.TB, h http.Handler) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	hs := &http.Server{Handler: h, ErrorLog: log.New(discard{}, "", 0)}
	go hs.Serve(ln)
	tb.Cleanup(func() { hs.Close() })
	return "http://" + ln.Addr().String()
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

var harness = adaptertest.Harness{
	Name: "net/http",
	Serve: func(tb testing.TB, ds *datasole.Server, s adaptertest.Setup) string {
		if !s.Middleware {
			return serve(tb, auth(dshttp.WrapWithOptions(app(), ds, options)))
		}
		// Observing middleware outside, the timeout inside: TimeoutHandler
		// cannot hijack.
		inner := http.TimeoutHandler(app(), 5*time.Second, "timeout")
		return serve(tb, logging(recovery(cors(auth(dshttp.WrapWithOptions(inner, ds, options))))))
	},
}

func TestWrap(t *testing.T) { adaptertest.Run(t, harness) }

func TestMiddlewareOrder(t *testing.T) {
	t.Run("http.TimeoutHandler in front of Wrap breaks the upgrade, as documented", func(t *testing.T) {
		ds, err := datasole.New(datasole.Options{Auth: datasole.Anonymous, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		if err := ds.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		defer ds.Close(context.Background())
		url := serve(t, http.TimeoutHandler(dshttp.Wrap(app(), ds), 5*time.Second, "timeout"))
		c, err := client.Dial(context.Background(), url, client.Options{NoReconnect: true, Logger: quiet})
		if err == nil {
			c.Close()
			t.Fatal("the upgrade succeeded behind http.TimeoutHandler; the documented ordering rule is stale")
		}
	})
}

func TestHandler(t *testing.T) {
	t.Run("mounted on a mux pattern it serves the upgrade and the assets", func(t *testing.T) {
		ds, err := datasole.New(datasole.Options{Auth: datasole.Anonymous, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		if err := ds.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		defer ds.Close(context.Background())
		mux := http.NewServeMux()
		mux.Handle("/__ds", dshttp.Handler(ds))
		mux.Handle("/__ds/", dshttp.Handler(ds))
		url := serve(t, mux)
		c, err := client.Dial(context.Background(), url, client.Options{NoReconnect: true, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		resp, err := http.Get(url + "/__ds/datasole.iife.min.js")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") == "" {
			t.Fatalf("asset: %d, ETag %q", resp.StatusCode, resp.Header.Get("ETag"))
		}
	})
}

func BenchmarkRPCEcho(b *testing.B) { adaptertest.BenchRPC(b, harness) }
