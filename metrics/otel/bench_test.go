package dsotel_test

import (
	"context"
	"testing"

	"github.com/datasole/datasole-go/datasole/protocol"
	dsotel "github.com/datasole/datasole-go/metrics/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

func benchObserver(b *testing.B) *dsotel.Observer {
	obs, err := dsotel.New(dsotel.Options{
		MeterProvider:  sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader())),
		TracerProvider: sdktrace.NewTracerProvider(),
	})
	if err != nil {
		b.Fatal(err)
	}
	return obs
}

func BenchmarkFrameIn(b *testing.B) {
	obs := benchObserver(b)
	b.ReportAllocs()
	for b.Loop() {
		obs.FrameIn(protocol.RPCReq, 64)
	}
}

func BenchmarkFrameOut(b *testing.B) {
	obs := benchObserver(b)
	b.ReportAllocs()
	for b.Loop() {
		obs.FrameOut(protocol.EventS2C, 64)
	}
}

func BenchmarkStartRPC(b *testing.B) {
	obs := benchObserver(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, done := obs.StartRPC(ctx, "echo")
		done("ok")
	}
}

// The per-frame methods run for every message in and out: with the SDK
// behind them they must still not allocate.
func TestHotPathDoesNotAllocate(t *testing.T) {
	in := newInstrumented(t, dsotel.Options{})
	for _, tc := range []struct {
		name string
		fn   func()
	}{
		{"FrameIn", func() { in.obs.FrameIn(protocol.RPCReq, 64) }},
		{"FrameOut", func() { in.obs.FrameOut(protocol.EventS2C, 64) }},
		{"Fanout", func() { in.obs.Fanout(protocol.EventS2C, 1000) }},
		{"FrameRefused", func() { in.obs.FrameRefused("short") }},
		{"RPCRefused of an unknown method", func() { in.obs.RPCRefused("made-up", "not-found") }},
	} {
		t.Run(tc.name+" makes no allocation", func(t *testing.T) {
			tc.fn() // create the series first
			if n := testing.AllocsPerRun(1000, tc.fn); n != 0 {
				t.Fatalf("%v allocations per call", n)
			}
		})
	}
}
