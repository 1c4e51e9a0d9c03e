package dsprom_test

import (
	"context"
	"fmt"
	"github.com/datasole/datasole-go/datasole/observertest"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole/protocol"
	dsprom "github.com/datasole/datasole-go/metrics/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The shared workload (datasole/observertest) under the names these tests use.
const (
	clients      = observertest.Clients
	okCalls      = observertest.OKCalls
	failedCalls  = observertest.FailedCalls
	unknownCalls = observertest.UnknownCalls
	events       = observertest.Events
)

var (
	garbage     = observertest.Garbage
	startServer = observertest.Start
	runWorkload = observertest.Run
	eventually  = observertest.Eventually
)

func TestCollectorCountsARealServersWorkload(t *testing.T) {
	col := dsprom.New(dsprom.Options{})
	h := startServer(t, col)
	gauge := func() float64 { return gaugeValue(t, col, "datasole_connections") }
	runWorkload(t, h, gauge)
	snap := h.DS.Snapshot()

	t.Run("the counters match the workload exactly", func(t *testing.T) {
		const want = `
# HELP datasole_connections Open WebSocket connections.
# TYPE datasole_connections gauge
datasole_connections 0
# HELP datasole_connections_opened_total Connections established.
# TYPE datasole_connections_opened_total counter
datasole_connections_opened_total 4
# HELP datasole_connections_closed_total Connections ended, by reason.
# TYPE datasole_connections_closed_total counter
datasole_connections_closed_total{reason="closed"} 4
# HELP datasole_upgrades_rejected_total Refused WebSocket upgrades, by reason.
# TYPE datasole_upgrades_rejected_total counter
datasole_upgrades_rejected_total{reason="origin"} 1
# HELP datasole_frames_refused_total Inbound frames refused, by reason.
# TYPE datasole_frames_refused_total counter
datasole_frames_refused_total{reason="short"} 1
datasole_frames_refused_total{reason="text-message"} 1
# HELP datasole_rpc_calls_total RPC calls that ran a handler, by method and outcome.
# TYPE datasole_rpc_calls_total counter
datasole_rpc_calls_total{method="echo",outcome="error"} 0
datasole_rpc_calls_total{method="echo",outcome="ok"} 5
datasole_rpc_calls_total{method="echo",outcome="panic"} 0
datasole_rpc_calls_total{method="echo",outcome="timeout"} 0
datasole_rpc_calls_total{method="fail",outcome="error"} 2
datasole_rpc_calls_total{method="fail",outcome="ok"} 0
datasole_rpc_calls_total{method="fail",outcome="panic"} 0
datasole_rpc_calls_total{method="fail",outcome="timeout"} 0
datasole_rpc_calls_total{method="other",outcome="error"} 0
datasole_rpc_calls_total{method="other",outcome="ok"} 0
datasole_rpc_calls_total{method="other",outcome="panic"} 0
datasole_rpc_calls_total{method="other",outcome="timeout"} 0
# HELP datasole_rpc_refused_total RPC calls answered without running a handler, by method and reason.
# TYPE datasole_rpc_refused_total counter
datasole_rpc_refused_total{method="other",reason="not-found"} 3
# HELP datasole_send_queue_drops_total Frames that did not fit a connection's send queue.
# TYPE datasole_send_queue_drops_total counter
datasole_send_queue_drops_total 0
# HELP datasole_slow_consumer_closes_total Connections closed because they did not read fast enough.
# TYPE datasole_slow_consumer_closes_total counter
datasole_slow_consumer_closes_total 0
# HELP datasole_rate_limited_frames_total Inbound frames refused by the rate limiter.
# TYPE datasole_rate_limited_frames_total counter
datasole_rate_limited_frames_total 0
`
		names := []string{"datasole_connections", "datasole_connections_opened_total", "datasole_connections_closed_total",
			"datasole_upgrades_rejected_total", "datasole_frames_refused_total", "datasole_rpc_calls_total",
			"datasole_rpc_refused_total", "datasole_send_queue_drops_total", "datasole_slow_consumer_closes_total",
			"datasole_rate_limited_frames_total", "datasole_backend_errors_total"}
		if err := testutil.CollectAndCompare(col, strings.NewReader(want), names...); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("frames are counted per opcode in each direction", func(t *testing.T) {
		calls := okCalls + failedCalls + unknownCalls
		for _, tc := range []struct {
			metric, opcode string
			want           int
		}{
			{"datasole_frames_in_total", "RPC_REQ", calls},
			{"datasole_frames_in_total", "EVENT_C2S", events},
			{"datasole_frames_in_total", "unknown", len(garbage)},
			{"datasole_frames_in_total", "PING", 0},
			{"datasole_frames_out_total", "RPC_RES", calls},
			{"datasole_frames_out_total", "EVENT_S2C", clients},
			{"datasole_frames_out_total", "ERROR", len(garbage)},
			{"datasole_frames_out_total", "STATE_PATCH", 0},
			{"datasole_bytes_in_total", "unknown", len(garbage[0].Data) + len(garbage[1].Data)},
		} {
			if got := value(t, col, tc.metric, "opcode", tc.opcode); got != float64(tc.want) {
				t.Errorf("%s{opcode=%q} = %v, want %d", tc.metric, tc.opcode, got, tc.want)
			}
		}
	})

	t.Run("frame and byte totals equal the server's own counters", func(t *testing.T) {
		for _, tc := range []struct {
			metric string
			want   uint64
		}{
			{"datasole_frames_in_total", snap.FramesIn},
			{"datasole_bytes_in_total", snap.BytesIn},
			{"datasole_frames_out_total", snap.FramesOut},
			{"datasole_bytes_out_total", snap.BytesOut},
		} {
			if got := sum(t, col, tc.metric); got != float64(tc.want) {
				t.Errorf("sum(%s) = %v, the server counted %d", tc.metric, got, tc.want)
			}
		}
	})

	t.Run("each handled call is timed once under its method", func(t *testing.T) {
		for method, want := range map[string]uint64{"echo": okCalls, "fail": failedCalls} {
			if got := histogram(t, col, "datasole_rpc_duration_seconds", "method", method).GetSampleCount(); got != want {
				t.Errorf("rpc_duration_seconds{method=%q} count = %d, want %d", method, got, want)
			}
		}
	})

	t.Run("the broadcast is one fan-out to every client", func(t *testing.T) {
		hg := histogram(t, col, "datasole_fanout_recipients", "opcode", "EVENT_S2C")
		if hg.GetSampleCount() != 1 || hg.GetSampleSum() != clients {
			t.Errorf("fanout_recipients{opcode=EVENT_S2C}: count %d sum %v, want 1 and %d", hg.GetSampleCount(), hg.GetSampleSum(), clients)
		}
	})
}

// gather collects col into metric families by name.
func gather(t *testing.T, col prometheus.Collector) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(col); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]*dto.MetricFamily, len(mfs))
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// series finds the series of name that has every label pair in kv
// (name1, value1, name2, value2, …).
func series(t *testing.T, col prometheus.Collector, name string, kv ...string) *dto.Metric {
	t.Helper()
next:
	for _, m := range gather(t, col)[name].GetMetric() {
		for i := 0; i < len(kv); i += 2 {
			if !hasLabel(m, kv[i], kv[i+1]) {
				continue next
			}
		}
		return m
	}
	t.Fatalf("no series %s%q", name, kv)
	return nil
}

func value(t *testing.T, col prometheus.Collector, name string, kv ...string) float64 {
	t.Helper()
	return series(t, col, name, kv...).GetCounter().GetValue()
}

func gaugeValue(t *testing.T, col prometheus.Collector, name string) float64 {
	t.Helper()
	return series(t, col, name).GetGauge().GetValue()
}

func histogram(t *testing.T, col prometheus.Collector, name string, kv ...string) *dto.Histogram {
	t.Helper()
	return series(t, col, name, kv...).GetHistogram()
}

func sum(t *testing.T, col prometheus.Collector, name string) float64 {
	t.Helper()
	var total float64
	for _, m := range gather(t, col)[name].GetMetric() {
		total += m.GetCounter().GetValue()
	}
	return total
}

func TestExposition(t *testing.T) {
	col := dsprom.New(dsprom.Options{ConstLabels: prometheus.Labels{"node": "a"}})
	// Touch every metric so each family has a series to lint.
	col.ConnOpened()
	col.ConnClosed("slow-consumer", 1008)
	col.UpgradeRejected("origin")
	col.FrameIn(protocol.RPCReq, 40)
	col.FrameOut(protocol.RPCRes, 30)
	col.FrameRefused("rate-limited")
	col.Fanout(protocol.EventS2C, 10)
	col.SendDropped()
	_, done := col.StartRPC(context.Background(), "echo")
	done("ok")
	col.RPCRefused("echo", "overloaded")
	col.BackendError("publish")
	col.BusLag(3 * time.Millisecond)

	t.Run("promlint finds no problem", func(t *testing.T) {
		problems, err := testutil.CollectAndLint(col)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	})

	t.Run("the served text parses with a HELP and TYPE for every family", func(t *testing.T) {
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(col)
		hs := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		defer hs.Close()
		resp, err := http.Get(hs.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Fatalf("Content-Type %q", ct)
		}
		parser := expfmt.NewTextParser(model.LegacyValidation)
		mfs, err := parser.TextToMetricFamilies(resp.Body)
		if err != nil {
			t.Fatalf("exposition does not parse: %v", err)
		}
		want := map[string]dto.MetricType{
			"datasole_connections":                  dto.MetricType_GAUGE,
			"datasole_connections_opened_total":     dto.MetricType_COUNTER,
			"datasole_connections_closed_total":     dto.MetricType_COUNTER,
			"datasole_upgrades_rejected_total":      dto.MetricType_COUNTER,
			"datasole_frames_in_total":              dto.MetricType_COUNTER,
			"datasole_bytes_in_total":               dto.MetricType_COUNTER,
			"datasole_frames_out_total":             dto.MetricType_COUNTER,
			"datasole_bytes_out_total":              dto.MetricType_COUNTER,
			"datasole_frames_refused_total":         dto.MetricType_COUNTER,
			"datasole_rpc_calls_total":              dto.MetricType_COUNTER,
			"datasole_rpc_duration_seconds":         dto.MetricType_HISTOGRAM,
			"datasole_rpc_refused_total":            dto.MetricType_COUNTER,
			"datasole_fanout_recipients":            dto.MetricType_HISTOGRAM,
			"datasole_send_queue_drops_total":       dto.MetricType_COUNTER,
			"datasole_slow_consumer_closes_total":   dto.MetricType_COUNTER,
			"datasole_rate_limited_frames_total":    dto.MetricType_COUNTER,
			"datasole_backend_errors_total":         dto.MetricType_COUNTER,
			"datasole_bus_lag_seconds":              dto.MetricType_HISTOGRAM,
			"datasole_connection_close_codes_total": dto.MetricType_COUNTER,
			"datasole_events_in_total":              dto.MetricType_COUNTER,
			"datasole_frames_ignored_total":         dto.MetricType_COUNTER,
			"datasole_state_changes_total":          dto.MetricType_COUNTER,
			"datasole_crdt_ops_total":               dto.MetricType_COUNTER,
			"datasole_bus_gaps_total":               dto.MetricType_COUNTER,
			"datasole_history_appends_total":        dto.MetricType_COUNTER,
			"datasole_recoveries_total":             dto.MetricType_COUNTER,
			"datasole_presence_entries":             dto.MetricType_GAUGE,
		}
		for name, typ := range want {
			mf, ok := mfs[name]
			switch {
			case !ok:
				t.Errorf("%s missing", name)
			case mf.GetType() != typ:
				t.Errorf("%s is a %v, want %v", name, mf.GetType(), typ)
			case mf.GetHelp() == "":
				t.Errorf("%s has no HELP", name)
			case !hasLabel(mf.GetMetric()[0], "node", "a"):
				t.Errorf("%s lacks the constant label", name)
			}
		}
		if len(mfs) != len(want) {
			t.Errorf("%d families, want %d", len(mfs), len(want))
		}
	})
}

func hasLabel(m *dto.Metric, name, v string) bool {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name && lp.GetValue() == v {
			return true
		}
	}
	return false
}

