package dspostgres_test

import (
	"context"
	"testing"

	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/datasole/datasole-go/datasole/backend/backendtest"
	dspostgres "github.com/datasole/datasole-go/datasole/backend/postgres"
	"github.com/datasole/datasole-go/datasole/clustertest"
)

// The multi-node suite on Postgres: three servers, each with its own pool
// and LISTEN connection, on one fresh prefix.
func TestClusterOverPostgres(t *testing.T) {
	clustertest.Run(t, postgresCluster)
}

// History and recovery across two nodes on Postgres.
func TestHistoryOverPostgres(t *testing.T) {
	clustertest.RunHistory(t, postgresCluster, 2)
}

// postgresCluster gives each node its own pool and LISTEN connection on
// one fresh prefix.
func postgresCluster(t *testing.T) clustertest.NewBackend {
	prefix := backendtest.NewPrefix()
	return func(t *testing.T) backend.Backend {
		b, err := dspostgres.New(context.Background(), pool(t), dspostgres.Options{Prefix: prefix, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}
}
