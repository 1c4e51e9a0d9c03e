package datasole_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/client"
	"github.com/datasole/datasole-go/datasole/protocol"
	"github.com/gorilla/websocket"
)

type testServer struct {
	ds  *datasole.Server
	hs  *httptest.Server
	url string // http://127.0.0.1:port
}

func quietOptions(o datasole.Options) datasole.Options {
	if o.Logger == nil {
		o.Logger = discardLogger()
	}
	if o.Auth == nil {
		o.Auth = datasole.Anonymous
	}
	return o
}

// startServer runs a datasole server on a real loopback port.
func startServer(t *testing.T, o datasole.Options, setup func(*datasole.Server)) *testServer {
	t.Helper()
	ds, err := datasole.New(quietOptions(o))
	if err != nil {
		t.Fatal(err)
	}
	if err := ds.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(ds)
	}
	hs := httptest.NewServer(ds.Handler())
	ts := &testServer{ds: ds, hs: hs, url: hs.URL}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ds.Close(ctx)
		hs.Close()
	})
	return ts
}

func dial(t *testing.T, url string, o client.Options) *client.Client {
	t.Helper()
	if o.Logger == nil {
		o.Logger = discardLogger()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, url, o)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rawConn is a bare WebSocket for sending hand-made bytes.
type rawConn struct {
	t  *testing.T
	ws *websocket.Conn
}

func dialRaw(t *testing.T, url string, hdr http.Header) *rawConn {
	t.Helper()
	return dialRawHeader(t, url, "/__ds", hdr)
}

// dialRawPath dials a bare WebSocket at path (with a query, say).
func dialRawPath(t *testing.T, url, path string) *rawConn {
	t.Helper()
	return dialRawHeader(t, url, path, nil)
}

func dialRawHeader(t *testing.T, url, path string, hdr http.Header) *rawConn {
	t.Helper()
	u := "ws" + strings.TrimPrefix(url, "http") + path
	ws, _, err := websocket.DefaultDialer.Dial(u, hdr)
	if err != nil {
		t.Fatalf("raw dial: %v", err)
	}
	t.Cleanup(func() { ws.Close() })
	return &rawConn{t: t, ws: ws}
}

func (r *rawConn) send(b []byte) {
	r.t.Helper()
	if err := r.ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
		r.t.Fatalf("raw send: %v", err)
	}
}

func (r *rawConn) sendFrame(op protocol.Opcode, id uint32, payload string) {
	r.t.Helper()
	msg, err := protocol.Encode(op, id, []byte(payload))
	if err != nil {
		r.t.Fatal(err)
	}
	r.send(msg)
}

// next reads frames until one with opcode op arrives.
func (r *rawConn) next(op protocol.Opcode) protocol.Frame {
	r.t.Helper()
	r.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, msg, err := r.ws.ReadMessage()
		if err != nil {
			r.t.Fatalf("raw read waiting for %v: %v", op, err)
		}
		f, err := protocol.Decode(msg)
		if err != nil {
			r.t.Fatalf("server sent undecodable message: %v", err)
		}
		if f.Opcode == op {
			f.Payload = append([]byte(nil), f.Payload...)
			return f
		}
	}
}

// closeCode reads until the server closes and returns the close code.
func (r *rawConn) closeCode() int {
	r.t.Helper()
	r.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := r.ws.ReadMessage()
		if err != nil {
			if ce, ok := err.(*websocket.CloseError); ok {
				return ce.Code
			}
			r.t.Fatalf("expected a close frame, got %v", err)
		}
	}
}

func decodeJSON[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

// eventually polls cond until it holds or 5 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
