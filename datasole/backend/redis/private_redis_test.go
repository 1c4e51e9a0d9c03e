package dsredis_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole/backend"
	dsredis "github.com/datasole/datasole-go/datasole/backend/redis"
	"github.com/datasole/datasole-go/datasole/clustertest"
	"github.com/redis/go-redis/v9"
)

// privateRedis runs a redis-server of the test's own, so that it can be
// paused (SIGSTOP) without disturbing anyone else's.
type privateRedis struct {
	cmd  *exec.Cmd
	port int
}

func startPrivateRedis(t *testing.T) *privateRedis {
	t.Helper()
	bin := os.Getenv("DATASOLE_TEST_REDIS_SERVER")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("redis-server"); err != nil {
			missing(t, "redis-server not found; run: eval \"$(bash scripts/services.sh)\"")
		}
	}
	dir := t.TempDir()
	port := freePort(t)
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--logfile", filepath.Join(dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port)})
	defer rc.Close()
	for deadline := time.Now().Add(10 * time.Second); rc.Ping(context.Background()).Err() != nil; {
		if time.Now().After(deadline) {
			t.Fatal("redis-server did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &privateRedis{cmd: cmd, port: port}
}

func (r *privateRedis) backends(t *testing.T) clustertest.NewBackend {
	return func(t *testing.T) backend.Backend {
		rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(r.port)})
		b, err := dsredis.New(context.Background(), rc, dsredis.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close(); rc.Close() })
		return b
	}
}
