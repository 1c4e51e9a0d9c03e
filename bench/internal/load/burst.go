package load

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Burst fires calls echo calls at once on one connection, as a stock v1
// client does with Promise.all, and counts the answers: successes, error
// replies, and calls left unanswered after timeout.
func Burst(ctx context.Context, e *Env, calls int, params []byte, timeout time.Duration) (Metrics, error) {
	var ok, failed atomic.Int64
	m := &cpuMeter{pid: e.PID}
	if e.GoClient {
		c, _, err := dialGoClient(ctx, e, false, nil)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		if err := m.start(); err != nil {
			return nil, err
		}
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		var wg sync.WaitGroup
		for range calls {
			wg.Go(func() {
				if _, err := c.CallRaw(cctx, "echo", params); err == nil {
					ok.Add(1)
				} else if !errors.Is(err, context.DeadlineExceeded) {
					failed.Add(1)
				}
			})
		}
		wg.Wait()
	} else {
		c, err := e.Sources.Dial(ctx, e.URL, DialOptions{Subprotocols: e.Proto.Subprotocols(), ReadBuffer: 64 << 10, Cork: true})
		if err != nil {
			return nil, err
		}
		defer c.Close()
		if err := e.Proto.Handshake(c); err != nil {
			return nil, err
		}
		if err := m.start(); err != nil {
			return nil, err
		}
		var out []byte
		for i := range calls {
			out = e.Proto.AppendCall(out[:0], uint32(i+1), params)
			if err := c.WS.WriteMessage(e.Proto.MessageType(), out); err != nil {
				return nil, err
			}
		}
		c.WS.SetReadDeadline(time.Now().Add(timeout))
		var buf []byte
		for ok.Load()+failed.Load() < int64(calls) {
			_, rd, err := c.WS.NextReader()
			if err != nil {
				break // the deadline: what is missing stays missing
			}
			if buf, err = readAll(rd, buf[:0]); err != nil {
				break
			}
			answer, err := e.Proto.Parse(buf, func(_ uint32, good bool) {
				if good {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			}, ignorePush)
			if err != nil {
				return nil, err
			}
			if answer != nil {
				c.WS.WriteMessage(e.Proto.MessageType(), answer)
			}
		}
	}
	if err := m.stop(); err != nil {
		return nil, err
	}
	return Metrics{
		"answers":                float64(ok.Load()),
		"errors":                 float64(failed.Load()),
		"missing":                float64(int64(calls) - ok.Load() - failed.Load()),
		"all_answered_ms":        float64(m.Wall.Microseconds()) / 1e3,
		"server_cpu_us_per_call": float64(m.Server.Microseconds()) / float64(calls),
	}, nil
}
