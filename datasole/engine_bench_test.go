package datasole_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/client"
	"github.com/datasole/datasole-go/datasole/protocol"
	"github.com/gorilla/websocket"
)

// The engine benchmarks load the server with stock-style v1 clients (bare
// gorilla connections sending pre-encoded frames), so that client cost is
// small and the same for every server measured. CPU per operation is the
// process's user+system time (getrusage), clients included; compare it
// against the gorilla echo floor measured in the same run.

// echoFloor is a bare gorilla WebSocket echo server: no protocol work, the
// floor an RPC can cost.
func echoFloor() http.Handler {
	up := websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		go func() {
			defer ws.Close()
			for {
				mt, msg, err := ws.ReadMessage()
				if err != nil {
					return
				}
				if ws.WriteMessage(mt, msg) != nil {
					return
				}
			}
		}()
	})
}

type rpcTarget struct {
	name  string
	serve func(b *testing.B) string // returns the ws URL
}

func rpcTargets() []rpcTarget {
	return []rpcTarget{
		{"server=datasole", func(b *testing.B) string {
			ds, hs := benchServer(b)
			ds.HandleRPC("echo", func(_ *datasole.Context, p json.RawMessage) (any, error) { return p, nil })
			return "ws" + hs.URL[4:] + "/__ds"
		}},
		{"server=gorilla-echo-floor", func(b *testing.B) string {
			hs := httptest.NewServer(echoFloor())
			b.Cleanup(hs.Close)
			return "ws" + hs.URL[4:] + "/__ds"
		}},
	}
}

// rpcRequest is an RPC_REQ echoing 16 bytes, with id in the header.
func rpcRequest(buf []byte, id uint32) []byte {
	const body = `{"method":"echo","params":"0123456789abcdef"}`
	buf = append(buf[:0], byte(protocol.RPCReq))
	buf = binary.BigEndian.AppendUint32(buf, id)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(body)))
	return append(buf, body...)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRPCPipelined: 50 connections with 4 calls in flight each, 16-byte
