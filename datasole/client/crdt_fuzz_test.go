package client

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"

	"github.com/datasole/datasole-go/datasole/crdt"
	"github.com/datasole/datasole-go/datasole/protocol"
)

// FuzzCRDTFrames feeds a client with pending ops of every type a
// CRDT_STATE and an ERROR answering one of its ops, both from the server.
// Whatever they hold, the client must not fail, its replicas must stay
// within their size bounds, and the outbox must only shrink.
func FuzzCRDTFrames(f *testing.F) {
	f.Add([]byte(`{"key":"m","state":{"type":"lww-map","value":{"a":1},"metadata":{"type":"lww-map","nodeId":"s","timestamp":1,"version":1,"fields":{"a":{"timestamp":9007199254740992,"nodeId":"zz"}}}}}`),
		[]byte(`{"message":"crdt: too large","code":"crdt-too-large"}`))
	f.Add([]byte(`{"key":"k","state":{"type":"pn-counter","value":3,"metadata":{"type":"pn-counter","nodeId":"s","timestamp":1,"version":1,"vector":{"increments":{"a":3},"decrements":{}},"seqs":{"a":2}}}}`),
		[]byte(`{"message":"Rate limit exceeded","code":"rate-limited","retryAfter":1}`))
	f.Add([]byte(`{"key":"r","state":{"type":"lww-register","value":{"__proto__":1},"metadata":{"type":"lww-register","nodeId":"s","timestamp":1,"version":1}}}`),
		[]byte(`{"message":"crdt: invalid op","code":"crdt-invalid"}`))
	f.Add([]byte(`{"key":"m","state":{"type":"pn-counter"}}`), []byte(`[]`))
	f.Fuzz(func(t *testing.T, state, refusal []byte) {
		c := newClient("ws://127.0.0.1:1/__ds", Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		ctx := context.Background()
		k, _ := c.Counter("k")
		r, _ := c.Register("r")
		m, _ := c.Map("m")
		// Not connected: the ops wait in the outbox.
		for _, err := range []error{k.Increment(ctx, 2), k.Increment(ctx, 3), r.Set(ctx, "v"), m.Set(ctx, "a", 1), m.Delete(ctx, "b")} {
			if err != nil {
				t.Fatal(err)
			}
		}
		pending := c.Pending()
		c.handle(protocol.Frame{Opcode: protocol.CRDTState, Payload: state})
		for _, key := range []string{"k", "r", "m"} {
			c.crdts.mu.Lock()
			var id uint32
			if ob := c.crdts.keys[key].outbox; len(ob) > 0 {
				id = ob[0].id
			}
			c.crdts.mu.Unlock()
			c.handle(protocol.Frame{Opcode: protocol.Error, CorrelationID: id, Payload: refusal})
		}
		if c.Pending() > pending {
			t.Fatalf("outbox grew from %d to %d", pending, c.Pending())
		}
		for _, key := range []string{"k", "r", "m"} {
			cr := c.crdts.keys[key].c
			real, err := json.Marshal(cr.State())
			if err != nil {
				t.Fatal(err)
			}
			if len(real) > cr.Size() || len(real) > crdt.MaxStateCeiling {
				t.Fatalf("%s: %d bytes, bound %d", key, len(real), cr.Size())
			}
		}
	})
}
