// Package labelset bounds the label values a metrics exporter creates
// series for: network input (RPC method names, reasons) must not grow series
// without limit. The Prometheus and OpenTelemetry exporters share it.
package labelset

import (
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// Other is the label value unadmitted values are counted under.
const Other = "other"

// Set maps label values to their pre-resolved series, admitting at most
// max distinct values and folding the rest into Other. Reads are one atomic
// load and a map lookup: the map is copied on the rare write, so the hot
// path neither locks nor allocates.
type Set[T any] struct {
	seen atomic.Pointer[map[string]T]
	mu   sync.Mutex // serialises writers
	n    int        // admitted values, Other not included
	max  int
	make func(label string) T
}

// New returns a Set admitting max values; mk creates the series of a value.
func New[T any](max int, mk func(string) T) *Set[T] {
	l := &Set[T]{max: max, make: mk}
	l.seen.Store(&map[string]T{})
	return l
}

// Get returns the series for v. When admit is false, or v is not valid
// UTF-8 (Prometheus refuses such label values), or the cap is reached, an
// unseen v is counted as Other.
func (l *Set[T]) Get(v string, admit bool) T {
	if s, ok := (*l.seen.Load())[v]; ok {
		return s
	}
	if !admit || !utf8.ValidString(v) {
		v = Other
		if s, ok := (*l.seen.Load())[v]; ok {
			return s
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	old := *l.seen.Load()
	if s, ok := old[v]; ok {
		return s
	}
	if v != Other && l.n >= l.max {
		v = Other
		if s, ok := old[v]; ok {
			return s
		}
	}
	if v != Other {
		l.n++
	}
	s := l.make(v)
	next := make(map[string]T, len(old)+1)
	for k, x := range old {
		next[k] = x
	}
	next[v] = s
	l.seen.Store(&next)
	return s
}

// Each calls fn for every admitted value (Other included once used), in no
// particular order.
func (l *Set[T]) Each(fn func(label string, series T)) {
	for k, v := range *l.seen.Load() {
		fn(k, v)
	}
}
