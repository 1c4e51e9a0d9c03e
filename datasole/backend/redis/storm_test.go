package dsredis_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/backend/backendtest"
	dsredis "github.com/datasole/datasole-go/datasole/backend/redis"
	"github.com/datasole/datasole-go/datasole/client"
	"github.com/redis/go-redis/v9"
)

// latencyProxy forwards TCP connections to target, delaying every chunk by
// delay in each direction (order kept): a Redis 5 ms away.
func latencyProxy(t testing.TB, target string, delay time.Duration) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		type chunk struct {
			at time.Time
			b  []byte
		}
		ch := make(chan chunk, 1024)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer dst.Close()
			for c := range ch {
				time.Sleep(time.Until(c.at)) // the proxy's delay is the point, not a wait for an event
				if _, err := dst.Write(c.b); err != nil {
					return
				}
			}
		}()
		defer close(ch)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				ch <- chunk{time.Now().Add(delay), buf[:n]}
			}
			if err != nil {
				return
			}
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, up)
			mu.Unlock()
			wg.Add(2)
			go pipe(up, c)
			go pipe(c, up)
		}
	}()
	return l.Addr().String()
}

// BenchmarkReconnectStormStateLatency: one node on a Redis 5 ms away (each
// way), 5,000 connected users. An unrelated client subscribes to a key the
// server sets every 10 ms; its delivery latency (set → patch received) is
// measured while idle, then while all 5,000 clients reconnect at once (each
// join reads its user's scope and session from the store). Reported: the
// two p99s and their ratio; no connection may be closed by the heartbeat.
//
//	go test -run '^$' -bench ReconnectStorm -benchtime 1x ./datasole/backend/redis
func BenchmarkReconnectStormStateLatency(b *testing.B) {
	opts, err := redis.ParseURL(serverURL(b))
	if err != nil {
		b.Fatal(err)
	}
	addr := latencyProxy(b, opts.Addr, 5*time.Millisecond)
	rc := redis.NewClient(&redis.Options{Addr: addr, DB: opts.DB, PoolSize: 256})
	defer rc.Close()
	be, err := dsredis.New(context.Background(), rc, dsredis.Options{Prefix: backendtest.NewPrefix()})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ds, err := datasole.New(datasole.Options{Backend: be, Logger: quiet, MaxConnectionsPerIP: -1,
		RateLimit: datasole.RateLimit{Disabled: true},
		Auth: func(r *http.Request) (*datasole.Principal, error) {
			return &datasole.Principal{UserID: r.URL.Query().Get("token")}, nil
		}})
	if err != nil {
		b.Fatal(err)
	}
	if err := ds.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(ds.Handler())
	defer hs.Close()
	defer ds.Close(context.Background())
	ctx := context.Background()

	const users = 5000
	var reconnected atomic.Int64
	clients := make([]*client.Client, 0, users)
	dialSem := make(chan struct{}, 64)
	var dmu sync.Mutex
	var dwg sync.WaitGroup
	for i := range users {
		u := fmt.Sprint("user", i)
		ds.SetStateIn(ctx, datasole.ForUser(u), "cart", []int{i})
		dwg.Add(1)
		dialSem <- struct{}{}
		go func() {
			defer dwg.Done()
			defer func() { <-dialSem }()
			c, err := client.Dial(ctx, hs.URL, client.Options{Token: u, Logger: quiet, ReconnectInterval: time.Millisecond,
				OnStateChange: func(s client.State) {
					if s == client.Connected {
						reconnected.Add(1)
					}
				}})
			if err != nil {
				b.Error(err)
				return
			}
			dmu.Lock()
			clients = append(clients, c)
			dmu.Unlock()
		}()
	}
	dwg.Wait()
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()

	sub, err := client.Dial(ctx, hs.URL, client.Options{Token: "observer", Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	arrived := make(chan time.Duration, 4096)
	sub.SubscribeStateRaw("tick", func(v json.RawMessage, _ uint64) {
		var sentAt int64
		if json.Unmarshal(v, &sentAt) == nil && sentAt > 0 {
			arrived <- time.Since(time.Unix(0, sentAt))
		}
	})
	measure := func(n int, during func()) []time.Duration {
		var lat []time.Duration
		stop := make(chan struct{})
		go func() {
			if during != nil {
				during()
			}
			close(stop)
		}()
		for i := 0; i < n; i++ {
			if err := ds.SetState(ctx, "tick", time.Now().UnixNano()); err != nil {
				b.Fatal(err)
			}
			select {
			case d := <-arrived:
				lat = append(lat, d)
			case <-time.After(10 * time.Second):
				b.Fatal("a change never reached the subscriber")
			}
			time.Sleep(10 * time.Millisecond) // the setter's pace
		}
		<-stop
		slices.Sort(lat)
		return lat
	}
	p99 := func(l []time.Duration) time.Duration { return l[len(l)*99/100] }

	b.ResetTimer()
	for range b.N {
		idle := measure(200, nil)
		before := reconnected.Load()
		storm := measure(200, func() {
			for i := range users {
				ds.CloseUser(fmt.Sprint("user", i), datasole.CloseGoingAway, "storm")
			}
			for deadline := time.Now().Add(2 * time.Minute); reconnected.Load()-before < users; {
				if time.Now().After(deadline) {
					b.Errorf("only %d of %d clients reconnected", reconnected.Load()-before, users)
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
		b.ReportMetric(float64(p99(idle).Microseconds())/1000, "idle-p99-ms")
		b.ReportMetric(float64(p99(storm).Microseconds())/1000, "storm-p99-ms")
		b.ReportMetric(float64(p99(storm))/float64(p99(idle)), "storm/idle")
	}
	if n := ds.Snapshot().Closes["heartbeat"]; n > 0 {
		b.Fatalf("%d connections were closed by the heartbeat", n)
	}
}
