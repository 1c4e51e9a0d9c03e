package dsprom_test

import (
	"context"
	"testing"

	"github.com/datasole/datasole-go/datasole/protocol"
	dsprom "github.com/datasole/datasole-go/metrics/prometheus"
)

// The per-frame methods run for every message in and out: they must not
// allocate.
func TestHotPathDoesNotAllocate(t *testing.T) {
	col := dsprom.New(dsprom.Options{})
	_, done := col.StartRPC(context.Background(), "echo") // admit the label
	done("ok")
	for _, tc := range []struct {
		name string
		fn   func()
	}{
		{"FrameIn", func() { col.FrameIn(protocol.RPCReq, 64) }},
		{"FrameIn of an undecodable message", func() { col.FrameIn(0, 3) }},
		{"FrameOut", func() { col.FrameOut(protocol.EventS2C, 64) }},
		{"Fanout", func() { col.Fanout(protocol.EventS2C, 1000) }},
		{"FrameRefused", func() { col.FrameRefused("short") }},
		{"RPCRefused", func() { col.RPCRefused("echo", "overloaded") }},
	} {
		t.Run(tc.name+" makes no allocation", func(t *testing.T) {
			tc.fn() // resolve lazily created series first
			if n := testing.AllocsPerRun(1000, tc.fn); n != 0 {
				t.Fatalf("%v allocations per call", n)
			}
		})
	}
}

func BenchmarkFrameInParallel(b *testing.B) {
	col := dsprom.New(dsprom.Options{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			col.FrameIn(protocol.RPCReq, 64)
		}
	})
}

func BenchmarkFrameOut(b *testing.B) {
	col := dsprom.New(dsprom.Options{})
	b.ReportAllocs()
	for b.Loop() {
		col.FrameOut(protocol.EventS2C, 64)
	}
}

func BenchmarkFrameIn(b *testing.B) {
	col := dsprom.New(dsprom.Options{})
	b.ReportAllocs()
	for b.Loop() {
		col.FrameIn(protocol.RPCReq, 64)
	}
}

func BenchmarkStartRPC(b *testing.B) {
	col := dsprom.New(dsprom.Options{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, done := col.StartRPC(ctx, "echo")
		done("ok")
	}
}

func BenchmarkRPCRefusedUnknownMethod(b *testing.B) {
	col := dsprom.New(dsprom.Options{})
	b.ReportAllocs()
	for b.Loop() {
		col.RPCRefused("made-up", "not-found")
	}
}
