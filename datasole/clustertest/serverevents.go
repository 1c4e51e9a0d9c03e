package clustertest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole"
)

// RunServerEvents checks server events (Server.Emit, OnServer) on a
// cluster: every node, the emitting one included, handles each event
// exactly once, and the events of one emitting node in the order it
// emitted them.
func RunServerEvents(t *testing.T, newCluster NewCluster) {
	t.Run("an event emitted on one node is handled once on every node", func(t *testing.T) {
		testServerEvents(t, newCluster(t), 3, []int{1})
	})
	t.Run("1,000 events from two publishers keep each publisher's order on every node", func(t *testing.T) {
		testServerEvents(t, newCluster(t), 2, []int{500, 500})
	})
}

// tick is one server event of the suite: from which node, its sequence
// number there, and whether it ends the run.
type tick struct {
	From int  `json:"from"`
	N    int  `json:"n"`
	Done bool `json:"done,omitempty"`
}

var tickEvent = datasole.NewServerEvent[tick]("clustertest.tick")

// testServerEvents runs n nodes; node i emits counts[i] events, all nodes
// at once. Each node must handle every event once, each emitter's in
// order. Then every node emits a marker: a node that has handled all the
// markers has handled whatever copy of an earlier event the bus would
// bring (each marker was emitted after its node handled every event, and
// a bus delivers one node's publications in order), so any event seen
// with the markers is a duplicate.
func testServerEvents(t *testing.T, newBackend NewBackend, n int, counts []int) {
	handled := make([]chan tick, n)
	next := 0
	var mu sync.Mutex
	nodes := Start(t, n, newBackend, func(ds *datasole.Server) {
		mu.Lock()
		ch := make(chan tick, 4096)
		handled[next] = ch
		next++
		mu.Unlock()
		if err := tickEvent.Handle(ds, func(_ context.Context, v tick) { ch <- v }); err != nil {
			t.Error(err)
		}
	})
	total := 0
	for _, c := range counts {
		total += c
	}
	var wg sync.WaitGroup
	for from, count := range counts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range count {
				if err := tickEvent.Emit(context.Background(), nodes[from].DS, tick{From: from, N: i}); err != nil {
					t.Errorf("node %d: Emit %d: %v", from, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for i := range nodes {
		got := receive(t, handled[i], total, fmt.Sprintf("node %d to handle %d events", i, total))
		nextN := make([]int, len(counts))
		for _, v := range got {
			if v.Done || v.From < 0 || v.From >= len(counts) {
				t.Fatalf("node %d handled %+v", i, v)
			}
			if v.N != nextN[v.From] {
				t.Fatalf("node %d handled event %d of node %d, want %d: events out of order, lost or repeated", i, v.N, v.From, nextN[v.From])
			}
			nextN[v.From]++
		}
	}
	for i, nd := range nodes {
		if err := tickEvent.Emit(context.Background(), nd.DS, tick{From: i, Done: true}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range nodes {
		for _, v := range receive(t, handled[i], n, fmt.Sprintf("node %d to handle the %d markers", i, n)) {
			if !v.Done {
				t.Fatalf("node %d handled event %d of node %d a second time", i, v.N, v.From)
			}
		}
	}
}

// receive takes count values from ch, failing the test after 20 s.
func receive(t *testing.T, ch chan tick, count int, what string) []tick {
	t.Helper()
	timeout := time.NewTimer(20 * time.Second)
	defer timeout.Stop()
	out := make([]tick, 0, count)
	for len(out) < count {
		select {
		case v := <-ch:
			out = append(out, v)
		case <-timeout.C:
			t.Fatalf("timed out waiting for %s: %d handled", what, len(out))
		}
	}
	return out
}
