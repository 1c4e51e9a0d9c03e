package datasole_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/datasole/datasole-go/datasole/client"
	"github.com/gorilla/websocket"
)

// TestShutdownHandsClientsToAnotherNode: two nodes behind a load balancer;
// the first shuts down gracefully while an RPC is in flight. The call
// completes, the client sees 1001, reconnects through the balancer to the
// second node and gets the current state there.
func TestShutdownHandsClientsToAnotherNode(t *testing.T) {
	store := backend.NewMemory(backend.MemoryOptions{})
	defer store.Close()
	peer := backend.NewMemory(backend.MemoryOptions{Peer: store})
	defer peer.Close()
	started := make(chan struct{}, 1)
	node := func(b backend.Backend) (*datasole.Server, *httptest.Server) {
		ds, err := datasole.New(quietOptions(datasole.Options{Backend: b}))
		if err != nil {
			t.Fatal(err)
		}
		if err := ds.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		ds.HandleRPC("work", func(c *datasole.Context, _ json.RawMessage) (any, error) {
			started <- struct{}{}
			time.Sleep(200 * time.Millisecond)
			return "done", nil
		})
		return ds, httptest.NewServer(ds.Handler())
	}
	a, ha := node(store)
	b, hb := node(peer)
	defer hb.Close()
	defer b.Close(context.Background())
	defer ha.Close()

	var aDown atomic.Bool
	proxy := func(target string) *httputil.ReverseProxy {
		u, _ := url.Parse(target)
		return httputil.NewSingleHostReverseProxy(u)
	}
	pa, pb := proxy(ha.URL), proxy(hb.URL)
	lb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if aDown.Load() {
			pb.ServeHTTP(w, r)
			return
		}
		pa.ServeHTTP(w, r)
	}))
	defer lb.Close()

	ctx := context.Background()
	a.SetState(ctx, "dash", map[string]int{"n": 1})
	var mu sync.Mutex
	var states []client.State
	c := dial(t, lb.URL, client.Options{ReconnectInterval: 20 * time.Millisecond, OnStateChange: func(s client.State) {
		mu.Lock()
		states = append(states, s)
		mu.Unlock()
	}})
	res := make(chan string, 1)
	go func() {
		var s string
		if err := c.Call(ctx, "work", nil, &s); err != nil {
			s = err.Error()
		}
		res <- s
	}()
	<-started
	aDown.Store(true) // the balancer stops sending new connections to a
	shutdown, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := a.Close(shutdown); err != nil {
		t.Fatalf("graceful close: %v", err)
	}
	if got := <-res; got != "done" {
		t.Fatalf("the in-flight call got %q", got)
	}
	eventually(t, "the client to reconnect to the second node", func() bool {
		return c.Connections() == 2 && c.State() == client.Connected && b.ConnectionCount() == 1
	})
	b.SetState(ctx, "dash", map[string]int{"n": 2}) // set on the survivor
	eventually(t, "state to follow on the second node", func() bool {
		v, ver, _ := c.StateRaw("dash")
		return string(v) == `{"n":2}` && ver == 2
	})
}

// TestFloodsLeaveTheServerResponsive: many peers flooding garbage, oversized
// messages and rate-limited frames, while a healthy client keeps calling.
func TestFloodsLeaveTheServerResponsive(t *testing.T) {
	ts := rpcServer(t, datasole.Options{MaxConnections: 12, RateLimit: datasole.RateLimit{
		Default: datasole.Rule{Limit: 5000, Window: time.Minute},
	}})
	healthy := dial(t, ts.url, client.Options{})
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			garbage := [][]byte{{0xff, 1, 2}, {0x78, 0x9c, 1}}
			oversized := make([]byte, 5<<20) // over the 4 MiB read limit: 1009
			for {
				select {
				case <-stop:
					return
				default:
				}
				// Each flooder reconnects whenever the server closes it.
				ws, _, err := websocket.DefaultDialer.Dial("ws"+ts.url[4:]+"/__ds", nil)
				if err != nil {
					time.Sleep(5 * time.Millisecond) // over the connection cap: 503
					continue
				}
				for j := 0; ; j++ {
					if j%8 == 0 {
						select {
						case <-stop:
							ws.Close()
							return
						default:
						}
					}
					msg := garbage[j%2]
					if i%5 == 0 {
						msg = oversized
					}
					if ws.WriteMessage(websocket.BinaryMessage, msg) != nil {
						break // closed by the server (1008 garbage, 1009 too big)
					}
				}
				ws.Close()
			}
		}()
	}
	deadline := time.Now().Add(time.Second)
	calls := 0
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		got, err := addRPC.Call(ctx, healthy, addParams{A: calls, B: 1})
		cancel()
		if err != nil || got.Sum != calls+1 {
			t.Fatalf("healthy client during the flood: %v %v", got, err)
		}
		calls++
	}
	close(stop)
	wg.Wait()
	eventually(t, "flooders to be gone", func() bool { return ts.ds.ConnectionCount() == 1 })
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapInuse) - int64(before.HeapInuse); grew > 32<<20 {
		t.Fatalf("heap grew by %d MB during the flood", grew>>20)
	}
	snap := ts.ds.Snapshot()
	if snap.BadFrames == 0 || snap.Rejections["max-connections"] == 0 || calls == 0 {
		t.Fatalf("flood not counted: %+v", snap)
	}
	t.Logf("%d healthy calls in 1s during the flood; %d bad frames, %d rate-limited", calls, snap.BadFrames, snap.RateLimited)
}
