package dspostgres_test

import (
	"context"
	"testing"

	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/datasole/datasole-go/datasole/backend/backendtest"
	dspostgres "github.com/datasole/datasole-go/datasole/backend/postgres"
	"github.com/datasole/datasole-go/datasole/clustertest"
)

// Server events over real Postgres (LISTEN/NOTIFY): emitted on one node,
// handled once on every node, each publisher's events in order.
func TestServerEventsOverPostgres(t *testing.T) {
	clustertest.RunServerEvents(t, func(t *testing.T) clustertest.NewBackend {
		prefix := backendtest.NewPrefix()
		return func(t *testing.T) backend.Backend {
			b, err := dspostgres.New(context.Background(), pool(t), dspostgres.Options{Prefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			return b
		}
	})
}
