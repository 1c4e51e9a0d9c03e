package client_test

import (
	"context"
	"encoding/json"
	"errors"
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
	"github.com/datasole/datasole-go/datasole/crdt"
	"github.com/datasole/datasole-go/datasole/protocol"
)

// crdtWatch collects what a client reports about its CRDTs.
type crdtWatch struct {
	changed    chan struct{}
	refused    chan *client.CRDTError
	serverErrs chan *client.ServerError
}

func newCRDTWatch() *crdtWatch {
	return &crdtWatch{
		changed:    make(chan struct{}, 256),
		refused:    make(chan *client.CRDTError, 16),
		serverErrs: make(chan *client.ServerError, 16),
	}
}

func (w *crdtWatch) onError(se *client.ServerError) { w.serverErrs <- se }

func (w *crdtWatch) attach(c *client.Client, keys ...string) {
	for _, k := range keys {
		c.OnCRDT(k, func() {
			select {
			case w.changed <- struct{}{}:
			default:
			}
		})
	}
	c.OnCRDTError(func(e *client.CRDTError) { w.refused <- e })
}

// until waits for cond, re-checking it on every CRDT change.
func (w *crdtWatch) until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for !cond() {
		select {
		case <-w.changed:
		case <-timeout:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func receive[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// opFrame decodes a CRDT_OP the client sent.
func opFrame(t *testing.T, f protocol.Frame) (string, crdt.Op) {
	t.Helper()
	var body struct {
		Key string  `json:"key"`
		Op  crdt.Op `json:"op"`
	}
	if err := json.Unmarshal(f.Payload, &body); err != nil {
		t.Fatal(err)
	}
	if f.CorrelationID == 0 {
		t.Fatal("a CRDT op went out without a correlation id")
	}
	return body.Key, body.Op
}

func stateFrame(t *testing.T, key string, s crdt.State) string {
	t.Helper()
	b, err := json.Marshal(protocol.CRDTStateBody{Key: key, State: mustJSON(t, s)})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustJSON(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCRDTOpRefusedByTheServerIsDroppedUndoneAndReported(t *testing.T) {
	ctx := context.Background()
	srv := newScriptedServer(t, nil)
	w := newCRDTWatch()
	c, err := client.Dial(ctx, srv.URL, client.Options{NoReconnect: true, OnError: w.onError})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m, _ := c.Map("profile")
	w.attach(c, "profile")

	// The server confirms the first write with its state.
	if err := m.Set(ctx, "a", 1); err != nil {
		t.Fatal(err)
	}
	_, first := opFrame(t, srv.expect(t, protocol.CRDTOp))
	server, _ := crdt.NewLWWMap("server", crdt.Limits{})
	if err := server.Apply(first); err != nil {
		t.Fatal(err)
	}
	srv.send(t, protocol.CRDTState, 0, stateFrame(t, "profile", server.State()))
	w.until(t, "the first write confirmed", func() bool { return c.Pending() == 0 })

	// It refuses the second and takes the third.
	m.Set(ctx, "b", strings.Repeat("x", 1000))
	m.Set(ctx, "c", 3)
	refusedFrame := srv.expect(t, protocol.CRDTOp)
	_, third := opFrame(t, srv.expect(t, protocol.CRDTOp))
	srv.send(t, protocol.Error, refusedFrame.CorrelationID, `{"message":"crdt: too large: state of 300000 bytes (262144 allowed)","code":"crdt-too-large"}`)

	e := receive(t, "the refusal", w.refused)
	if e.Key != "profile" || e.Op.Key != "b" || !errors.Is(e, crdt.ErrTooLarge) {
		t.Fatalf("refusal %v for %q %+v, want key profile field b matching crdt.ErrTooLarge", e, e.Key, e.Op)
	}
	var se *client.ServerError
	if !errors.As(e, &se) || se.Code != "crdt-too-large" {
		t.Fatalf("refusal does not carry the server's error: %v", e)
	}
	if got := receive(t, "OnError", w.serverErrs); got.CorrelationID != refusedFrame.CorrelationID {
		t.Fatalf("OnError got %+v", got)
	}
	if c.Pending() != 1 {
		t.Fatalf("%d ops pending, want only the third", c.Pending())
	}
	if got := mustJSON(t, m.Value()); string(got) != `{"a":1,"c":3}` {
		t.Fatalf("local map %s, want the refused field undone and the pending one kept", got)
	}
	if err := server.Apply(third); err != nil {
		t.Fatal(err)
	}
	srv.send(t, protocol.CRDTState, 0, stateFrame(t, "profile", server.State()))
	w.until(t, "the third write confirmed", func() bool { return c.Pending() == 0 })

	// An ERROR for no CRDT op is not taken for one.
	srv.send(t, protocol.Error, 7, `{"message":"something else","code":"bad-frame"}`)
	if got := receive(t, "OnError", w.serverErrs); got.CorrelationID != 7 {
		t.Fatalf("OnError got %+v", got)
	}
	if len(w.refused) != 0 {
		t.Fatal("an unrelated ERROR was reported as a CRDT refusal")
	}
}

func TestCRDTOpRateLimitedIsSentAgain(t *testing.T) {
	ctx := context.Background()
	srv := newScriptedServer(t, nil)
	w := newCRDTWatch()
	c, err := client.Dial(ctx, srv.URL, client.Options{NoReconnect: true, OnError: w.onError})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w.attach(c, "title")
	r, _ := c.Register("title")
	r.Set(ctx, "hello")
	f := srv.expect(t, protocol.CRDTOp)
	_, op := opFrame(t, f)
	srv.send(t, protocol.Error, f.CorrelationID, `{"message":"Rate limit exceeded","code":"rate-limited","retryAfter":20}`)
	again := srv.expect(t, protocol.CRDTOp)
	if _, op2 := opFrame(t, again); !equalOps(op, op2) || again.CorrelationID == f.CorrelationID {
		t.Fatalf("resent %+v as %d, want %+v under a new id", op2, again.CorrelationID, op)
	}
	if se := receive(t, "OnError", w.serverErrs); !errors.Is(se, datasole.ErrRateLimited) {
		t.Fatalf("OnError got %v", se)
	}
	if len(w.refused) != 0 || c.Pending() != 1 {
		t.Fatalf("a rate-limited op was dropped: %d refusals, %d pending", len(w.refused), c.Pending())
	}
	if v, _ := r.Value(); string(v) != `"hello"` {
		t.Fatalf("value %s", v)
	}
}

func equalOps(a, b crdt.Op) bool {
	return string(mustJSONNoT(a)) == string(mustJSONNoT(b))
}

func mustJSONNoT(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// A refused counter op is undone without touching the ops around it, and
// the next op continues the numbering.
func TestCRDTCounterRefusalKeepsTheOtherOps(t *testing.T) {
	ctx := context.Background()
	srv := newScriptedServer(t, nil)
	w := newCRDTWatch()
	c, err := client.Dial(ctx, srv.URL, client.Options{NoReconnect: true, OnError: w.onError})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w.attach(c, "votes")
	k, _ := c.Counter("votes")
	server, _ := crdt.NewPNCounter("server", crdt.Limits{})

	k.Increment(ctx, 1)
	_, op1 := opFrame(t, srv.expect(t, protocol.CRDTOp))
	server.Apply(op1)
	srv.send(t, protocol.CRDTState, 0, stateFrame(t, "votes", server.State()))
	w.until(t, "the first op confirmed", func() bool { return c.Pending() == 0 })

	k.Increment(ctx, 10)
	k.Increment(ctx, 100)
	refused := srv.expect(t, protocol.CRDTOp)
	_, op3 := opFrame(t, srv.expect(t, protocol.CRDTOp))
	srv.send(t, protocol.Error, refused.CorrelationID, `{"message":"crdt: invalid op","code":"crdt-invalid"}`)
	if e := receive(t, "the refusal", w.refused); !errors.Is(e, crdt.ErrInvalidOp) || e.Op.Seq != 2 {
		t.Fatalf("refusal %v of seq %d, want ErrInvalidOp of seq 2", e, e.Op.Seq)
	}
	if k.Value() != 101 || c.Pending() != 1 {
		t.Fatalf("value %d with %d pending, want 101 with 1", k.Value(), c.Pending())
	}
	if err := server.Apply(op3); err != nil {
		t.Fatal(err)
	}
	srv.send(t, protocol.CRDTState, 0, stateFrame(t, "votes", server.State()))
	w.until(t, "the third op confirmed", func() bool { return c.Pending() == 0 })
	k.Increment(ctx, 1000)
	_, op4 := opFrame(t, srv.expect(t, protocol.CRDTOp))
	if err := server.Apply(op4); err != nil {
		t.Fatalf("the next op (seq %d): %v", op4.Seq, err)
	}
	if k.Value() != 1101 || server.Value() != 1101 {
		t.Fatalf("client %d, server %d, want 1101", k.Value(), server.Value())
	}
}

func TestCRDTLocalRefusalsReturnAtOnce(t *testing.T) {
	ctx := context.Background()
	srv := newScriptedServer(t, nil)
	c, err := client.Dial(ctx, srv.URL, client.Options{NoReconnect: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m, _ := c.Map("profile")
	if err := m.Set(ctx, "big", strings.Repeat("x", crdt.DefaultMaxValueBytes)); !errors.Is(err, crdt.ErrTooLarge) {
		t.Errorf("a value past the limit: error %v, want crdt.ErrTooLarge", err)
	}
	if err := m.Set(ctx, "evil", map[string]any{"__proto__": map[string]bool{"admin": true}}); !errors.Is(err, crdt.ErrForbiddenValue) {
		t.Errorf("a forbidden member: error %v, want crdt.ErrForbiddenValue", err)
	}
	if c.Pending() != 0 || len(m.Value()) != 0 {
		t.Fatalf("refused writes were kept: %d pending, %v", c.Pending(), m.Value())
	}
	// Nothing was sent: the next frame the server sees is the next good op.
	m.Set(ctx, "ok", 1)
	if _, op := opFrame(t, srv.expect(t, protocol.CRDTOp)); op.Key != "ok" {
		t.Fatalf("first op sent is for %q", op.Key)
	}
}

// Against the real server: a write made offline no longer fits the state
// others filled meanwhile. The server refuses it when the client comes
// back; the client drops it, undoes it and converges on the server's state.
func TestCRDTWriteRefusedByARealServerAfterReconnect(t *testing.T) {
	ctx := context.Background()
	gate := make(chan struct{})
	var admitted atomic.Int32
	ds, err := datasole.New(datasole.Options{Logger: quiet(), Auth: func(r *http.Request) (*datasole.Principal, error) {
		if admitted.Add(1) > 1 {
			<-gate // the reconnect waits until the map is full
		}
		return &datasole.Principal{UserID: "alice"}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	serverMap, err := ds.RegisterCRDTType("m", datasole.Global(), crdt.TypeLWWMap)
	if err != nil {
		t.Fatal(err)
	}
	if err := ds.Start(ctx); err != nil {
		t.Fatal(err)
	}
	conns := make(chan *datasole.Conn, 4)
	ds.OnConnect(func(c *datasole.Conn) { conns <- c })
	hs := httptest.NewServer(ds.Handler())
	defer hs.Close()
	defer ds.Close(ctx)

	w := newCRDTWatch()
	states := make(chan client.State, 16)
	c, err := client.Dial(ctx, hs.URL, client.Options{Logger: quiet(), ReconnectInterval: 5 * time.Millisecond, OnError: w.onError, OnStateChange: func(s client.State) { states <- s }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m, _ := c.Map("m")
	w.attach(c, "m")
	if err := m.Set(ctx, "early", 1); err != nil {
		t.Fatal(err)
	}
	w.until(t, "the first write confirmed", func() bool { return c.Pending() == 0 })

	receive(t, "the connection", conns).Close(datasole.CloseGoingAway, "test")
	for receive(t, "the client to notice the drop", states) == client.Connected {
	}
	if err := m.Set(ctx, "mine", strings.Repeat("m", 10_000)); err != nil {
		t.Fatalf("an offline write that fits the local replica: %v", err)
	}
	if err := ds.UpdateCRDT(ctx, "m", func(cr crdt.CRDT) error {
		for _, size := range []int{60_000, 5_000, 500} {
			for i := 0; ; i++ {
				if _, err := cr.(*crdt.LWWMap).Set(fmt.Sprint("fill", size, "-", i), strings.Repeat("f", size), time.Now().UnixMilli()); err != nil {
					break
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	close(gate)

	e := receive(t, "the refusal", w.refused)
	if e.Op.Key != "mine" || !strings.Contains(e.Server.Message, "too large") {
		t.Fatalf("refusal %v of %+v", e, e.Op)
	}
	w.until(t, "the client to hold the server's map", func() bool {
		return c.Pending() == 0 && string(mustJSON(t, m.Value())) == string(mustJSON(t, serverMap.(*crdt.LWWMap).Value()))
	})
	if _, ok := m.Get("mine"); ok {
		t.Fatal("the refused write is still visible")
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
