package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/datasole/datasole-go/bench/internal/load"
	"github.com/datasole/datasole-go/bench/internal/report"
)

// job is one scenario with its settings; each runs once per target against
// a fresh server process.
type job struct {
	id, label string
	// clientMatters says whether the target's client mode (:go, +batch)
	// changes the run; targets with a mode skip the jobs where it does not.
	clientMatters bool
	needFiles     int // open files the run needs on each side
	run           func(ctx context.Context, e *load.Env) (load.Metrics, error)
}

func knownScenario(s string) bool {
	switch s {
	case "rpc", "rpc-seq", "rpc-2k", "burst", "fanout", "fanout-sat", "idle", "churn":
		return true
	}
	return false
}

func jobs(sc string, cfg config) []job {
	rpc := func(conns, depth, payload int) func(context.Context, *load.Env) (load.Metrics, error) {
		params := load.Params(payload)
		return func(ctx context.Context, e *load.Env) (load.Metrics, error) {
			return load.RPC(ctx, e, load.RPCConfig{Conns: conns, Depth: depth, Params: params, Warmup: cfg.warmup, Duration: cfg.duration})
		}
	}
	switch sc {
	case "rpc":
		return []job{{id: sc, clientMatters: true, label: fmt.Sprintf("RPC echo, %d conns × %d in flight, %d B", cfg.conns, cfg.depth, cfg.payload),
			run: rpc(cfg.conns, cfg.depth, cfg.payload)}}
	case "rpc-seq":
		return []job{{id: sc, clientMatters: true, label: fmt.Sprintf("RPC echo, 1 conn sequential, %d B", cfg.payload),
			run: rpc(1, 1, cfg.payload)}}
	case "rpc-2k":
		return []job{{id: sc, clientMatters: true, label: fmt.Sprintf("RPC echo, %d conns × %d in flight, %d B", cfg.conns, cfg.depth, cfg.bigPayload),
			run: rpc(cfg.conns, cfg.depth, cfg.bigPayload)}}
	case "burst":
		params := load.Params(cfg.payload)
		return []job{{id: sc, clientMatters: true, label: fmt.Sprintf("%s calls at once on 1 conn, %d B", report.Format(float64(cfg.burst), 0), cfg.payload),
			run: func(ctx context.Context, e *load.Env) (load.Metrics, error) {
				return load.Burst(ctx, e, cfg.burst, params, 30*time.Second)
			}}}
	case "fanout":
		return []job{{id: sc, clientMatters: true, label: fmt.Sprintf("fan-out, %d subs @ %d msg/s", cfg.subs, cfg.rate), needFiles: cfg.subs + 1024,
			run: func(ctx context.Context, e *load.Env) (load.Metrics, error) {
				return load.Fanout(ctx, e, load.FanoutConfig{Subs: cfg.subs, Rate: cfg.rate, Size: cfg.msgSize, Duration: cfg.fanoutDuration, Drain: cfg.drain})
			}}}
	case "fanout-sat":
		return []job{{id: sc, clientMatters: true, label: fmt.Sprintf("fan-out saturation, %d subs", cfg.subs), needFiles: cfg.subs + 1024,
			run: func(ctx context.Context, e *load.Env) (load.Metrics, error) {
				return load.Fanout(ctx, e, load.FanoutConfig{Subs: cfg.subs, Size: cfg.msgSize, Duration: cfg.fanoutDuration,
					Burst: cfg.satBurst, Window: cfg.satWindow, Drain: cfg.drain})
			}}}
	case "idle":
		var out []job
		for _, n := range cfg.idle {
			out = append(out, job{id: fmt.Sprintf("idle-%d", n), label: fmt.Sprintf("idle, %s connections", report.Format(float64(n), 0)),
				needFiles: n + 1024,
				run: func(ctx context.Context, e *load.Env) (load.Metrics, error) {
					return load.Idle(ctx, e, load.IdleConfig{Conns: n, Parallel: cfg.idleParallel, Settle: cfg.idleSettle})
				}})
		}
		return out
	case "churn":
		return []job{{id: sc, label: fmt.Sprintf("churn, %d connect-and-close loops", cfg.churnWorkers),
			run: func(ctx context.Context, e *load.Env) (load.Metrics, error) {
				return load.Churn(ctx, e, load.ChurnConfig{Workers: cfg.churnWorkers, Duration: cfg.churnDuration})
			}}}
	}
	return nil
}

