// Package observertest checks a datasole.Observer against a real server:
// Start runs a server observed by it on loopback, and Run drives a scripted
// workload whose expected counts are the constants below. The Prometheus and
// OpenTelemetry exporters use it, and so can other Observer implementations.
package observertest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/client"
	"github.com/datasole/datasole-go/datasole/protocol"
	"github.com/gorilla/websocket"
)

// The workload Run drives, and what an observer must count for it.
const (
	// Clients are the connections that receive the broadcast.
	Clients      = 3 // M: connections that receive the broadcast
	OKCalls      = 5 // echo
	FailedCalls  = 2 // fail: the handler returns an error
	UnknownCalls = 3 // methods nobody registered, each with its own name
	Events       = 4 // ping
)

// Message is one WebSocket message the raw connection sends, and the
// refusal reason the server reports for it.
type Message struct {
	Kind   int
	Data   []byte
	Reason string
}

// Garbage is what the raw connection sends: a message too short to be a
// frame and a text message. Neither starts with a v1 opcode.
var Garbage = []Message{
	{websocket.BinaryMessage, []byte{0xEE, 0, 0}, "short"},
	{websocket.TextMessage, []byte("hello"), "text-message"},
}

// Harness is a server observed by the observer under test.
type Harness struct {
	DS  *datasole.Server
	URL string // http://127.0.0.1:port
}

// Start runs a datasole server observed by obs on a real loopback
// port. Only https://app.example may connect from a browser.
func Start(t testing.TB, obs datasole.Observer, setup ...func(*datasole.Server)) *Harness {
	t.Helper()
	ds, err := datasole.New(datasole.Options{
		Auth:           datasole.Anonymous,
		AllowedOrigins: []string{"https://app.example"},
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		RateLimit:      datasole.RateLimit{Disabled: true},
		Observer:       obs,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ds.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ds.HandleRPC("echo", func(c *datasole.Context, p json.RawMessage) (any, error) { return p, nil })
	ds.HandleRPC("fail", func(c *datasole.Context, _ json.RawMessage) (any, error) {
		return nil, datasole.Errorf("boom")
	})
	ds.On("ping", func(*datasole.Context, json.RawMessage) {})
	for _, f := range setup {
		f(ds)
	}
	hs := httptest.NewServer(ds.Handler())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ds.Close(ctx)
		hs.Close()
	})
	return &Harness{DS: ds, URL: hs.URL}
}

// Run drives h through the scripted workload and returns once every
// connection has ended and the server has shut down, so all measurements
// are in. connections reports the observer's open-connection gauge.
func Run(t testing.TB, h *Harness, connections func() float64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var received atomic.Int32
	cs := make([]*client.Client, Clients)
	for i := range cs {
		c, err := client.Dial(ctx, h.URL, client.Options{PingInterval: -1, NoReconnect: true,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		c.On("news", func(json.RawMessage) { received.Add(1) })
		cs[i] = c
	}
	Eventually(t, "every client to be counted as connected", func() bool { return connections() == Clients })

	for i := range OKCalls {
		if _, err := cs[0].CallRaw(ctx, "echo", i); err != nil {
			t.Fatalf("echo: %v", err)
		}
	}
	for range FailedCalls {
		if _, err := cs[1].CallRaw(ctx, "fail", nil); err == nil {
			t.Fatal("fail succeeded")
		}
	}
	for i := range UnknownCalls {
		if _, err := cs[2].CallRaw(ctx, fmt.Sprintf("made-up-%d", i), nil); err == nil {
			t.Fatal("an unknown method succeeded")
		}
	}
	for range Events {
		if err := cs[0].Emit(ctx, "ping", nil); err != nil {
			t.Fatalf("emit: %v", err)
		}
	}
	if err := h.DS.Broadcast("news", "hello"); err != nil {
		t.Fatalf("broadcast: %v", err)
	}
	Eventually(t, "every client to receive the broadcast", func() bool { return received.Load() == Clients })

	u := "ws" + strings.TrimPrefix(h.URL, "http") + "/__ds"
	if _, resp, err := websocket.DefaultDialer.Dial(u, http.Header{"Origin": {"https://evil.example"}}); err == nil ||
		resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("upgrade from a foreign origin: %v %v", resp, err)
	}

	raw, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatalf("raw dial: %v", err)
	}
	raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	for _, g := range Garbage {
		if err := raw.WriteMessage(g.Kind, g.Data); err != nil {
			t.Fatalf("raw send: %v", err)
		}
		_, msg, err := raw.ReadMessage()
		if err != nil {
			t.Fatalf("no answer to %q: %v", g.Data, err)
		}
		if f, err := protocol.Decode(msg); err != nil || f.Opcode != protocol.Error {
			t.Fatalf("answer to %q: %v %v", g.Data, f.Opcode, err)
		}
	}
	raw.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	raw.Close()

	for _, c := range cs {
		c.Close()
	}
	Eventually(t, "every connection to end", func() bool { return connections() == 0 })
	if err := h.DS.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// Eventually polls cond until it holds or 5 s pass.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
