//go:build !race

// The tests of this file measure latency and heap bounds, which the race
// detector distorts (and slows tenfold): scripts/test.sh runs them in a pass
// of their own without it.

package dsredis_test

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/clustertest"
)

type tick struct {
	Seq    int   `json:"seq"`
	SentAt int64 `json:"sentAt"`
}

// TestAPausedRedisStallsNoLocalClientAndLosesNoEvent: two nodes on a
// private Redis; node A broadcasts 500 events a second; Redis is paused
// (SIGSTOP) for 8 s. A's own client keeps receiving at once — nothing on A
// waits on the bus — and once Redis resumes, B's client receives every event
// of the pause, in order, none lost to a queue overflow.
func TestAPausedRedisStallsNoLocalClientAndLosesNoEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for 12 s")
	}
	r := startPrivateRedis(t)
	nodes := clustertest.Start(t, 2, r.backends(t), nil)
	local := clustertest.Dial(t, nodes[0], "a")
	remote := clustertest.Dial(t, nodes[1], "b")

	type got struct {
		mu        sync.Mutex
		seqs      []int
		latencies []time.Duration // of events sent while Redis was paused
	}
	var paused sync.Mutex
	var pauseStart, pauseEnd time.Time
	inPause := func(at time.Time) bool {
		paused.Lock()
		defer paused.Unlock()
		return !pauseStart.IsZero() && at.After(pauseStart) && (pauseEnd.IsZero() || at.Before(pauseEnd))
	}
	var onLocal, onRemote got
	record := func(g *got, raw json.RawMessage) {
		var tk tick
		if json.Unmarshal(raw, &tk) != nil {
			return
		}
		sent := time.Unix(0, tk.SentAt)
		g.mu.Lock()
		g.seqs = append(g.seqs, tk.Seq)
		if inPause(sent) {
			g.latencies = append(g.latencies, time.Since(sent))
		}
		g.mu.Unlock()
	}
	local.On("tick", func(raw json.RawMessage) { record(&onLocal, raw) })
	remote.On("tick", func(raw json.RawMessage) { record(&onRemote, raw) })

	stop := make(chan struct{})
	sent := make(chan int, 1)
	go func() {
		t := time.NewTicker(2 * time.Millisecond) // 500 a second
		defer t.Stop()
		seq := 0
		for {
			select {
			case <-stop:
				sent <- seq
				return
			case <-t.C:
				nodes[0].DS.Broadcast("tick", tick{Seq: seq, SentAt: time.Now().UnixNano()})
				seq++
			}
		}
	}()

	time.Sleep(2 * time.Second) // the load runs: this is the scenario's schedule, not a wait for an event
	paused.Lock()
	pauseStart = time.Now()
	paused.Unlock()
	if err := r.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(8 * time.Second)
	if err := r.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	paused.Lock()
	pauseEnd = time.Now()
	paused.Unlock()
	time.Sleep(2 * time.Second)
	close(stop)
	n := <-sent

	eventually := func(what string, g *got) {
		deadline := time.Now().Add(30 * time.Second)
		for {
			g.mu.Lock()
			have := len(g.seqs)
			g.mu.Unlock()
			if have >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s got %d of %d events", what, have, n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	eventually("the local client", &onLocal)
	for i, nd := range nodes {
		s := nd.DS.Snapshot()
		t.Logf("node %d: backendErrors %d busGaps %d slow %d closes %v conns %d", i, s.BackendErrors, s.BusGaps, s.SlowConsumerCloses, s.Closes, s.Connections)
	}
	eventually("the remote client", &onRemote)
	for name, g := range map[string]*got{"local": &onLocal, "remote": &onRemote} {
		if !slices.IsSorted(g.seqs) || len(g.seqs) != n || g.seqs[0] != 0 || g.seqs[n-1] != n-1 {
			t.Fatalf("the %s client got %d events (want %d), in order: %v", name, len(g.seqs), n, slices.IsSorted(g.seqs))
		}
	}
	lat := slices.Clone(onLocal.latencies)
	slices.Sort(lat)
	if len(lat) < 1000 {
		t.Fatalf("only %d local events measured during the pause", len(lat))
	}
	p99 := lat[len(lat)*99/100]
	t.Logf("local delivery during the 8 s pause: %d events, p50 %v, p99 %v; remote got all %d after it", len(lat), lat[len(lat)/2], p99, n)
	if p99 > 50*time.Millisecond {
		t.Fatalf("local p99 during the pause %v, want ≤ 50ms", p99)
	}
	for i, nd := range nodes {
		if s := nd.DS.Snapshot(); s.BackendErrors > 0 {
			t.Logf("node %d: %d backend errors during the pause (expected: publications timed out and were retried)", i, s.BackendErrors)
		}
	}
}

// TestStateMemoryIsBoundedByLocalUsers: 100,000 users' per-user state is
// written on a node where 1,000 users are connected; the node's heap grows
// by what those 1,000 need, not by the 100,000 (the store is Redis, outside
// this process).
func TestStateMemoryIsBoundedByLocalUsers(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 100,000 keys")
	}
	nodes := clustertest.Start(t, 1, redisCluster(t), nil)
	ds := nodes[0].DS
	const connected, users = 1000, 100_000
	for i := range connected {
		clustertest.Dial(t, nodes[0], fmt.Sprint("user", i))
	}
	for ds.ConnectionCount() < connected {
		time.Sleep(10 * time.Millisecond)
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	before := heap()
	ctx := context.Background()
	value := map[string]any{"items": []string{"apple", "pear", "bread", "milk"}, "total": 12.5}
	var wg sync.WaitGroup
	work := make(chan int)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := ds.SetStateIn(ctx, datasole.ForUser(fmt.Sprint("user", i)), "cart", value); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for i := range users {
		work <- i
	}
	close(work)
	wg.Wait()
	grown := int64(heap()) - int64(before)
	t.Logf("heap grew by %d KiB after writing %d users' carts with %d connected", grown>>10, users, connected)
	// The 1,000 connected users' carts (their entries, values and encoded
	// frames) take a few MiB; keeping the 100,000 would take well over 100.
	if grown > 16<<20 {
		t.Fatalf("heap grew by %d MiB: the node kept state of users who are not connected to it", grown>>20)
	}
}
