package datasole_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/client"
)

// The concurrency model: a connection's events are handled in the order
// sent; RPC handlers run in parallel, but never more than MaxHandlers at once
// across the server.
func TestConcurrencyModel(t *testing.T) {
	var mu sync.Mutex
	var order []int
	var running, peak atomic.Int32
	ts := startServer(t, datasole.Options{MaxHandlers: 2}, func(ds *datasole.Server) {
		ds.On("seq", func(c *datasole.Context, data json.RawMessage) {
			var n int
			json.Unmarshal(data, &n)
			if n%10 == 0 {
				time.Sleep(time.Millisecond) // a slow handler must not let later events overtake it
			}
			mu.Lock()
			order = append(order, n)
			mu.Unlock()
		})
		ds.HandleRPC("work", func(c *datasole.Context, _ json.RawMessage) (any, error) {
			now := running.Add(1)
			for {
				p := peak.Load()
				if now <= p || peak.CompareAndSwap(p, now) {
					break
				}
			}
			time.Sleep(30 * time.Millisecond)
			running.Add(-1)
			return nil, nil
		})
	})
	t.Run("events of one connection are handled in order", func(t *testing.T) {
		c := dial(t, ts.url, client.Options{})
		for i := range 100 {
			c.Emit(context.Background(), "seq", i)
		}
		eventually(t, "all events", func() bool { mu.Lock(); defer mu.Unlock(); return len(order) == 100 })
		for i, n := range order {
			if n != i {
				t.Fatalf("event %d handled at position %d: %v", n, i, order)
			}
		}
	})
	t.Run("no more than MaxHandlers RPC handlers run at once", func(t *testing.T) {
		var wg sync.WaitGroup
		for range 4 {
			c := dial(t, ts.url, client.Options{})
			for range 3 {
				wg.Add(1)
				go func() { defer wg.Done(); c.CallRaw(context.Background(), "work", nil) }()
			}
		}
		wg.Wait()
		if p := peak.Load(); p != 2 {
			t.Fatalf("peak concurrency %d, want exactly MaxHandlers=2", p)
		}
	})
}

func TestChainTriesHandlersInOrder(t *testing.T) {
	bad := errors.New("bad signature")
	byHeader := func(name string, user string) datasole.AuthHandler {
		return func(r *http.Request) (*datasole.Principal, error) {
			switch r.Header.Get(name) {
			case "":
				return nil, datasole.ErrNoCredentials
			case "ok":
				return &datasole.Principal{UserID: user}, nil
			}
			return nil, errors.Join(datasole.ErrUnauthorized, bad)
		}
	}
	chain := datasole.Chain(byHeader("A", "from-a"), byHeader("B", "from-b"))
	cases := []struct {
		name    string
		headers map[string]string
		user    string
		err     error
	}{
		{"the first handler with a credential decides", map[string]string{"A": "ok", "B": "ok"}, "from-a", nil},
		{"no credential of the first kind passes to the next", map[string]string{"B": "ok"}, "from-b", nil},
		{"a bad credential is final, even if a later one would pass", map[string]string{"A": "forged", "B": "ok"}, "", datasole.ErrUnauthorized},
		{"no credential at all is ErrNoCredentials (401)", nil, "", datasole.ErrNoCredentials},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := http.NewRequest("GET", "/__ds", nil)
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			p, err := chain(r)
			if tc.err != nil {
				if !errors.Is(err, tc.err) || !errors.Is(err, datasole.ErrUnauthorized) {
					t.Fatalf("got %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || p.UserID != tc.user {
				t.Fatalf("got %v %v, want %s", p, err, tc.user)
			}
		})
	}
}
