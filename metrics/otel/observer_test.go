package dsotel_test

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/datasole/datasole-go/datasole/observertest"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/client"
	dsotel "github.com/datasole/datasole-go/metrics/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
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

// instrumented is an Observer on in-memory metric and span readers.
type instrumented struct {
	obs    *dsotel.Observer
	reader *sdkmetric.ManualReader
	spans  *tracetest.SpanRecorder
}

func newInstrumented(t *testing.T, opts dsotel.Options) *instrumented {
	t.Helper()
	in := &instrumented{reader: sdkmetric.NewManualReader(), spans: tracetest.NewSpanRecorder()}
	opts.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(in.reader))
	opts.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(in.spans))
	obs, err := dsotel.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	in.obs = obs
	return in
}

// collect reads every metric by name.
func (in *instrumented) collect(t *testing.T) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := in.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

// sum is the value of the int64 sum name at the attributes kv, or 0.
func sum(t *testing.T, ms map[string]metricdata.Metrics, name string, kv ...attribute.KeyValue) int64 {
	t.Helper()
	data, ok := ms[name].Data.(metricdata.Sum[int64])
	if !ok {
		t.Fatalf("%s is %T, not an int64 sum", name, ms[name].Data)
	}
	want := attribute.NewSet(kv...)
	for _, dp := range data.DataPoints {
		if dp.Attributes.Equals(&want) {
			return dp.Value
		}
	}
	return 0
}

// total adds up every data point of the int64 sum name.
func total(t *testing.T, ms map[string]metricdata.Metrics, name string) int64 {
	t.Helper()
	var n int64
	for _, dp := range ms[name].Data.(metricdata.Sum[int64]).DataPoints {
		n += dp.Value
	}
	return n
}

