// Command compare runs the same load against several WebSocket servers, one
// at a time, each in its own process, and prints one table: calls/s, latency,
// fan-out, idle memory and churn, with the server's own CPU time per
// operation read from /proc/<pid>/stat (so the load client's cost, in this
// process, does not blur it) and ratios against the bare gorilla floor and
// centrifuge.
//
//	go run ./bench/cmd/compare                   # the default set, ~10 min
//	go run ./bench/cmd/compare -scenarios rpc,idle -idle 2000 -duration 2s
//
// Targets are server programs of this module (bench/servers/…), optionally
// with a client mode: "dshttp" is datasole through adapters/stdlib with the
// raw v1 load client, "dshttp+batch" the raw client offering the batching
// extension, "dshttp:go" datasole/client, "dshttp:go+batch" datasole/client
// offering the extension. The results go to -out as results.md, results.json
// and chart.svg. docs/performance.md explains every column.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/datasole/datasole-go/bench/internal/fdlimit"
	"github.com/datasole/datasole-go/bench/internal/load"
	"github.com/datasole/datasole-go/bench/internal/report"
)

// servers are the programs a target can name, with their load protocol.
var servers = map[string]load.Protocol{
	"gorilla":    load.Echo{},
	"nbio":       load.Echo{},
	"centrifuge": load.Centrifuge{},
	"dshttp":     load.Datasole{},
	"dsfiber":    load.Datasole{},
}

const modulePath = "github.com/datasole/datasole-go/bench"

type target struct {
	name, server string
	goClient     bool
	batch        bool
}

func parseTarget(s string) (target, error) {
	t := target{name: s}
	rest, batch := strings.CutSuffix(s, "+batch")
	t.batch = batch
	rest, t.goClient = strings.CutSuffix(rest, ":go")
	t.server = rest
	p, ok := servers[t.server]
	if !ok {
		return t, fmt.Errorf("unknown server %q", t.server)
	}
	if _, isDS := p.(load.Datasole); (t.goClient || t.batch) && !isDS {
		return t, fmt.Errorf("%s: client modes and batching are for datasole servers", s)
	}
	return t, nil
}

type config struct {
	conns, depth, payload, bigPayload int
	burst                             int
	warmup, duration                  time.Duration
	subs, rate, msgSize               int
	fanoutDuration                    time.Duration
	satWindow, satBurst               int
	drain                             time.Duration
	idle                              []int
	idleParallel                      int
	idleSettle                        time.Duration
	sources                           int
	churnWorkers                      int
	churnDuration                     time.Duration
}

