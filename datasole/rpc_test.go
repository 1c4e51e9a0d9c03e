package datasole_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/client"
	"github.com/datasole/datasole-go/datasole/protocol"
)

type addParams struct{ A, B int }
type addResult struct {
	Sum int `json:"sum"`
}

var addRPC = datasole.NewRPC[addParams, addResult]("add")

func rpcServer(t *testing.T, o datasole.Options) *testServer {
	return startServer(t, o, func(ds *datasole.Server) {
		addRPC.Handle(ds, func(c *datasole.Context, p addParams) (addResult, error) {
			return addResult{Sum: p.A + p.B}, nil
		})
		ds.HandleRPC("echo", func(c *datasole.Context, params json.RawMessage) (any, error) {
			return params, nil
		})
		ds.HandleRPC("fail", func(c *datasole.Context, params json.RawMessage) (any, error) {
			return nil, &datasole.Error{Code: 42, Message: "boom", Data: map[string]int{"n": 1}}
		})
		ds.HandleRPC("secret", func(c *datasole.Context, params json.RawMessage) (any, error) {
			return nil, errors.New("db password is hunter2")
		})
		ds.HandleRPC("panic", func(c *datasole.Context, params json.RawMessage) (any, error) {
			panic("kaboom")
		})
		ds.HandleRPC("nothing", func(c *datasole.Context, params json.RawMessage) (any, error) {
			return nil, nil
		})
		ds.HandleRPC("slow", func(c *datasole.Context, params json.RawMessage) (any, error) {
			select {
			case <-time.After(200 * time.Millisecond):
				return "done", nil
			case <-c.Done():
				return nil, c.Err()
			}
		})
		ds.HandleRPC("stuck", func(c *datasole.Context, params json.RawMessage) (any, error) {
			time.Sleep(300 * time.Millisecond) // ignores its context
			return "late", nil
		})
		ds.HandleRPC("whoami", func(c *datasole.Context, params json.RawMessage) (any, error) {
			return map[string]string{"conn": c.ConnID(), "user": c.UserID()}, nil
		})
	})
}

