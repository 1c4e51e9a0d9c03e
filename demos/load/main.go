// Command load is the project's load tool. It drives a running datasole
// server (usually the fixture) from a separate process, so that the server's
// own figures are not mixed with the load generator's:
//
//	go run ./demos/fixture -addr 127.0.0.1:8080 &
//	go run ./demos/load -addr 127.0.0.1:8080 -mode idle -conns 10000
//	go run ./demos/load -addr 127.0.0.1:8080 -mode rpc -conns 50 -duration 10s
//	go run ./demos/load -addr 127.0.0.1:8080 -mode broadcast -conns 1000 -duration 10s
//
// idle opens connections that do nothing and reports the server's memory per
// connection (from the fixture's /stats?gc=1). rpc runs echo calls in a loop
// on every connection and reports calls per second and latency percentiles.
// broadcast has one client emit ping events that the fixture broadcasts as
// pong to every connection, and reports deliveries per second.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/datasole/datasole-go/datasole/client"
	"github.com/gorilla/websocket"
)

type serverStats struct {
	Connections int `json:"connections"`
	Memory      struct {
		HeapInuse  uint64 `json:"heapInuse"`
		StackInuse uint64 `json:"stackInuse"`
		Goroutines int    `json:"goroutines"`
	} `json:"memory"`
}

func stats(addr string) (serverStats, error) {
	var s serverStats
	resp, err := http.Get("http://" + addr + "/stats?gc=1")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "server address")
	mode := flag.String("mode", "idle", "idle, rpc or broadcast")
	conns := flag.Int("conns", 1000, "connections")
	duration := flag.Duration("duration", 10*time.Second, "how long rpc and broadcast run")
	flag.Parse()
	var err error
	switch *mode {
	case "idle":
		err = idle(*addr, *conns)
	case "rpc":
		err = rpc(*addr, *conns, *duration)
	case "broadcast":
		err = broadcast(*addr, *conns, *duration)
	default:
		err = fmt.Errorf("unknown mode %q", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

func idle(addr string, n int) error {
	before, err := stats(addr)
	if err != nil {
		return err
	}
	d := websocket.Dialer{ReadBufferSize: 512, WriteBufferSize: 512}
	var wss []*websocket.Conn
	for i := 0; i < n; i++ {
		ws, _, err := d.Dial("ws://"+addr+"/__ds", nil)
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		wss = append(wss, ws)
	}
	time.Sleep(2 * time.Second) // let snapshots drain and writers exit
	after, err := stats(addr)
	if err != nil {
		return err
	}
	for _, ws := range wss {
		ws.Close()
	}
	heap := int64(after.Memory.HeapInuse) - int64(before.Memory.HeapInuse)
	stack := int64(after.Memory.StackInuse) - int64(before.Memory.StackInuse)
	fmt.Printf("idle: %d connections (server counts %d), %d goroutines on the server\n", n, after.Connections, after.Memory.Goroutines)
	fmt.Printf("server memory per idle connection: %.1f KiB (heap %.1f KiB + stacks %.1f KiB)\n",
		float64(heap+stack)/float64(n)/1024, float64(heap)/float64(n)/1024, float64(stack)/float64(n)/1024)
	return nil
}

func dialN(addr string, n int) ([]*client.Client, error) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var cs []*client.Client
	for i := 0; i < n; i++ {
		c, err := client.Dial(context.Background(), "http://"+addr, client.Options{Logger: quiet, NoReconnect: true})
		if err != nil {
			closeAll(cs)
			return nil, err
		}
		cs = append(cs, c)
	}
	return cs, nil
}

func closeAll(cs []*client.Client) {
	for _, c := range cs {
		c.Close()
	}
}

func rpc(addr string, n int, d time.Duration) error {
	cs, err := dialN(addr, n)
	if err != nil {
		return err
	}
	defer closeAll(cs)
	var mu sync.Mutex
	var lat []time.Duration
	var calls atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for time.Now().Before(deadline) {
				t0 := time.Now()
				if _, err := c.CallRaw(context.Background(), "echo", map[string]int{"n": 1}); err != nil {
					fmt.Fprintln(os.Stderr, "load: call:", err)
					return
				}
				mine = append(mine, time.Since(t0))
				calls.Add(1)
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) == 0 {
		return fmt.Errorf("no call completed")
	}
	fmt.Printf("rpc: %d connections, %.0f calls/s, p50 %v, p99 %v\n", n, float64(calls.Load())/d.Seconds(),
		lat[len(lat)/2], lat[len(lat)*99/100])
	return nil
}

func broadcast(addr string, n int, d time.Duration) error {
	cs, err := dialN(addr, n)
	if err != nil {
		return err
	}
	defer closeAll(cs)
	var got atomic.Int64
	for _, c := range cs {
		c.On("pong", func(json.RawMessage) { got.Add(1) })
	}
	sent := 0
	start := time.Now()
	for time.Since(start) < d {
		if err := cs[0].Emit(context.Background(), "ping", sent); err != nil {
			return err
		}
		sent++
		for got.Load() < int64(sent-64)*int64(n) { // at most 64 broadcasts in flight
			time.Sleep(100 * time.Microsecond)
		}
	}
	for wait := time.Now(); got.Load() < int64(sent)*int64(n) && time.Since(wait) < 10*time.Second; {
		time.Sleep(time.Millisecond)
	}
	el := time.Since(start)
	fmt.Printf("broadcast: %d connections, %d broadcasts, %.0f deliveries/s (%d of %d delivered)\n",
		n, sent, float64(got.Load())/el.Seconds(), got.Load(), int64(sent)*int64(n))
	return nil
}