func main() {
	var cfg config
	targetsFlag := flag.String("targets", "gorilla,nbio,centrifuge,dshttp,dsfiber,dshttp:go,dshttp:go+batch", "comma-separated targets: server[:go][+batch]")
	scenariosFlag := flag.String("scenarios", "rpc,rpc-seq,rpc-2k,burst,fanout,fanout-sat,idle,churn", "comma-separated scenarios")
	flag.IntVar(&cfg.conns, "conns", 50, "rpc: connections")
	flag.IntVar(&cfg.depth, "depth", 4, "rpc: calls in flight per connection")
	flag.IntVar(&cfg.payload, "payload", 16, "rpc and rpc-seq: params size in bytes")
	flag.IntVar(&cfg.bigPayload, "payload-big", 2048, "rpc-2k: params size in bytes (compressed both ways by datasole)")
	flag.IntVar(&cfg.burst, "burst", 1000, "burst: calls sent at once on one connection")
	flag.DurationVar(&cfg.warmup, "warmup", time.Second, "rpc: load before measuring")
	flag.DurationVar(&cfg.duration, "duration", 4*time.Second, "rpc: measured window")
	flag.IntVar(&cfg.subs, "subs", 1000, "fanout: subscribers")
	flag.IntVar(&cfg.rate, "rate", 100, "fanout: messages per second")
	flag.IntVar(&cfg.msgSize, "msg-size", 100, "fanout: message size in bytes")
	flag.DurationVar(&cfg.fanoutDuration, "fanout-duration", 4*time.Second, "fanout and fanout-sat: publishing time")
	flag.IntVar(&cfg.satWindow, "sat-window", 512, "fanout-sat: messages published ahead of the slowest subscriber")
	flag.IntVar(&cfg.satBurst, "sat-burst", 32, "fanout-sat: messages per publish request")
	flag.DurationVar(&cfg.drain, "drain", 2*time.Second, "fanout and fanout-sat: how long deliveries may stall after publishing before the rest counts as lost")
	idleFlag := flag.String("idle", "10000,100000", "idle: connection counts, comma-separated")
	flag.IntVar(&cfg.idleParallel, "idle-parallel", 64, "idle: dials at a time")
	flag.DurationVar(&cfg.idleSettle, "idle-settle", 2*time.Second, "idle: wait after the last connection before measuring")
	flag.IntVar(&cfg.sources, "sources", 8, "loopback source addresses (127.0.0.2 …) connections are spread over")
	flag.IntVar(&cfg.churnWorkers, "churn-workers", 16, "churn: concurrent connect-and-close loops")
	flag.DurationVar(&cfg.churnDuration, "churn-duration", 4*time.Second, "churn: measured time")
	outDir := flag.String("out", "bench/results", "directory for results.md, results.json and chart.svg")
	binDir := flag.String("bin", "", "directory holding the built server programs (default: build them)")
	docFlag := flag.String("doc", "", "Markdown file whose block between "+beginMark+" and "+endMark+" gets the table")
	chartFlag := flag.String("chart", "", "also write the SVG chart to this file")
	oursFlag := flag.String("ratios", "dshttp,dsfiber", "targets that get ratio columns")
	basesFlag := flag.String("bases", "gorilla,centrifuge", "targets the ratio columns divide by")
	flag.Parse()
	log.SetFlags(log.Ltime)
	log.SetPrefix("compare: ")

	var targets []target
	for _, s := range splitList(*targetsFlag) {
		t, err := parseTarget(s)
		if err != nil {
			log.Fatal(err)
		}
		targets = append(targets, t)
	}
	for _, s := range splitList(*idleFlag) {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			log.Fatalf("-idle: bad count %q", s)
		}
		cfg.idle = append(cfg.idle, n)
	}
	scenarios := splitList(*scenariosFlag)
	for _, s := range scenarios {
		if !knownScenario(s) {
			log.Fatalf("unknown scenario %q", s)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	maxIdle := 0
	for _, n := range cfg.idle {
		maxIdle = max(maxIdle, n)
	}
	nofile, err := fdlimit.Raise(uint64(max(maxIdle, cfg.subs)) + 4096)
	if err != nil {
		log.Printf("raising the file limit: %v", err)
	}

	bin := *binDir
	if bin == "" {
		bin, err = os.MkdirTemp("", "bench-servers-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(bin)
		if err := build(ctx, bin, targets); err != nil {
			log.Fatal(err)
		}
	}

	run := &report.Run{Started: time.Now(), Machine: machine(), Settings: settings()}
	for _, t := range targets {
		run.Targets = append(run.Targets, t.name)
	}
	sources := load.NewSources(cfg.sources)
	for _, sc := range scenarios {
		for _, j := range jobs(sc, cfg) {
			for _, t := range targets {
				if ctx.Err() != nil {
					break
				}
				if (t.goClient || t.batch) && !j.clientMatters {
					continue // idle and churn use the raw client whatever the mode
				}
				res := report.Result{Scenario: j.id, Label: j.label, Target: t.name}
				if j.needFiles > 0 && uint64(j.needFiles) > nofile {
					res.Error = fmt.Sprintf("RLIMIT_NOFILE is %d here, %d connections need more (raise the hard limit, e.g. ulimit -Hn %d, as root)",
						nofile, j.needFiles, j.needFiles+4096)
					log.Printf("%s on %s: skipped: %s", j.id, t.name, res.Error)
					run.Results = append(run.Results, res)
					continue
				}
				log.Printf("%s on %s …", j.label, t.name)
				m, err := runJob(ctx, bin, t, sources, j)
				if err != nil {
					res.Error = err.Error()
					log.Printf("%s on %s: %v", j.id, t.name, err)
				} else {
					res.Metrics = m
					log.Printf("%s on %s: %s", j.id, t.name, summary(m))
				}
				run.Results = append(run.Results, res)
			}
		}
	}
	run.Duration = time.Since(run.Started).Round(time.Second).String()

	rows := tableRows(scenarios, cfg)
	ratios := run.Ratios(splitList(*oursFlag), splitList(*basesFlag))
	var md strings.Builder
	fmt.Fprintf(&md, "Run of %s, %s, on %s (%s CPUs, load average at start %s).\n\n",
		run.Started.Format("2006-01-02 15:04"), run.Duration, run.Machine["cpu"], run.Machine["cpus"], run.Machine["loadavg"])
	run.WriteMarkdown(&md, rows, ratios)
	fmt.Print("\n" + md.String())
	if err := writeOutputs(*outDir, run, md.String(), rows); err != nil {
		log.Fatal(err)
	}
	log.Printf("wrote %s", *outDir)
	if *chartFlag != "" {
		var svg strings.Builder
		run.WriteSVG(&svg, rows, "gorilla")
		if err := os.WriteFile(*chartFlag, []byte(svg.String()), 0o644); err != nil {
			log.Fatal(err)
		}
		log.Printf("wrote %s", *chartFlag)
	}
	if *docFlag != "" {
		if err := replaceBlock(*docFlag, md.String()); err != nil {
			log.Fatal(err)
		}
		log.Printf("updated %s", *docFlag)
	}
}

// Markers of the generated block in the -doc file.
const (
	beginMark = "<!-- bench-compare:begin -->"
	endMark   = "<!-- bench-compare:end -->"
)

// replaceBlock replaces what is between the markers in file with content.
func replaceBlock(file, content string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	before, rest, ok1 := strings.Cut(string(b), beginMark)
	_, after, ok2 := strings.Cut(rest, endMark)
	if !ok1 || !ok2 {
		return fmt.Errorf("%s: no %s … %s block", file, beginMark, endMark)
	}
	out := before + beginMark + "\n" + strings.TrimSpace(content) + "\n" + endMark + after
	return os.WriteFile(file, []byte(out), 0o644)
}

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

func writeOutputs(dir string, run *report.Run, md string, rows []report.Row) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	write := func(name string, fn func(io.Writer) error) error {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		if err := fn(f); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	return errors.Join(
		write("results.md", func(w io.Writer) error { _, err := io.WriteString(w, md); return err }),
		write("results.json", run.WriteJSON),
		write("chart.svg", func(w io.Writer) error { return run.WriteSVG(w, rows, "gorilla") }),
	)
}

// build compiles the server programs the targets need into dir.
func build(ctx context.Context, dir string, targets []target) error {
	seen := map[string]bool{}
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, t := range targets {
		if !seen[t.server] {
			seen[t.server] = true
			args = append(args, modulePath+"/servers/"+t.server)
		}
	}
	log.Printf("building %d server programs", len(seen))
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

// ---- one server process ------------------------------------------------------

type process struct {
	cmd    *exec.Cmd
	stderr *tail
	exited chan struct{}
}

// startServer starts a server program on free loopback ports and waits
// until it says it is ready.
func startServer(ctx context.Context, bin, name string) (*process, *load.Env, error) {
	addr, err1 := freePort()
	dbg, err2 := freePort()
	if err := errors.Join(err1, err2); err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(filepath.Join(bin, name), "-addr", addr, "-debug", dbg)
	p := &process{cmd: cmd, stderr: &tail{}, exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		ok := false
		for sc.Scan() {
			if sc.Text() == "ready" && !ok {
				ok = true
				ready <- true
			}
		}
		if !ok {
			ready <- false
		}
		cmd.Wait()
		close(p.exited)
	}()
	select {
	case ok := <-ready:
		if !ok {
			<-p.exited
			return nil, nil, fmt.Errorf("%s exited before it was ready: %s", name, p.stderr)
		}
	case <-time.After(30 * time.Second):
		p.stop()
		return nil, nil, fmt.Errorf("%s not ready after 30 s: %s", name, p.stderr)
	case <-ctx.Done():
		p.stop()
		return nil, nil, ctx.Err()
	}
	env := &load.Env{
		URL:   "ws://" + addr + servers[name].Path(),
		Debug: "http://" + dbg,
		PID:   cmd.Process.Pid,
		Proto: servers[name],
	}
	return p, env, nil
}

// stop ends the server: SIGTERM, then SIGKILL after 10 s.
func (p *process) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// tail keeps the last 4 KiB a process wrote to stderr.
type tail struct {
	mu sync.Mutex
	b  []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = t.b[len(t.b)-4096:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}

// ---- machine ------------------------------------------------------------------

func machine() map[string]string {
	m := map[string]string{
		"cpus": strconv.Itoa(runtime.NumCPU()),
		"go":   runtime.Version(),
		"os":   runtime.GOOS + "/" + runtime.GOARCH,
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m["kernel"] = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m["loadavg"] = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m["cpu"] = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

func settings() map[string]string {
	s := map[string]string{}
	flag.VisitAll(func(f *flag.Flag) { s[f.Name] = f.Value.String() })
	return s
}