func TestRPC(t *testing.T) {
	ts := rpcServer(t, datasole.Options{RPCTimeout: 100 * time.Millisecond})
	c := dial(t, ts.url, client.Options{})
	ctx := context.Background()

	t.Run("a typed call returns the handler's result", func(t *testing.T) {
		got, err := addRPC.Call(ctx, c, addParams{A: 2, B: 3})
		if err != nil || got.Sum != 5 {
			t.Fatalf("add(2,3) = %v, %v; want 5", got, err)
		}
	})
	t.Run("an untyped call echoes params unchanged", func(t *testing.T) {
		raw, err := c.CallRaw(ctx, "echo", map[string]any{"x": []int{1, 2}})
		if err != nil || string(raw) != `{"x":[1,2]}` {
			t.Fatalf("echo = %s, %v", raw, err)
		}
	})
	t.Run("a handler's *Error reaches the caller with code, message and data", func(t *testing.T) {
		_, err := c.CallRaw(ctx, "fail", nil)
		var e *datasole.Error
		if !errors.As(err, &e) || e.Code != 42 || e.Message != "boom" {
			t.Fatalf("fail: got %v", err)
		}
		if got := fmt.Sprint(string(e.Data.(json.RawMessage))); got != `{"n":1}` {
			t.Fatalf("error data = %s", got)
		}
	})
	t.Run("an unknown method gets -32601 Method not found, without its name echoed", func(t *testing.T) {
		_, err := c.CallRaw(ctx, "nope", nil)
		var e *datasole.Error
		if !errors.As(err, &e) || e.Code != protocol.CodeMethodNotFound || e.Message != "Method not found" {
			t.Fatalf("nope: got %v", err)
		}
	})
	t.Run("a plain error is answered -32000 Internal error without leaking its text", func(t *testing.T) {
		_, err := c.CallRaw(ctx, "secret", nil)
		var e *datasole.Error
		if !errors.As(err, &e) || e.Code != protocol.CodeInternal || e.Message != "Internal error" {
			t.Fatalf("secret: got %v", err)
		}
	})
	t.Run("a panic is answered -32000 and the server keeps serving", func(t *testing.T) {
		_, err := c.CallRaw(ctx, "panic", nil)
		var e *datasole.Error
		if !errors.As(err, &e) || e.Code != protocol.CodeInternal {
			t.Fatalf("panic: got %v", err)
		}
		if got, err := addRPC.Call(ctx, c, addParams{A: 1, B: 1}); err != nil || got.Sum != 2 {
			t.Fatalf("server unhealthy after panic: %v %v", got, err)
		}
	})
	t.Run("a handler returning nothing succeeds with no result", func(t *testing.T) {
		raw, err := c.CallRaw(ctx, "nothing", nil)
		if err != nil || raw != nil {
			t.Fatalf("nothing = %s, %v", raw, err)
		}
	})
	t.Run("invalid params for a typed method get -32602", func(t *testing.T) {
		_, err := c.CallRaw(ctx, "add", "not an object")
		var e *datasole.Error
		if !errors.As(err, &e) || e.Code != protocol.CodeInvalidParams {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("a handler past its deadline is cancelled and the caller gets -32001", func(t *testing.T) {
		_, err := c.CallRaw(ctx, "slow", nil)
		var e *datasole.Error
		if !errors.As(err, &e) || e.Code != protocol.CodeTimeout {
			t.Fatalf("slow: got %v", err)
		}
	})
	t.Run("a handler ignoring its context is still answered at the deadline", func(t *testing.T) {
		start := time.Now()
		_, err := c.CallRaw(ctx, "stuck", nil)
		var e *datasole.Error
		if !errors.As(err, &e) || e.Code != protocol.CodeTimeout {
			t.Fatalf("stuck: got %v", err)
		}
		if d := time.Since(start); d > 280*time.Millisecond {
			t.Fatalf("timeout reply came after %v, want about 100ms", d)
		}
	})
	t.Run("the handler context names the caller", func(t *testing.T) {
		var who map[string]string
		if err := c.Call(ctx, "whoami", nil, &who); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(who["conn"], ts.ds.NodeID()+"-") || who["user"] != "$anon:"+who["conn"] {
			t.Fatalf("an anonymous principal is keyed by connection id in the reserved namespace: %v", who)
		}
	})
}

func TestRPCConcurrentCallsAreMatchedByCorrelationID(t *testing.T) {
	ts := rpcServer(t, datasole.Options{MaxInFlight: 200})
	c := dial(t, ts.url, client.Options{})
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := addRPC.Call(context.Background(), c, addParams{A: i, B: 1000})
			if err != nil || got.Sum != i+1000 {
				errs <- fmt.Errorf("call %d: got %v, %v", i, got, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// At MaxInFlight calls running, a connection is not read until one
// finishes: the next call waits in the socket and is answered, not refused.
func TestRPCInFlightLimitIsBackpressureNotRefusal(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 3)
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
	c := dial(t, ts.url, client.Options{})
	results := make(chan error, 3)
	for range 3 {
		go func() {
			raw, err := c.CallRaw(context.Background(), "block", nil)
			if err == nil && string(raw) != `"ok"` {
				err = fmt.Errorf("result %s", raw)
			}
			results <- err
		}()
	}
	<-started
	<-started
	// Two calls run; the third is read only when one of them finishes.
	release <- struct{}{}
	<-started
	close(release)
	for range 3 {
		if err := <-results; err != nil {
			t.Fatalf("a call failed: %v", err)
		}
	}
	if p := peak.Load(); p != 2 {
		t.Fatalf("peak %d calls running on the connection, want MaxInFlight=2", p)
	}
}

// A stock-style v1 client fires 1,000 calls at once (Promise.all) on one
// connection: every call is answered with its result, none is refused, while
// at most MaxInFlight run at once and at most MaxHandlers across the server.
func TestThousandConcurrentCallsFromOneV1Connection(t *testing.T) {
	var running, peak atomic.Int32
	ts := startServer(t, datasole.Options{MaxHandlers: 8, RateLimit: datasole.RateLimit{Disabled: true}}, func(ds *datasole.Server) {
		ds.HandleRPC("double", func(c *datasole.Context, p json.RawMessage) (any, error) {
			n := running.Add(1)
			for q := peak.Load(); n > q && !peak.CompareAndSwap(q, n); q = peak.Load() {
			}
			defer running.Add(-1)
			var v int
			json.Unmarshal(p, &v)
			return v * 2, nil
		})
	})
	r := dialRaw(t, ts.url, nil)
	const calls = 1000
	for i := 1; i <= calls; i++ {
		r.sendFrame(protocol.RPCReq, uint32(i), fmt.Sprintf(`{"method":"double","params":%d,"correlationId":%d}`, i, i))
	}
	seen := make(map[uint32]bool, calls)
	for len(seen) < calls {
		f := r.next(protocol.RPCRes)
		res := decodeJSON[protocol.RPCResponse](t, f.Payload)
		if res.Error != nil {
			t.Fatalf("call %d: error %d %s", f.CorrelationID, res.Error.Code, res.Error.Message)
		}
		if want := fmt.Sprint(2 * f.CorrelationID); string(res.Result) != want || seen[f.CorrelationID] {
			t.Fatalf("call %d: result %s (want %s), seen before %v", f.CorrelationID, res.Result, want, seen[f.CorrelationID])
		}
		seen[f.CorrelationID] = true
	}
	if p := peak.Load(); p > 8 {
		t.Fatalf("%d handlers ran at once, over MaxHandlers=8", p)
	}
}

func TestRPCLargePayloadsAreCompressedBothWays(t *testing.T) {
	ts := rpcServer(t, datasole.Options{})
	c := dial(t, ts.url, client.Options{})
	big := strings.Repeat("datasole ", 20000) // 180 KB, compresses well
	raw, err := c.CallRaw(context.Background(), "echo", big)
	if err != nil {
		t.Fatal(err)
	}
	var got string
	json.Unmarshal(raw, &got)
	if got != big {
		t.Fatalf("echo of %d bytes came back with %d", len(big), len(got))
	}
	snap := ts.ds.Snapshot()
	if snap.BytesIn > 20000 || snap.BytesOut > 20000 {
		t.Fatalf("180 KB went over the wire uncompressed: in %d, out %d bytes", snap.BytesIn, snap.BytesOut)
	}
}

func TestRPCRawBodiesTheReferenceIgnoresAreAnswered(t *testing.T) {
	ts := rpcServer(t, datasole.Options{})
	r := dialRaw(t, ts.url, nil)
	for _, body := range []string{`not json`, `null`, `{"params":1}`, `[1,2]`} {
		t.Run(body, func(t *testing.T) {
			r.sendFrame(protocol.RPCReq, 77, body)
			f := r.next(protocol.RPCRes)
			res := decodeJSON[protocol.RPCResponse](t, f.Payload)
			if f.CorrelationID != 77 || res.Error == nil || res.Error.Code != protocol.CodeParseError {
				t.Fatalf("got id %d body %s", f.CorrelationID, f.Payload)
			}
		})
	}
	t.Run("the reply is addressed by the header id and echoes the body id", func(t *testing.T) {
		r.sendFrame(protocol.RPCReq, 9, `{"method":"echo","params":5,"correlationId":1234}`)
		f := r.next(protocol.RPCRes)
		if f.CorrelationID != 9 || string(f.Payload) != `{"correlationId":1234,"result":5}` {
			t.Fatalf("got id %d body %s", f.CorrelationID, f.Payload)
		}
	})
}