func TestObserverRecordsARealServersWorkload(t *testing.T) {
	in := newInstrumented(t, dsotel.Options{})
	h := startServer(t, in.obs)
	runWorkload(t, h, func() float64 {
		return float64(sum(t, in.collect(t), "datasole.connections"))
	})
	snap := h.DS.Snapshot()
	ms := in.collect(t)
	op := dsotel.KeyOpcode.String
	reason := dsotel.KeyReason.String
	method := dsotel.KeyRPCMethod.String
	outcome := dsotel.KeyOutcome.String
	calls := okCalls + failedCalls + unknownCalls

	t.Run("the counters match the workload exactly", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			attrs []attribute.KeyValue
			want  int
		}{
			{"datasole.connections", nil, 0},
			{"datasole.connections.opened", nil, clients + 1},
			{"datasole.connections.closed", []attribute.KeyValue{reason("closed")}, clients + 1},
			{"datasole.upgrades.rejected", []attribute.KeyValue{reason("origin")}, 1},
			{"datasole.frames.in", []attribute.KeyValue{op("RPC_REQ")}, calls},
			{"datasole.frames.in", []attribute.KeyValue{op("EVENT_C2S")}, events},
			{"datasole.frames.in", []attribute.KeyValue{op("unknown")}, len(garbage)},
			{"datasole.bytes.in", []attribute.KeyValue{op("unknown")}, len(garbage[0].Data) + len(garbage[1].Data)},
			{"datasole.frames.out", []attribute.KeyValue{op("RPC_RES")}, calls},
			{"datasole.frames.out", []attribute.KeyValue{op("EVENT_S2C")}, clients},
			{"datasole.frames.out", []attribute.KeyValue{op("ERROR")}, len(garbage)},
			{"datasole.frames.refused", []attribute.KeyValue{reason("short")}, 1},
			{"datasole.frames.refused", []attribute.KeyValue{reason("text-message")}, 1},
			{"datasole.rpc.calls", []attribute.KeyValue{method("echo"), outcome("ok")}, okCalls},
			{"datasole.rpc.calls", []attribute.KeyValue{method("fail"), outcome("error")}, failedCalls},
			{"datasole.rpc.refused", []attribute.KeyValue{method("other"), reason("not-found")}, unknownCalls},
		} {
			if got := sum(t, ms, tc.name, tc.attrs...); got != int64(tc.want) {
				t.Errorf("%s%v = %d, want %d", tc.name, tc.attrs, got, tc.want)
			}
		}
		if n := len(ms["datasole.rpc.refused"].Data.(metricdata.Sum[int64]).DataPoints); n != 1 {
			t.Errorf("%d rpc.refused series, want 1: made-up methods must not get their own", n)
		}
	})

	t.Run("frame and byte totals equal the server's own counters", func(t *testing.T) {
		for name, want := range map[string]uint64{
			"datasole.frames.in": snap.FramesIn, "datasole.bytes.in": snap.BytesIn,
			"datasole.frames.out": snap.FramesOut, "datasole.bytes.out": snap.BytesOut,
		} {
			if got := total(t, ms, name); got != int64(want) {
				t.Errorf("total %s = %d, the server counted %d", name, got, want)
			}
		}
	})

	t.Run("counters are monotonic and the connection count is not", func(t *testing.T) {
		for name, m := range ms {
			s, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				continue
			}
			if want := name != "datasole.connections"; s.IsMonotonic != want {
				t.Errorf("%s: monotonic %v, want %v", name, s.IsMonotonic, want)
			}
		}
	})

	t.Run("collecting again does not add the totals twice", func(t *testing.T) {
		again := in.collect(t)
		for _, name := range []string{"datasole.connections.opened", "datasole.frames.in", "datasole.bytes.out"} {
			if a, b := total(t, ms, name), total(t, again, name); a != b {
				t.Errorf("%s went from %d to %d with no traffic", name, a, b)
			}
		}
	})

	t.Run("each handled call is timed once under its method", func(t *testing.T) {
		hist := ms["datasole.rpc.duration"].Data.(metricdata.Histogram[float64])
		counts := map[string]uint64{}
		for _, dp := range hist.DataPoints {
			v, _ := dp.Attributes.Value(dsotel.KeyRPCMethod)
			counts[v.AsString()] += dp.Count
		}
		if counts["echo"] != okCalls || counts["fail"] != failedCalls || len(counts) != 2 {
			t.Errorf("rpc.duration counts %v, want echo %d and fail %d", counts, okCalls, failedCalls)
		}
	})

	t.Run("the broadcast is one fan-out to every client", func(t *testing.T) {
		hist := ms["datasole.fanout.recipients"].Data.(metricdata.Histogram[int64])
		if len(hist.DataPoints) != 1 || hist.DataPoints[0].Count != 1 || hist.DataPoints[0].Sum != clients {
			t.Fatalf("fanout.recipients %+v, want one push to %d", hist.DataPoints, clients)
		}
	})

	t.Run("there is one span per handled call with its method and outcome", func(t *testing.T) {
		got := map[string]int{}
		for _, s := range in.spans.Ended() {
			attrs := attribute.NewSet(s.Attributes()...)
			sys, _ := attrs.Value(dsotel.KeyRPCSystem)
			m, _ := attrs.Value(dsotel.KeyRPCMethod)
			o, _ := attrs.Value(dsotel.KeyOutcome)
			if s.Name() != "datasole.rpc "+m.AsString() || s.SpanKind() != trace.SpanKindServer || sys.AsString() != "datasole" {
				t.Errorf("span %q kind %v system %q", s.Name(), s.SpanKind(), sys.AsString())
			}
			wantStatus := codes.Unset
			if o.AsString() != "ok" {
				wantStatus = codes.Error
			}
			if s.Status().Code != wantStatus {
				t.Errorf("%s with outcome %s has status %v", s.Name(), o.AsString(), s.Status())
			}
			got[m.AsString()+" "+o.AsString()]++
		}
		want := map[string]int{"echo ok": okCalls, "fail error": failedCalls}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("spans %v, want %v", got, want)
		}
	})
}

