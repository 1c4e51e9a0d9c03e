// Package backendtest is the conformance suite every backend.Backend must
// pass. A backend's tests call Run with a function that opens a backend on
// the store under test:
//
//	func TestConformance(t *testing.T) {
//		backendtest.Run(t, func(t *testing.T, prefix string) backend.Backend {
//			return open(t, prefix) // a fresh handle on the shared store
//		})
//	}
//
// Backends opened with the same prefix must share data and bus, like nodes of
// one application; different prefixes must be isolated. Run picks a fresh
// random prefix for every check, so a shared server needs no cleanup between
// runs, and closes every backend it opens.
//
// The optional interfaces (backend.BatchGetter, backend.History,
// backend.Presence, backend.GapNotifier) are checked when the backend
// implements them and skipped otherwise. History ordering is checked per
// stream across nodes, relaxed to "each offset exactly once" for backends
// that implement backend.UnorderedHistory. The overflow check publishes
// messages of 1 MiB until a gap is reported, so its cost grows with the
// backend's subscriber queue bound.
package backendtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole/backend"
)

// OpenFunc opens a new handle on the store under test with the given
// namespace prefix.
type OpenFunc func(t *testing.T, prefix string) backend.Backend

// waitTimeout bounds every wait for a bus message.
const waitTimeout = 10 * time.Second

// Run runs the conformance suite as subtests of t.
func Run(t *testing.T, open OpenFunc) {
	s := &suite{open: open}
	t.Run("key value", s.keyValue)
	t.Run("compare and set", s.compareAndSet)
	t.Run("counters", s.counters)
	t.Run("expiry", s.expiry)
	t.Run("keys", s.keys)
	t.Run("namespaces", s.namespaces)
	t.Run("bus", s.bus)
	t.Run("lifecycle", s.lifecycle)
	t.Run("batched reads", s.batchedReads)
	t.Run("history", s.history)
	t.Run("presence", s.presence)
}

type suite struct{ open OpenFunc }

