package dspostgres_test

import (
	"context"
	"testing"

	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/datasole/datasole-go/datasole/backend/backendtest"
	dspostgres "github.com/datasole/datasole-go/datasole/backend/postgres"
	dsredis "github.com/datasole/datasole-go/datasole/backend/redis"
	"github.com/datasole/datasole-go/datasole/clustertest"
	"github.com/redis/go-redis/v9"
)

// redisClient connects to DATASOLE_TEST_REDIS, as printed by
// scripts/services.sh, with the same skip-or-fail rule as serverURL.
func redisClient(t *testing.T) *redis.Client {
	t.Helper()
	u := requireEnv(t, "DATASOLE_TEST_REDIS")
	opts, err := redis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

// composite opens state in Postgres with the bus on Redis, on one prefix.
func composite(t *testing.T, prefix string) backend.Backend {
	t.Helper()
	store, err := dspostgres.New(context.Background(), pool(t), dspostgres.Options{Prefix: prefix, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	bus, err := dsredis.New(context.Background(), redisClient(t), dsredis.Options{Prefix: prefix})
	if err != nil {
		store.Close()
		t.Fatal(err)
	}
	return backend.Compose(store, bus)
}

// State, history and presence in Postgres, the bus on Redis: the
// composite passes the whole suite (its history as an UnorderedHistory).
func TestComposeConformance(t *testing.T) {
	backendtest.Run(t, composite)
}

// The multi-node suite on the composite: three servers, each with its own
// pool, Redis client and subscription.
func TestClusterOverComposite(t *testing.T) {
	clustertest.Run(t, func(t *testing.T) clustertest.NewBackend {
		prefix := backendtest.NewPrefix()
		return func(t *testing.T) backend.Backend {
			b := composite(t, prefix)
			t.Cleanup(func() { b.Close() })
			return b
		}
	})
}
