package client_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole/client"
	"github.com/datasole/datasole-go/datasole/protocol"
	"github.com/gorilla/websocket"
)

// scriptedServer is a bare protocol v1 peer that sends hand-made frames, to
// test the client against servers other than ours.
type scriptedServer struct {
	*httptest.Server
	mu     sync.Mutex
	ws     *websocket.Conn
	frames chan protocol.Frame // frames the client sent
	ready  chan struct{}       // closed once ws is set
}

func newScriptedServer(t *testing.T, onConnect func(s *scriptedServer)) *scriptedServer {
	s := &scriptedServer{frames: make(chan protocol.Frame, 64), ready: make(chan struct{})}
	up := websocket.Upgrader{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		s.mu.Lock()
		s.ws = ws
		s.mu.Unlock()
		close(s.ready)
		if onConnect != nil {
			onConnect(s)
		}
		for {
			_, msg, err := ws.ReadMessage()
			if err != nil {
				return
			}
			f, err := protocol.Decode(msg)
			if err == nil {
				f.Payload = append([]byte(nil), f.Payload...)
				s.frames <- f
			}
		}
	}))
	t.Cleanup(func() {
		s.mu.Lock()
		if s.ws != nil {
			s.ws.Close()
		}
		s.mu.Unlock()
		s.Close()
	})
	return s
}

func (s *scriptedServer) send(t *testing.T, op protocol.Opcode, id uint32, payload string) {
	t.Helper()
	msg, _ := protocol.Encode(op, id, []byte(payload))
	<-s.ready
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ws.WriteMessage(websocket.BinaryMessage, msg); err != nil {
		t.Fatal(err)
	}
}

func (s *scriptedServer) expect(t *testing.T, op protocol.Opcode) protocol.Frame {
	t.Helper()
	for {
		select {
		case f := <-s.frames:
			if f.Opcode == op {
				return f
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("client never sent %v", op)
		}
	}
}

func waitValue(t *testing.T, c *client.Client, key, want string, version uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, v, _ := c.StateRaw(key)
		if string(got) == want && v == version {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("client holds v%d %s, want v%d %s", v, got, version, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestStateStoreAppliesSnapshotsAndPatchesAndResyncsOnAGap(t *testing.T) {
	srv := newScriptedServer(t, nil)
	c, err := client.Dial(context.Background(), srv.URL, client.Options{NoReconnect: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var updates []string
	var mu sync.Mutex
	c.SubscribeStateRaw("dash", func(v json.RawMessage, _ uint64) { mu.Lock(); updates = append(updates, string(v)); mu.Unlock() })

	srv.send(t, protocol.StateSnapshot, 0, `{"key":"dash","data":{"n":0},"version":1}`)
	waitValue(t, c, "dash", `{"n":0}`, 1)
	srv.send(t, protocol.StatePatch, 0, `{"key":"dash","patches":[{"op":"replace","path":"/n","value":1}],"version":2}`)
	waitValue(t, c, "dash", `{"n":1}`, 2)

	// Version 3 never arrives: the patch for 4 must not be applied; the
	// client asks for a snapshot with the $ds.resync extension.
	srv.send(t, protocol.StatePatch, 0, `{"key":"dash","patches":[{"op":"replace","path":"/n","value":4}],"version":4}`)
	req := srv.expect(t, protocol.RPCReq)
	if !strings.Contains(string(req.Payload), `"method":"$ds.resync"`) || !strings.Contains(string(req.Payload), `"keys":["dash"]`) {
		t.Fatalf("resync request %s", req.Payload)
	}
	if got, v, _ := c.StateRaw("dash"); string(got) != `{"n":1}` || v != 2 {
		t.Fatalf("a patch across a gap was applied: v%d %s", v, got)
	}
	srv.send(t, protocol.StateSnapshot, 0, `{"key":"dash","data":{"n":4},"version":4}`)
	srv.send(t, protocol.RPCRes, req.CorrelationID, `{"result":{"keys":1}}`)
	waitValue(t, c, "dash", `{"n":4}`, 4)
	// A batched patch says which version it applies to.
	srv.send(t, protocol.StatePatch, 0, `{"key":"dash","patches":[{"op":"replace","path":"/n","value":5},{"op":"replace","path":"/n","value":6}],"version":6,"base":4}`)
	waitValue(t, c, "dash", `{"n":6}`, 6)

	mu.Lock()
	defer mu.Unlock()
	want := []string{`{"n":0}`, `{"n":1}`, `{"n":4}`, `{"n":6}`}
	if strings.Join(updates, " ") != strings.Join(want, " ") {
		t.Fatalf("subscriber saw %v, want %v", updates, want)
	}
}

func TestStateStoreWorksWithAnUnversionedV1Server(t *testing.T) {
	srv := newScriptedServer(t, nil)
	c, err := client.Dial(context.Background(), srv.URL, client.Options{NoReconnect: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// v1 servers never snapshot and never version: patches start from nothing.
	srv.send(t, protocol.StatePatch, 0, `{"key":"dash","patches":[{"op":"add","path":"/visitors","value":1}]}`)
	waitValue(t, c, "dash", `{"visitors":1}`, 0)
	srv.send(t, protocol.StatePatch, 0, `{"key":"dash","patches":[{"op":"replace","path":"/visitors","value":2}]}`)
	waitValue(t, c, "dash", `{"visitors":2}`, 0)
}

func TestErrorFrameFailsTheMatchingCallAtOnce(t *testing.T) {
	srv := newScriptedServer(t, nil)
	c, err := client.Dial(context.Background(), srv.URL, client.Options{NoReconnect: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan error, 1)
	go func() { _, err := c.CallRaw(context.Background(), "add", nil); done <- err }()
	req := srv.expect(t, protocol.RPCReq)
	srv.send(t, protocol.Error, req.CorrelationID, `{"message":"Rate limit exceeded","retryAfter":59896}`)
	select {
	case err := <-done:
		var se *client.ServerError
		if !asServerError(err, &se) || se.RetryAfter != 59896*time.Millisecond || !isRateLimited(err) {
			t.Fatalf("got %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the call waited instead of failing on ERROR")
	}
}