func TestLabelCardinality(t *testing.T) {
	refuse := func(col *dsprom.Collector, method string) { col.RPCRefused(method, "not-found") }
	run := func(col *dsprom.Collector, method string) {
		_, done := col.StartRPC(context.Background(), method)
		done("ok")
	}

	t.Run("a method without a handler is counted as other however many names a client invents", func(t *testing.T) {
		col := dsprom.New(dsprom.Options{})
		for i := range 1000 {
			refuse(col, fmt.Sprintf("random-%d", i))
		}
		if n := testutil.CollectAndCount(col, "datasole_rpc_refused_total"); n != 1 {
			t.Fatalf("%d rpc_refused series, want 1", n)
		}
		if got := value(t, col, "datasole_rpc_refused_total", "method", "other"); got != 1000 {
			t.Fatalf("other = %v, want 1000", got)
		}
	})

	t.Run("a method keeps its label once its handler has run", func(t *testing.T) {
		col := dsprom.New(dsprom.Options{})
		refuse(col, "echo")
		run(col, "echo")
		refuse(col, "echo")
		if got := value(t, col, "datasole_rpc_refused_total", "method", "echo"); got != 1 {
			t.Fatalf("echo refusals = %v, want 1 (the first came before the handler ran)", got)
		}
	})

	t.Run("methods named in Options keep their label from the start", func(t *testing.T) {
		col := dsprom.New(dsprom.Options{Methods: []string{"echo"}})
		refuse(col, "echo")
		if got := value(t, col, "datasole_rpc_refused_total", "method", "echo"); got != 1 {
			t.Fatalf("echo refusals = %v, want 1", got)
		}
	})

	t.Run("methods beyond MaxMethods are folded into other", func(t *testing.T) {
		col := dsprom.New(dsprom.Options{MaxMethods: 2})
		for _, m := range []string{"a", "b", "c", "d", "a"} {
			run(col, m)
		}
		for m, want := range map[string]float64{"a": 2, "b": 1, "other": 2} {
			if got := value(t, col, "datasole_rpc_calls_total", "method", m, "outcome", "ok"); got != want {
				t.Errorf("calls{method=%q} = %v, want %v", m, got, want)
			}
		}
	})

	t.Run("concurrent first calls of many methods keep the cap and lose no count", func(t *testing.T) {
		col := dsprom.New(dsprom.Options{MaxMethods: 10})
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 50 {
					run(col, fmt.Sprintf("m%d", (g*50+i)%40))
				}
			})
		}
		wg.Wait()
		if n := testutil.CollectAndCount(col, "datasole_rpc_duration_seconds"); n != 11 {
			t.Fatalf("%d method series, want 10 and other", n)
		}
		if got := sum(t, col, "datasole_rpc_calls_total"); got != 400 {
			t.Fatalf("%v calls counted, want 400", got)
		}
	})

	t.Run("a method name that is not UTF-8 is counted as other instead of breaking the exposition", func(t *testing.T) {
		col := dsprom.New(dsprom.Options{})
		run(col, "bad\xff")
		if got := value(t, col, "datasole_rpc_calls_total", "method", "other", "outcome", "ok"); got != 1 {
			t.Fatalf("other = %v, want 1", got)
		}
	})
}

