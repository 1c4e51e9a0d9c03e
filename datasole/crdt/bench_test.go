package crdt

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// BenchmarkApply applies one small op to replicas holding a small and a
// nearly full state: the cost should not follow the state's size.
func BenchmarkApply(b *testing.B) {
	for _, fields := range []int{10, 240} { // ~10 KiB and ~250 KiB of state
		b.Run(fmt.Sprintf("lww-map/%d-fields", fields), func(b *testing.B) {
			m, _ := NewLWWMap("server", Limits{})
			for i := range fields {
				if _, err := m.Set(fmt.Sprint("f", i), strings.Repeat("x", 1000), 1); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(m.Size()), "state-bytes")
			value := json.RawMessage(`{"color":"blue","size":3}`)
			b.ReportAllocs()
			ts := int64(1)
			for b.Loop() {
				ts++
				if err := m.Apply(Op{Type: TypeLWWMap, NodeID: "c1", Timestamp: ts, Op: OpSet, Key: "f3", Value: value}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	for _, nodes := range []int{10, 1000} {
		b.Run(fmt.Sprintf("pn-counter/%d-nodes", nodes), func(b *testing.B) {
			c, _ := NewPNCounter("server", Limits{})
			for i := range nodes - 1 {
				if err := c.Apply(Op{Type: TypePNCounter, NodeID: fmt.Sprintf("go-%016x", i), Op: OpIncrement, Seq: 1}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(c.Size()), "state-bytes")
			b.ReportAllocs()
			seq := uint64(1)
			for b.Loop() {
				seq++
				if err := c.Apply(Op{Type: TypePNCounter, NodeID: "go-0000000000000003", Op: OpIncrement, Seq: seq}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEncodedState compares sending an unchanged state again from
// the cache with encoding it.
func BenchmarkEncodedState(b *testing.B) {
	m, _ := NewLWWMap("server", Limits{})
	for i := range 240 {
		if _, err := m.Set(fmt.Sprint("f", i), strings.Repeat("x", 1000), 1); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("cached", func(b *testing.B) {
		m.EncodedState() // encoded once, after the last change
		b.ReportAllocs()
		for b.Loop() {
			_ = m.EncodedState()
		}
	})
	b.Run("marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(m.State()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
