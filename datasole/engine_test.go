package datasole_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/protocol"
	"github.com/gorilla/websocket"
)

// A connection whose call waits for a busy executor is paused: the server
// does not read its pongs meanwhile, and must not take that for silence.
func TestABusyExecutorDoesNotGetHealthyConnectionsClosed(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	ts := startServer(t, datasole.Options{MaxHandlers: 1, HeartbeatInterval: 20 * time.Millisecond}, func(ds *datasole.Server) {
		ds.HandleRPC("hold", func(c *datasole.Context, _ json.RawMessage) (any, error) {
			started <- struct{}{}
			<-release
			return "held", nil
		})
		ds.HandleRPC("quick", func(c *datasole.Context, _ json.RawMessage) (any, error) { return "quick", nil })
	})
	holder := dialRaw(t, ts.url, nil)
	holder.ws.SetPingHandler(func(d string) error {
		return holder.ws.WriteControl(websocket.PongMessage, []byte(d), time.Now().Add(time.Second))
	})
	go func() { // gorilla answers pings only while reading
		for {
			if _, _, err := holder.ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	holder.sendFrame(protocol.RPCReq, 1, `{"method":"hold"}`)
	<-started // the only executor slot is taken

	waiter := dialRaw(t, ts.url, nil)
	pings := make(chan struct{}, 64)
	waiter.ws.SetPingHandler(func(d string) error {
		pings <- struct{}{}
		return waiter.ws.WriteControl(websocket.PongMessage, []byte(d), time.Now().Add(time.Second))
	})
	replies := make(chan protocol.Frame, 2)
	go func() {
		for {
			_, msg, err := waiter.ws.ReadMessage()
			if err != nil {
				close(replies)
				return
			}
			if f, err := protocol.Decode(msg); err == nil && f.Opcode == protocol.RPCRes {
				replies <- f
			}
		}
	}()
	// Both calls wait for the slot; once one waits, the connection pauses.
	waiter.sendFrame(protocol.RPCReq, 2, `{"method":"quick"}`)
	waiter.sendFrame(protocol.RPCReq, 3, `{"method":"quick"}`)
	// Ten heartbeat intervals, five times the two after which a silent peer
	// is closed, counted in pings the paused connection received.
	for i := range 10 {
		select {
		case <-pings:
		case _, ok := <-replies:
			if !ok {
				t.Fatalf("the waiting connection was closed after %d pings", i)
			}
			t.Fatal("the call ran although the only slot was taken")
		case <-time.After(5 * time.Second):
			t.Fatal("no ping")
		}
	}
	close(release)
	for range 2 {
		select {
		case f, ok := <-replies:
			if !ok || f.CorrelationID < 2 {
				t.Fatalf("reply %v %v", f, ok)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a waiting call never ran")
		}
	}
	if n := ts.ds.Snapshot().Closes["heartbeat"]; n != 0 {
		t.Fatalf("%d connections closed by the heartbeat", n)
	}
}

// Messages are charged on their raw bytes before anything is inflated or
// parsed; over budget they are refused (an RPC_REQ gets its RPC_RES) and a
// peer that keeps at it is closed with 1008.
func TestRawBudgetRefusesBeforeParsing(t *testing.T) {
	closes := closeWatcher{ch: make(chan string, 1)}
	ts := startServer(t, datasole.Options{Observer: closes, RateLimit: datasole.RateLimit{
		RawMessages: datasole.Rule{Limit: 3, Window: time.Hour},
		CloseAfter:  5,
	}}, func(ds *datasole.Server) {
		ds.HandleRPC("echo", func(_ *datasole.Context, p json.RawMessage) (any, error) { return p, nil })
	})
	r := dialRaw(t, ts.url, nil)
	for i := 1; i <= 3; i++ {
		r.sendFrame(protocol.RPCReq, uint32(i), `{"method":"echo","params":1}`)
		if f := r.next(protocol.RPCRes); f.CorrelationID != uint32(i) || !strings.Contains(string(f.Payload), `"result":1`) {
			t.Fatalf("call %d within budget: %s", i, f.Payload)
		}
	}
	r.sendFrame(protocol.RPCReq, 4, `{"method":"echo","params":1}`)
	f := r.next(protocol.RPCRes)
	res := decodeJSON[protocol.RPCResponse](t, f.Payload)
	if f.CorrelationID != 4 || res.Error == nil || res.Error.Code != protocol.CodeRateLimited {
		t.Fatalf("over budget: id %d %s", f.CorrelationID, f.Payload)
	}
	if body := decodeJSON[protocol.ErrorBody](t, r.next(protocol.Error).Payload); body.Code != "rate-limited" || body.RetryAfter <= 0 {
		t.Fatalf("ERROR frame %+v", body)
	}
	// Garbage is refused unread too: no decode error, a rate-limit refusal.
	r.send([]byte{0xff, 0xff})
	if body := decodeJSON[protocol.ErrorBody](t, r.next(protocol.Error).Payload); body.Code != "rate-limited" {
		t.Fatalf("garbage over budget: %+v", body)
	}
	for range 3 {
		r.send([]byte{0xff})
	}
	if code := r.closeCode(); code != datasole.ClosePolicyViolation {
		t.Fatalf("close code %d, want 1008", code)
	}
	if reason := <-closes.ch; reason != "abuse" {
		t.Fatalf("closed for %q, want abuse", reason)
	}
	snap := ts.ds.Snapshot()
	if snap.Closes["abuse"] != 1 || snap.RateLimited < 5 {
		t.Fatalf("not counted: closes %v, rate-limited %d", snap.Closes, snap.RateLimited)
	}
}

// A method name longer than any that can be registered is answered without
// looking it up and without echoing it; an oversized body correlationId is
// not echoed either.
func TestHugeMethodNamesAndCorrelationValuesAreNotEchoed(t *testing.T) {
	ts := rpcServer(t, datasole.Options{})
	r := dialRaw(t, ts.url, nil)
	huge := strings.Repeat("m", 400<<10)
	msg, _ := protocol.Encode(protocol.RPCReq, 9, []byte(`{"method":"`+huge+`","correlationId":"`+huge+`"}`))
	if len(msg) > 10<<10 {
		t.Fatalf("the request compresses to %d bytes", len(msg))
	}
	r.send(msg)
	f := r.next(protocol.RPCRes)
	if f.CorrelationID != 9 || len(f.Payload) > 200 {
		t.Fatalf("reply of %d bytes: %.200s", len(f.Payload), f.Payload)
	}
	if res := decodeJSON[protocol.RPCResponse](t, f.Payload); res.Error == nil || res.Error.Code != protocol.CodeMethodNotFound || res.CorrelationID != nil {
		t.Fatalf("reply %s", f.Payload)
	}
}

// The calls of one BATCH obey MaxInFlight like calls sent one by one: the
// batch's remaining items wait while the connection is paused.
func TestABatchOfCallsRespectsMaxInFlight(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 8)
	var running, peak atomic.Int32
	ts := startServer(t, datasole.Options{MaxInFlight: 2}, func(ds *datasole.Server) {
		ds.HandleRPC("block", func(c *datasole.Context, _ json.RawMessage) (any, error) {
			n := running.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			started <- struct{}{}
			<-release
			running.Add(-1)
			return "ok", nil
		})
	})
	d := websocket.Dialer{Subprotocols: []string{protocol.SubprotocolBatch}}
	ws, _, err := d.Dial("ws"+ts.url[4:]+"/__ds", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	var items [][]byte
	for i := 1; i <= 6; i++ {
		b, _ := protocol.Encode(protocol.RPCReq, uint32(i), []byte(`{"method":"block"}`))
		items = append(items, b)
	}
	msg, _ := protocol.AppendBatch(nil, items)
	ws.WriteMessage(websocket.BinaryMessage, msg)
	<-started
	<-started
	for range 4 {
		release <- struct{}{} // one finishes, the next item of the batch starts
		<-started
	}
	close(release)
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := 0
	for got < 6 {
		_, m, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		n := 1
		if protocol.IsBatch(m) {
			n = 0
			protocol.SplitBatch(m, func([]byte) bool { n++; return true })
		}
		got += n
	}
	if p := peak.Load(); p != 2 {
		t.Fatalf("peak %d calls of the batch running, want MaxInFlight=2", p)
	}
}

// The two goroutine-read fallbacks serve like the poller: a WebSocket an
// adapter upgraded itself (ServeConn) and a socket that cannot be polled
// (in-process TLS). Each answers calls, pushes, pings, and closes with 1001
// on shutdown.
func TestFallbackReadersServeLikeThePoller(t *testing.T) {
	for _, tc := range []struct {
		name  string
		serve func(ds *datasole.Server) *httptest.Server
	}{
		{"ServeConn with the adapter's own gorilla connection", func(ds *datasole.Server) *httptest.Server {
			return httptest.NewServer(plainUpgrade(ds))
		}},
		{"a TLS socket read by a goroutine", func(ds *datasole.Server) *httptest.Server {
			return httptest.NewTLSServer(ds.Handler())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds, err := datasole.New(quietOptions(datasole.Options{HeartbeatInterval: 20 * time.Millisecond}))
			if err != nil {
				t.Fatal(err)
			}
			ds.Start(context.Background())
			ds.HandleRPC("echo", func(_ *datasole.Context, p json.RawMessage) (any, error) { return p, nil })
			hs := tc.serve(ds)
			defer hs.Close()
			d := websocket.Dialer{}
			if hs.TLS != nil {
				d.TLSClientConfig = hs.Client().Transport.(*http.Transport).TLSClientConfig
			}
			ws, _, err := d.Dial("ws"+strings.TrimPrefix(hs.URL, "http")+"/__ds", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			r := &rawConn{t: t, ws: ws}
			pings := make(chan struct{}, 16)
			ws.SetPingHandler(func(d string) error {
				pings <- struct{}{}
				return ws.WriteControl(websocket.PongMessage, []byte(d), time.Now().Add(time.Second))
			})
			r.sendFrame(protocol.RPCReq, 7, `{"method":"echo","params":[1,2]}`)
			if f := r.next(protocol.RPCRes); f.CorrelationID != 7 || string(f.Payload) != `{"result":[1,2]}` {
				t.Fatalf("reply %d %s", f.CorrelationID, f.Payload)
			}
			ds.Broadcast("tick", 1)
			r.next(protocol.EventS2C)
			// The client reads from here on, answering pings: it stays
			// through several heartbeat intervals, then gets 1001.
			closeCode := make(chan int, 1)
			go func() {
				for {
					if _, _, err := ws.ReadMessage(); err != nil {
						code := 0
						if ce, ok := err.(*websocket.CloseError); ok {
							code = ce.Code
						}
						closeCode <- code
						return
					}
				}
			}()
			for i := range 6 {
				select {
				case <-pings:
				case code := <-closeCode:
					t.Fatalf("closed with %d after %d pings", code, i)
				case <-time.After(5 * time.Second):
					t.Fatal("no heartbeat ping")
				}
			}
			closed := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				closed <- ds.Close(ctx)
			}()
			if code := <-closeCode; code != datasole.CloseGoingAway {
				t.Fatalf("close code %d, want 1001", code)
			}
			if err := <-closed; err != nil {
				t.Fatalf("Close: %v", err)
			}
		})
	}
}

// A lone request is served by the goroutine that polled it; a handler that
// blocks there must not stop the server from reading other connections.
func TestABlockedHandlerDoesNotStopPolling(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	ts := startServer(t, datasole.Options{}, func(ds *datasole.Server) {
		ds.HandleRPC("block", func(c *datasole.Context, _ json.RawMessage) (any, error) {
			close(started)
			<-release
			return "released", nil
		})
		ds.On("block", func(c *datasole.Context, _ json.RawMessage) { <-release })
		ds.HandleRPC("quick", func(c *datasole.Context, _ json.RawMessage) (any, error) { return "quick", nil })
	})
	defer close(release)
	a := dialRaw(t, ts.url, nil)
	a.sendFrame(protocol.RPCReq, 1, `{"method":"block"}`)
	<-started
	ev := dialRaw(t, ts.url, nil)
	ev.sendFrame(protocol.EventC2S, 0, `{"event":"block"}`) // an event handler blocking its reader
	for i := range 20 {
		b := dialRaw(t, ts.url, nil)
		b.sendFrame(protocol.RPCReq, uint32(i+2), `{"method":"quick"}`)
		if f := b.next(protocol.RPCRes); string(f.Payload) != `{"result":"quick"}` {
			t.Fatalf("reply %s", f.Payload)
		}
	}
}

// closeWatcher reports the reason of every connection close, after the
// server has counted it.
type closeWatcher struct {
	datasole.NopObserver
	ch chan string
}

func (w closeWatcher) ConnClosed(reason string, _ int) { w.ch <- reason }

// Many calls arriving faster than MaxInFlight lets them run keep their
// order across pauses: bytes read before a pause come before bytes read
// after it, and the rest of a BATCH paused midway comes before the next
// message — every call is answered once.
func TestPausesKeepEveryCallAcrossChunksAndBatches(t *testing.T) {
	ts := startServer(t, datasole.Options{MaxInFlight: 4, RateLimit: datasole.RateLimit{Disabled: true}}, func(ds *datasole.Server) {
		ds.HandleRPC("echo", func(_ *datasole.Context, p json.RawMessage) (any, error) { return p, nil })
	})
	for _, batching := range []bool{false, true} {
		t.Run(map[bool]string{false: "single frames", true: "BATCH messages"}[batching], func(t *testing.T) {
			d := websocket.Dialer{}
			if batching {
				d.Subprotocols = []string{protocol.SubprotocolBatch}
			}
			ws, _, err := d.Dial("ws"+ts.url[4:]+"/__ds", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			const calls = 600
			var wire [][]byte
			id := uint32(0)
			for len(wire) == 0 || id < calls {
				var items [][]byte
				for range 50 {
					id++
					b, _ := protocol.Encode(protocol.RPCReq, id, fmt.Appendf(nil, `{"method":"echo","params":%d}`, id))
					items = append(items, b)
				}
				if batching {
					m, _ := protocol.AppendBatch(nil, items)
					wire = append(wire, m)
				} else {
					wire = append(wire, items...)
				}
			}
			go func() {
				for _, m := range wire {
					if ws.WriteMessage(websocket.BinaryMessage, m) != nil {
						return
					}
				}
			}()
			ws.SetReadDeadline(time.Now().Add(10 * time.Second))
			seen := map[uint32]bool{}
			for len(seen) < calls {
				_, m, err := ws.ReadMessage()
				if err != nil {
					t.Fatalf("after %d answers: %v", len(seen), err)
				}
				frames := [][]byte{m}
				if protocol.IsBatch(m) {
					frames = nil
					protocol.SplitBatch(m, func(it []byte) bool { frames = append(frames, bytes.Clone(it)); return true })
				}
				for _, fm := range frames {
					f, err := protocol.Decode(fm)
					if err != nil || f.Opcode != protocol.RPCRes {
						t.Fatalf("%v %v", f.Opcode, err)
					}
					if want := fmt.Sprintf(`{"result":%d}`, f.CorrelationID); string(f.Payload) != want || seen[f.CorrelationID] {
						t.Fatalf("call %d: %s, answered before: %v", f.CorrelationID, f.Payload, seen[f.CorrelationID])
					}
					seen[f.CorrelationID] = true
				}
			}
		})
	}
}
