package hist

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketsCoverEveryValueOnce(t *testing.T) {
	for _, v := range []uint64{0, 1, 63, 64, 65, 127, 128, 129, 1000, 1 << 20, 1<<40 + 12345, 1<<63 - 1} {
		i := index(v)
		lo, w := bounds(i)
		if v < lo || v >= lo+w {
			t.Errorf("value %d went to bucket %d = [%d, %d)", v, i, lo, lo+w)
		}
		if i >= nBucket {
			t.Errorf("value %d: bucket %d out of range", v, i)
		}
	}
	for i := 1; i < nBucket; i++ {
		lo, _ := bounds(i)
		plo, pw := bounds(i - 1)
		if plo+pw != lo {
			t.Fatalf("bucket %d starts at %d, previous ends at %d", i, lo, plo+pw)
		}
	}
}

func TestQuantilesMatchSortedSamples(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var a, b Histogram
	var all []time.Duration
	for i := range 20000 {
		d := time.Duration(r.ExpFloat64() * float64(200*time.Microsecond))
		all = append(all, d)
		if i%2 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	a.Merge(&b)
	slices.Sort(all)
	if a.Count() != uint64(len(all)) || a.Max() != all[len(all)-1] {
		t.Fatalf("count %d max %v, want %d and %v", a.Count(), a.Max(), len(all), all[len(all)-1])
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := all[int(q*float64(len(all)))-1]
		got := a.Quantile(q)
		if diff := float64(got-want) / float64(want); diff > 0.02 || diff < -0.02 {
			t.Errorf("q%.3f = %v, exact %v (off by %.1f%%)", q, got, want, 100*diff)
		}
	}
}

func TestEmptyHistogram(t *testing.T) {
	var h Histogram
	if h.Quantile(0.99) != 0 || h.Count() != 0 {
		t.Fatal("an empty histogram reports values")
	}
}