// runJob starts the target's server, runs the job against it and stops it.
func runJob(ctx context.Context, bin string, t target, sources *load.Sources, j job) (load.Metrics, error) {
	p, env, err := startServer(ctx, bin, t.server)
	if err != nil {
		return nil, err
	}
	defer p.stop()
	env.Sources = sources
	env.GoClient = t.goClient
	env.Batch = t.batch
	if t.batch {
		env.Proto = load.Datasole{Batch: true}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	m, err := j.run(ctx, env)
	select {
	case <-p.exited:
		return nil, fmt.Errorf("the server exited during the run: %s", p.stderr)
	default:
	}
	return m, err
}

// tableRows are the lines of the table, in scenario order.
func tableRows(scenarios []string, cfg config) []report.Row {
	var rows []report.Row
	add := func(sc string, rs ...report.Row) {
		for _, r := range rs {
			r.Scenario = sc
			rows = append(rows, r)
		}
	}
	rpcRows := func(sc string) {
		add(sc,
			report.Row{Metric: "server_cpu_us_per_call", Label: "server CPU per call (µs)", Digits: 1, Chart: true},
			report.Row{Metric: "calls_per_s", Label: "calls/s", HigherBetter: true, Chart: true},
			report.Row{Metric: "p50_us", Label: "p50 (µs)", Chart: sc == "rpc-seq"},
			report.Row{Metric: "p99_us", Label: "p99 (µs)"},
			report.Row{Metric: "server_cpu_pct", Label: "server CPU (% of a core)"},
			report.Row{Metric: "client_cpu_pct", Label: "load client CPU (% of a core)"},
			report.Row{Metric: "errors", Label: "errors"},
			report.Row{Metric: "batch_negotiated", Label: "batching negotiated (1 = yes)"},
		)
	}
	for _, sc := range scenarios {
		switch sc {
		case "rpc", "rpc-2k", "rpc-seq":
			rpcRows(sc)
		case "burst":
			add(sc,
				report.Row{Metric: "answers", Label: "answered", HigherBetter: true},
				report.Row{Metric: "errors", Label: "error replies"},
				report.Row{Metric: "missing", Label: "unanswered after 30 s"},
				report.Row{Metric: "all_answered_ms", Label: "time to the last answer (ms)", Digits: 1},
			)
		case "fanout":
			add(sc,
				report.Row{Metric: "delivered_pct", Label: "delivered (%)", Digits: 2, HigherBetter: true},
				report.Row{Metric: "p50_ms", Label: "p50 (ms)", Digits: 2},
				report.Row{Metric: "p99_ms", Label: "p99 (ms)", Digits: 2, Chart: true},
				report.Row{Metric: "server_cpu_us_per_delivery", Label: "server CPU per delivery (µs)", Digits: 2},
			)
		case "fanout-sat":
			add(sc,
				report.Row{Metric: "deliveries_per_s", Label: "deliveries/s", HigherBetter: true, Chart: true},
				report.Row{Metric: "lost_pct", Label: "lost (%)", Digits: 3},
				report.Row{Metric: "subscribers_closed", Label: "subscribers closed"},
				report.Row{Metric: "server_cpu_us_per_delivery", Label: "server CPU per delivery (µs)", Digits: 2},
				report.Row{Metric: "p99_ms", Label: "p99 (ms)", Digits: 1},
				report.Row{Metric: "server_cpu_pct", Label: "server CPU (% of a core)"},
				report.Row{Metric: "client_cpu_pct", Label: "load client CPU (% of a core)"},
				report.Row{Metric: "batch_negotiated", Label: "batching negotiated (1 = yes)"},
			)
		case "idle":
			for _, n := range cfg.idle {
				add(fmt.Sprintf("idle-%d", n),
					report.Row{Metric: "heap_stack_per_conn_kib", Label: "heap + stacks per conn after GC (KiB)", Digits: 2, Chart: true},
					report.Row{Metric: "heap_per_conn_kib", Label: "of which heap (KiB)", Digits: 2},
					report.Row{Metric: "stack_per_conn_kib", Label: "of which stacks (KiB)", Digits: 2},
					report.Row{Metric: "rss_per_conn_kib", Label: "RSS growth per conn (KiB)", Digits: 2, Chart: true},
					report.Row{Metric: "conns_alive", Label: "connections the server counts"},
				)
			}
		case "churn":
			add(sc,
				report.Row{Metric: "connects_per_s", Label: "connects/s", HigherBetter: true, Chart: true},
				report.Row{Metric: "server_cpu_us_per_connect", Label: "server CPU per connect (µs)", Digits: 1},
				report.Row{Metric: "failed", Label: "failed connects"},
			)
		}
	}
	return rows
}

// summary prints a result's metrics on one line for the log.
func summary(m load.Metrics) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&b, "%s=%s ", k, report.Format(m[k], 2))
	}
	return b.String()
}
