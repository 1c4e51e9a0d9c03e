package dshttp_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/datasole/datasole-go/adapters/stdlib"
	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/client"
	"github.com/gorilla/websocket"
)

type ctxKey struct{}

// appAuth is the app's own auth middleware: it puts a user in the context.
func appAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("token") == "good" {
			r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, "alice"))
		}
		next.ServeHTTP(w, r)
	})
}

func TestWrap(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ds := datasole.New(datasole.Options{Logger: quiet, Auth: func(*http.Request) (*datasole.Principal, error) {
		return nil, datasole.ErrUnauthorized // only the app's middleware admits
	}})
	ds.HandleRPC("whoami", func(c *datasole.Context, _ json.RawMessage) (any, error) { return c.UserID(), nil })
	defer ds.Close(context.Background())
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hi") })
	h := appAuth(dshttp.Wrap(mux, ds, dshttp.Options{Principal: func(r *http.Request) *datasole.Principal {
		if u, ok := r.Context().Value(ctxKey{}).(string); ok {
			return &datasole.Principal{UserID: u}
		}
		return nil
	}}))
	hs := httptest.NewServer(h)
	defer hs.Close()

	t.Run("an app route still works beside the mount", func(t *testing.T) {
		resp, err := http.Get(hs.URL + "/hello")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "hi" {
			t.Fatalf("got %q", b)
		}
	})
	t.Run("the app's identity reaches the RPC context", func(t *testing.T) {
		c, err := client.Dial(context.Background(), hs.URL, client.Options{Token: "good", Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var who string
		if err := c.Call(context.Background(), "whoami", nil, &who); err != nil || who != "alice" {
			t.Fatalf("whoami = %q, %v", who, err)
		}
	})
	t.Run("without it the server's auth handler decides", func(t *testing.T) {
		_, resp, err := websocket.DefaultDialer.Dial("ws"+hs.URL[4:]+"/__ds", nil)
		if err == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("got %v %v", resp, err)
		}
	})
	t.Run("the browser runtime is served with an ETag", func(t *testing.T) {
		resp, err := http.Get(hs.URL + "/__ds/datasole.iife.min.js")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("ETag") == "" {
			t.Fatalf("%d %v", resp.StatusCode, resp.Header)
		}
	})
}
