package dspostgres_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// privatePostgres is a PostgreSQL server of one test, for the tests that
// stop or crash it (the shared server must stay up for everyone).
type privatePostgres struct {
	t         *testing.T
	bin, dir  string
	port      int
	URL       string
	extraOpts string
}

// startPrivatePostgres initialises a data directory and starts a server on
// a free port, with extra server options (such as "-c fsync=on"). It skips,
// or fails under CI=true, when the PostgreSQL binaries are missing.
func startPrivatePostgres(t *testing.T, extraOpts string) *privatePostgres {
	t.Helper()
	serverURL(t) // the same requirement as the other tests
	bin := postgresBin()
	if bin == "" {
		const why = "PostgreSQL server binaries not found; run: eval \"$(bash scripts/services.sh)\""
		if os.Getenv("CI") == "true" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	// initdb and postgres refuse to run as root: when root, the directory
	// belongs to the postgres user and the tools run as it.
	dir, err := os.MkdirTemp("", "dspostgres-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Getuid() == 0 {
		if out, err := exec.Command("chown", "postgres:", dir).CombinedOutput(); err != nil {
			t.Fatalf("chown: %v: %s", err, out)
		}
	}
	p := &privatePostgres{t: t, bin: bin, dir: dir, port: freePort(t), extraOpts: extraOpts}
	p.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port)
	p.run(filepath.Join(bin, "initdb"), "-D", p.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
	p.Start()
	t.Cleanup(func() { p.Stop("immediate") })
	return p
}

func (p *privatePostgres) data() string { return filepath.Join(p.dir, "data") }

// Start starts the server and waits until it accepts connections.
func (p *privatePostgres) Start() {
	p.t.Helper()
	p.run(filepath.Join(p.bin, "pg_ctl"), "-D", p.data(), "-l", filepath.Join(p.dir, "log"), "-w", "-t", "60", "start",
		"-o", "-p "+strconv.Itoa(p.port)+" -k "+p.dir+" -c listen_addresses=127.0.0.1 "+p.extraOpts)
}

// Stop stops the server: mode "immediate" is a crash (no checkpoint,
// recovery from the WAL at the next start), "fast" a clean shutdown.
func (p *privatePostgres) Stop(mode string) {
	p.t.Helper()
	cmd := p.command(filepath.Join(p.bin, "pg_ctl"), "-D", p.data(), "-m", mode, "-w", "stop")
	_ = cmd.Run() // already stopped is fine
}

func (p *privatePostgres) command(name string, args ...string) *exec.Cmd {
	if os.Getuid() == 0 {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
	}
	return exec.Command(name, args...)
}

func (p *privatePostgres) run(name string, args ...string) {
	p.t.Helper()
	if out, err := p.command(name, args...).CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(p.dir, "log"))
		p.t.Fatalf("%s: %v\n%s\n%s", filepath.Base(name), err, out, log)
	}
}

// Pool returns a pool on the server with synchronous_commit as given ("" to
// keep the server's).
func (p *privatePostgres) Pool(syncCommit string) *pgxpool.Pool {
	p.t.Helper()
	cfg, err := pgxpool.ParseConfig(p.URL + "&connect_timeout=2")
	if err != nil {
		p.t.Fatal(err)
	}
	if syncCommit != "" {
		cfg.ConnConfig.RuntimeParams["synchronous_commit"] = syncCommit
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(pool.Close)
	return pool
}

// postgresBin finds the directory of initdb, pg_ctl and postgres.
func postgresBin() string {
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if d := string(out[:len(out)-1]); fileExists(filepath.Join(d, "initdb")) {
			return d
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
	for _, d := range dirs {
		if fileExists(filepath.Join(d, "initdb")) {
			return d
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitUp retries fn until it stops failing, for the moments after a
// restart when the server is still recovering.
func waitUp(t *testing.T, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not back within 30s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
