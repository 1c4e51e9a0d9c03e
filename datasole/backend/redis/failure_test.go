package dsredis_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole/backend"
	dsredis "github.com/datasole/datasole-go/datasole/backend/redis"
	"github.com/redis/go-redis/v9"
)

func redisServer(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("DATASOLE_TEST_REDIS_SERVER"); bin != "" {
		return bin
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		missing(t, "redis-server not found; run: eval \"$(bash scripts/services.sh)\"")
	}
	return bin
}

// An unreachable or stopped server gives errors that match
// backend.ErrUnavailable, so callers know to retry; errors of the
// application's own making do not.
func TestOutagesAreUnavailable(t *testing.T) {
	ctx := context.Background()
	t.Run("a server that refuses connections", func(t *testing.T) {
		client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
		defer client.Close()
		_, err := dsredis.New(ctx, client, dsredis.Options{})
		if !errors.Is(err, backend.ErrUnavailable) {
			t.Fatalf("New on a closed port: %v, want ErrUnavailable", err)
		}
	})
	t.Run("a server that stopped", func(t *testing.T) {
		bin := redisServer(t)
		port := freePort(t)
		stop := startRedis(t, bin, t.TempDir(), port)
		client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port), MaxRetries: -1})
		defer client.Close()
		b, err := dsredis.New(ctx, client, dsredis.Options{})
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
		stop()
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
	})
}

// A paused server (SIGSTOP) answers nothing: a call whose deadline passes
// fails with ErrUnavailable. The publication was sent, though, and Redis
// delivers it once it resumes: the outcome ErrUnavailable leaves open.
func TestAPausedServerIsUnavailable(t *testing.T) {
	r := startPrivateRedis(t)
	ctx := context.Background()
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(r.port)})
	defer client.Close()
	b, err := dsredis.New(ctx, client, dsredis.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got := make(chan string, 2)
	if _, err := b.Subscribe(ctx, "c", func(m []byte) { got <- string(m) }); err != nil {
		t.Fatal(err)
	}
	// A connection in the pool, so that the next publication is written to
	// the paused server rather than waiting for a connection handshake.
	if err := b.Publish(ctx, "c", []byte("before")); err != nil || <-got != "before" {
		t.Fatalf("Publish before the pause: %v", err)
	}
	if err := r.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err = b.Publish(short, "c", []byte("sent during the pause"))
	cancel()
	if !errors.Is(err, backend.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Publish to a paused server: %v, want ErrUnavailable and DeadlineExceeded", err)
	}
	if err := r.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m != "sent during the pause" {
			t.Fatalf("received %q", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the publication that timed out was not delivered after the pause")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := b.Set(cancelled, "k", nil, 0); !errors.Is(err, context.Canceled) || errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("Set with a cancelled context: %v, want context.Canceled only", err)
	}
}

// A server that lost its data (restarted without persistence) gives every
// stream a new epoch, so positions from before are not recoverable, and
// offsets start again at 1.
func TestHistoryLostWithTheServerHasANewEpoch(t *testing.T) {
	bin := redisServer(t)
	port := freePort(t)
	stop := startRedis(t, bin, t.TempDir(), port)
	ctx := context.Background()
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port), MaxRetries: -1})
	defer client.Close()
	b, err := dsredis.New(ctx, client, dsredis.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	o := backend.StreamOptions{Size: 10}
	var last backend.Position
	for range 3 {
		if last, err = b.AppendPublish(ctx, "s", "", []byte("x"), o); err != nil {
			t.Fatal(err)
		}
	}
	stop()
	startRedis(t, bin, t.TempDir(), port) // an empty data directory
	var top backend.Position
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		_, top, err = b.ReadHistory(ctx, "s", last, 0, o)
		if !errors.Is(err, backend.ErrUnavailable) || time.Now().After(deadline) {
			break
		}
	}
	if !errors.Is(err, backend.ErrUnrecoverable) || top.Epoch == last.Epoch || top.Offset != 0 {
		t.Fatalf("reading from %+v after the data was lost: top %+v, %v; want ErrUnrecoverable at a new epoch", last, top, err)
	}
	if p, err := b.AppendPublish(ctx, "s", "", []byte("y"), o); err != nil || p != (backend.Position{Epoch: top.Epoch, Offset: 1}) {
		t.Fatalf("next append at %+v, %v; want offset 1 of %q", p, err, top.Epoch)
	}
}

// go-redis's own log lines reach the logger given in Options as records.
func TestGoRedisLogsThroughTheLogger(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	opts, err := redis.ParseURL(serverURL(t))
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opts)
	defer client.Close()
	ctx := context.Background()
	b, err := dsredis.New(ctx, client, dsredis.Options{Prefix: "dstest:log:", Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	key := "dstest:log:" + strconv.FormatInt(time.Now().UnixNano(), 10)
	// go-redis warns that it rounds a sub-millisecond expiry up.
	if err := client.Set(ctx, key, "x", 500*time.Microsecond).Err(); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.Contains(out, `"library":"go-redis"`) || !strings.Contains(out, "truncating to 1ms") || !strings.Contains(out, `"level":"WARN"`) {
		t.Fatalf("logger received %q, want go-redis's warning as a record", out)
	}
}