// node opens a backend with prefix and closes it when the test ends.
func (s *suite) node(t *testing.T, prefix string) backend.Backend {
	t.Helper()
	b := s.open(t, prefix)
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

// fresh opens a backend in a namespace no other test uses.
func (s *suite) fresh(t *testing.T) backend.Backend {
	t.Helper()
	return s.node(t, NewPrefix())
}

// NewPrefix returns a random namespace prefix for one test.
func NewPrefix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "dstest:" + hex.EncodeToString(b[:]) + ":"
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustSet(t *testing.T, b backend.Backend, key string, value []byte, ttl time.Duration) uint64 {
	t.Helper()
	v, err := b.Set(ctxFor(t), key, value, ttl)
	if err != nil {
		t.Fatalf("Set(%q): %v", key, err)
	}
	return v
}

func wantValue(t *testing.T, b backend.Backend, key string, value []byte, version uint64) {
	t.Helper()
	got, v, err := b.Get(ctxFor(t), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	if !bytes.Equal(got, value) || v != version {
		t.Fatalf("Get(%q) = %.40q v%d, want %.40q v%d", key, got, v, value, version)
	}
}

func wantMissing(t *testing.T, b backend.Backend, key string) {
	t.Helper()
	if _, _, err := b.Get(ctxFor(t), key); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("Get(%q) error = %v, want ErrNotFound", key, err)
	}
}

func (s *suite) keyValue(t *testing.T) {
	t.Run("a key that was never written is not found", func(t *testing.T) {
		wantMissing(t, s.fresh(t), "nothing")
	})
	t.Run("versions start at 1 and grow by one per write", func(t *testing.T) {
		b := s.fresh(t)
		for i := 1; i <= 3; i++ {
			val := []byte("v" + strconv.Itoa(i))
			if v := mustSet(t, b, "k", val, 0); v != uint64(i) {
				t.Fatalf("Set #%d returned version %d", i, v)
			}
			wantValue(t, b, "k", val, uint64(i))
		}
	})
	t.Run("stored values are copies of the caller's slices", func(t *testing.T) {
		b := s.fresh(t)
		in := []byte("original")
		mustSet(t, b, "k", in, 0)
		in[0] = 'X'
		out, _, err := b.Get(ctxFor(t), "k")
		if err != nil {
			t.Fatal(err)
		}
		out[0] = 'Y'
		wantValue(t, b, "k", []byte("original"), 1)
	})
	t.Run("keys and values are binary safe and may be empty", func(t *testing.T) {
		b := s.fresh(t)
		cases := map[string][]byte{
			"":                 []byte("empty key"),
			"nul\x00key":       {0, 1, 2, 255},
			"ünïcödé/🙂":        []byte("x"),
			"empty value":      {},
			"percent%_pattern": []byte("like wildcards"),
		}
		for k, v := range cases {
			mustSet(t, b, k, v, 0)
		}
		for k, v := range cases {
			wantValue(t, b, k, v, 1)
		}
	})
	t.Run("a 1 MiB value round-trips", func(t *testing.T) {
		b := s.fresh(t)
		big := bytes.Repeat([]byte{0, 'a', 0xff, '\n'}, 256<<10)
		mustSet(t, b, "big", big, 0)
		wantValue(t, b, "big", big, 1)
	})
	t.Run("deleting removes the key and restarts its versions", func(t *testing.T) {
		b := s.fresh(t)
		mustSet(t, b, "k", []byte("a"), 0)
		mustSet(t, b, "k", []byte("b"), 0)
		if err := b.Delete(ctxFor(t), "k"); err != nil {
			t.Fatal(err)
		}
		wantMissing(t, b, "k")
		if v := mustSet(t, b, "k", []byte("c"), 0); v != 1 {
			t.Fatalf("version after delete = %d, want 1", v)
		}
	})
	t.Run("deleting a missing key is not an error", func(t *testing.T) {
		if err := s.fresh(t).Delete(ctxFor(t), "nothing"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a cancelled context fails the call", func(t *testing.T) {
		b := s.fresh(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := b.Set(ctx, "k", []byte("v"), 0); !errors.Is(err, context.Canceled) {
			t.Fatalf("Set error = %v, want context.Canceled", err)
		}
	})
}

func (s *suite) compareAndSet(t *testing.T) {
	t.Run("expecting version 0 creates an absent key only", func(t *testing.T) {
		b := s.fresh(t)
		v, err := b.CompareAndSet(ctxFor(t), "k", []byte("first"), 0, 0)
		if err != nil || v != 1 {
			t.Fatalf("CompareAndSet on absent key = %d, %v; want 1, nil", v, err)
		}
		if _, err := b.CompareAndSet(ctxFor(t), "k", []byte("second"), 0, 0); !errors.Is(err, backend.ErrConflict) {
			t.Fatalf("CompareAndSet(expect 0) on existing key error = %v, want ErrConflict", err)
		}
		wantValue(t, b, "k", []byte("first"), 1)
	})
	t.Run("the current version wins and a stale one conflicts", func(t *testing.T) {
		b := s.fresh(t)
		mustSet(t, b, "k", []byte("a"), 0)
		mustSet(t, b, "k", []byte("b"), 0)
		if _, err := b.CompareAndSet(ctxFor(t), "k", []byte("stale"), 1, 0); !errors.Is(err, backend.ErrConflict) {
			t.Fatalf("stale CompareAndSet error = %v, want ErrConflict", err)
		}
		v, err := b.CompareAndSet(ctxFor(t), "k", []byte("c"), 2, 0)
		if err != nil || v != 3 {
			t.Fatalf("CompareAndSet(expect 2) = %d, %v; want 3, nil", v, err)
		}
		wantValue(t, b, "k", []byte("c"), 3)
	})
	t.Run("expecting a version of a missing key conflicts", func(t *testing.T) {
		b := s.fresh(t)
		if _, err := b.CompareAndSet(ctxFor(t), "k", []byte("x"), 1, 0); !errors.Is(err, backend.ErrConflict) {
			t.Fatalf("error = %v, want ErrConflict", err)
		}
		wantMissing(t, b, "k")
	})
	t.Run("racing writers on two nodes get exactly one winner per version", func(t *testing.T) {
		prefix := NewPrefix()
		nodes := []backend.Backend{s.node(t, prefix), s.node(t, prefix)}
		const writers, rounds = 8, 15
		var mu sync.Mutex
		winners := map[uint64]string{}
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b := nodes[w%len(nodes)]
				name := "w" + strconv.Itoa(w)
				for range rounds {
					_, cur, err := b.Get(ctxFor(t), "k")
					if err != nil && !errors.Is(err, backend.ErrNotFound) {
						t.Error(err)
						return
					}
					v, err := b.CompareAndSet(ctxFor(t), "k", []byte(name), cur, 0)
					if errors.Is(err, backend.ErrConflict) {
						continue
					}
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					if prev, dup := winners[v]; dup {
						t.Errorf("version %d won by both %s and %s", v, prev, name)
					}
					winners[v] = name
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		_, final, err := nodes[0].Get(ctxFor(t), "k")
		if err != nil {
			t.Fatal(err)
		}
		if int(final) != len(winners) {
			t.Fatalf("final version %d, but %d successful writes", final, len(winners))
		}
		for v := uint64(1); v <= final; v++ {
			if _, ok := winners[v]; !ok {
				t.Fatalf("no winner for version %d", v)
			}
		}
	})
}

func (s *suite) counters(t *testing.T) {
	t.Run("a missing counter starts at zero", func(t *testing.T) {
		b := s.fresh(t)
		n, err := b.Incr(ctxFor(t), "c", 5, 0)
		if err != nil || n != 5 {
			t.Fatalf("Incr = %d, %v; want 5, nil", n, err)
		}
		n, err = b.Incr(ctxFor(t), "c", -7, 0)
		if err != nil || n != -2 {
			t.Fatalf("Incr = %d, %v; want -2, nil", n, err)
		}
		wantValue(t, b, "c", []byte("-2"), 2)
	})
	t.Run("increments on two nodes are atomic", func(t *testing.T) {
		prefix := NewPrefix()
		nodes := []backend.Backend{s.node(t, prefix), s.node(t, prefix)}
		const workers, each = 10, 30
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					if _, err := nodes[w%2].Incr(ctxFor(t), "c", 1, 0); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		wantValue(t, nodes[0], "c", []byte(strconv.Itoa(workers*each)), workers*each)
	})
	t.Run("a counter written with Set keeps counting", func(t *testing.T) {
		b := s.fresh(t)
		mustSet(t, b, "c", []byte("41"), 0)
		if n, err := b.Incr(ctxFor(t), "c", 1, 0); err != nil || n != 42 {
			t.Fatalf("Incr = %d, %v; want 42, nil", n, err)
		}
	})
	for name, start := range map[string]string{
		"a value that is not an integer is not a counter": "abc",
		"a counter does not overflow":                     "9223372036854775807",
	} {
		t.Run(name, func(t *testing.T) {
			b := s.fresh(t)
			mustSet(t, b, "c", []byte(start), 0)
			if _, err := b.Incr(ctxFor(t), "c", 1, 0); !errors.Is(err, backend.ErrNotCounter) {
				t.Fatalf("Incr error = %v, want ErrNotCounter", err)
			}
			wantValue(t, b, "c", []byte(start), 1)
		})
	}
}

func (s *suite) expiry(t *testing.T) {
	const ttl = 300 * time.Millisecond
	t.Run("a key with a ttl expires and restarts its versions", func(t *testing.T) {
		b := s.fresh(t)
		mustSet(t, b, "k", []byte("a"), ttl)
		wantValue(t, b, "k", []byte("a"), 1)
		waitMissing(t, b, "k")
		if v, err := b.CompareAndSet(ctxFor(t), "k", []byte("b"), 0, 0); err != nil || v != 1 {
			t.Fatalf("CompareAndSet(expect 0) after expiry = %d, %v; want 1, nil", v, err)
		}
	})
	t.Run("setting without a ttl removes the expiry", func(t *testing.T) {
		b := s.fresh(t)
		mustSet(t, b, "k", []byte("a"), ttl)
		mustSet(t, b, "k", []byte("b"), 0)
		time.Sleep(2 * ttl)
		wantValue(t, b, "k", []byte("b"), 2)
	})
	t.Run("compare and set applies its ttl", func(t *testing.T) {
		b := s.fresh(t)
		if _, err := b.CompareAndSet(ctxFor(t), "k", []byte("a"), 0, ttl); err != nil {
			t.Fatal(err)
		}
		waitMissing(t, b, "k")
	})
	t.Run("a counter's ttl starts when it is created", func(t *testing.T) {
		b := s.fresh(t)
		if _, err := b.Incr(ctxFor(t), "c", 1, ttl); err != nil {
			t.Fatal(err)
		}
		// A later ttl does not push the expiry back.
		if _, err := b.Incr(ctxFor(t), "c", 1, time.Hour); err != nil {
			t.Fatal(err)
		}
		waitMissing(t, b, "c")
		if n, err := b.Incr(ctxFor(t), "c", 1, 0); err != nil || n != 1 {
			t.Fatalf("Incr after expiry = %d, %v; want 1, nil", n, err)
		}
	})
	t.Run("expired keys are not listed", func(t *testing.T) {
		b := s.fresh(t)
		mustSet(t, b, "gone", []byte("a"), ttl)
		mustSet(t, b, "kept", []byte("b"), 0)
		waitMissing(t, b, "gone")
		keys, err := b.Keys(ctxFor(t), "")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(keys, []string{"kept"}) {
			t.Fatalf("Keys = %q, want [kept]", keys)
		}
	})
}

// waitMissing waits up to a few seconds for key to expire.
func waitMissing(t *testing.T, b backend.Backend, key string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, _, err := b.Get(ctxFor(t), key)
		if errors.Is(err, backend.ErrNotFound) {
			return
		}
		if err != nil {
			t.Fatalf("Get(%q): %v", key, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("key %q did not expire", key)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *suite) keys(t *testing.T) {
	t.Run("keys are listed by prefix without the namespace", func(t *testing.T) {
		b := s.fresh(t)
		for _, k := range []string{"crdt:a", "crdt:b", "crdt%x", "crd", "state:a"} {
			mustSet(t, b, k, []byte("x"), 0)
		}
		for prefix, want := range map[string][]string{
			"crdt:": {"crdt:a", "crdt:b"},
			"crd":   {"crd", "crdt%x", "crdt:a", "crdt:b"},
			"none":  nil,
			"":      {"crd", "crdt%x", "crdt:a", "crdt:b", "state:a"},
		} {
			got, err := b.Keys(ctxFor(t), prefix)
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("Keys(%q) = %q, want %q", prefix, got, want)
			}
		}
	})
}

func (s *suite) namespaces(t *testing.T) {
	t.Run("two prefixes on one store do not see each other", func(t *testing.T) {
		a, b := s.fresh(t), s.fresh(t)
		mustSet(t, a, "k", []byte("from a"), 0)
		wantMissing(t, b, "k")
		mustSet(t, b, "k", []byte("from b"), 0)
		wantValue(t, a, "k", []byte("from a"), 1)
		keys, err := b.Keys(ctxFor(t), "")
		if err != nil || !slices.Equal(keys, []string{"k"}) {
			t.Fatalf("Keys = %q, %v; want [k]", keys, err)
		}

		got := collect(t, b, "chan")
		if err := a.Publish(ctxFor(t), "chan", []byte("for a only")); err != nil {
			t.Fatal(err)
		}
		if err := b.Publish(ctxFor(t), "chan", []byte("for b")); err != nil {
			t.Fatal(err)
		}
		got.want(t, "for b")
	})
	t.Run("nodes with the same prefix share keys and bus", func(t *testing.T) {
		prefix := NewPrefix()
		a, b := s.node(t, prefix), s.node(t, prefix)
		mustSet(t, a, "k", []byte("shared"), 0)
		wantValue(t, b, "k", []byte("shared"), 1)
		got := collect(t, b, "chan")
		if err := a.Publish(ctxFor(t), "chan", []byte("hello")); err != nil {
			t.Fatal(err)
		}
		got.want(t, "hello")
	})
}

// inbox collects the messages of one subscription.
type inbox struct {
	ch chan []byte
}

func collect(t *testing.T, b backend.Backend, channel string) *inbox {
	t.Helper()
	in := &inbox{ch: make(chan []byte, 4096)}
	cancel, err := b.Subscribe(ctxFor(t), channel, func(msg []byte) { in.ch <- msg })
	if err != nil {
		t.Fatalf("Subscribe(%q): %v", channel, err)
	}
	t.Cleanup(cancel)
	return in
}

func (in *inbox) next(t *testing.T) []byte {
	t.Helper()
	select {
	case m := <-in.ch:
		return m
	case <-time.After(waitTimeout):
		t.Fatal("no message within", waitTimeout)
		return nil
	}
}

func (in *inbox) want(t *testing.T, msgs ...string) {
	t.Helper()
	for _, want := range msgs {
		if got := in.next(t); string(got) != want {
			t.Fatalf("received %.60q, want %.60q", got, want)
		}
	}
	select {
	case m := <-in.ch:
		t.Fatalf("unexpected message %.60q", m)
	case <-time.After(50 * time.Millisecond):
	}
}

func (s *suite) bus(t *testing.T) {
	t.Run("subscribers on every node get messages in publish order", func(t *testing.T) {
		prefix := NewPrefix()
		pub, other := s.node(t, prefix), s.node(t, prefix)
		inboxes := []*inbox{collect(t, pub, "c"), collect(t, pub, "c"), collect(t, other, "c")}
		const n = 300
		for i := range n {
			if err := pub.Publish(ctxFor(t), "c", []byte(strconv.Itoa(i))); err != nil {
				t.Fatal(err)
			}
		}
		for j, in := range inboxes {
			for i := range n {
				if got := string(in.next(t)); got != strconv.Itoa(i) {
					t.Fatalf("subscriber %d: message %d is %q", j, i, got)
				}
			}
		}
	})
	t.Run("a publisher receives its own messages", func(t *testing.T) {
		b := s.fresh(t)
		got := collect(t, b, "self")
		if err := b.Publish(ctxFor(t), "self", []byte("echo")); err != nil {
			t.Fatal(err)
		}
		got.want(t, "echo")
	})
	t.Run("channels are kept apart", func(t *testing.T) {
		b := s.fresh(t)
		x, y := collect(t, b, "x"), collect(t, b, "y")
		for _, m := range []struct{ ch, msg string }{{"x", "1"}, {"y", "2"}, {"x", "3"}, {"z", "4"}} {
			if err := b.Publish(ctxFor(t), m.ch, []byte(m.msg)); err != nil {
				t.Fatal(err)
			}
		}
		x.want(t, "1", "3")
		y.want(t, "2")
	})
	t.Run("messages of every size arrive intact", func(t *testing.T) {
		b := s.fresh(t)
		got := collect(t, b, "sizes")
		var sent [][]byte
		for _, size := range []int{0, 1, 100, 5000, 7000, 8000, 64 << 10, 1 << 20} {
			msg := make([]byte, size)
			for i := range msg {
				msg[i] = byte(i*7 + size)
			}
			sent = append(sent, msg)
			if err := b.Publish(ctxFor(t), "sizes", msg); err != nil {
				t.Fatalf("Publish %d bytes: %v", size, err)
			}
		}
		for _, want := range sent {
			if m := got.next(t); !bytes.Equal(m, want) {
				t.Fatalf("received %d bytes, want %d bytes equal to what was sent", len(m), len(want))
			}
		}
	})
	t.Run("each subscriber owns its message", func(t *testing.T) {
		b := s.fresh(t)
		first := make(chan []byte, 1)
		cancel, err := b.Subscribe(ctxFor(t), "own", func(m []byte) {
			m[0] = 'X'
			first <- m
		})
		if err != nil {
			t.Fatal(err)
		}
		defer cancel()
		second := collect(t, b, "own")
		if err := b.Publish(ctxFor(t), "own", []byte("abc")); err != nil {
			t.Fatal(err)
		}
		<-first
		second.want(t, "abc")
	})
	t.Run("a slow handler blocks neither Publish nor other subscribers", func(t *testing.T) {
		b := s.fresh(t)
		release := make(chan struct{})
		cancel, err := b.Subscribe(ctxFor(t), "slow", func([]byte) { <-release })
		if err != nil {
			t.Fatal(err)
		}
		defer cancel()
		defer close(release)
		fast := collect(t, b, "slow")
		start := time.Now()
		for i := range 50 {
			if err := b.Publish(ctxFor(t), "slow", []byte(strconv.Itoa(i))); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 50 {
			if got := string(fast.next(t)); got != strconv.Itoa(i) {
				t.Fatalf("fast subscriber got %q, want %d", got, i)
			}
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("publishing took %v with a blocked subscriber", d)
		}
	})
	t.Run("a cancelled subscription gets nothing more", func(t *testing.T) {
		b := s.fresh(t)
		cancelled := &inbox{ch: make(chan []byte, 16)}
		cancel, err := b.Subscribe(ctxFor(t), "c", func(m []byte) { cancelled.ch <- m })
		if err != nil {
			t.Fatal(err)
		}
		witness := collect(t, b, "c")
		if err := b.Publish(ctxFor(t), "c", []byte("before")); err != nil {
			t.Fatal(err)
		}
		witness.want(t, "before")
		cancelled.want(t, "before")
		cancel()
		cancel() // a second call is harmless
		if err := b.Publish(ctxFor(t), "c", []byte("after")); err != nil {
			t.Fatal(err)
		}
		witness.want(t, "after")
		cancelled.want(t)
	})
	t.Run("an overflowing subscription reports a gap", func(t *testing.T) {
		b := s.fresh(t)
		gn, ok := b.(backend.GapNotifier)
		if !ok {
			t.Skip("backend does not implement GapNotifier")
		}
		gaps := make(chan struct{}, 1)
		gn.OnGap(func() {
			select {
			case gaps <- struct{}{}:
			default:
			}
		})
		release := make(chan struct{})
		cancel, err := b.Subscribe(ctxFor(t), "flood", func([]byte) { <-release })
		if err != nil {
			t.Fatal(err)
		}
		defer cancel()
		defer close(release)
		// Queues are bounded in bytes (64 MiB by default): large messages
		// reach the bound in few publications.
		msg := bytes.Repeat([]byte{'x'}, 1<<20)
		const most = 1024
		for i := 0; ; i++ {
			if err := b.Publish(ctxFor(t), "flood", msg); err != nil {
				t.Fatal(err)
			}
			select {
			case <-gaps:
				return
			default:
			}
			if i == most {
				// The last publications may still be on their way.
				select {
				case <-gaps:
					return
				case <-time.After(waitTimeout):
					t.Fatalf("no gap reported after %d MiB to a blocked subscriber", most)
				}
			}
		}
	})
}

func (s *suite) lifecycle(t *testing.T) {
	t.Run("a closed backend refuses every call", func(t *testing.T) {
		b := s.open(t, NewPrefix())
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		ctx := ctxFor(t)
		_, _, errGet := b.Get(ctx, "k")
		_, errSet := b.Set(ctx, "k", nil, 0)
		_, errCAS := b.CompareAndSet(ctx, "k", nil, 0, 0)
		_, errIncr := b.Incr(ctx, "k", 1, 0)
		_, errKeys := b.Keys(ctx, "")
		_, errSub := b.Subscribe(ctx, "c", func([]byte) {})
		for name, err := range map[string]error{
			"Get": errGet, "Set": errSet, "CompareAndSet": errCAS, "Incr": errIncr, "Keys": errKeys,
			"Delete": b.Delete(ctx, "k"), "Publish": b.Publish(ctx, "c", nil), "Subscribe": errSub,
		} {
			if !errors.Is(err, backend.ErrClosed) {
				t.Errorf("%s after Close: error = %v, want ErrClosed", name, err)
			}
		}
		if err := b.Close(); err != nil {
			t.Errorf("second Close = %v, want nil", err)
		}
	})
	t.Run("closing one node leaves the others working", func(t *testing.T) {
		prefix := NewPrefix()
		a := s.open(t, prefix)
		b := s.node(t, prefix)
		got := collect(t, b, "c")
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		mustSet(t, b, "k", []byte("v"), 0)
		if err := b.Publish(ctxFor(t), "c", []byte("still here")); err != nil {
			t.Fatal(err)
		}
		got.want(t, "still here")
	})
	t.Run("Close waits for running handlers", func(t *testing.T) {
		b := s.open(t, NewPrefix())
		entered := make(chan struct{})
		var mu sync.Mutex
		finished := false
		if _, err := b.Subscribe(ctxFor(t), "c", func([]byte) {
			close(entered)
			time.Sleep(100 * time.Millisecond)
			mu.Lock()
			finished = true
			mu.Unlock()
		}); err != nil {
			t.Fatal(err)
		}
		if err := b.Publish(ctxFor(t), "c", []byte("x")); err != nil {
			t.Fatal(err)
		}
		select {
		case <-entered:
		case <-time.After(waitTimeout):
			t.Fatal("handler never ran")
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if !finished {
			t.Fatal("Close returned while a handler was running")
		}
	})
}
