package dsredis_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/datasole/datasole-go/datasole/backend/backendtest"
	dsredis "github.com/datasole/datasole-go/datasole/backend/redis"
	"github.com/datasole/datasole-go/datasole/clustertest"
	"github.com/redis/go-redis/v9"
)

// redisCluster gives each node its own Redis client (as separate processes
// would have) on one fresh prefix.
func redisCluster(t *testing.T) clustertest.NewBackend {
	opts, err := redis.ParseURL(serverURL(t))
	if err != nil {
		t.Fatal(err)
	}
	prefix := backendtest.NewPrefix()
	return func(t *testing.T) backend.Backend {
		client := redis.NewClient(opts)
		b, err := dsredis.New(context.Background(), client, dsredis.Options{Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close(); client.Close() })
		return b
	}
}

// The multi-node suite: three servers, each with its own Redis client.
func TestClusterOverRedis(t *testing.T) {
	clustertest.Run(t, redisCluster)
}

// History and recovery across two nodes on Redis.
func TestHistoryOverRedis(t *testing.T) {
	clustertest.RunHistory(t, redisCluster, 2)
}

// 1,000 frames fired at once against a limit of 100, split over two nodes
// sharing Redis, admit exactly 100 — one round trip per check.
func TestRateLimitAcrossTwoNodesIsExact(t *testing.T) {
	newBackend := redisCluster(t)
	limiters := []datasole.Limiter{datasole.NewBackendLimiter(newBackend(t)), datasole.NewBackendLimiter(newBackend(t))}
	rule := datasole.Rule{Limit: 100, Window: time.Hour}
	var ok atomic.Int64
	var wg sync.WaitGroup
	for i := range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pass, _, err := limiters[i%2].Allow(context.Background(), "bucket", rule)
			if err != nil {
				t.Error(err)
			}
			if pass {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := ok.Load(); n != 100 {
		t.Fatalf("admitted %d of 1000 across two nodes, want exactly 100", n)
	}
	pass, retry, err := limiters[0].Allow(context.Background(), "bucket", rule)
	if err != nil || pass || retry <= 0 || retry > 37*time.Second {
		t.Fatalf("the 1001st: pass=%v retry=%v err=%v (one unit refills in 36s)", pass, retry, err)
	}
}
