package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/datasole/datasole-go/bench/internal/hist"
	"github.com/datasole/datasole-go/datasole/client"
)

// Metrics are one scenario's figures on one server, by name.
type Metrics map[string]float64

// RPCConfig is one RPC load: Conns connections, each keeping Depth echo
// calls in flight with Params as the params, measured for Duration after
// Warmup.
type RPCConfig struct {
	Conns, Depth     int
	Params           []byte
	Warmup, Duration time.Duration
}

// phase of a load run, shared by its connections.
const (
	warmup int32 = iota
	measuring
	stopping
)

type window struct {
	phase atomic.Int32
	base  time.Time
}

func (w *window) now() time.Duration { return time.Since(w.base) }

// RPC runs an echo RPC load and reports calls/s, the server's CPU time per
// call, latency percentiles and the load client's own CPU use.
func RPC(ctx context.Context, e *Env, cfg RPCConfig) (Metrics, error) {
	w := &window{base: time.Now()}
	type worker interface {
		run()
		close()
		// stats is read once run has returned.
		stats() (ok, failed uint64, h *hist.Histogram)
	}
	var workers []worker
	negotiated := 0.0
	defer func() {
		w.phase.Store(stopping)
		for _, wk := range workers {
			wk.close()
		}
	}()
	for i := range cfg.Conns {
		if e.GoClient {
			c, sub, err := dialGoClient(ctx, e, i == 0, nil)
			if err != nil {
				return nil, err
			}
			if i == 0 && sub == SubprotocolBatch {
				negotiated = 1
			}
			workers = append(workers, &goRPC{w: w, c: c, depth: cfg.Depth, params: cfg.Params})
			continue
		}
		c, err := e.Sources.Dial(ctx, e.URL, DialOptions{Subprotocols: e.Proto.Subprotocols(), ReadBuffer: 64 << 10, Cork: true})
		if err != nil {
			return nil, err
		}
		if err := e.Proto.Handshake(c); err != nil {
			c.Close()
			return nil, err
		}
		batch := c.WS.Subprotocol() == SubprotocolBatch
		if i == 0 && batch {
			negotiated = 1
		}
		workers = append(workers, newRawRPC(w, c, e.Proto, cfg, batch))
	}

	var wg sync.WaitGroup
	for _, wk := range workers {
		wg.Go(wk.run)
	}
	m := &cpuMeter{pid: e.PID}
	if err := sleepCtx(ctx, cfg.Warmup); err != nil {
		return nil, err
	}
	if err := m.start(); err != nil {
		return nil, err
	}
	w.phase.Store(measuring)
	if err := sleepCtx(ctx, cfg.Duration); err != nil {
		return nil, err
	}
	w.phase.Store(stopping)
	if err := m.stop(); err != nil {
		return nil, err
	}
	for _, wk := range workers {
		wk.close()
	}
	wg.Wait()
	var calls, failed uint64
	var h hist.Histogram
	for _, wk := range workers {
		ok, bad, wh := wk.stats()
		calls += ok
		failed += bad
		h.Merge(wh)
	}
	workers = nil
	if calls == 0 {
		return nil, fmt.Errorf("no call completed in %v (%d failed)", cfg.Duration, failed)
	}
	sec := m.Wall.Seconds()
	return Metrics{
		"calls_per_s":            float64(calls) / sec,
		"server_cpu_us_per_call": float64(m.Server.Microseconds()) / float64(calls),
		"server_cpu_pct":         100 * m.Server.Seconds() / sec,
		"client_cpu_pct":         100 * m.Self.Seconds() / sec,
		"client_cpu_us_per_call": float64(m.Self.Microseconds()) / float64(calls),
		"p50_us":                 float64(h.Quantile(0.50).Nanoseconds()) / 1e3,
		"p99_us":                 float64(h.Quantile(0.99).Nanoseconds()) / 1e3,
		"errors":                 float64(failed),
		"batch_negotiated":       negotiated,
	}, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// rawRPC is one raw load connection: a single goroutine that keeps depth
// calls in flight. Call i of the connection uses slot i%depth, whose send
// time is kept in start; a reply's id names its slot.
type rawRPC struct {
	w      *window
	c      *Conn
	p      Protocol
	params []byte
	depth  uint32
	next   uint32 // calls issued, over all slots
	start  []time.Duration
	out    []byte
	batch  *BatchWriter
	item   []byte

	ok, failed uint64
	h          hist.Histogram
}

func newRawRPC(w *window, c *Conn, p Protocol, cfg RPCConfig, batch bool) *rawRPC {
	r := &rawRPC{w: w, c: c, p: p, params: cfg.Params, depth: uint32(cfg.Depth), start: make([]time.Duration, cfg.Depth)}
	if batch {
		r.batch = new(BatchWriter)
		c.BeforeBlock(func() {
			if r.batch.Len() > 0 {
				r.c.WS.WriteMessage(websocket.BinaryMessage, r.batch.Take())
			}
		})
	}
	return r
}

// send issues the next call of slot.
func (r *rawRPC) send(slot uint32) error {
	id := r.next/r.depth*r.depth + slot + 1
	r.next++
	r.start[slot] = r.w.now()
	if r.batch != nil {
		r.item = r.p.AppendCall(r.item[:0], id, r.params)
		r.batch.Add(r.item)
		return nil
	}
	r.out = r.p.AppendCall(r.out[:0], id, r.params)
	return r.c.WS.WriteMessage(r.p.MessageType(), r.out)
}

// run drives the connection until it is closed.
func (r *rawRPC) run() { r.loop() }

func (r *rawRPC) loop() error {
	for s := range r.depth {
		if err := r.send(s); err != nil {
			return err
		}
	}
	var buf []byte
	var sendErr error
	onReply := func(id uint32, ok bool) {
		slot := (id - 1) % r.depth
		if r.w.phase.Load() == measuring {
			if ok {
				r.ok++
				r.h.Record(r.w.now() - r.start[slot])
			} else {
				r.failed++
			}
		}
		if r.w.phase.Load() != stopping && sendErr == nil {
			sendErr = r.send(slot)
		}
	}
	for {
		_, rd, err := r.c.WS.NextReader()
		if err != nil {
			return err
		}
		if buf, err = readAll(rd, buf[:0]); err != nil {
			return err
		}
		answer, err := r.p.Parse(buf, onReply, ignorePush)
		if err != nil {
			return err
		}
		if sendErr != nil {
			return sendErr
		}
		if answer != nil {
			r.c.WS.WriteMessage(r.p.MessageType(), answer)
		}
	}
}

func ignorePush([]byte) {}

func (r *rawRPC) stats() (uint64, uint64, *hist.Histogram) { return r.ok, r.failed, &r.h }

func (r *rawRPC) close() { r.c.Close() }

// readAll reads a message into b, reusing its space.
func readAll(rd io.Reader, b []byte) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := rd.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// ---- datasole/client ----------------------------------------------------------

// dialGoClient connects datasole/client to e, offering the batching
// extension when e.Batch; onDown runs when the link drops. The offer is made
// through the client's Dialer; should the client come to make its own offer,
// its switch for batching is what the two modes must set instead. With probe it
// also returns the subprotocol the server selects for that offer, seen by a
// separate probe connection (the client does not expose it).
func dialGoClient(ctx context.Context, e *Env, probe bool, onDown func()) (*client.Client, string, error) {
	protos := []string{SubprotocolV1}
	if e.Batch {
		protos = append(protos, SubprotocolBatch)
	}
	var selected string
	if probe {
		p, err := e.Sources.Dial(ctx, e.URL, DialOptions{Subprotocols: protos})
		if err != nil {
			return nil, "", err
		}
		selected = p.WS.Subprotocol()
		p.Close()
	}
	d := &websocket.Dialer{
		NetDialContext: func(ctx context.Context, n, a string) (net.Conn, error) {
			return e.Sources.Dialer().DialContext(ctx, n, a)
		},
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   64 << 10,
		Subprotocols:     protos,
	}
	opts := client.Options{Dialer: d, NoReconnect: true, CallTimeout: 30 * time.Second}
	if onDown != nil {
		opts.OnStateChange = func(s client.State) {
			if s == client.Disconnected || s == client.Closed {
				onDown()
			}
		}
	}
	c, err := client.Dial(ctx, e.URL, opts)
	return c, selected, err
}

// goRPC drives one datasole/client connection with depth goroutines, each
// calling echo in a loop (the client's API is one blocking call).
type goRPC struct {
	w      *window
	c      *client.Client
	depth  int
	params json.RawMessage

	mu     sync.Mutex
	ok     uint64
	failed uint64
	h      hist.Histogram
}

func (g *goRPC) run() {
	var wg sync.WaitGroup
	for range g.depth {
		wg.Go(func() {
			var h hist.Histogram
			var ok, failed uint64
			for g.w.phase.Load() != stopping {
				t := g.w.now()
				_, err := g.c.CallRaw(context.Background(), "echo", g.params)
				if errors.Is(err, client.ErrClosed) {
					break
				}
				if g.w.phase.Load() != measuring {
					continue
				}
				if err != nil {
					failed++
					continue
				}
				ok++
				h.Record(g.w.now() - t)
			}
			g.mu.Lock()
			g.ok += ok
			g.failed += failed
			g.h.Merge(&h)
			g.mu.Unlock()
		})
	}
	wg.Wait()
}

func (g *goRPC) stats() (uint64, uint64, *hist.Histogram) { return g.ok, g.failed, &g.h }

func (g *goRPC) close() { g.c.Close() }
