package observertest_test

import (
	"sync/atomic"
	"testing"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/observertest"
)

// gauge is the smallest Observer: it tracks open connections.
type gauge struct {
	datasole.NopObserver
	open atomic.Int64
}

func (g *gauge) ConnOpened()            { g.open.Add(1) }
func (g *gauge) ConnClosed(string, int) { g.open.Add(-1) }

func TestRunCompletesAgainstAMinimalObserver(t *testing.T) {
	g := &gauge{}
	h := observertest.Start(t, g)
	observertest.Run(t, h, func() float64 { return float64(g.open.Load()) })
	if s := h.DS.Snapshot(); s.RPCCalls != observertest.OKCalls+observertest.FailedCalls || s.RPCRefused != observertest.UnknownCalls ||
		s.EventsIn != observertest.Events || s.ConnectionsOpened != observertest.Clients+1 {
		t.Fatalf("workload counters %+v", s)
	}
}
