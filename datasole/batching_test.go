package datasole_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/client"
	"github.com/datasole/datasole-go/datasole/protocol"
	"github.com/gorilla/websocket"
)

// A stock v1 client offers no subprotocol: the server selects none and
// sends exactly the v1 bytes, one frame per WebSocket message, however many
// frames are queued at once.
func TestV1ClientBytesAreUnchanged(t *testing.T) {
	ts := rpcServer(t, datasole.Options{RateLimit: datasole.RateLimit{Disabled: true}})
	ws, resp, err := websocket.DefaultDialer.Dial("ws"+ts.url[4:]+"/__ds", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if p := resp.Header.Get("Sec-Websocket-Protocol"); p != "" {
		t.Fatalf("the server selected subprotocol %q for a client that offered none", p)
	}
	req := func(id int) []byte {
		b, _ := protocol.Encode(protocol.RPCReq, uint32(id), fmt.Appendf(nil, `{"method":"echo","params":%d,"correlationId":%d}`, id, id))
		return b
	}
	// 50 calls in one go: their replies become ready together.
	for i := 1; i <= 50; i++ {
		ws.WriteMessage(websocket.BinaryMessage, req(i))
	}
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := map[uint32][]byte{}
	for len(got) < 50 {
		mt, msg, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if mt != websocket.BinaryMessage || msg[0] == byte(protocol.Batch) {
			t.Fatalf("message type %d, first byte %#x: not a v1 frame", mt, msg[0])
		}
		f, err := protocol.Decode(msg)
		if err != nil || f.Opcode != protocol.RPCRes || len(msg) != protocol.HeaderSize+len(f.Payload) {
			t.Fatalf("not exactly one v1 frame per message: %v %q", err, msg)
		}
		got[f.CorrelationID] = msg
	}
	// The exact bytes of one reply, as protocol v1 spells them.
	want := []byte("\x02\x00\x00\x00\x07\x00\x00\x00\x1e" + `{"correlationId":7,"result":7}`)
	if !bytes.Equal(got[7], want) {
		t.Fatalf("reply bytes\n got %q\nwant %q", got[7], want)
	}
}

// A client offering datasole.batch.v1 gets it, receives several frames per
// message when several are ready, and may send BATCH messages itself.
func TestBatchingIsNegotiatedAndUsedBothWays(t *testing.T) {
	ts := rpcServer(t, datasole.Options{RateLimit: datasole.RateLimit{Disabled: true}})
	d := websocket.Dialer{Subprotocols: []string{protocol.SubprotocolV1, protocol.SubprotocolBatch, protocol.SubprotocolTokenPrefix + "secret"}}
	ws, resp, err := d.Dial("ws"+ts.url[4:]+"/__ds", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if p := resp.Header.Get("Sec-Websocket-Protocol"); p != protocol.SubprotocolBatch {
		t.Fatalf("selected %q, want %s (and never the token)", p, protocol.SubprotocolBatch)
	}
	// One BATCH of 20 calls.
	var items [][]byte
	for i := 1; i <= 20; i++ {
		b, _ := protocol.Encode(protocol.RPCReq, uint32(i), fmt.Appendf(nil, `{"method":"echo","params":%d}`, i))
		items = append(items, b)
	}
	msg, err := protocol.AppendBatch(nil, items)
	if err != nil {
		t.Fatal(err)
	}
	ws.WriteMessage(websocket.BinaryMessage, msg)
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := map[uint32]string{}
	for len(got) < 20 {
		_, m, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		frames := [][]byte{m}
		if protocol.IsBatch(m) {
			frames = nil
			if err := protocol.SplitBatch(m, func(it []byte) bool { frames = append(frames, bytes.Clone(it)); return true }); err != nil {
				t.Fatal(err)
			}
		}
		for _, fm := range frames {
			f, err := protocol.Decode(fm)
			if err != nil || f.Opcode != protocol.RPCRes {
				t.Fatalf("item: %v %q", err, fm)
			}
			got[f.CorrelationID] = string(f.Payload)
		}
	}
	if got[3] != `{"result":3}` {
		t.Fatalf("reply to call 3: %s", got[3])
	}
	// A malformed BATCH is refused as a whole with bad-batch.
	ws.WriteMessage(websocket.BinaryMessage, append(protocol.AppendBatchHeader(nil, 1, 3), 2, 0x42, 0))
	for {
		_, m, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if f, err := protocol.Decode(m); err == nil && f.Opcode == protocol.Error {
			if body := decodeJSON[protocol.ErrorBody](t, f.Payload); body.Code != "bad-batch" {
				t.Fatalf("error %+v", body)
			}
			break
		}
	}
}

// Our Go client batches by default and keeps working against a server
// that does not (here: one that never selects a subprotocol, as any v1
// server), and with batching turned off.
func TestGoClientWithAndWithoutBatching(t *testing.T) {
	ts := rpcServer(t, datasole.Options{RateLimit: datasole.RateLimit{Disabled: true}})
	plainV1 := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Del("Sec-Websocket-Protocol") // as if the server knew no subprotocol
		ts.ds.Handler().ServeHTTP(w, r)
	})
	v1 := startHTTP(t, plainV1)
	for _, tc := range []struct {
		name     string
		url      string
		opts     client.Options
		batching bool
	}{
		{"default against this server", ts.url, client.Options{}, true},
		{"NoBatching", ts.url, client.Options{NoBatching: true}, false},
		{"against a plain v1 server", v1, client.Options{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, tc.url, tc.opts)
			if c.Batching() != tc.batching {
				t.Fatalf("Batching() = %v, want %v", c.Batching(), tc.batching)
			}
			var wg sync.WaitGroup
			errs := make(chan error, 200)
			for i := range 200 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					raw, err := c.CallRaw(context.Background(), "echo", i)
					if err == nil && string(raw) != fmt.Sprint(i) {
						err = fmt.Errorf("echo %d = %s", i, raw)
					}
					if err != nil {
						errs <- err
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			got := make(chan int, 100)
			c.On("tick", func(d json.RawMessage) {
				var n int
				json.Unmarshal(d, &n)
				got <- n
			})
			c.CallRaw(context.Background(), "echo", 0) // attached and listening
			for i := range 100 {
				ts.ds.Send(datasole.ToAll(), "tick", i)
			}
			for i := range 100 {
				select {
				case n := <-got:
					if n != i {
						t.Fatalf("event %d arrived as %d: out of order", i, n)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("event %d never arrived", i)
				}
			}
		})
	}
}

// startHTTP serves h on a loopback port until the test ends.
func startHTTP(t *testing.T, h http.Handler) string {
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	return hs.URL
}
