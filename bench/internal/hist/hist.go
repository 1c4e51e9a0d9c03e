// Package hist is a fixed-size latency histogram with log-linear buckets
// (relative error under 1/128), cheap enough to record every reply or
// delivery of a load run without allocating. Each goroutine records into its
// own Histogram; Merge combines them at the end.
package hist

import (
	"math/bits"
	"time"
)

const (
	subBits = 6
	sub     = 1 << subBits // buckets per power of two
	nBucket = (64 - subBits + 1) * sub
)

// Histogram counts durations. The zero value is ready to use.
type Histogram struct {
	counts [nBucket]uint32
	n      uint64
	max    time.Duration
}

func index(v uint64) int {
	if v < sub {
		return int(v)
	}
	e := bits.Len64(v) - subBits - 1 // v>>e is in [sub, 2*sub)
	return (e+1)*sub + int(v>>e) - sub
}

// bounds returns the smallest value of bucket i and the bucket's width.
func bounds(i int) (lo, width uint64) {
	if i < sub {
		return uint64(i), 1
	}
	e := uint(i/sub - 1)
	return uint64(i%sub+sub) << e, 1 << e
}

// Record adds one duration; negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	h.n++
	if d > h.max {
		h.max = d
	}
	h.counts[index(uint64(max(d, 0)))]++
}

// Count returns how many durations were recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Max returns the largest duration recorded.
func (h *Histogram) Max() time.Duration { return h.max }

// Merge adds the counts of o to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// Quantile returns the duration below which a fraction q (0 < q ≤ 1) of the
// recorded durations fall, as the middle of its bucket; 0 when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += uint64(c)
		if seen >= rank {
			lo, w := bounds(i)
			return min(time.Duration(lo+w/2), h.max)
		}
	}
	return h.max
}
