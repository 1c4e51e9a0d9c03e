package main

import (
	"context"
	"testing"
	"time"

	"github.com/datasole/datasole-go/bench/internal/load"
)

// TestHarnessAgainstRealServers builds every server program and runs each
// scenario against it with tiny sizes: the harness end to end, with the
// figures checked for what must hold at any size.
func TestHarnessAgainstRealServers(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the server programs")
	}
	ctx := context.Background()
	bin := t.TempDir()
	var targets []target
	for _, name := range []string{"gorilla", "nbio", "centrifuge", "dshttp", "dsfiber"} {
		targets = append(targets, target{name: name, server: name})
	}
	if err := build(ctx, bin, targets); err != nil {
		t.Fatal(err)
	}
	targets = append(targets, target{name: "dshttp:go", server: "dshttp", goClient: true})
	cfg := config{
		conns: 2, depth: 3, payload: 16, bigPayload: 2048, burst: 50,
		warmup: 100 * time.Millisecond, duration: 300 * time.Millisecond,
		subs: 10, rate: 50, msgSize: 100, fanoutDuration: 300 * time.Millisecond,
		satWindow: 32, satBurst: 4, drain: 20 * time.Second,
		idle: []int{50}, idleParallel: 8, idleSettle: 100 * time.Millisecond,
		churnWorkers: 2, churnDuration: 200 * time.Millisecond,
	}
	sources := load.NewSources(2)
	checks := map[string]func(t *testing.T, m load.Metrics){
		"rpc": func(t *testing.T, m load.Metrics) {
			if m["calls_per_s"] <= 0 || m["errors"] != 0 || m["p50_us"] <= 0 || m["p99_us"] < m["p50_us"] {
				t.Errorf("rpc: %v", m)
			}
		},
		"rpc-2k": func(t *testing.T, m load.Metrics) {
			if m["calls_per_s"] <= 0 || m["errors"] != 0 {
				t.Errorf("rpc-2k: %v", m)
			}
		},
		"burst": func(t *testing.T, m load.Metrics) {
			if m["answers"] != 50 || m["errors"] != 0 || m["missing"] != 0 {
				t.Errorf("burst of 50: %v", m)
			}
		},
		"fanout": func(t *testing.T, m load.Metrics) {
			if m["delivered_pct"] != 100 || m["published"] != 15 || m["p99_ms"] <= 0 {
				t.Errorf("fanout: %v", m)
			}
		},
		"fanout-sat": func(t *testing.T, m load.Metrics) {
			if m["published"] <= 0 || m["lost"] != 0 || m["subscribers_closed"] != 0 || m["deliveries_per_s"] <= 0 {
				t.Errorf("fanout-sat: %v", m)
			}
		},
		"idle-50": func(t *testing.T, m load.Metrics) {
			if m["conns_alive"] != 50 || m["conns"] != 50 {
				t.Errorf("idle: %v", m)
			}
		},
		"churn": func(t *testing.T, m load.Metrics) {
			if m["connects_per_s"] <= 0 || m["failed"] != 0 {
				t.Errorf("churn: %v", m)
			}
		},
	}
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			for _, sc := range []string{"rpc", "rpc-2k", "burst", "fanout", "fanout-sat", "idle", "churn"} {
				for _, j := range jobs(sc, cfg) {
					if tg.goClient && !j.clientMatters {
						continue
					}
					m, err := runJob(ctx, bin, tg, sources, j)
					if err != nil {
						t.Errorf("%s: %v", j.id, err)
						continue
					}
					check, ok := checks[j.id]
					if !ok {
						t.Fatalf("no check for %s", j.id)
					}
					check(t, m)
				}
			}
		})
	}
}
