package dspostgres_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/backend/backendtest"
	dspostgres "github.com/datasole/datasole-go/datasole/backend/postgres"
	"github.com/datasole/datasole-go/datasole/client"
)

// TestNodesSurviveKilledListenConnections: two datasole nodes on Postgres
// with a client on each; every LISTEN connection is killed mid-traffic. The
// nodes re-LISTEN, nothing stored is lost, and changes made on one node reach
// the other node's client again.
func TestNodesSurviveKilledListenConnections(t *testing.T) {
	p := pool(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	prefix := backendtest.NewPrefix()
	var nodes []*datasole.Server
	var urls []string
	for range 2 {
		b, err := dspostgres.New(ctx, p, dspostgres.Options{Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		ds := datasole.New(datasole.Options{Backend: b, Logger: quiet})
		hs := httptest.NewServer(ds.Handler())
		t.Cleanup(func() { ds.Close(ctx); hs.Close(); b.Close() })
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
	nodes[0].SetState(ctx, "dash", map[string]int{"n": 1})
	waitFor("the first change on node 1's client", func() bool { v, _, _ := onB.StateRaw("dash"); return string(v) == value(1) })

	var killed int
	if err := p.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE pid <> pg_backend_pid() AND query LIKE 'LISTEN %'`).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed < 2 {
		t.Fatalf("terminated %d listening connections, want both nodes'", killed)
	}
	n := 2
	waitFor("changes to flow again after re-LISTEN", func() bool {
		v, _, _ := onB.StateRaw("dash")
		if string(v) == value(n) {
			return true
		}
		n++ // a change published before the re-LISTEN is repaired by the next one
		nodes[0].SetState(ctx, "dash", map[string]int{"n": n})
		return false
	})
	// Nothing stored was lost: a fresh node reads the latest value.
	b, err := dspostgres.New(ctx, p, dspostgres.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	fresh := datasole.New(datasole.Options{Backend: b, Logger: quiet})
	defer b.Close()
	defer fresh.Close(ctx)
	if v, _, _ := fresh.GetState("dash"); string(v) != value(n) {
		t.Fatalf("a fresh node reads %s, want %s", v, value(n))
	}
}
