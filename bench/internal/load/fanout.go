package load

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/datasole/datasole-go/bench/internal/hist"
)

// FanoutConfig is one fan-out load: Subs subscribers, the server publishing
// Size-byte messages for Duration. With Rate > 0 the harness asks for Rate
// messages per second, one at a time. With Rate 0 (saturation) it publishes
// as fast as the subscribers take them: batches of Burst messages, never more
// than Window messages ahead of the slowest live subscriber.
type FanoutConfig struct {
	Subs          int
	Rate          int
	Size          int
	Duration      time.Duration
	Burst, Window int
	// Drain is how long deliveries may stall after publishing ends before
	// what has not arrived counts as lost. Default 2 s.
	Drain time.Duration
}

// subscriber is one receiving connection. delivered counts publications
// received; the histogram has their latency (receive time minus the
// server's send time, both from this machine's clock).
type subscriber struct {
	delivered atomic.Int64
	dead      atomic.Bool
	h         hist.Histogram
	close     func()
}

func (s *subscriber) onPush(pub []byte) {
	_, ts, ok := PubFields(pub)
	if !ok {
		return
	}
	s.h.Record(time.Duration(time.Now().UnixNano() - ts))
	s.delivered.Add(1)
}

// Fanout runs a fan-out load and reports whether every publication reached
// every subscriber, deliveries per second, latency and the server's CPU time
// per delivery.
func Fanout(ctx context.Context, e *Env, cfg FanoutConfig) (Metrics, error) {
	subs := make([]*subscriber, cfg.Subs)
	var wg sync.WaitGroup
	defer func() {
		for _, s := range subs {
			if s != nil {
				s.close()
			}
		}
		wg.Wait()
	}()
	negotiated := 0.0
	for i := range subs {
		s := &subscriber{}
		if e.GoClient {
			c, sub, err := dialGoClient(ctx, e, i == 0, func() { s.dead.Store(true) })
			if err != nil {
				return nil, err
			}
			if sub == SubprotocolBatch {
				negotiated = 1
			}
			c.OnRaw("tick", func(data json.RawMessage) { s.onPush(data) })
			s.close = func() { c.Close() }
			subs[i] = s
			continue
		}
		c, err := e.Sources.Dial(ctx, e.URL, DialOptions{Subprotocols: e.Proto.Subprotocols(), ReadBuffer: 64 << 10, Cork: true})
		if err != nil {
			return nil, err
		}
		if c.WS.Subprotocol() == SubprotocolBatch {
			negotiated = 1
		}
		s.close = func() { c.Close() }
		subs[i] = s
		if err := e.Proto.Handshake(c); err != nil {
			return nil, err
		}
		if err := e.Proto.Subscribe(c); err != nil {
			return nil, err
		}
		wg.Go(func() { readPushes(c, e.Proto, s) })
	}
	if n, err := e.WaitConns(ctx, cfg.Subs, 30*time.Second); err != nil || n != cfg.Subs {
		return nil, fmt.Errorf("server counts %d connections, want %d (%v)", n, cfg.Subs, err)
	}

	m := &cpuMeter{pid: e.PID}
	if err := m.start(); err != nil {
		return nil, err
	}
	var published int64
	var err error
	if cfg.Rate > 0 {
		published, err = publishAtRate(ctx, e, cfg)
	} else {
		published, err = publishClosedLoop(ctx, e, cfg, subs)
	}
	if err != nil {
		return nil, err
	}
	// Deliveries received in the publishing window, for the rate.
	var inWindow int64
	for _, s := range subs {
		inWindow += s.delivered.Load()
	}
	pubWall := time.Since(m.wall0)

	// Let what is on its way arrive: until every live subscriber has all,
	// or nothing moved for cfg.Drain.
	want := published
	last, lastMove := int64(-1), time.Now()
	for {
		var total int64
		done := true
		for _, s := range subs {
			d := s.delivered.Load()
			total += d
			if d < want && !s.dead.Load() {
				done = false
			}
		}
		if done || time.Since(lastMove) > cmp.Or(cfg.Drain, 2*time.Second) {
			break
		}
		if total != last {
			last, lastMove = total, time.Now()
		}
		time.Sleep(5 * time.Millisecond) // polling counters that many goroutines advance
	}
	if err := m.stop(); err != nil {
		return nil, err
	}

	// Subscribers the server closed (slow consumers) are dead before ours
	// are closed here.
	var dead int
	for _, s := range subs {
		if s.dead.Load() {
			dead++
		}
	}
	var delivered int64
	var h hist.Histogram
	for _, s := range subs {
		s.close()
	}
	wg.Wait()
	for _, s := range subs {
		delivered += s.delivered.Load()
		h.Merge(&s.h)
	}
	subs = nil
	expected := published * int64(cfg.Subs)
	lost := expected - delivered
	return Metrics{
		"published":                  float64(published),
		"delivered_pct":              100 * float64(delivered) / float64(expected),
		"lost":                       float64(lost),
		"lost_pct":                   100 * float64(lost) / float64(expected),
		"subscribers_closed":         float64(dead),
		"deliveries_per_s":           float64(inWindow) / pubWall.Seconds(),
		"p50_ms":                     float64(h.Quantile(0.50).Microseconds()) / 1e3,
		"p99_ms":                     float64(h.Quantile(0.99).Microseconds()) / 1e3,
		"server_cpu_us_per_delivery": float64(m.Server.Nanoseconds()) / 1e3 / float64(max(delivered, 1)),
		"server_cpu_pct":             100 * m.Server.Seconds() / m.Wall.Seconds(),
		"client_cpu_pct":             100 * m.Self.Seconds() / m.Wall.Seconds(),
		"client_cpu_us_per_delivery": float64(m.Self.Nanoseconds()) / 1e3 / float64(max(delivered, 1)),
		"batch_negotiated":           negotiated,
	}, nil
}

