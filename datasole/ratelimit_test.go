package datasole_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/datasole/datasole-go/datasole/client"
	"github.com/datasole/datasole-go/datasole/protocol"
	"github.com/gorilla/websocket"
)

// admitted fires 1,000 checks at once against a limit of 100 and counts
// what passed.
func admitted(t *testing.T, limiters []datasole.Limiter) int64 {
	rule := datasole.Rule{Limit: 100, Window: time.Hour}
	var ok atomic.Int64
	var wg sync.WaitGroup
	for i := range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pass, _, err := limiters[i%len(limiters)].Allow(context.Background(), "k", rule)
			if err != nil {
				t.Error(err)
			}
			if pass {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	return ok.Load()
}

func TestLimiterIsExactUnderConcurrency(t *testing.T) {
	t.Run("in process", func(t *testing.T) {
		if n := admitted(t, []datasole.Limiter{datasole.NewMemoryLimiter()}); n != 100 {
			t.Fatalf("admitted %d of 1000, want exactly 100", n)
		}
	})
	t.Run("two nodes sharing one store", func(t *testing.T) {
		a := backend.NewMemory(backend.MemoryOptions{})
		b := backend.NewMemory(backend.MemoryOptions{Peer: a})
		defer a.Close()
		defer b.Close()
		if n := admitted(t, []datasole.Limiter{datasole.NewBackendLimiter(a), datasole.NewBackendLimiter(b)}); n != 100 {
			t.Fatalf("admitted %d of 1000, want exactly 100", n)
		}
	})
}

func TestMemoryLimiterForgetsFullBuckets(t *testing.T) {
	l := datasole.NewMemoryLimiter()
	rule := datasole.Rule{Limit: 10, Window: 20 * time.Millisecond}
	for i := range 5000 {
		l.Allow(context.Background(), string(rune('a'+i%26))+string(rune(i)), rule)
	}
	time.Sleep(30 * time.Millisecond)
	for range 5000 {
		l.Allow(context.Background(), "one", rule)
	}
	if n := l.Len(); n > 1 {
		t.Fatalf("%d buckets remembered after their windows passed", n)
	}
}

func TestRateLimitedFrames(t *testing.T) {
	var handled atomic.Int64
	var conns sync.Map // remote address -> *datasole.Conn
	ts := startServer(t, datasole.Options{RateLimit: datasole.RateLimit{
		Default:    datasole.Rule{Limit: 1000, Window: time.Hour},
		RPC:        map[string]datasole.Rule{"costly": {Limit: 10, Window: time.Hour, Cost: 5}},
		Events:     map[string]datasole.Rule{"spam": {Limit: 100, Window: time.Hour}},
		CloseAfter: 950,
	}}, func(ds *datasole.Server) {
		ds.OnConnect(func(c *datasole.Conn) { conns.Store(c.RemoteAddr(), c) })
		ds.HandleRPC("costly", func(*datasole.Context, json.RawMessage) (any, error) { return "ok", nil })
		ds.On("spam", func(*datasole.Context, json.RawMessage) { handled.Add(1) })
	})
	t.Run("a limited RPC gets an RPC_RES error and an ERROR frame", func(t *testing.T) {
		c := dial(t, ts.url, client.Options{})
		ctx := context.Background()
		for i := range 2 { // cost 5 of 10: two pass
			if _, err := c.CallRaw(ctx, "costly", nil); err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
		}
		_, err := c.CallRaw(ctx, "costly", nil)
		var se *client.ServerError
		if !errors.Is(err, datasole.ErrRateLimited) || !errors.As(err, &se) || se.RetryAfter <= 0 {
			t.Fatalf("third call: %v", err)
		}
		r := dialRaw(t, ts.url, nil)
		for range 2 {
			r.sendFrame(protocol.RPCReq, 5, `{"method":"costly"}`)
			r.next(protocol.RPCRes)
		}
		r.sendFrame(protocol.RPCReq, 6, `{"method":"costly"}`)
		ef := r.next(protocol.Error)
		res := decodeJSON[protocol.RPCResponse](t, r.next(protocol.RPCRes).Payload)
		body := decodeJSON[protocol.ErrorBody](t, ef.Payload)
		if ef.CorrelationID != 6 || body.Message != "Rate limit exceeded" || body.RetryAfter <= 0 ||
			res.Error == nil || res.Error.Code != protocol.CodeRateLimited {
			t.Fatalf("error %s, reply %+v", ef.Payload, res.Error)
		}
	})
	t.Run("1,000 events against a limit of 100 run exactly 100 handlers", func(t *testing.T) {
		r := dialRaw(t, ts.url, nil)
		for range 1000 {
			r.sendFrame(protocol.EventC2S, 0, `{"event":"spam"}`)
		}
		refused := 0
		for refused < 900 {
			r.next(protocol.Error)
			refused++
		}
		if n := handled.Load(); n != 100 {
			t.Fatalf("%d handlers ran, want 100", n)
		}
	})
	t.Run("sustained abuse closes the connection with 1008", func(t *testing.T) {
		r := dialRaw(t, ts.url, nil)
		var server *datasole.Conn
		eventually(t, "the connection to attach", func() bool {
			v, ok := conns.Load(r.ws.LocalAddr().String())
			if ok {
				server = v.(*datasole.Conn)
			}
			return ok
		})
		ping, _ := protocol.Encode(protocol.Ping, 1, nil)
		go func() { // 1,000 pass, then 950 refusals in a row
			for range 2000 {
				if r.ws.WriteMessage(websocket.BinaryMessage, ping) != nil {
					return
				}
			}
		}()
		// The close frame arrives unless the peer is still writing, in which
		// case the kernel resets the link; either way the server dropped it.
		r.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			_, _, err := r.ws.ReadMessage()
			if err == nil {
				continue
			}
			var ce *websocket.CloseError
			if errors.As(err, &ce) && ce.Code != datasole.ClosePolicyViolation {
				t.Fatalf("close code %d, want 1008", ce.Code)
			}
			break
		}
		eventually(t, "the server to drop the abuser", func() bool { return server.Context().Err() != nil })
	})
	if ts.ds.Snapshot().RateLimited < 900 {
		t.Fatalf("rate-limited frames not counted: %d", ts.ds.Snapshot().RateLimited)
	}
}

func TestConnectionCapsPerUserAndIP(t *testing.T) {
	ts := startServer(t, datasole.Options{MaxConnectionsPerUser: 2, MaxConnectionsPerIP: 3,
		Auth: func(r *http.Request) (*datasole.Principal, error) {
			return &datasole.Principal{UserID: r.URL.Query().Get("token")}, nil
		}}, nil)
	status := func(user string) int {
		ws, resp, err := websocket.DefaultDialer.Dial("ws"+ts.url[4:]+"/__ds?token="+user, nil)
		if err == nil {
			t.Cleanup(func() { ws.Close() })
			return 101
		}
		return resp.StatusCode
	}
	got := []int{status("ann"), status("ann"), status("ann"), status("bob"), status("cid")}
	want := []int{101, 101, 429, 101, 429}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("statuses %v, want %v (2 per user, 3 per IP)", got, want)
		}
	}
}

func BenchmarkMemoryLimiterParallel(b *testing.B) {
	l := datasole.NewMemoryLimiter()
	rule := datasole.Rule{Limit: 1 << 30, Window: time.Minute}
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		key := "c:" + strconv.FormatInt(n.Add(1), 10) + ":*"
		for pb.Next() {
			l.Allow(context.Background(), key, rule)
		}
	})
}
