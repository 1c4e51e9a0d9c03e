package install

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// goEnv is the environment of a user outside the repository: no workspace,
// and the published modules first in GOPROXY, before the machine's usual
// proxy.
//
// It uses the machine's module cache, so that third-party modules and the
// packages compiled from them are reused from every other build. The go
// command takes a module version in that cache to be immutable, and the
// published versions change with every commit, so: the repository's modules
// are removed from the cache before and after the test, one run at a time
// holds a lock, and the go command's index of module directories (kept in
// the build cache, keyed by directory) is off (GODEBUG=goindex=0), so that
// packages are read from the files extracted by this run.
type goEnv struct {
	env []string
}

func newGoEnv(t *testing.T, proxyDir string) goEnv {
	t.Helper()
	machine := func(name string) string {
		out, err := exec.Command("go", "env", name).Output()
		if err != nil {
			t.Fatalf("go env %s: %v", name, err)
		}
		return strings.TrimSpace(string(out))
	}
	modCache, usualProxy := machine("GOMODCACHE"), machine("GOPROXY")
	lockModCache(t, modCache)
	proxy := "file://" + filepath.ToSlash(proxyDir)
	if usualProxy != "" && usualProxy != "off" {
		proxy += "," + usualProxy
	}
	var env []string
	for _, kv := range os.Environ() {
		switch name, _, _ := strings.Cut(kv, "="); name {
		case "GOWORK", "GOFLAGS", "GOPROXY", "GONOSUMDB", "GOPRIVATE", "GONOPROXY", "GOTOOLCHAIN", "GODEBUG":
		default:
			env = append(env, kv)
		}
	}
	return goEnv{append(env,
		"GOWORK=off",
		"GOFLAGS=-mod=mod",
		"GOPROXY="+proxy,
		"GONOSUMDB="+prefix, // published here, not in the checksum database
		"GOPRIVATE=",
		"GONOPROXY=",
		"GOTOOLCHAIN=local",
		"GODEBUG="+strings.Trim(os.Getenv("GODEBUG")+",goindex=0", ","),
	)}
}

// lockModCache takes the lock of this test on the module cache and removes
// the repository's modules from it, now and when the test ends.
func lockModCache(t *testing.T, modCache string) {
	t.Helper()
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "datasole-installtest.lock"), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	purge := func() {
		for _, dir := range []string{filepath.Join(modCache, prefix), filepath.Join(modCache, "cache", "download", prefix)} {
			// Extracted modules are read-only.
			filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
				if err == nil && d.IsDir() {
					os.Chmod(path, 0o755)
				}
				return nil
			})
			if err := os.RemoveAll(dir); err != nil {
				t.Errorf("removing the published modules from the module cache: %v", err)
			}
		}
	}
	purge()
	t.Cleanup(func() {
		purge()
		lock.Close() // releases the lock
	})
}

// run runs a command in dir and returns its standard output; it fails the
// test with the command's output when the command fails.
func (g goEnv) run(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	start := time.Now()
	cmd := exec.CommandContext(t.Context(), name, args...)
	cmd.Dir, cmd.Env = dir, g.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.Bytes(), stderr.Bytes())
	}
	t.Logf("%s %s (%.1fs)", name, strings.Join(args, " "), time.Since(start).Seconds())
	return stdout.String()
}

