package session_test

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"

	"pgregory.net/rapid"

	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/datasole/datasole-go/datasole/session"
)

// TestNoChangeIsEverLost runs random interleavings of connections, changes,
// flushes, evictions, backend outages and restarts against a plain map per
// user. Whatever happens, a connected user sees exactly the model, and after
// Close a fresh store on the same backend sees exactly the model too.
func TestNoChangeIsEverLost(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		users := []string{"u1", "u2", "u3"}
		keys := []string{"a", "b", "c"}
		mem := backend.NewMemory(backend.MemoryOptions{})
		defer mem.Close()
		f := &flaky{Backend: mem}
		opts := session.Options{
			Backend:        f,
			FlushThreshold: rapid.IntRange(1, 4).Draw(t, "threshold"),
			FlushInterval:  -1,
			MaxIdleUsers:   rapid.SampledFrom([]int{-1, 1, 10}).Draw(t, "maxIdle"),
			Logger:         quiet,
		}
		open := func() *session.Store {
			st, err := session.NewStore(opts)
			if err != nil {
				t.Fatal(err)
			}
			return st
		}
		st := open()
		defer func() { st.Close(ctx) }() // also when a case ends early
		model := map[string]map[string]string{}
		conns := map[string]int{}
		handle := map[string]*session.Session{}

		user := rapid.SampledFrom(users)
		key := rapid.SampledFrom(keys)
		// connect picks any user for a change and connects it first when
		// needed, so that most steps change something.
		connect := func(t *rapid.T) string {
			u := user.Draw(t, "user")
			if conns[u] == 0 {
				s, err := st.Acquire(ctx, u)
				if err != nil {
					t.Skip("cannot connect during an outage")
				}
				conns[u]++
				handle[u] = s
			}
			return u
		}
		connected := func(t *rapid.T) string {
			var live []string
			for _, u := range users {
				if conns[u] > 0 {
					live = append(live, u)
				}
			}
			if len(live) == 0 {
				t.Skip("nobody connected")
			}
			return rapid.SampledFrom(live).Draw(t, "user")
		}

		t.Repeat(map[string]func(*rapid.T){
			"acquire": func(t *rapid.T) {
				u := user.Draw(t, "user")
				s, err := st.Acquire(ctx, u)
				if err != nil {
					if !f.down.Load() {
						t.Fatalf("Acquire(%s) with the backend up: %v", u, err)
					}
					return
				}
				conns[u]++
				handle[u] = s
			},
			"release": func(t *rapid.T) {
				u := connected(t)
				err := st.Release(ctx, u)
				if err != nil && !f.down.Load() {
					t.Fatalf("Release(%s) with the backend up: %v", u, err)
				}
				conns[u]--
			},
			"set": func(t *rapid.T) {
				u, k := connect(t), key.Draw(t, "key")
				v := rapid.IntRange(0, 99).Draw(t, "value")
				if err := handle[u].Set(k, v); err != nil {
					t.Fatalf("Set: %v", err)
				}
				if model[u] == nil {
					model[u] = map[string]string{}
				}
				model[u][k] = fmt.Sprint(v)
			},
			"delete": func(t *rapid.T) {
				u, k := connect(t), key.Draw(t, "key")
				if err := handle[u].Delete(k); err != nil {
					t.Fatalf("Delete: %v", err)
				}
				delete(model[u], k)
			},
			"flush": func(t *rapid.T) {
				if err := st.Flush(ctx); err != nil && !f.down.Load() {
					t.Fatalf("Flush with the backend up: %v", err)
				}
			},
			"outage": func(t *rapid.T) {
				f.down.Store(!f.down.Load())
			},
			"restart": func(t *rapid.T) {
				if f.down.Load() {
					t.Skip("a store closed during an outage loses its unwritten changes by design")
				}
				if err := st.Close(ctx); err != nil {
					t.Fatalf("Close: %v", err)
				}
				st = open()
				clear(conns)
				clear(handle)
			},
			"": func(t *rapid.T) {
				for u, n := range conns {
					if n > 0 {
						checkSession(t, handle[u], model[u])
					}
				}
			},
		})

		f.down.Store(false)
		if err := st.Close(ctx); err != nil {
			t.Fatalf("Close: %v", err)
		}
		fresh := open()
		defer fresh.Close(ctx)
		for _, u := range users {
			s, err := fresh.Acquire(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			checkSession(t, s, model[u])
		}
	})
}

func checkSession(t *rapid.T, s *session.Session, want map[string]string) {
	got := map[string]string{}
	for _, k := range s.Keys() {
		v, _ := s.Get(k)
		got[k] = string(v)
	}
	if !maps.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Fatalf("session %s = %v, want %v", s.UserID(), got, want)
	}
}

// TestConcurrentWritersAndFlushesLoseNothing has goroutines on two nodes
// change one user's keys while both nodes flush all the time.
func TestConcurrentWritersAndFlushesLoseNothing(t *testing.T) {
	const writers, rounds = 8, 200
	b1 := newBackend(t)
	b2 := backend.NewMemory(backend.MemoryOptions{Peer: b1})
	defer b2.Close()
	stores := []*session.Store{
		newStore(t, b1, session.Options{FlushThreshold: 1, FlushInterval: -1}),
		newStore(t, b2, session.Options{FlushThreshold: 3, FlushInterval: -1}),
	}
	want := map[string]string{}
	var writing, flushing sync.WaitGroup
	stop := make(chan struct{})
	for n, st := range stores {
		s := acquire(t, st, "u")
		for w := range writers {
			k := fmt.Sprintf("n%d-w%d", n, w)
			want[k] = fmt.Sprint(rounds - 1)
			writing.Go(func() {
				for i := range rounds {
					if err := s.Set(k, i); err != nil {
						t.Errorf("Set: %v", err)
						return
					}
				}
			})
		}
		flushing.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					if err := st.Flush(ctx); err != nil {
						t.Errorf("Flush: %v", err)
						return
					}
				}
			}
		})
	}
	writing.Wait()
	close(stop)
	flushing.Wait()
	for _, st := range stores {
		if err := st.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}

	fresh := newStore(t, b1, session.Options{})
	s := acquire(t, fresh, "u")
	got := map[string]string{}
	for _, k := range s.Keys() {
		v, _ := s.Get(k)
		got[k] = string(v)
	}
	if !maps.Equal(got, want) {
		missing := []string{}
		for k, v := range want {
			if got[k] != v {
				missing = append(missing, fmt.Sprintf("%s=%s (got %q)", k, v, got[k]))
			}
		}
		slices.Sort(missing)
		t.Fatalf("lost writes: %v", missing)
	}
}
