package backend_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/datasole/datasole-go/datasole/backend"
)

// gapCounter counts OnGap calls.
type gapCounter struct {
	mu sync.Mutex
	n  int
}

func (g *gapCounter) fn() { g.mu.Lock(); g.n++; g.mu.Unlock() }
func (g *gapCounter) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n
}

// After an outage, publishers flush what they held back: 20,000 messages of
// 1 KiB reach a subscription whose handler is busy. The default queue holds
// them all (a queue of 1,024 messages dropped most), in order.
func TestDispatcherHoldsAPostOutageBurst(t *testing.T) {
	d := backend.NewDispatcher(backend.DispatcherOptions{})
	defer d.Close()
	var gaps gapCounter
	d.OnGap(gaps.fn)
	release := make(chan struct{})
	got := make(chan []byte, 20001)
	first := true
	if _, err := d.Subscribe("c", func(m []byte) {
		if first {
			first = false
			<-release
		}
		got <- m
	}); err != nil {
		t.Fatal(err)
	}
	const n = 20000
	payload := bytes.Repeat([]byte{'x'}, 1024)
	for i := range n {
		d.Dispatch("c", append([]byte(strconv.Itoa(i)+":"), payload...))
	}
	close(release)
	for i := range n {
		m := <-got
		if want := strconv.Itoa(i) + ":"; !bytes.HasPrefix(m, []byte(want)) {
			t.Fatalf("message %d starts %q", i, m[:8])
		}
	}
	if g := gaps.count(); g != 0 {
		t.Fatalf("%d gaps reported for a burst within the bound", g)
	}
}

// The bound is in bytes: a blocked subscription holds what fits, drops the
// rest, reports a gap and logs one warning per run of drops; a message
// larger than the bound still passes when nothing else waits.
func TestDispatcherBoundsQueuesInBytes(t *testing.T) {
	var logs bytes.Buffer
	d := backend.NewDispatcher(backend.DispatcherOptions{
		QueueBytes: 10 * (1000 + 64),
		Logger:     slog.New(slog.NewTextHandler(&logs, nil)),
	})
	gaps := make(chan struct{}, 1)
	d.OnGap(func() {
		select {
		case gaps <- struct{}{}:
		default:
		}
	})
	entered, release := make(chan struct{}), make(chan struct{})
	handled := make(chan string, 16)
	if _, err := d.Subscribe("c", func(m []byte) {
		if len(m) == 1 {
			close(entered)
			<-release
			return
		}
		handled <- string(m[:2])
	}); err != nil {
		t.Fatal(err)
	}
	d.Dispatch("c", []byte{0}) // occupies the handler
	<-entered
	for i := range 15 {
		m := make([]byte, 1000)
		copy(m, fmt.Sprintf("%02d", i))
		d.Dispatch("c", m)
	}
	<-gaps
	close(release)
	for i := range 10 {
		if m := <-handled; m != fmt.Sprintf("%02d", i) {
			t.Fatalf("message %d is %q", i, m)
		}
	}
	// The one after the drops fits again once the queue has drained.
	d.Dispatch("c", append([]byte("15"), make([]byte, 998)...))
	if m := <-handled; m != "15" {
		t.Fatalf("after the drops got %q, want 15", m)
	}
	d.Close()
	if len(handled) != 0 {
		t.Fatalf("%d dropped messages were handled", len(handled))
	}
	if n := strings.Count(logs.String(), "queue full"); n != 1 {
		t.Fatalf("logged %d warnings for one run of drops:\n%s", n, logs.String())
	}

	d = backend.NewDispatcher(backend.DispatcherOptions{QueueBytes: 100})
	defer d.Close()
	got := make(chan int, 1)
	if _, err := d.Subscribe("c", func(m []byte) { got <- len(m) }); err != nil {
		t.Fatal(err)
	}
	d.Dispatch("c", make([]byte, 1<<20))
	if n := <-got; n != 1<<20 {
		t.Fatalf("got %d bytes", n)
	}
}
