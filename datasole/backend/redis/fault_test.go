package dsredis_test

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"testing"

	"github.com/datasole/datasole-go/datasole/backend"
	dsredis "github.com/datasole/datasole-go/datasole/backend/redis"
	"github.com/datasole/datasole-go/datasole/clustertest"
	"github.com/redis/go-redis/v9"
)

// TestNodesSurviveARedisRestart: two datasole nodes on a private Redis with
// a client on the second; Redis is killed and restarted. While it is down
// changes fail and change nothing; afterwards the nodes have reconnected and
// re-subscribed, the stored state is still there, and changes made on one
// node reach the client of the other again.
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
	nodes := clustertest.Start(t, 2, func(t *testing.T) backend.Backend {
		rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port), MaxRetries: -1})
		b, err := dsredis.New(context.Background(), rc, dsredis.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close(); rc.Close() })
		return b
	}, nil)
	onB := clustertest.Dial(t, nodes[1], "u")
	clustertest.Flow(t, nodes[0].DS, onB, "dash", 1)

	stop()
	if err := nodes[0].DS.SetState(context.Background(), "dash", map[string]int{"n": 99}); err == nil {
		t.Fatal("a change was accepted while the store was down")
	}
	startRedis(t, bin, dir, port) // same data directory: the append-only file survives

	clustertest.Flow(t, nodes[0].DS, onB, "dash", 2)
	if _, ver, _ := nodes[1].DS.GetState("dash"); ver < 2 {
		t.Fatalf("node 1 holds version %d: the version stored before the restart was lost", ver)
	}
}