// newModule creates an empty module in a new directory below parent, with
// copies of the files of src (a directory, or "" for none).
func newModule(t *testing.T, g goEnv, parent, name, src string) string {
	t.Helper()
	dir := filepath.Join(parent, name)
	if src != "" {
		copyTree(t, src, dir)
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	g.run(t, dir, "go", "mod", "init", "example.com/"+name)
	return dir
}

// checkResolved fails when the module in dir resolved any module of the
// repository at a version other than version.
func checkResolved(t *testing.T, g goEnv, dir, version string) {
	t.Helper()
	n := 0
	for line := range strings.Lines(g.run(t, dir, "go", "list", "-m", "all")) {
		f := strings.Fields(line)
		if len(f) >= 2 && strings.HasPrefix(f[0], prefix+"/") {
			n++
			if f[1] != version {
				t.Errorf("%s resolved at %s, want %s", f[0], f[1], version)
			}
		}
	}
	if n == 0 {
		t.Errorf("no module of the repository in the build list of %s", dir)
	}
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(to, data, 0o644)
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
}

func TestInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds apps from a local module proxy")
	}
	root := repoRoot(t)
	mods := readModules(t, root)
	version, err := commonVersion(mods)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	released := releasedModules(t, root, mods)
	publish(t, root, filepath.Join(tmp, "proxy"), released, version)
	t.Logf("published %d modules at %s", len(released), version)
	g := newGoEnv(t, filepath.Join(tmp, "proxy"))

	t.Run("an app on gin with JWT auth and the Redis backend answers a Go client", func(t *testing.T) {
		redisURL := os.Getenv("DATASOLE_TEST_REDIS")
		if redisURL == "" {
			if os.Getenv("CI") == "true" {
				t.Fatal("DATASOLE_TEST_REDIS is not set (run scripts/services.sh)")
			}
			t.Skip("DATASOLE_TEST_REDIS is not set")
		}
		dir := newModule(t, g, tmp, "app", filepath.Join("testdata", "app"))
		// The server's key; the call program signs its tokens with it.
		g := goEnv{append(g.env[:len(g.env):len(g.env)], "APP_JWT_SECRET=a-test-key-of-at-least-32-bytes-for-hs256")}
		get := []string{"get"}
		for _, m := range []string{"adapters/gin", "auth/jwt", "datasole/backend/redis", "datasole"} {
			get = append(get, prefix+"/"+m+"@"+version)
		}
		g.run(t, dir, "go", get...)
		g.run(t, dir, "go", "mod", "tidy")
		checkResolved(t, g, dir, version)

		g.run(t, dir, "go", "run", prefix+"/cmd/datasole@"+version, "gen", "ts", "./contract", "-o", "contract.ts")
		ts, err := os.ReadFile(filepath.Join(dir, "contract.ts"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"add: { params: AddParams; result: AddResult }", `"last-sum": number`, "by: string"} {
			if !bytes.Contains(ts, []byte(want)) {
				t.Errorf("contract.ts lacks %q:\n%s", want, ts)
			}
		}

		g.run(t, dir, "go", "vet", "./...")
		g.run(t, dir, "go", "build", "-o", "bin/", "./...")
		ns := fmt.Sprintf("installtest:%d-%d:", os.Getpid(), time.Now().UnixNano())
		rdb := redisClient(t, redisURL)
		t.Cleanup(func() { deleteKeys(t, rdb, ns) })

		url := startApp(t, g, filepath.Join(dir, "bin", "app"), "-redis", redisURL, "-prefix", ns)
		out := g.run(t, dir, filepath.Join(dir, "bin", "call"), url)
		var res struct {
			Sum float64 `json:"sum"`
			By  string  `json:"by"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil || res.Sum != 42 || res.By != "alice" {
			t.Fatalf("call printed %q (%v); want sum 42 by alice", out, err)
		}
		keys, err := rdb.Keys(t.Context(), ns+"*").Result()
		if err != nil || len(keys) == 0 {
			t.Fatalf("keys under %s in Redis: %v, %v; want the state the RPC set", ns, keys, err)
		}
	})

	for _, fw := range []string{"gin", "echo", "fiber", "stdlib"} {
		t.Run("demos/"+fw+" copied into an empty module builds and passes its test", func(t *testing.T) {
			dir := newModule(t, g, tmp, "demo-"+fw, filepath.Join(root, "demos", fw))
			g.run(t, dir, "go", "get", prefix+"/adapters/"+fw+"@"+version)
			g.run(t, dir, "go", "mod", "tidy")
			checkResolved(t, g, dir, version)
			g.run(t, dir, "go", "vet", "./...")
			g.run(t, dir, "go", "build", "./...")
			g.run(t, dir, "go", "test", "-count=1", "./...")
		})
	}
}

// startApp starts the app binary with the JWT secret the call program
// uses, waits for the URL it prints and stops it (expecting a clean exit)
// when the test ends.
func startApp(t *testing.T, g goEnv, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = g.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				urls <- u
			}
		}
		exited <- cmd.Wait()
	}()
	stopped := false
	t.Cleanup(func() {
		if stopped {
			return
		}
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("app did not exit cleanly on SIGTERM: %v\n%s", err, stderr.String())
			}
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			t.Errorf("app did not exit within 20s of SIGTERM\n%s", stderr.String())
		}
	})
	select {
	case u := <-urls:
		return u
	case err := <-exited:
		stopped = true
		t.Fatalf("app exited before listening: %v\n%s", err, stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("app printed no URL within 60s\n%s", stderr.String())
	}
	return ""
}

func redisClient(t *testing.T, url string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("Redis at %s: %v", url, err)
	}
	return rdb
}

// deleteKeys removes this run's keys; the Redis server is shared.
func deleteKeys(t *testing.T, rdb *redis.Client, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	keys, err := rdb.Keys(ctx, prefix+"*").Result()
	if err == nil && len(keys) > 0 {
		err = rdb.Del(ctx, keys...).Err()
	}
	if err != nil {
		t.Errorf("cleaning up %s* in Redis: %v", prefix, err)
	}
}
