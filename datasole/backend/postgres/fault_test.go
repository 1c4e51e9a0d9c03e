package dspostgres_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/datasole/datasole-go/datasole/backend/backendtest"
	dspostgres "github.com/datasole/datasole-go/datasole/backend/postgres"
	"github.com/datasole/datasole-go/datasole/clustertest"
)

// TestNodesSurviveKilledListenConnections: two datasole nodes on Postgres
// with a client on the second; every LISTEN connection is killed. The nodes
// re-LISTEN, changes made on one node reach the other node's client again,
// and nothing stored is lost.
func TestNodesSurviveKilledListenConnections(t *testing.T) {
	p := pool(t)
	ctx := context.Background()
	prefix := backendtest.NewPrefix()
	newBackend := func(t *testing.T) backend.Backend {
		b, err := dspostgres.New(ctx, p, dspostgres.Options{Prefix: prefix, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}
	nodes := clustertest.Start(t, 2, newBackend, nil)
	onB := clustertest.Dial(t, nodes[1], "u")
	clustertest.Flow(t, nodes[0].DS, onB, "dash", 1)

	var killed int
	if err := p.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE pid <> pg_backend_pid() AND query LIKE 'LISTEN %'`).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed < 2 {
		t.Fatalf("terminated %d listening connections, want both nodes'", killed)
	}
	n := clustertest.Flow(t, nodes[0].DS, onB, "dash", 2)

	// Nothing stored was lost: a fresh node reads the latest value.
	fresh, err := datasole.New(datasole.Options{Backend: newBackend(t), Auth: datasole.Anonymous, Session: datasole.SessionOptions{Disabled: true}, HeartbeatInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := fresh.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer fresh.Close(ctx)
	if v, _, _ := fresh.GetState("dash"); string(v) != fmt.Sprintf(`{"n":%d}`, n) {
		t.Fatalf("a fresh node reads %s, want n=%d", v, n)
	}
}