func TestDedicatedCounters(t *testing.T) {
	for _, tc := range []struct {
		name   string
		event  func(*dsprom.Collector)
		metric string
		want   float64
	}{
		{"a slow-consumer close counts as a slow consumer", func(c *dsprom.Collector) { c.ConnClosed("slow-consumer", 1008) },
			"datasole_slow_consumer_closes_total", 1},
		{"any other close does not", func(c *dsprom.Collector) { c.ConnClosed("abuse", 1008) },
			"datasole_slow_consumer_closes_total", 0},
		{"a rate-limited frame counts as rate limited", func(c *dsprom.Collector) { c.FrameRefused("rate-limited") },
			"datasole_rate_limited_frames_total", 1},
		{"a malformed frame does not", func(c *dsprom.Collector) { c.FrameRefused("bad-zlib") },
			"datasole_rate_limited_frames_total", 0},
		{"a dropped frame counts as a send queue drop", func(c *dsprom.Collector) { c.SendDropped() },
			"datasole_send_queue_drops_total", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			col := dsprom.New(dsprom.Options{})
			tc.event(col)
			if got := value(t, col, tc.metric); got != tc.want {
				t.Fatalf("%s = %v, want %v", tc.metric, got, tc.want)
			}
		})
	}

	t.Run("a custom namespace prefixes every name", func(t *testing.T) {
		col := dsprom.New(dsprom.Options{Namespace: "chat"})
		col.BusLag(0)
		for name := range gather(t, col) {
			if !strings.HasPrefix(name, "chat_") {
				t.Errorf("%s is not in the chat namespace", name)
			}
		}
	})
}
