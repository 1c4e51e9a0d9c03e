package load

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// IdleConfig is one idle-memory measurement: Conns connections opened with
// Parallel dials at a time, held open without traffic, measured Settle after
// the last one opened.
type IdleConfig struct {
	Conns, Parallel int
	Settle          time.Duration
}

// Idle opens connections that then send nothing of their own (after the
// protocol's handshake: centrifuge's connect command) and reports the
// server's memory per connection: heap and stacks in use after a GC, and the
// growth of its resident set. Each connection has a reader here that answers
// the server's pings (WebSocket pings, centrifuge's application pings), as a
// live idle client does, so however long the dialing takes no server closes
// them as dead.
func Idle(ctx context.Context, e *Env, cfg IdleConfig) (Metrics, error) {
	before, err := e.Mem(ctx)
	if err != nil {
		return nil, err
	}
	conns := make([]*Conn, cfg.Conns)
	var readers sync.WaitGroup
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
		readers.Wait()
	}()
	var next atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range max(cfg.Parallel, 1) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= cfg.Conns || ctx.Err() != nil {
					return
				}
				c, err := e.Sources.Dial(ctx, e.URL, DialOptions{Subprotocols: e.Proto.Subprotocols(), ReadBuffer: 1024})
				if err == nil {
					err = e.Proto.Handshake(c)
				}
				if err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("connection %d: %w", i, err) })
					next.Store(int64(cfg.Conns)) // stop the other dialers
					if c != nil {
						c.Close()
					}
					return
				}
				conns[i] = c
				readers.Go(func() { answerPings(c, e.Proto) })
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	dialTime := time.Since(start)
	// Measure once the server has registered every connection (or has
	// given up on some: the table shows how many it counts).
	if _, err := e.WaitConns(ctx, cfg.Conns, 30*time.Second); err != nil {
		return nil, err
	}
	if err := sleepCtx(ctx, cfg.Settle); err != nil {
		return nil, err
	}
	after, err := e.Mem(ctx)
	if err != nil {
		return nil, err
	}
	n := float64(cfg.Conns)
	perConn := func(a, b uint64) float64 { return (float64(a) - float64(b)) / n / 1024 }
	return Metrics{
		"conns":                   n,
		"conns_alive":             float64(after.Conns),
		"heap_per_conn_kib":       perConn(after.HeapInuse, before.HeapInuse),
		"stack_per_conn_kib":      perConn(after.StackInuse, before.StackInuse),
		"heap_stack_per_conn_kib": perConn(after.HeapInuse+after.StackInuse, before.HeapInuse+before.StackInuse),
		"rss_per_conn_kib":        perConn(after.RSS, before.RSS),
		"goroutines_per_conn":     float64(after.Goroutines-before.Goroutines) / n,
		"connects_per_s":          n / dialTime.Seconds(),
	}, nil
}

// ChurnConfig is one churn load: Workers goroutines each connecting and
// closing at once, for Duration.
type ChurnConfig struct {
	Workers  int
	Duration time.Duration
}

// Churn opens WebSocket connections and closes each as soon as the upgrade
// completes (no protocol handshake, an abortive close so that the client
// side keeps no TIME_WAIT), and reports connects per second and the
// server's CPU time per connect.
func Churn(ctx context.Context, e *Env, cfg ChurnConfig) (Metrics, error) {
	var ok, failed atomic.Int64
	var firstErr atomic.Pointer[error]
	m := &cpuMeter{pid: e.PID}
	if err := m.start(); err != nil {
		return nil, err
	}
	end := time.Now().Add(cfg.Duration)
	var wg sync.WaitGroup
	for range max(cfg.Workers, 1) {
		wg.Go(func() {
			for time.Now().Before(end) && ctx.Err() == nil {
				c, err := e.Sources.Dial(ctx, e.URL, DialOptions{Subprotocols: e.Proto.Subprotocols(), ReadBuffer: 1024})
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, &err)
					continue
				}
				if tc, isTCP := c.WS.NetConn().(*net.TCPConn); isTCP {
					tc.SetLinger(0)
				}
				c.Close()
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	if err := m.stop(); err != nil {
		return nil, err
	}
	if ok.Load() == 0 {
		if p := firstErr.Load(); p != nil {
			return nil, *p
		}
		return nil, fmt.Errorf("no connection in %v", cfg.Duration)
	}
	return Metrics{
		"connects_per_s":            float64(ok.Load()) / m.Wall.Seconds(),
		"server_cpu_us_per_connect": float64(m.Server.Microseconds()) / float64(ok.Load()),
		"server_cpu_pct":            100 * m.Server.Seconds() / m.Wall.Seconds(),
		"client_cpu_pct":            100 * m.Self.Seconds() / m.Wall.Seconds(),
		"failed":                    float64(failed.Load()),
	}, nil
}

// answerPings reads an idle connection until it closes: gorilla answers
// WebSocket pings while reading, and an application ping (centrifuge's {})
// gets the protocol's answer. Nothing else is expected.
func answerPings(c *Conn, p Protocol) {
	var buf []byte
	for {
		_, rd, err := c.WS.NextReader()
		if err != nil {
			return
		}
		if buf, err = readAll(rd, buf[:0]); err != nil {
			return
		}
		answer, _ := p.Parse(buf, func(uint32, bool) {}, ignorePush)
		if answer != nil {
			c.WS.WriteMessage(p.MessageType(), answer)
		}
	}
}
