package dspostgres_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/datasole/datasole-go/datasole/backend/backendtest"
	dspostgres "github.com/datasole/datasole-go/datasole/backend/postgres"
)

// The cleanup deletes what expired: history entries past their TTL (the
// stream keeps its epoch and top), and the presence entries and liveness
// row of a node that stopped keeping itself alive.
func TestCleanupDeletesExpiredHistoryAndDeadPresence(t *testing.T) {
	p := pool(t)
	ctx := context.Background()
	prefix := backendtest.NewPrefix()
	b, err := dspostgres.New(ctx, p, dspostgres.Options{Prefix: prefix, Logger: quiet, CleanupInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	o := backend.StreamOptions{Size: 100, TTL: 200 * time.Millisecond, MetaTTL: time.Hour}
	var top backend.Position
	for range 20 {
		if top, err = b.AppendPublish(ctx, "s", "", []byte("x"), o); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.KeepNodeAlive(ctx, "dies", 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := b.AddPresence(ctx, "room", backend.PresenceEntry{ConnID: strconv.Itoa(i), NodeID: "dies"}); err != nil {
			t.Fatal(err)
		}
	}
	count := func(table, column string) int {
		var n int
		err := p.QueryRow(ctx, `SELECT count(*) FROM `+table+` WHERE substring(`+column+` FROM 1 FOR length($1::bytea)) = $1::bytea`, []byte(prefix)).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		h, pr, nodes := count("datasole_history", "stream"), count("datasole_presence", "set_name"), count("datasole_nodes", "node")
		if h == 0 && pr == 0 && nodes == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after expiry %d history rows, %d presence rows and %d node rows are left", h, pr, nodes)
		}
	}
	// The stream's epoch and top outlive its entries.
	if _, got, err := b.ReadHistory(ctx, "s", top, 0, o); err != nil || got != top {
		t.Fatalf("reading from the top after cleanup: %+v, %v; want %+v", got, err, top)
	}
}
