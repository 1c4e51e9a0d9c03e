package dsfiber_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	dsfiber "github.com/datasole/datasole-go/adapters/fiber"
	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/protocol"
	"github.com/gofiber/fiber/v2"
	"github.com/gorilla/websocket"
)

// BenchmarkIdleConnections opens DATASOLE_IDLE_CONNS (default 10,000)
// connections through dsfiber from a child process and reports the server
// process's heap + goroutine stacks after GC, and its RSS growth, per idle
// connection.
func BenchmarkIdleConnections(b *testing.B) {
	n := 10000
	if s := os.Getenv("DATASOLE_IDLE_CONNS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	b.Run(fmt.Sprintf("conns=%d", n), func(b *testing.B) {
		for range b.N {
			ds := newServer(b, datasole.Options{Auth: datasole.Anonymous, MaxConnections: -1,
				RateLimit: datasole.RateLimit{Disabled: true}, Session: datasole.SessionOptions{Disabled: true}})
			app := fiber.New(fiber.Config{DisableStartupMessage: true})
			app.Use(dsfiber.Mount(ds))
			u := listen(b, app)
			heap0, rss0 := memNow()
			cmd := exec.Command(os.Args[0], "-test.run=^TestIdleClientsProcess$", "-test.v")
			cmd.Env = append(os.Environ(), "DATASOLE_IDLE_URL="+u, "DATASOLE_IDLE_N="+strconv.Itoa(n))
			stdin, _ := cmd.StdinPipe()
			out, _ := cmd.StdoutPipe()
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			sc := bufio.NewScanner(out)
			for sc.Scan() && !strings.HasPrefix(sc.Text(), "READY") {
			}
			// Pool goroutines that served the first messages exit when idle.
			for deadline := time.Now().Add(30 * time.Second); runtime.NumGoroutine() > 100 && time.Now().Before(deadline); {
				time.Sleep(100 * time.Millisecond)
			}
			heap1, rss1 := memNow()
			b.ReportMetric(float64(heap1-heap0)/float64(n), "heap+stack-B/conn")
			b.ReportMetric(float64(rss1-rss0)/float64(n), "rss-B/conn")
			b.ReportMetric(float64(runtime.NumGoroutine()), "goroutines")
			b.ReportMetric(float64(ds.ConnectionCount()), "conns")
			stdin.Close()
			cmd.Wait()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			ds.Close(ctx)
			cancel()
		}
	})
}

func memNow() (heapStack, rss int64) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	statm, _ := os.ReadFile("/proc/self/statm")
	if f := strings.Fields(string(statm)); len(f) > 1 {
		pages, _ := strconv.ParseInt(f[1], 10, 64)
		rss = pages * int64(os.Getpagesize())
	}
	return int64(m.HeapInuse + m.StackInuse), rss
}

// TestIdleClientsProcess is the client process of BenchmarkIdleConnections.
func TestIdleClientsProcess(t *testing.T) {
	raw := os.Getenv("DATASOLE_IDLE_URL")
	if raw == "" {
		t.Skip("the client process of BenchmarkIdleConnections")
	}
	n, _ := strconv.Atoi(os.Getenv("DATASOLE_IDLE_N"))
	u, _ := url.Parse("ws" + strings.TrimPrefix(raw, "http") + "/__ds")
	ping, _ := protocol.Encode(protocol.Ping, 1, []byte("null"))
	conns := make([]net.Conn, 0, n)
	for i := range n {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%200))}}
		nc, err := d.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		ws, _, err := websocket.NewClient(nc, u, nil, 64, 64)
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
	os.Stdin.Read(make([]byte, 1))
	for _, c := range conns {
		c.Close()
	}
}
