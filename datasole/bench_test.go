package datasole_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/gorilla/websocket"
)

// receivers opens n bare WebSocket connections that count the messages they
// read (calling onRead, if set, with the running count), and waits until the
// server has attached them all.
func receivers(b *testing.B, ds *datasole.Server, url string, n int, onRead func(count int64)) (*atomic.Int64, func()) {
	var got atomic.Int64
	var conns []*websocket.Conn
	var wg sync.WaitGroup
	for range n {
		ws, _, err := websocket.DefaultDialer.Dial("ws"+url[4:]+"/__ds", nil)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, ws)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, _, err := ws.ReadMessage(); err != nil {
					return
				}
				v := got.Add(1)
				if onRead != nil {
					onRead(v)
				}
			}
		}()
	}
	for ds.ConnectionCount() < n {
		time.Sleep(time.Millisecond)
	}
	return &got, func() {
		for _, ws := range conns {
			ws.Close()
		}
		wg.Wait()
	}
}

func benchServer(b *testing.B) (*datasole.Server, *httptest.Server) {
	return benchServerWith(b, func(ds *datasole.Server) http.Handler { return ds.Handler() })
}

func benchServerWith(b *testing.B, handler func(*datasole.Server) http.Handler) (*datasole.Server, *httptest.Server) {
	ds, err := datasole.New(quietOptions(datasole.Options{HeartbeatInterval: -1, RateLimit: datasole.RateLimit{Disabled: true}}))
	if err != nil {
		b.Fatal(err)
	}
	if err := ds.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(handler(ds))
	b.Cleanup(func() { ds.Close(context.Background()); hs.Close() })
	return ds, hs
}

// plainUpgrade serves connections the way an adapter that upgrades by itself
// does (Admit, upgrade, ServeConn): one write per frame, no coalescing.
func plainUpgrade(ds *datasole.Server) http.Handler {
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, err := ds.Admit(r)
		if err != nil {
			http.Error(w, "refused", http.StatusForbidden)
			return
		}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			a.Release()
			return
		}
		ds.ServeConn(ws, a)
	})
}

// BenchmarkBroadcast1000 pushes one event to 1,000 local connections per
// op and waits until every connection has read it.
func BenchmarkBroadcast1000(b *testing.B) {
	for _, tc := range []struct {
		name    string
		size    int
		handler func(*datasole.Server) http.Handler
	}{
		{"payload=64B", 64, func(ds *datasole.Server) http.Handler { return ds.Handler() }},
		{"payload=2048B", 2048, func(ds *datasole.Server) http.Handler { return ds.Handler() }},
		{"payload=64B/one-write-per-frame", 64, plainUpgrade},
	} {
		size := tc.size
		b.Run(tc.name, func(b *testing.B) {
			ds, hs := benchServerWith(b, tc.handler)
			const n = 1000
			got, stop := receivers(b, ds, hs.URL, n, nil)
			defer stop()
			data := make([]byte, size)
			for i := range data {
				data[i] = 'a' + byte(i%26)
			}
			payload := string(data)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				ds.Broadcast("tick", payload)
				for got.Load() < int64(i+1-256)*n { // keep at most 256 in flight
					time.Sleep(10 * time.Microsecond)
				}
			}
			for got.Load() < int64(b.N)*n {
				time.Sleep(50 * time.Microsecond)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)*n/time.Since(start).Seconds(), "deliveries/s")
		})
	}
}

// BenchmarkSetStateFanout sets a ~1 KB document once per millisecond and
// fans the patch out to 1,000 subscribers; it reports patches delivered per
// second and the p99 latency from SetState to a subscriber reading it.
func BenchmarkSetStateFanout(b *testing.B) {
	ds, hs := benchServer(b)
	const n = 1000
	doc := map[string]any{"title": "dashboard", "series": make([]int, 100), "labels": make([]string, 20)}
	for i := range 20 {
		doc["labels"].([]string)[i] = fmt.Sprintf("label-%02d-with-a-longer-caption", i)
	}
	ctx := context.Background()
	ds.SetState(ctx, "doc", doc)
	raw, _ := json.Marshal(doc)
	b.Logf("document: %d bytes", len(raw))

	var mu sync.Mutex
	sent := map[int]time.Time{}
	var lat []time.Duration
	got, stop := receivers(b, ds, hs.URL, n, func(v int64) {
		if v%97 == 0 { // sample latencies
			now := time.Now()
			mu.Lock()
			if t0, ok := sent[int(v)/n]; ok {
				lat = append(lat, now.Sub(t0))
			}
			mu.Unlock()
		}
	})
	defer stop()
	got.Store(0) // drop the snapshots
	b.ResetTimer()
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for i := 0; i < b.N; i++ {
		<-tick.C
		doc["series"].([]int)[i%100] = i + 1 // always a change
		mu.Lock()
		sent[i] = time.Now()
		mu.Unlock()
		ds.SetState(ctx, "doc", doc)
	}
	for got.Load() < int64(b.N)*n {
		time.Sleep(100 * time.Microsecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)*n/elapsed.Seconds(), "patches/s")
	mu.Lock()
	defer mu.Unlock()
	if len(lat) > 0 {
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
}