// readPushes reads one subscriber's connection until it closes.
func readPushes(c *Conn, p Protocol, s *subscriber) {
	defer s.dead.Store(true)
	var buf []byte
	for {
		_, rd, err := c.WS.NextReader()
		if err != nil {
			return
		}
		if buf, err = readAll(rd, buf[:0]); err != nil {
			return
		}
		answer, err := p.Parse(buf, func(uint32, bool) {}, s.onPush)
		if err != nil {
			return
		}
		if answer != nil {
			c.WS.WriteMessage(p.MessageType(), answer)
		}
	}
}

func publishAtRate(ctx context.Context, e *Env, cfg FanoutConfig) (int64, error) {
	n := int64(cfg.Duration.Seconds() * float64(cfg.Rate))
	interval := time.Second / time.Duration(cfg.Rate)
	start := time.Now()
	for i := range n {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			if err := sleepCtx(ctx, d); err != nil {
				return 0, err
			}
		}
		if _, err := e.Publish(ctx, 1, cfg.Size); err != nil {
			return 0, err
		}
	}
	return n, nil
}

func publishClosedLoop(ctx context.Context, e *Env, cfg FanoutConfig, subs []*subscriber) (int64, error) {
	end := time.Now().Add(cfg.Duration)
	var published int64
	for time.Now().Before(end) {
		slowest := published
		for _, s := range subs {
			if !s.dead.Load() {
				slowest = min(slowest, s.delivered.Load())
			}
		}
		if published-slowest+int64(cfg.Burst) > int64(cfg.Window) {
			// Ahead of the slowest subscriber: let it catch up.
			time.Sleep(100 * time.Microsecond) // pacing by polled counters
			continue
		}
		if _, err := e.Publish(ctx, cfg.Burst, cfg.Size); err != nil {
			return 0, err
		}
		published += int64(cfg.Burst)
	}
	return published, nil
}