func TestRPCSpans(t *testing.T) {
	t.Run("the handler runs in the call's span", func(t *testing.T) {
		in := newInstrumented(t, dsotel.Options{})
		h := startServer(t, in.obs, func(ds *datasole.Server) {
			ds.HandleRPC("trace", func(c *datasole.Context, _ json.RawMessage) (any, error) {
				return trace.SpanFromContext(c).SpanContext().SpanID().String(), nil
			})
		})
		ctx := context.Background()
		c, err := client.Dial(ctx, h.URL, client.Options{NoReconnect: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var id string
		if err := c.Call(ctx, "trace", nil, &id); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the span to end", func() bool { return len(in.spans.Ended()) == 1 })
		if want := in.spans.Ended()[0].SpanContext().SpanID().String(); id != want {
			t.Fatalf("handler saw span %s, the call's span is %s", id, want)
		}
	})

	t.Run("a span in the server's context is the call span's parent", func(t *testing.T) {
		in := newInstrumented(t, dsotel.Options{})
		tp := sdktrace.NewTracerProvider()
		parent, span := tp.Tracer("test").Start(context.Background(), "request")
		_, done := in.obs.StartRPC(parent, "echo")
		done("timeout")
		span.End()
		s := in.spans.Ended()[0]
		if s.Parent().SpanID() != span.SpanContext().SpanID() {
			t.Fatalf("parent %v, want %v", s.Parent().SpanID(), span.SpanContext().SpanID())
		}
		if s.Status().Code != codes.Error || s.Status().Description != "timeout" {
			t.Fatalf("status %+v, want an error described as timeout", s.Status())
		}
	})
}

func TestAttributeCardinality(t *testing.T) {
	refusedMethods := func(t *testing.T, in *instrumented) map[string]int64 {
		t.Helper()
		out := map[string]int64{}
		for _, dp := range in.collect(t)["datasole.rpc.refused"].Data.(metricdata.Sum[int64]).DataPoints {
			v, _ := dp.Attributes.Value(dsotel.KeyRPCMethod)
			out[v.AsString()] += dp.Value
		}
		return out
	}
	run := func(in *instrumented, method string) {
		_, done := in.obs.StartRPC(context.Background(), method)
		done("ok")
	}

	t.Run("a method without a handler is recorded as other however many names a client invents", func(t *testing.T) {
		in := newInstrumented(t, dsotel.Options{})
		for i := range 1000 {
			in.obs.RPCRefused(fmt.Sprintf("random-%d", i), "not-found")
		}
		if got := refusedMethods(t, in); len(got) != 1 || got["other"] != 1000 {
			t.Fatalf("refusals by method %v, want other: 1000", got)
		}
	})

	t.Run("a method keeps its value once its handler has run, or if Options names it", func(t *testing.T) {
		in := newInstrumented(t, dsotel.Options{Methods: []string{"listed"}})
		in.obs.RPCRefused("echo", "overloaded")
		run(in, "echo")
		in.obs.RPCRefused("echo", "overloaded")
		in.obs.RPCRefused("listed", "rate-limited")
		if got := refusedMethods(t, in); got["echo"] != 1 || got["other"] != 1 || got["listed"] != 1 {
			t.Fatalf("refusals by method %v, want echo 1, other 1, listed 1", got)
		}
	})

	t.Run("methods beyond MaxMethods are folded into other", func(t *testing.T) {
		in := newInstrumented(t, dsotel.Options{MaxMethods: 2})
		for _, m := range []string{"a", "b", "c", "d\xff", "a"} {
			run(in, m)
		}
		ms := in.collect(t)
		for m, want := range map[string]int64{"a": 2, "b": 1, "other": 2} {
			if got := sum(t, ms, "datasole.rpc.calls", dsotel.KeyRPCMethod.String(m), dsotel.KeyOutcome.String("ok")); got != want {
				t.Errorf("calls{method=%q} = %d, want %d", m, got, want)
			}
		}
	})
}

func TestDedicatedCounters(t *testing.T) {
	for _, tc := range []struct {
		name   string
		event  func(*dsotel.Observer)
		metric string
		want   int64
	}{
		{"a slow-consumer close counts as a slow consumer", func(o *dsotel.Observer) { o.ConnClosed("slow-consumer", 1008) },
			"datasole.slow_consumer.closes", 1},
		{"a rate-limited frame counts as rate limited", func(o *dsotel.Observer) { o.FrameRefused("rate-limited") },
			"datasole.rate_limited.frames", 1},
		{"a dropped frame counts as a send queue drop", func(o *dsotel.Observer) { o.SendDropped() },
			"datasole.send_queue.drops", 1},
		{"a backend error counts under its operation", func(o *dsotel.Observer) { o.BackendError("publish") },
			"datasole.backend.errors", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := newInstrumented(t, dsotel.Options{})
			tc.event(in.obs)
			if got := total(t, in.collect(t), tc.metric); got != tc.want {
				t.Fatalf("%s = %d, want %d", tc.metric, got, tc.want)
			}
		})
	}

	t.Run("bus lag is recorded in seconds", func(t *testing.T) {
		in := newInstrumented(t, dsotel.Options{})
		in.obs.BusLag(250 * time.Millisecond)
		hist := in.collect(t)["datasole.bus.lag"].Data.(metricdata.Histogram[float64])
		if len(hist.DataPoints) != 1 || hist.DataPoints[0].Sum != 0.25 {
			t.Fatalf("bus.lag %+v, want one 0.25 s sample", hist.DataPoints)
		}
	})
}
