package datasole_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/client"
)

// statsD is an Exporter that writes the StatsD line protocol to w, one
// metric per Write (one datagram each on a UDP socket): gauges as they
// are, counters as their increase since the previous export, which is
// what a StatsD server adds up. ExportEvery never calls one exporter
// concurrently, so it needs no lock.
type statsD struct {
	w      io.Writer
	prefix string
	last   map[string]int64
}

func (d *statsD) Export(_ context.Context, s datasole.Snapshot) error {
	if d.last == nil {
		d.last = make(map[string]int64)
	}
	for _, m := range s.Metrics() {
		var line string
		if m.Gauge {
			line = fmt.Sprintf("%s.%s:%d|g", d.prefix, m.Name, m.Value)
		} else {
			delta := m.Value - d.last[m.Name]
			d.last[m.Name] = m.Value
			if delta == 0 {
				continue
			}
			line = fmt.Sprintf("%s.%s:%d|c", d.prefix, m.Name, delta)
		}
		if _, err := io.WriteString(d.w, line+"\n"); err != nil {
			return err
		}
	}
	return nil
}

// A StatsD exporter pushing the server's numbers over UDP every 10 s and
// once more at Close; here the StatsD server is a socket on loopback and
// the example prints what it received about connections and RPC calls.
func ExampleServer_ExportEvery() {
	statsdServer, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer statsdServer.Close()
	udp, err := net.Dial("udp", statsdServer.LocalAddr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer udp.Close()

	ds, err := datasole.New(datasole.Options{Auth: datasole.Anonymous, Logger: quiet()})
	if err != nil {
		log.Fatal(err)
	}
	Add.Handle(ds, func(c *datasole.Context, p AddParams) (AddResult, error) { return AddResult{Sum: p.A + p.B}, nil })
	if err := ds.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	if err := ds.ExportEvery(10*time.Second, &statsD{w: udp, prefix: "datasole"}); err != nil {
		log.Fatal(err)
	}
	hs := httptest.NewServer(ds.Handler())
	defer hs.Close()

	c, err := client.Dial(context.Background(), hs.URL, client.Options{Logger: quiet()})
	if err != nil {
		log.Fatal(err)
	}
	Add.Call(context.Background(), c, AddParams{A: 2, B: 3})
	c.Close()
	ds.Close(context.Background()) // the last export runs once the connections have ended

	io.WriteString(udp, "end\n")
	statsdServer.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	for {
		n, _, err := statsdServer.ReadFrom(buf)
		line := strings.TrimSpace(string(buf[:n]))
		if err != nil || line == "end" {
			break
		}
		if strings.HasPrefix(line, "datasole.connections") || strings.HasPrefix(line, "datasole.rpc") {
			fmt.Println(line)
		}
	}
	// Output:
	// datasole.connections:0|g
	// datasole.connectionsOpened:1|c
	// datasole.connectionsClosed:1|c
	// datasole.rpcCalls:1|c
}

// lines is an io.Writer collecting what an exporter writes.
type lines struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// statsdTotals adds up StatsD lines as a StatsD server does: counters are
// summed, a gauge keeps its last value.
func statsdTotals(t *testing.T, text string) map[string]int64 {
	totals := map[string]int64{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		name, rest, ok1 := strings.Cut(sc.Text(), ":")
		value, kind, ok2 := strings.Cut(rest, "|")
		v, err := strconv.ParseInt(value, 10, 64)
		if !ok1 || !ok2 || err != nil {
			t.Fatalf("not a StatsD line: %q", sc.Text())
		}
		switch kind {
		case "c":
			totals[name] += v
		case "g":
			totals[name] = v
		default:
			t.Fatalf("unknown StatsD type in %q", sc.Text())
		}
	}
	return totals
}

func TestExportEvery(t *testing.T) {
	t.Run("periodic snapshots carry the documented fields; StatsD totals match the server's", func(t *testing.T) {
		var mu sync.Mutex
		var snaps []datasole.Snapshot
		var out lines
		sd := &statsD{w: &out, prefix: "ds"}
		ts := startServer(t, datasole.Options{}, func(ds *datasole.Server) {
			ds.HandleRPC("ping", func(*datasole.Context, json.RawMessage) (any, error) { return "pong", nil })
			ds.HandleRPC("fail", func(*datasole.Context, json.RawMessage) (any, error) { return nil, errors.New("no") })
		})
		err := ts.ds.ExportEvery(5*time.Millisecond, datasole.ExporterFunc(func(ctx context.Context, s datasole.Snapshot) error {
			mu.Lock()
			snaps = append(snaps, s)
			mu.Unlock()
			return sd.Export(ctx, s)
		}))
		if err != nil {
			t.Fatal(err)
		}
		c := dial(t, ts.url, client.Options{})
		ctx := context.Background()
		c.CallRaw(ctx, "ping", nil)
		c.CallRaw(ctx, "fail", nil)
		for i := range 3 {
			if err := ts.ds.SetState(ctx, "counter", i); err != nil {
				t.Fatal(err)
			}
		}
		seen := func(cond func(datasole.Snapshot) bool) bool {
			mu.Lock()
			defer mu.Unlock()
			return len(snaps) > 0 && cond(snaps[len(snaps)-1])
		}
		eventually(t, "an export that saw the calls and the patches", func() bool {
			return seen(func(s datasole.Snapshot) bool {
				return s.Connections == 1 && s.RPCCalls == 2 && s.RPCErrors == 1 && s.StatePatches >= 1
			})
		})
		c.Close()
		if err := ts.ds.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		last := snaps[len(snaps)-1]
		if last.Connections != 0 || last.ConnectionsClosed != 1 {
			t.Fatalf("the last export (at Close) has %d connections, %d closed; want 0 and 1", last.Connections, last.ConnectionsClosed)
		}
		for i, s := range snaps {
			if s.Node != ts.ds.NodeID() || s.StartedAt.IsZero() || s.At.Before(s.StartedAt) ||
				s.UptimeMillis != s.At.Sub(s.StartedAt).Milliseconds() {
				t.Fatalf("snapshot %d: node %q started %v at %v uptime %d ms", i, s.Node, s.StartedAt, s.At, s.UptimeMillis)
			}
			if i > 0 && (s.UptimeMillis < snaps[i-1].UptimeMillis || s.FramesIn < snaps[i-1].FramesIn) {
				t.Fatalf("snapshot %d went backwards", i)
			}
		}
		// The guide's fields, under their names here.
		metrics := map[string]datasole.Metric{}
		for _, m := range last.Metrics() {
			metrics[m.Name] = m
		}
		for _, name := range []string{"connections", "uptimeMillis", "framesIn", "framesOut", "bytesIn", "bytesOut", "rpcCalls", "rpcErrors", "statePatches"} {
			m, ok := metrics[name]
			if !ok || (name != "connections" && m.Value <= 0) {
				t.Errorf("metric %s: %+v", name, m)
			}
		}
		// Deltas sent as StatsD counters add up to the server's totals.
		totals := statsdTotals(t, out.b.String())
		for _, m := range last.Metrics() {
			if got := totals["ds."+m.Name]; got != m.Value && m.Name != "uptimeMillis" {
				t.Errorf("StatsD total of %s is %d, the server's is %d", m.Name, got, m.Value)
			}
		}
	})

	t.Run("failures and panics are counted and logged sampled; exports go on", func(t *testing.T) {
		var logs logBuffer
		ts := startServer(t, datasole.Options{Logger: logs.logger()}, nil)
		calls := 0
		got := make(chan datasole.Snapshot, 1)
		err := ts.ds.ExportEvery(time.Millisecond, datasole.ExporterFunc(func(_ context.Context, s datasole.Snapshot) error {
			calls++
			switch calls {
			case 1:
				return errors.New("statsd unreachable")
			case 2:
				panic("exporter bug")
			case 3:
				got <- s
			}
			return nil
		}))
		if err != nil {
			t.Fatal(err)
		}
		if s := wait(t, got, "the third export"); s.ExportErrors != 2 {
			t.Fatalf("the third export saw %d errors, want 2", s.ExportErrors)
		}
		if n := logs.count("metrics export failed"); n < 1 || n > 2 {
			t.Fatalf("%d log lines for two failures, want them sampled (one per second)", n)
		}
	})

	t.Run("a slow exporter holds up nothing", func(t *testing.T) {
		stuck := make(chan struct{})
		var once sync.Once
		started := make(chan struct{})
		ts := startServer(t, datasole.Options{}, func(ds *datasole.Server) {
			ds.HandleRPC("ping", func(*datasole.Context, json.RawMessage) (any, error) { return "pong", nil })
		})
		ts.ds.ExportEvery(time.Millisecond, datasole.ExporterFunc(func(ctx context.Context, _ datasole.Snapshot) error {
			once.Do(func() { close(started) })
			select {
			case <-stuck:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}))
		wait(t, started, "the first export")
		c := dial(t, ts.url, client.Options{})
		for range 20 {
			if _, err := c.CallRaw(context.Background(), "ping", nil); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, "timed-out exports to be counted", func() bool { return ts.ds.Snapshot().ExportErrors > 0 })
		close(stuck)
	})

	t.Run("it refuses a bad interval, a nil exporter and a closed server", func(t *testing.T) {
		ds, err := datasole.New(quietOptions(datasole.Options{}))
		if err != nil {
			t.Fatal(err)
		}
		nop := datasole.ExporterFunc(func(context.Context, datasole.Snapshot) error { return nil })
		if err := ds.ExportEvery(0, nop); !errors.Is(err, datasole.ErrInvalidOption) {
			t.Errorf("interval 0: %v", err)
		}
		if err := ds.ExportEvery(time.Second, nil); !errors.Is(err, datasole.ErrInvalidOption) {
			t.Errorf("nil exporter: %v", err)
		}
		ds.Close(context.Background())
		if err := ds.ExportEvery(time.Second, nop); !errors.Is(err, datasole.ErrClosed) {
			t.Errorf("after Close: %v", err)
		}
	})
}

func TestExportEveryOnTheClock(t *testing.T) {
	t.Run("one export per interval, and a last one at Close", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ds, err := datasole.New(quietOptions(datasole.Options{HeartbeatInterval: -1}))
			if err != nil {
				t.Fatal(err)
			}
			if err := ds.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var uptimes []int64
			exported := func() string { mu.Lock(); defer mu.Unlock(); return fmt.Sprint(uptimes) }
			ds.ExportEvery(10*time.Second, datasole.ExporterFunc(func(_ context.Context, s datasole.Snapshot) error {
				mu.Lock()
				uptimes = append(uptimes, s.UptimeMillis)
				mu.Unlock()
				return nil
			}))
			time.Sleep(35 * time.Second)
			synctest.Wait()
			if got := exported(); got != "[10000 20000 30000]" {
				t.Fatalf("uptimes exported after 35 s: %v, want one export every 10 s", got)
			}
			ds.Close(context.Background())
			if uptimes := exported(); uptimes != "[10000 20000 30000 35000]" {
				t.Fatalf("uptimes exported by Close: %v, want a last export at 35 s", uptimes)
			}
		})
	})

	t.Run("Close waits at most 6 s for an exporter that ignores its context", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ds, err := datasole.New(quietOptions(datasole.Options{HeartbeatInterval: -1}))
			if err != nil {
				t.Fatal(err)
			}
			if err := ds.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			release := make(chan struct{})
			ds.ExportEvery(time.Hour, datasole.ExporterFunc(func(context.Context, datasole.Snapshot) error {
				<-release
				return nil
			}))
			start := time.Now()
			ds.Close(context.Background())
			if d := time.Since(start); d != 6*time.Second {
				t.Fatalf("Close took %v, want 6s", d)
			}
			close(release)
		})
	})
}

func TestSnapshotMetrics(t *testing.T) {
	s := datasole.Snapshot{
		Connections: 3, UptimeMillis: 1500, FramesIn: 7, RPCCalls: 2, ExportErrors: 1,
		Closes:     map[string]uint64{"slow-consumer": 1, "closed": 4},
		Rejections: map[string]uint64{"shutting down": 2},
	}
	var got []string
	for _, m := range s.Metrics() {
		kind := "c"
		if m.Gauge {
			kind = "g"
		}
		if m.Value != 0 || m.Gauge {
			got = append(got, fmt.Sprintf("%s=%d%s", m.Name, m.Value, kind))
		}
	}
	want := "connections=3g uptimeMillis=1500g framesIn=7c rpcCalls=2c exportErrors=1c closes.closed=4c closes.slow-consumer=1c rejections.shutting_down=2c"
	if strings.Join(got, " ") != want {
		t.Fatalf("metrics:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	if n := len(s.Metrics()); n != 2+23+3 {
		t.Fatalf("%d metrics, want 2 gauges, 23 counters and 3 labelled counts", n)
	}
}
