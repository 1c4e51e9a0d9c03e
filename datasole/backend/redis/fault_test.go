package dsredis_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole"
	dsredis "github.com/datasole/datasole-go/datasole/backend/redis"
	"github.com/datasole/datasole-go/datasole/client"
	"github.com/redis/go-redis/v9"
)

// TestNodesSurviveARedisRestart: two datasole nodes on a private Redis with
// clients on both; Redis is killed and restarted mid-traffic. The nodes
// reconnect and re-subscribe, state stored before the restart is still there,
// and changes made afterwards on one node reach the clients of the other.
func TestNodesSurviveARedisRestart(t *testing.T) {
	bin := os.Getenv("DATASOLE_TEST_REDIS_SERVER")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("redis-server"); err != nil {
			missing(t, "redis-server not found; run: eval \"$(bash scripts/services.sh)\"")
		}
	}
	dir := t.TempDir()
	port := freePort(t)
	stop := startRedis(t, bin, dir, port)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()

	var nodes []*datasole.Server
	var urls []string
	for range 2 {
		rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port), MaxRetries: -1})
		b, err := dsredis.New(ctx, rc, dsredis.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ds := datasole.New(datasole.Options{Backend: b, Logger: quiet})
		hs := httptest.NewServer(ds.Handler())
		t.Cleanup(func() { ds.Close(ctx); hs.Close(); b.Close(); rc.Close() })
		nodes = append(nodes, ds)
		urls = append(urls, hs.URL)
	}
	onB, err := client.Dial(ctx, urls[1], client.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer onB.Close()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	value := func(n int) string { return fmt.Sprintf(`{"n":%d}`, n) }
	if err := nodes[0].SetState(ctx, "dash", map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	waitFor("the first change on node 1's client", func() bool { v, _, _ := onB.StateRaw("dash"); return string(v) == value(1) })

	stop()
	// While Redis is down, changes fail with an error and change nothing.
	if err := nodes[0].SetState(ctx, "dash", map[string]int{"n": 99}); err == nil {
		t.Fatal("a change was accepted while the store was down")
	}
	startRedis(t, bin, dir, port) // same data directory: the append-only file survives

	// The store kept what was written; changes on node 0 reach node 1's
	// client again once the bus is back.
	n := 2
	waitFor("node 0 to store again", func() bool { return nodes[0].SetState(ctx, "dash", map[string]int{"n": n}) == nil })
	waitFor("node 1's client to follow again", func() bool {
		v, _, _ := onB.StateRaw("dash")
		if string(v) == value(n) {
			return true
		}
		n++ // the bus may still have been re-subscribing: change again
		nodes[0].SetState(ctx, "dash", map[string]int{"n": n})
		return false
	})
	if _, ver, _ := nodes[1].GetState("dash"); ver < 2 {
		t.Fatalf("node 1 holds version %d", ver)
	}
}
