package datasole_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
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
	synctest.Test(t, func(t *testing.T) { // the windows pass on the bubble's clock
		l := datasole.NewMemoryLimiter()
		rule := datasole.Rule{Limit: 10, Window: 20 * time.Millisecond}
		for i := range 5000 {
			l.Allow(context.Background(), string(rune('a'+i%26))+string(rune(i)), rule)
		}
		if n := l.Len(); n < 4096 {
			t.Fatalf("%d buckets remembered while their windows run, want them all", n)
		}
		time.Sleep(30 * time.Millisecond)
		for range 5000 {
			l.Allow(context.Background(), "one", rule)
		}
		if n := l.Len(); n > 1 {
			t.Fatalf("%d buckets remembered after their windows passed", n)
		}
	})
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

// logBuffer collects a server's log lines for tests.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

func (l *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// tenantAuth admits ?token=<tenant>-<plan>-<user> with the tenant and plan
// in the principal's metadata, as a JWT or session handler would.
func tenantAuth(r *http.Request) (*datasole.Principal, error) {
	parts := strings.SplitN(r.URL.Query().Get("token"), "-", 3)
	if len(parts) != 3 {
		return nil, datasole.ErrUnauthorized
	}
	return &datasole.Principal{UserID: parts[2], Metadata: map[string]any{"tenant": parts[0], "plan": parts[1]}}, nil
}

func metadata(c *datasole.Conn, key string) string {
	v, _ := c.Principal().Metadata[key].(string)
	return v
}

// budget calls method until the rate limiter refuses and returns how many
// calls passed; it fails the test on any other error.
func budget(t *testing.T, c *client.Client, method string) int {
	t.Helper()
	for n := 0; n < 1000; n++ {
		_, err := c.CallRaw(context.Background(), method, nil)
		if errors.Is(err, datasole.ErrRateLimited) {
			return n
		}
		if err != nil {
			t.Fatalf("call %d of %s: %v", n+1, method, err)
		}
	}
	t.Fatalf("%s was never rate limited", method)
	return 0
}

func TestRateLimitRuleFunction(t *testing.T) {
	t.Run("free and pro principals get different budgets for the same method", func(t *testing.T) {
		ts := startServer(t, datasole.Options{Auth: tenantAuth, RateLimit: datasole.RateLimit{
			// The RPC rule gives search its own bucket and the free budget;
			// the Rule function doubles every budget for pro principals.
			RPC: map[string]datasole.Rule{"search": {Limit: 3, Window: time.Hour}},
			Rule: func(f datasole.RateFrame) datasole.Rule {
				if metadata(f.Conn, "plan") != "pro" {
					return datasole.Rule{} // the default choice
				}
				r := f.DefaultRule()
				r.Limit *= 2
				return r
			},
		}}, func(ds *datasole.Server) {
			ds.HandleRPC("search", func(*datasole.Context, json.RawMessage) (any, error) { return "hits", nil })
			ds.HandleRPC("other", func(*datasole.Context, json.RawMessage) (any, error) { return nil, nil })
		})
		free := dial(t, ts.url, client.Options{Token: "acme-free-ann"})
		pro := dial(t, ts.url, client.Options{Token: "acme-pro-bob"})
		if n := budget(t, free, "search"); n != 3 {
			t.Fatalf("a free principal made %d searches, want 3", n)
		}
		if n := budget(t, pro, "search"); n != 6 {
			t.Fatalf("a pro principal made %d searches, want 6", n)
		}
		// search's bucket is its own: the free user's other calls still pass.
		if _, err := free.CallRaw(context.Background(), "other", nil); err != nil {
			t.Fatalf("another method after search ran out: %v", err)
		}
	})

	t.Run("an invalid rule from the function falls back to the default choice and is logged", func(t *testing.T) {
		var logs logBuffer
		ts := startServer(t, datasole.Options{Logger: logs.logger(), RateLimit: datasole.RateLimit{
			RPC:  map[string]datasole.Rule{"search": {Limit: 2, Window: time.Hour}},
			Rule: func(datasole.RateFrame) datasole.Rule { return datasole.Rule{Limit: 5} }, // no window
		}}, func(ds *datasole.Server) {
			ds.HandleRPC("search", func(*datasole.Context, json.RawMessage) (any, error) { return nil, nil })
		})
		if n := budget(t, dial(t, ts.url, client.Options{}), "search"); n != 2 {
			t.Fatalf("%d searches passed, want the default rule's 2", n)
		}
		if logs.count("RateLimit.Rule returned an invalid rule") == 0 {
			t.Fatal("the invalid rule was not logged")
		}
	})

	t.Run("a panicking function leaves the default in place and the connection open", func(t *testing.T) {
		var logs logBuffer
		ts := startServer(t, datasole.Options{Logger: logs.logger(), RateLimit: datasole.RateLimit{
			RPC: map[string]datasole.Rule{"search": {Limit: 2, Window: time.Hour}},
			Key: func(f datasole.RateFrame) string { panic("bug in the key function") },
		}}, func(ds *datasole.Server) {
			ds.HandleRPC("search", func(*datasole.Context, json.RawMessage) (any, error) { return nil, nil })
		})
		if n := budget(t, dial(t, ts.url, client.Options{}), "search"); n != 2 {
			t.Fatalf("%d searches passed, want the default rule's 2", n)
		}
		if logs.count("panicked; the default applies") == 0 {
			t.Fatal("the panic was not logged")
		}
	})
}

func TestRateLimitKeyFunction(t *testing.T) {
	tenantKey := func(f datasole.RateFrame) string {
		if f.Kind != "rpc" {
			return "" // other frames: the connection's own bucket
		}
		return "t:" + metadata(f.Conn, "tenant") + ":" + f.Name
	}
	handlers := func(ds *datasole.Server) {
		ds.HandleRPC("search", func(*datasole.Context, json.RawMessage) (any, error) { return nil, nil })
	}
	rules := datasole.RateLimit{Default: datasole.Rule{Limit: 5, Window: time.Hour}, Key: tenantKey}

	t.Run("two users of one tenant share a bucket; another tenant has its own", func(t *testing.T) {
		ts := startServer(t, datasole.Options{Auth: tenantAuth, RateLimit: rules}, handlers)
		ann := dial(t, ts.url, client.Options{Token: "acme-free-ann"})
		bob := dial(t, ts.url, client.Options{Token: "acme-free-bob"})
		cid := dial(t, ts.url, client.Options{Token: "umbrella-free-cid"})
		for i := range 3 {
			if _, err := ann.CallRaw(context.Background(), "search", nil); err != nil {
				t.Fatalf("ann's call %d: %v", i+1, err)
			}
		}
		if n := budget(t, bob, "search"); n != 2 {
			t.Fatalf("bob made %d calls after ann's 3, want the tenant's remaining 2", n)
		}
		if n := budget(t, cid, "search"); n != 5 {
			t.Fatalf("another tenant made %d calls, want its own 5", n)
		}
	})

	t.Run("with a backend, a tenant's bucket is shared across nodes", func(t *testing.T) {
		b1 := backend.NewMemory(backend.MemoryOptions{})
		b2 := backend.NewMemory(backend.MemoryOptions{Peer: b1})
		t.Cleanup(func() { b1.Close(); b2.Close() })
		n1 := startServer(t, datasole.Options{Auth: tenantAuth, Backend: b1, RateLimit: rules}, handlers)
		n2 := startServer(t, datasole.Options{Auth: tenantAuth, Backend: b2, RateLimit: rules}, handlers)
		ann := dial(t, n1.url, client.Options{Token: "acme-free-ann"})
		bob := dial(t, n2.url, client.Options{Token: "acme-free-bob"})
		for i := range 3 {
			if _, err := ann.CallRaw(context.Background(), "search", nil); err != nil {
				t.Fatalf("ann's call %d: %v", i+1, err)
			}
		}
		if n := budget(t, bob, "search"); n != 2 {
			t.Fatalf("bob made %d calls on the other node after ann's 3, want 2", n)
		}
		keys, err := b1.Keys(context.Background(), "rl:")
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 1 || keys[0] != "rl:t:acme:search" {
			t.Fatalf("buckets in the backend: %v, want only the tenant's (connection buckets stay in process)", keys)
		}
	})

	t.Run("the function sees the sender and the default key", func(t *testing.T) {
		type seen struct{ kind, name, user, ip, key string }
		got := make(chan seen, 16)
		ts := startServer(t, datasole.Options{Auth: tenantAuth, RateLimit: datasole.RateLimit{
			By:  datasole.PerUser,
			RPC: map[string]datasole.Rule{"search": {Limit: 10, Window: time.Hour}},
			Key: func(f datasole.RateFrame) string {
				if f.Kind == "rpc" {
					got <- seen{f.Kind, f.Name, f.Conn.UserID(), f.IP(), f.DefaultKey()}
				}
				return ""
			},
		}}, handlers)
		c := dial(t, ts.url, client.Options{Token: "acme-free-ann"})
		if _, err := c.CallRaw(context.Background(), "search", nil); err != nil {
			t.Fatal(err)
		}
		want := seen{"rpc", "search", "ann", "127.0.0.1", "u:ann:rpc:search"}
		select {
		case s := <-got:
			if s != want {
				t.Fatalf("the key function saw %+v, want %+v", s, want)
			}
		default: // the call returned: the function has run, or never will
			t.Fatal("the key function did not see the call")
		}
	})
}

// closingLimiter is a Limiter with a resource to release.
type closingLimiter struct {
	datasole.Limiter
	closes    atomic.Int32
	connsLeft atomic.Int32 // the server's connections when Close ran
	ds        atomic.Pointer[datasole.Server]
}

func (l *closingLimiter) Close() error {
	l.closes.Add(1)
	l.connsLeft.Store(int32(l.ds.Load().ConnectionCount()))
	return nil
}

func TestLimiterIsClosedOnceAfterTheConnections(t *testing.T) {
	l := &closingLimiter{Limiter: datasole.NewMemoryLimiter()}
	ds, err := datasole.New(quietOptions(datasole.Options{RateLimit: datasole.RateLimit{Limiter: l}}))
	if err != nil {
		t.Fatal(err)
	}
	l.ds.Store(ds)
	if err := ds.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ds.HandleRPC("ping", func(*datasole.Context, json.RawMessage) (any, error) { return nil, nil })
	hs := httptest.NewServer(ds.Handler())
	t.Cleanup(hs.Close)
	c := dial(t, hs.URL, client.Options{})
	if _, err := c.CallRaw(context.Background(), "ping", nil); err != nil {
		t.Fatal(err)
	}
	if n := l.closes.Load(); n != 0 {
		t.Fatalf("closed %d times while serving", n)
	}
	for range 2 {
		if err := ds.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n := l.closes.Load(); n != 1 {
		t.Fatalf("the limiter was closed %d times, want once", n)
	}
	if n := l.connsLeft.Load(); n != 0 {
		t.Fatalf("the limiter was closed with %d connections still open", n)
	}
}

func TestRateLimitOptionsNothingReadsAreRefused(t *testing.T) {
	key := func(datasole.RateFrame) string { return "" }
	rule := func(datasole.RateFrame) datasole.Rule { return datasole.Rule{} }
	for _, tc := range []struct {
		name  string
		rl    datasole.RateLimit
		field string
	}{
		{"a key function on a disabled limiter", datasole.RateLimit{Disabled: true, Key: key}, "Options.RateLimit.Key"},
		{"a rule function on a disabled limiter", datasole.RateLimit{Disabled: true, Rule: rule}, "Options.RateLimit.Rule"},
		{"a limiter on a disabled limiter", datasole.RateLimit{Disabled: true, Limiter: datasole.NewMemoryLimiter()}, "Options.RateLimit.Limiter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := datasole.New(quietOptions(datasole.Options{RateLimit: tc.rl}))
			var oe *datasole.OptionError
			if !errors.As(err, &oe) || oe.Field != tc.field || !errors.Is(err, datasole.ErrInvalidOption) {
				t.Fatalf("New: %v, want an *OptionError for %s", err, tc.field)
			}
		})
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
