package datasole_test

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/binary"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/client"
	"github.com/datasole/datasole-go/datasole/protocol"
	"github.com/gorilla/websocket"
)

func zlibOf(b []byte) []byte {
	var buf bytes.Buffer
	w, _ := zlib.NewWriterLevel(&buf, zlib.BestCompression)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// bomb is 300 KB of zlib that would inflate to 300 MB: a frame header
// (RPC_REQ) followed by zeros. Made once with compress/zlib at level 9.
func bomb(t *testing.T) []byte {
	b, err := os.ReadFile("testdata/bomb-300MB.zlib")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBadInputGetsAnErrorAndHarmsNoOne(t *testing.T) {
	ts := rpcServer(t, datasole.Options{})
	bystander := dial(t, ts.url, client.Options{})
	header := func(op byte, id, n uint32) []byte {
		b := []byte{op}
		b = binary.BigEndian.AppendUint32(b, id)
		return binary.BigEndian.AppendUint32(b, n)
	}
	b := bomb(t)
	if len(b) > 400<<10 {
		t.Fatalf("bomb is %d bytes", len(b))
	}
	cases := []struct {
		name  string
		msg   []byte
		class string
	}{
		{"a message shorter than a header", []byte{1, 0, 0}, "short"},
		{"a truncated payload", append(header(1, 1, 50), `{"method"`...), "truncated"},
		{"an unknown opcode", header(0x42, 0, 0), "unknown-opcode"},
		{"a declared payload over 1 MiB", header(1, 1, protocol.MaxPayload+1), "oversize"},
		{"0x78 followed by garbage", []byte{0x78, 0x01, 0xde, 0xad, 0xbe, 0xef}, "bad-zlib"},
		{"gzip instead of zlib", []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3}, "unknown-opcode"},
		{"a zlib stream holding a bad frame", zlibOf(header(0x0F, 0, 0)), "unknown-opcode"},
		{"a zlib bomb", b, "inflated-too-large"},
	}
	for _, tc := range cases {
		t.Run(tc.name+" is refused as "+tc.class, func(t *testing.T) {
			r := dialRaw(t, ts.url, nil)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			r.send(tc.msg)
			f := r.next(protocol.Error)
			runtime.ReadMemStats(&after)
			if body := decodeJSON[protocol.ErrorBody](t, f.Payload); body.Code != tc.class {
				t.Fatalf("error code %q, want %q (%s)", body.Code, tc.class, f.Payload)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
				t.Fatalf("refusing it allocated %d MB", grew>>20)
			}
			// The connection itself still works.
			r.sendFrame(protocol.Ping, 5, "")
			r.next(protocol.Pong)
		})
	}
	t.Run("a text message is refused", func(t *testing.T) {
		r := dialRaw(t, ts.url, nil)
		r.ws.WriteMessage(websocket.TextMessage, []byte(`{"method":"echo"}`))
		if body := decodeJSON[protocol.ErrorBody](t, r.next(protocol.Error).Payload); body.Code != "text-message" {
			t.Fatalf("got %+v", body)
		}
	})
	t.Run("invalid JSON in an event is refused", func(t *testing.T) {
		r := dialRaw(t, ts.url, nil)
		r.sendFrame(protocol.EventC2S, 0, `{"event":`)
		r.next(protocol.Error)
	})
	t.Run("a message over the size limit closes with 1009", func(t *testing.T) {
		r := dialRaw(t, ts.url, nil)
		r.ws.WriteMessage(websocket.BinaryMessage, make([]byte, protocol.MaxCompressed+4096))
		if code := r.closeCode(); code != websocket.CloseMessageTooBig {
			t.Fatalf("close code %d, want 1009", code)
		}
	})
	t.Run("a peer that keeps sending garbage is closed with 1008", func(t *testing.T) {
		// One frame at a time, each answered, so the test never writes
		// to a socket the server has already closed.
		r := dialRaw(t, ts.url, nil)
		r.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		for i := range 40 {
			r.send([]byte{0xff})
			_, msg, err := r.ws.ReadMessage()
			if ce, ok := err.(*websocket.CloseError); ok {
				if ce.Code != websocket.ClosePolicyViolation || i < 32 {
					t.Fatalf("closed with %d after %d frames, want 1008 after 33", ce.Code, i+1)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f, err := protocol.Decode(msg); err != nil || f.Opcode != protocol.Error {
				t.Fatalf("frame %d answered with %v %v", i+1, f.Opcode, err)
			}
		}
		t.Fatal("not closed after 40 malformed frames")
	})
	t.Run("the bystander was never disturbed", func(t *testing.T) {
		got, err := addRPC.Call(context.Background(), bystander, addParams{A: 1, B: 2})
		if err != nil || got.Sum != 3 || bystander.Connections() != 1 {
			t.Fatalf("bystander: %v %v, %d connections", got, err, bystander.Connections())
		}
	})
	if n := ts.ds.Snapshot().BadFrames; n < uint64(len(cases)+2) {
		t.Fatalf("bad frames counted %d", n)
	}
}
