package dspostgres_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole/backend"
	dspostgres "github.com/datasole/datasole-go/datasole/backend/postgres"
	"github.com/jackc/pgx/v5/pgxpool"
)

// New refuses connections that acknowledge commits before they are durable,
// unless told otherwise, and warns about fsync=off; a backend opened from a
// URL sets synchronous_commit on for itself.
func TestNewChecksDurabilitySettings(t *testing.T) {
	ctx := context.Background()
	// The shared test server runs with synchronous_commit=off and fsync=off.
	async, err := pgxpool.New(ctx, serverURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer async.Close()
	var setting string
	if err := async.QueryRow(ctx, "SHOW synchronous_commit").Scan(&setting); err != nil || setting != "off" {
		t.Skipf("the test server runs with synchronous_commit=%s (%v); this test needs it off", setting, err)
	}
	if _, err := dspostgres.New(ctx, async, dspostgres.Options{Prefix: "dstest:sync:", Logger: quiet}); !errors.Is(err, dspostgres.ErrAsyncCommit) {
		t.Fatalf("New on synchronous_commit=off: %v, want ErrAsyncCommit", err)
	}

	var logs bytes.Buffer
	b, err := dspostgres.New(ctx, async, dspostgres.Options{Prefix: "dstest:sync:", AllowAsyncCommit: true,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("New with AllowAsyncCommit: %v", err)
	}
	b.Close()
	if !strings.Contains(logs.String(), "synchronous_commit is off") || !strings.Contains(logs.String(), "fsync is off") {
		t.Fatalf("warnings logged: %q", logs.String())
	}

	u := serverURL(t) + "&prefix=dstest:sync:"
	opened, err := backend.Open(ctx, u)
	if err != nil {
		t.Fatalf("Open(%s) on a server with synchronous_commit=off: %v", u, err)
	}
	opened.Close()
}

// With synchronous_commit on for the backend's connections (the server's
// default here is off), a crash of the database (an immediate stop,
// recovered from the WAL at restart) loses no acknowledged write: every key
// is at the version the backend returned for it. The same run with the
// connections left at off lost the last 38 of 300 writes and put all 10
// keys back to older versions (see docs/backends.md). fsync is off to keep
// the test fast: it guards against operating-system crashes, which this
// test does not simulate.
func TestAcknowledgedVersionsSurviveADatabaseCrash(t *testing.T) {
	pg := startPrivatePostgres(t, "-c fsync=off -c synchronous_commit=off")
	ctx := context.Background()
	b, err := dspostgres.New(ctx, pg.Pool("on"), dspostgres.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	acked := map[string]uint64{}
	for i := range 300 {
		key := "k" + strconv.Itoa(i%10)
		v, err := b.Set(ctx, key, []byte(strconv.Itoa(i)), 0)
		if err != nil {
			t.Fatal(err)
		}
		acked[key] = v
	}
	pos, err := b.AppendPublish(ctx, "s", "c", []byte("last"), backend.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pg.Stop("immediate")
	pg.Start()
	waitUp(t, func() error { _, _, err := b.Get(ctx, "k0"); return err })
	for key, want := range acked {
		if _, v, err := b.Get(ctx, key); err != nil || v != want {
			t.Errorf("after the crash %s is at version %d (%v); version %d was acknowledged", key, v, err, want)
		}
	}
	if _, top, err := b.ReadHistory(ctx, "s", pos, 0, backend.StreamOptions{}); err != nil || top != pos {
		t.Errorf("after the crash the stream's top is %+v (%v); %+v was acknowledged", top, err, pos)
	}
}

// A database that refuses connections, or stopped, gives errors matching
// backend.ErrUnavailable; once it is back, the backend works again.
func TestOutagesAreUnavailable(t *testing.T) {
	ctx := context.Background()
	t.Run("a server that refuses connections", func(t *testing.T) {
		serverURL(t)
		p, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=1")
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		if _, err := dspostgres.New(ctx, p, dspostgres.Options{Logger: quiet}); !errors.Is(err, backend.ErrUnavailable) {
			t.Fatalf("New on a closed port: %v, want ErrUnavailable", err)
		}
	})
	t.Run("a server that stopped and came back", func(t *testing.T) {
		pg := startPrivatePostgres(t, "")
		b, err := dspostgres.New(ctx, pg.Pool("on"), dspostgres.Options{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if _, err := b.Set(ctx, "k", []byte("not a number"), 0); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Incr(ctx, "k", 1, 0); !errors.Is(err, backend.ErrNotCounter) || errors.Is(err, backend.ErrUnavailable) {
			t.Fatalf("Incr of a non-counter: %v, want ErrNotCounter only", err)
		}
		pg.Stop("fast")
		_, _, errGet := b.Get(ctx, "k")
		_, errSet := b.Set(ctx, "k", nil, 0)
		_, errAppend := b.AppendPublish(ctx, "s", "c", nil, backend.StreamOptions{})
		_, errMany := b.GetMany(ctx, []string{"a", "b"})
		_, errKeep := b.KeepNodeAlive(ctx, "n", time.Minute)
		for name, err := range map[string]error{
			"Get": errGet, "Set": errSet, "Publish": b.Publish(ctx, "c", nil), "AppendPublish": errAppend,
			"GetMany": errMany, "KeepNodeAlive": errKeep,
		} {
			if !errors.Is(err, backend.ErrUnavailable) {
				t.Errorf("%s with the server down: %v, want ErrUnavailable", name, err)
			}
		}
		pg.Start()
		waitUp(t, func() error { _, err := b.Set(ctx, "k", []byte("back"), 0); return err })
	})
}
