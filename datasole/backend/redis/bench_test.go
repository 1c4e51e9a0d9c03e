package dsredis_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/datasole/datasole-go/datasole/backend/backendtest"
	dsredis "github.com/datasole/datasole-go/datasole/backend/redis"
	"github.com/datasole/datasole-go/datasole/protocol"
	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"
)

// BenchmarkFanout broadcasts from one node to clients spread over the
// nodes: 3 nodes sharing Redis, against 1 node alone with the same number of
// clients, in one run. It reports deliveries per second and the p99 latency
// from Broadcast to a client reading the frame.
func BenchmarkFanout(b *testing.B) {
	const clients = 300
	b.Run("nodes=1/memory", func(b *testing.B) {
		benchFanout(b, []backend.Backend{nil}, clients, nil)
	})
	b.Run("nodes=3/redis", func(b *testing.B) {
		benchFanout(b, redisNodes(b, 3), clients, nil)
	})
}

// BenchmarkKeptFanout compares broadcasting to a target whose history is
// kept (every event appended to a Redis stream and delivered, with its
// position, from the bus) with an unkept one: 3 nodes sharing Redis, 300
// clients, in one run. The bound: kept costs at most 1.25× unkept in
// deliveries per second.
//
//	go test -run '^$' -bench KeptFanout -benchtime 20000x ./datasole/backend/redis
func BenchmarkKeptFanout(b *testing.B) {
	const clients = 300
	b.Run("unkept", func(b *testing.B) {
		benchFanout(b, redisNodes(b, 3), clients, nil)
	})
	b.Run("kept", func(b *testing.B) {
		benchFanout(b, redisNodes(b, 3), clients, func(ds *datasole.Server) {
			if err := ds.KeepHistory(datasole.ToAll(), datasole.History{Size: 10000, TTL: time.Minute}); err != nil {
				b.Fatal(err)
			}
		})
	})
}

// redisNodes returns n backends on one fresh prefix of the test Redis, each
// with its own client.
func redisNodes(b *testing.B, n int) []backend.Backend {
	opts, err := redis.ParseURL(serverURL(b))
	if err != nil {
		b.Fatal(err)
	}
	prefix := backendtest.NewPrefix()
	var bs []backend.Backend
	for range n {
		client := redis.NewClient(opts)
		be, err := dsredis.New(context.Background(), client, dsredis.Options{Prefix: prefix})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { be.Close(); client.Close() })
		bs = append(bs, be)
	}
	return bs
}

func benchFanout(b *testing.B, backends []backend.Backend, clients int, setup func(*datasole.Server)) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var nodes []*datasole.Server
	var urls []string
	for _, be := range backends {
		ds, err := datasole.New(datasole.Options{Backend: be, Logger: quiet, HeartbeatInterval: -1,
			RateLimit: datasole.RateLimit{Disabled: true}, Session: datasole.SessionOptions{Disabled: true}})
		if err != nil {
			b.Fatal(err)
		}
		if setup != nil {
			setup(ds)
		}
		if err := ds.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		hs := httptest.NewServer(ds.Handler())
		b.Cleanup(func() { ds.Close(context.Background()); hs.Close() })
		nodes = append(nodes, ds)
		urls = append(urls, hs.URL)
	}
	var got atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	var conns []*websocket.Conn
	for i := range clients {
		ws, _, err := websocket.DefaultDialer.Dial("ws"+urls[i%len(urls)][4:]+"/__ds", nil)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, ws)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				_, msg, err := ws.ReadMessage()
				if err != nil {
					return
				}
				f, err := protocol.Decode(msg)
				if err != nil || f.Opcode != protocol.EventS2C {
					continue
				}
				if n := got.Add(1); n%37 == 0 { // sample latencies: the payload carries the send time
					var ev struct{ Data [8]byte }
					if jsonDecode(f.Payload, &ev) == nil {
						sent := time.Unix(0, int64(binary.BigEndian.Uint64(ev.Data[:])))
						mu.Lock()
						lat = append(lat, time.Since(sent))
						mu.Unlock()
					}
				}
			}
		}()
	}
	b.Cleanup(func() {
		for _, ws := range conns {
			ws.Close()
		}
		wg.Wait()
	})
	for _, ds := range nodes {
		for ds.ConnectionCount() < clients/len(nodes) {
			time.Sleep(time.Millisecond)
		}
	}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		var stamp [8]byte
		binary.BigEndian.PutUint64(stamp[:], uint64(time.Now().UnixNano()))
		nodes[0].Broadcast("tick", stamp)
		for got.Load() < int64(i+1-64)*int64(clients) { // at most 64 broadcasts in flight
			time.Sleep(20 * time.Microsecond)
		}
	}
	for deadline := time.Now().Add(30 * time.Second); got.Load() < int64(b.N)*int64(clients); {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d deliveries arrived", got.Load(), int64(b.N)*int64(clients))
		}
		time.Sleep(100 * time.Microsecond)
	}
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(got.Load())/el.Seconds(), "deliveries/s")
	mu.Lock()
	defer mu.Unlock()
	if len(lat) > 0 {
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
}

func jsonDecode(b []byte, v any) error { return json.Unmarshal(b, v) }

// BenchmarkPublish compares a plain publication with a history append
// (offset, XADD MAXLEN ~, expiry and PUBLISH in one script), from 8
// goroutines on one node to a subscriber on another, in one run. It reports
// messages per second received.
func BenchmarkPublish(b *testing.B) {
	opts, err := redis.ParseURL(serverURL(b))
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 200)
	o := backend.StreamOptions{Size: 1000, TTL: time.Minute}
	for _, bc := range []struct {
		name    string
		publish func(ctx context.Context, be *dsredis.Backend, stream int) error
	}{
		{"plain", func(ctx context.Context, be *dsredis.Backend, _ int) error { return be.Publish(ctx, "c", data) }},
		{"history", func(ctx context.Context, be *dsredis.Backend, stream int) error {
			_, err := be.AppendPublish(ctx, "room:"+strconv.Itoa(stream), "c", data, o)
			return err
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			prefix := backendtest.NewPrefix()
			var nodes []*dsredis.Backend
			for range 2 {
				client := redis.NewClient(opts)
				be, err := dsredis.New(context.Background(), client, dsredis.Options{Prefix: prefix})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { be.Close(); client.Close() })
				nodes = append(nodes, be)
			}
			var got atomic.Int64
			if _, err := nodes[1].Subscribe(context.Background(), "c", func([]byte) { got.Add(1) }); err != nil {
				b.Fatal(err)
			}
			var stream atomic.Int64
			b.SetParallelism(8)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				s := int(stream.Add(1)) // one stream per goroutine, like one per room
				for pb.Next() {
					if err := bc.publish(context.Background(), nodes[0], s); err != nil {
						b.Error(err)
						return
					}
				}
			})
			for got.Load() < int64(b.N) {
				time.Sleep(100 * time.Microsecond)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}
