package load

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/datasole/datasole-go/bench/internal/procstat"
)

// Env is one running server as the scenarios see it.
type Env struct {
	// URL is the server's WebSocket endpoint (ws://host:port/path).
	URL string
	// Debug is the base URL of the server's debug endpoint.
	Debug string
	// PID is the server process, whose CPU time is measured.
	PID int
	// Proto is the protocol of the server's raw load client.
	Proto Protocol
	// GoClient drives the server through datasole/client instead of the raw
	// client (datasole servers only); Batch then offers the batching
	// extension through the client's dialer.
	GoClient bool
	Batch    bool
	Sources  *Sources
}

var debugClient = &http.Client{Timeout: 60 * time.Second}

func (e *Env) getJSON(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, "GET", e.Debug+path, nil)
	if err != nil {
		return err
	}
	return doJSON(req, v)
}

func doJSON(req *http.Request, v any) error {
	resp, err := debugClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s", req.Method, req.URL.Path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// Mem is the server's memory as its debug endpoint reports it after a GC,
// plus its resident set size read from /proc.
type Mem struct {
	HeapInuse  uint64 `json:"heapInuse"`
	StackInuse uint64 `json:"stackInuse"`
	Goroutines int    `json:"goroutines"`
	Conns      int    `json:"conns"`
	RSS        uint64 `json:"rss"`
}

// Mem runs the server's GC and reads its memory.
func (e *Env) Mem(ctx context.Context) (Mem, error) {
	var m Mem
	if err := e.getJSON(ctx, "/mem", &m); err != nil {
		return m, err
	}
	rss, err := procstat.RSS(e.PID)
	m.RSS = rss
	return m, err
}

// Conns returns the server's count of open connections.
func (e *Env) Conns(ctx context.Context) (int, error) {
	var s struct{ Conns int }
	err := e.getJSON(ctx, "/stats", &s)
	return s.Conns, err
}

// WaitConns waits until the server counts want connections, or the timeout.
func (e *Env) WaitConns(ctx context.Context, want int, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		n, err := e.Conns(ctx)
		if err != nil || n == want || time.Now().After(deadline) {
			return n, err
		}
		time.Sleep(20 * time.Millisecond) // polling the server; nothing to wait on here
	}
}

// Publish has the server publish n messages of size bytes; it returns the
// sequence number of the last.
func (e *Env) Publish(ctx context.Context, n, size int) (int64, error) {
	q := url.Values{"n": {strconv.Itoa(n)}, "size": {strconv.Itoa(size)}}
	req, err := http.NewRequestWithContext(ctx, "POST", e.Debug+"/publish?"+q.Encode(), nil)
	if err != nil {
		return 0, err
	}
	var r struct{ Last int64 }
	err = doJSON(req, &r)
	return r.Last, err
}

// cpuMeter measures the server's and the load client's CPU time over a
// window.
type cpuMeter struct {
	pid                int
	server0, self0     time.Duration
	wall0              time.Time
	Server, Self, Wall time.Duration
}

func (m *cpuMeter) start() error {
	var err error
	if m.server0, err = procstat.CPU(m.pid); err != nil {
		return err
	}
	m.self0, err = procstat.CPU(os.Getpid())
	m.wall0 = time.Now()
	return err
}

func (m *cpuMeter) stop() error {
	m.Wall = time.Since(m.wall0)
	s, err := procstat.CPU(m.pid)
	if err != nil {
		return err
	}
	c, err := procstat.CPU(os.Getpid())
	m.Server, m.Self = s-m.server0, c-m.self0
	return err
}