// params; reports calls/s and process CPU per call.
func BenchmarkRPCPipelined(b *testing.B) {
	const conns, depth = 50, 4
	for _, tg := range rpcTargets() {
		b.Run(tg.name, func(b *testing.B) {
			url := tg.serve(b)
			wss := make([]*websocket.Conn, conns)
			for i := range wss {
				ws, _, err := websocket.DefaultDialer.Dial(url, nil)
				if err != nil {
					b.Fatal(err)
				}
				defer ws.Close()
				wss[i] = ws
			}
			var next, received atomic.Int64
			total := int64(b.N)
			finished := make(chan struct{})
			var wg sync.WaitGroup
			b.ReportAllocs()
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuTime()
			for _, ws := range wss {
				wg.Add(2)
				credit := make(chan struct{}, depth)
				for range depth {
					credit <- struct{}{}
				}
				go func() { // writer: keeps depth calls in flight
					defer wg.Done()
					var buf []byte
					for {
						select {
						case <-credit:
						case <-finished:
							return
						}
						id := next.Add(1)
						if id > total {
							return
						}
						buf = rpcRequest(buf, uint32(id))
						if ws.WriteMessage(websocket.BinaryMessage, buf) != nil {
							return
						}
					}
				}()
				go func() { // reader
					defer wg.Done()
					for {
						if _, _, err := ws.ReadMessage(); err != nil {
							return
						}
						if received.Add(1) == total {
							close(finished)
						}
						credit <- struct{}{}
					}
				}()
			}
			<-finished
			elapsed, cpu := time.Since(start), cpuTime()-cpu0
			b.StopTimer()
			for _, ws := range wss {
				ws.Close()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "calls/s")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkRPCSequential: one connection, one call at a time; reports the
// median round trip.
func BenchmarkRPCSequential(b *testing.B) {
	for _, tg := range rpcTargets() {
		b.Run(tg.name, func(b *testing.B) {
			ws, _, err := websocket.DefaultDialer.Dial(tg.serve(b), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer ws.Close()
			lat := make([]time.Duration, 0, b.N)
			var buf []byte
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				buf = rpcRequest(buf, uint32(i+1))
				t0 := time.Now()
				if err := ws.WriteMessage(websocket.BinaryMessage, buf); err != nil {
					b.Fatal(err)
				}
				if _, _, err := ws.ReadMessage(); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1000, "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1000, "p99-µs")
		})
	}
}

// BenchmarkGoClientRPC: our Go client with and without the batching
// extension, 50 goroutines calling at once on one connection.
func BenchmarkGoClientRPC(b *testing.B) {
	for _, nb := range []bool{false, true} {
		b.Run(fmt.Sprintf("batching=%v", !nb), func(b *testing.B) {
			ds, hs := benchServer(b)
			ds.HandleRPC("echo", func(_ *datasole.Context, p json.RawMessage) (any, error) { return p, nil })
			c, err := client.Dial(context.Background(), hs.URL, client.Options{NoBatching: nb, Logger: discardLogger()})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			if c.Batching() == nb {
				b.Fatalf("batching %v", c.Batching())
			}
			b.SetParallelism(25) // 50 goroutines on 2 cores
			b.ReportAllocs()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.CallRaw(context.Background(), "echo", "0123456789abcdef"); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
		})
	}
}

// BenchmarkIdleConnections opens 10,000 connections from a separate
// process (so that only the server's memory is measured here) and reports
// the server's heap + goroutine stacks after GC, and its RSS growth, per
// idle connection.
func BenchmarkIdleConnections(b *testing.B) {
	n := 10000
	if s := os.Getenv("DATASOLE_IDLE_CONNS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	for _, tg := range []struct {
		name  string
		serve func(b *testing.B) string
	}{
		{"server=datasole", func(b *testing.B) string {
			ds, err := datasole.New(quietOptions(datasole.Options{MaxConnections: -1, RateLimit: datasole.RateLimit{Disabled: true}, Session: datasole.SessionOptions{Disabled: true}}))
			if err != nil {
				b.Fatal(err)
			}
			ds.Start(context.Background())
			hs := httptest.NewServer(ds.Handler())
			b.Cleanup(func() { ds.Close(context.Background()); hs.Close() })
			return hs.URL
		}},
	} {
		b.Run(fmt.Sprintf("%s/conns=%d", tg.name, n), func(b *testing.B) {
			for range b.N {
				url := tg.serve(b)
				heap0, rss0 := memNow()
				cmd := exec.Command(os.Args[0], "-test.run=^TestIdleClientsProcess$", "-test.v")
				cmd.Env = append(os.Environ(), "DATASOLE_IDLE_URL="+url, "DATASOLE_IDLE_N="+strconv.Itoa(n))
				stdin, _ := cmd.StdinPipe()
				out, _ := cmd.StdoutPipe()
				cmd.Stderr = os.Stderr
				if err := cmd.Start(); err != nil {
					b.Fatal(err)
				}
				sc := bufio.NewScanner(out)
				for sc.Scan() && !strings.HasPrefix(sc.Text(), "READY") {
				}
				// Pool goroutines that served the connections' first
				// messages exit after their idle time: wait for them.
				for deadline := time.Now().Add(30 * time.Second); runtime.NumGoroutine() > 100 && time.Now().Before(deadline); {
					time.Sleep(100 * time.Millisecond)
				}
				heap1, rss1 := memNow()
				if os.Getenv("DATASOLE_IDLE_HEAPPROFILE") != "" {
					f, _ := os.Create(os.Getenv("DATASOLE_IDLE_HEAPPROFILE"))
					pprof.WriteHeapProfile(f)
					f.Close()
				}
				stdin.Close()
				cmd.Wait()
				b.ReportMetric(float64(heap1-heap0)/float64(n), "heap+stack-B/conn")
				b.ReportMetric(float64(rss1-rss0)/float64(n), "rss-B/conn")
				b.ReportMetric(float64(runtime.NumGoroutine()), "goroutines")
			}
		})
	}
}

func memNow() (heapStack, rss int64) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	statm, _ := os.ReadFile("/proc/self/statm")
	f := strings.Fields(string(statm))
	if len(f) > 1 {
		pages, _ := strconv.ParseInt(f[1], 10, 64)
		rss = pages * int64(os.Getpagesize())
	}
	return int64(m.HeapInuse + m.StackInuse), rss
}

// TestIdleClientsProcess is the client process of BenchmarkIdleConnections:
// it opens DATASOLE_IDLE_N WebSocket connections, prints READY once the
// server has attached them all (a round trip on each), and holds them until
// its stdin closes.
func TestIdleClientsProcess(t *testing.T) {
	url := os.Getenv("DATASOLE_IDLE_URL")
	if url == "" {
		t.Skip("the client process of BenchmarkIdleConnections")
	}
	n, _ := strconv.Atoi(os.Getenv("DATASOLE_IDLE_N"))
	conns := make([]net.Conn, 0, n)
	ping, _ := protocol.Encode(protocol.Ping, 1, []byte("null"))
	for i := range n {
		// Spread over loopback source addresses to avoid port exhaustion.
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%200))}}
		nc, err := d.Dial("tcp", strings.TrimPrefix(url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		ws, _, err := websocket.NewClient(nc, mustParse(url+"/__ds"), nil, 64, 64)
		if err != nil {
			t.Fatal(err)
		}
		ws.WriteMessage(websocket.BinaryMessage, ping)
		for {
			_, m, err := ws.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			if m[0] == byte(protocol.Pong) {
				break
			}
		}
		conns = append(conns, nc)
	}
	fmt.Println("READY")
	buf := make([]byte, 1)
	os.Stdin.Read(buf)
	for _, c := range conns {
		c.Close()
	}
}

func mustParse(raw string) *url.URL {
	u, err := url.Parse("ws" + strings.TrimPrefix(raw, "http"))
	if err != nil {
		panic(err)
	}
	return u
}
