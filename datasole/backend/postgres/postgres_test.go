package dspostgres_test

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/datasole/datasole-go/datasole/backend/backendtest"
	dspostgres "github.com/datasole/datasole-go/datasole/backend/postgres"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pool connects to DATASOLE_TEST_POSTGRES, as printed by scripts/services.sh,
// with synchronous_commit on for its connections (the test server runs with
// it off for speed). Without it the tests are skipped, unless CI=true makes
// that a failure.
func pool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(serverURL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "on"
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func serverURL(t *testing.T) string {
	t.Helper()
	return requireEnv(t, "DATASOLE_TEST_POSTGRES")
}

// requireEnv returns the variable, skipping the test when it is unset, or
// failing it under CI=true.
func requireEnv(t *testing.T, name string) string {
	t.Helper()
	u := os.Getenv(name)
	if u == "" {
		why := name + " is not set; run: eval \"$(bash scripts/services.sh)\""
		if os.Getenv("CI") == "true" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	return u
}

// quiet discards the backend's warnings (the test server runs with fsync
// off, which New warns about).
var quiet = slog.New(slog.DiscardHandler)

func TestConformance(t *testing.T) {
	p := pool(t)
	backendtest.Run(t, func(t *testing.T, prefix string) backend.Backend {
		// Large messages go through the bus table; a queue bound of 8 MiB
		// (above what the suite keeps in flight) makes the overflow check
		// write 8 MiB there rather than 64.
		b, err := dspostgres.New(context.Background(), p, dspostgres.Options{Prefix: prefix, Logger: quiet, SubscriberQueueBytes: 8 << 20})
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

func TestOpenURL(t *testing.T) {
	pool(t) // skips without a server
	ctx := context.Background()
	b, err := backend.Open(ctx, os.Getenv("DATASOLE_TEST_POSTGRES")+"&prefix="+backendtest.NewPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := b.(*dspostgres.Backend); !ok {
		t.Fatalf("Open = %T, want *dspostgres.Backend", b)
	}
	if _, err := b.Set(ctx, "k", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestListenConnectionKilled terminates the listening connection's server
// process during traffic: the backend must LISTEN again, report a gap and
// keep delivering, with stored state intact.
func TestListenConnectionKilled(t *testing.T) {
	p := pool(t)
	ctx := context.Background()
	b, err := dspostgres.New(ctx, p, dspostgres.Options{Prefix: backendtest.NewPrefix(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	gaps := make(chan struct{}, 1)
	b.OnGap(func() {
		select {
		case gaps <- struct{}{}:
		default:
		}
	})
	received := make(chan string, 4096)
	if _, err := b.Subscribe(ctx, "c", func(m []byte) { received <- string(m) }); err != nil {
		t.Fatal(err)
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-quit:
				return
			default:
			}
			if _, err := b.Set(ctx, "k", []byte(strconv.Itoa(i)), 0); err != nil {
				t.Error(err)
				return
			}
			_ = b.Publish(ctx, "c", []byte(strconv.Itoa(i)))
			time.Sleep(time.Millisecond)
		}
	}()
	time.Sleep(200 * time.Millisecond)
	var killed int
	if err := p.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE pid <> pg_backend_pid() AND query LIKE 'LISTEN ds_%'`).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed == 0 {
		t.Fatal("found no listening connection to terminate")
	}
	select {
	case <-gaps:
	case <-time.After(10 * time.Second):
		t.Fatal("no gap reported after the listening connection was killed")
	}
	for len(received) > 0 {
		<-received
	}
	select {
	case <-received:
	case <-time.After(5 * time.Second):
		t.Fatal("no message received after reconnecting")
	}
	close(quit)
	wg.Wait()
	if _, v, err := b.Get(ctx, "k"); err != nil || v == 0 {
		t.Fatalf("Get after reconnect = v%d, %v", v, err)
	}
}
