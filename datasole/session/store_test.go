package session_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/datasole/datasole-go/datasole/session"
)

var ctx = context.Background()

func TestNewStoreRequiresABackend(t *testing.T) {
	if _, err := session.NewStore(session.Options{}); err == nil {
		t.Fatal("NewStore without a backend succeeded")
	}
}

func TestSessionsSurviveReconnects(t *testing.T) {
	for _, tc := range []struct {
		name    string
		maxIdle int
	}{
		{"while the user stays in memory", 0},
		{"after the user was evicted from memory", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend(t)
			st := newStore(t, b, session.Options{MaxIdleUsers: tc.maxIdle, FlushInterval: -1})
			set(t, acquire(t, st, "alice"), "theme", "dark")
			release(t, st, "alice")
			if evicted := st.Session("alice") == nil; evicted != (tc.maxIdle < 0) {
				t.Fatalf("evicted = %v, want %v", evicted, tc.maxIdle < 0)
			}

			s := acquire(t, st, "alice")
			var theme string
			if ok, err := s.GetInto("theme", &theme); !ok || err != nil || theme != "dark" {
				t.Fatalf("GetInto(theme) = %v, %v, %q; want true, nil, dark", ok, err, theme)
			}
		})
	}
}

func TestSessionsSurviveAServerRestart(t *testing.T) {
	b := newBackend(t)
	st := newStore(t, b, session.Options{FlushInterval: -1, FlushThreshold: 1000})
	s := acquire(t, st, "alice")
	set(t, s, "cart", []string{"apple", "pear"})
	set(t, s, "gone", 1)
	if err := s.Delete("gone"); err != nil {
		t.Fatal(err)
	}
	// The user is still connected: Close must write what nobody flushed.
	if err := st.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}

	// A new node on the same store, as after a restart.
	b2 := backend.NewMemory(backend.MemoryOptions{Peer: b})
	defer b2.Close()
	st2 := newStore(t, b2, session.Options{})
	s2 := acquire(t, st2, "alice")
	if got := s2.Keys(); !slices.Equal(got, []string{"cart"}) {
		t.Fatalf("Keys after restart = %v, want [cart]", got)
	}
	if got, _ := s2.Get("cart"); string(got) != `["apple","pear"]` {
		t.Fatalf("cart after restart = %s", got)
	}
}

func TestWhenSessionsAreWritten(t *testing.T) {
	t.Run("a user's changes are written in the background once they reach the threshold", func(t *testing.T) {
		b := newBackend(t)
		st := newStore(t, b, session.Options{FlushThreshold: 3, FlushInterval: -1})
		s := acquire(t, st, "u")
		set(t, s, "a", 1)
		set(t, s, "b", 2)
		if got := stored(t, b, "u"); got != nil {
			t.Fatalf("written below the threshold: %s", got)
		}
		set(t, s, "c", 3)
		eventually(t, "the session is written", func() bool { return len(stored(t, b, "u")) == 3 })
	})
	t.Run("pending changes are written on every interval", func(t *testing.T) {
		b := newBackend(t)
		st := newStore(t, b, session.Options{FlushThreshold: 1000, FlushInterval: 10 * time.Millisecond})
		set(t, acquire(t, st, "u"), "a", 1)
		eventually(t, "the session is written", func() bool { return len(stored(t, b, "u")) == 1 })
	})
	t.Run("the session is written when the user's last connection is released", func(t *testing.T) {
		b := newBackend(t)
		st := newStore(t, b, session.Options{FlushThreshold: 1000, FlushInterval: -1})
		set(t, acquire(t, st, "u"), "a", 1)
		acquire(t, st, "u")
		release(t, st, "u")
		if got := stored(t, b, "u"); got != nil {
			t.Fatalf("written while a connection is left: %s", got)
		}
		release(t, st, "u")
		if got := stored(t, b, "u"); string(got["a"]) != "1" {
			t.Fatalf("after the last release the backend holds %s", got)
		}
	})
	t.Run("Flush writes every user with pending changes", func(t *testing.T) {
		b := newBackend(t)
		st := newStore(t, b, session.Options{FlushThreshold: 1000, FlushInterval: -1})
		set(t, acquire(t, st, "u1"), "a", 1)
		set(t, acquire(t, st, "u2"), "b", 2)
		if err := st.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if len(stored(t, b, "u1")) != 1 || len(stored(t, b, "u2")) != 1 {
			t.Fatalf("after Flush: u1 %s, u2 %s", stored(t, b, "u1"), stored(t, b, "u2"))
		}
	})
	t.Run("a user who never stored anything leaves nothing in the backend", func(t *testing.T) {
		b := newBackend(t)
		st := newStore(t, b, session.Options{})
		acquire(t, st, "u")
		release(t, st, "u")
		if keys, _ := b.Keys(ctx, session.KeyPrefix); len(keys) != 0 {
			t.Fatalf("backend keys = %v, want none", keys)
		}
	})
}

func TestAFailedWriteKeepsTheChangesAndIsRetried(t *testing.T) {
	f := &flaky{Backend: newBackend(t)}
	st := newStore(t, f, session.Options{FlushThreshold: 1000, FlushInterval: -1, MaxIdleUsers: -1})
	set(t, acquire(t, st, "u"), "a", 1)

	f.down.Store(true)
	if err := st.Release(ctx, "u"); !errors.Is(err, errDown) {
		t.Fatalf("Release with the backend down = %v, want %v", err, errDown)
	}
	if st.Session("u") == nil {
		t.Fatal("a user with unwritten changes was evicted")
	}
	if err := st.Flush(ctx); !errors.Is(err, errDown) {
		t.Fatalf("Flush with the backend down = %v, want %v", err, errDown)
	}

	f.down.Store(false)
	if err := st.Flush(ctx); err != nil {
		t.Fatalf("Flush after recovery: %v", err)
	}
	if got := stored(t, f, "u"); string(got["a"]) != "1" {
		t.Fatalf("backend holds %s after the retry", got)
	}
	if st.Session("u") != nil {
		t.Fatal("the idle user stayed in memory after its changes were written")
	}
}

// gate is a real backend whose writes wait until the test lets them pass.
type gate struct {
	backend.Backend
	entered chan struct{}
	pass    chan struct{}
}

func (g *gate) CompareAndSet(ctx context.Context, key string, value []byte, expect uint64, ttl time.Duration) (uint64, error) {
	g.entered <- struct{}{}
	<-g.pass
	return g.Backend.CompareAndSet(ctx, key, value, expect, ttl)
}

// The reference reset its counter after the write and so forgot changes
// made while the write was under way.
func TestAChangeMadeDuringAWriteIsWrittenNextTime(t *testing.T) {
	g := &gate{Backend: newBackend(t), entered: make(chan struct{}), pass: make(chan struct{})}
	st, err := session.NewStore(session.Options{Backend: g, FlushThreshold: 1000, FlushInterval: -1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	s := acquire(t, st, "u")
	set(t, s, "a", 1)

	flushed := make(chan error)
	go func() { flushed <- st.Flush(ctx) }()
	<-g.entered
	set(t, s, "b", 2) // while "a" is being written
	g.pass <- struct{}{}
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	if got := stored(t, g, "u"); len(got) != 1 {
		t.Fatalf("the first write holds %s, want only a", got)
	}

	go func() { flushed <- st.Close(ctx) }()
	select {
	case <-g.entered:
		g.pass <- struct{}{}
	case err := <-flushed:
		t.Fatalf("Close wrote nothing (err %v): the change made during the first write was lost", err)
	}
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	if got := stored(t, g, "u"); string(got["b"]) != "2" {
		t.Fatalf("after Close the backend holds %s, want b too", got)
	}
}

func TestTheTimerRetriesFailedWrites(t *testing.T) {
	f := &flaky{Backend: newBackend(t)}
	st := newStore(t, f, session.Options{FlushThreshold: 1, FlushInterval: 10 * time.Millisecond})
	s := acquire(t, st, "u")
	f.down.Store(true)
	set(t, s, "a", 1)
	time.Sleep(30 * time.Millisecond)
	f.down.Store(false)
	eventually(t, "the session is written", func() bool { return len(stored(t, f, "u")) == 1 })
}

// This is defect D22 of the reference: restoring replaced the memory copy and
// dropped what had not been written yet.
func TestLoadingMergesUnwrittenChangesOverTheStoredCopy(t *testing.T) {
	f := &flaky{Backend: newBackend(t)}
	if _, err := f.Set(ctx, session.KeyPrefix+"u", []byte(`{"a":"old","b":"old"}`), 0); err != nil {
		t.Fatal(err)
	}
	st := newStore(t, f, session.Options{FlushThreshold: 1000, FlushInterval: -1})
	s := acquire(t, st, "u")
	set(t, s, "a", "mine")
	f.down.Store(true)
	_ = st.Release(ctx, "u") // fails: "a" stays unwritten

	// Meanwhile another node changes the stored copy.
	f.down.Store(false)
	if _, err := f.Set(ctx, session.KeyPrefix+"u", []byte(`{"a":"theirs","b":"theirs","c":"theirs"}`), 0); err != nil {
		t.Fatal(err)
	}

	s = acquire(t, st, "u")
	want := map[string]string{"a": `"mine"`, "b": `"theirs"`, "c": `"theirs"`}
	for k, v := range want {
		if got, _ := s.Get(k); string(got) != v {
			t.Errorf("after reconnect %s = %s, want %s", k, got, v)
		}
	}
	release(t, st, "u")
	if got := stored(t, f, "u"); string(got["a"]) != `"mine"` || string(got["c"]) != `"theirs"` {
		t.Errorf("backend holds %s", got)
	}
}

func TestTwoNodesWritingOneUserKeepBothChanges(t *testing.T) {
	b1 := newBackend(t)
	b2 := backend.NewMemory(backend.MemoryOptions{Peer: b1})
	defer b2.Close()
	st1 := newStore(t, b1, session.Options{FlushInterval: -1})
	st2 := newStore(t, b2, session.Options{FlushInterval: -1})
	s1, s2 := acquire(t, st1, "u"), acquire(t, st2, "u")
	set(t, s1, "from1", 1)
	set(t, s2, "from2", 2)
	set(t, s2, "both", 2)
	set(t, s1, "both", 1)
	if err := st1.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := stored(t, b1, "u")
	if string(got["from1"]) != "1" || string(got["from2"]) != "2" || string(got["both"]) != "2" {
		t.Fatalf("backend holds %s; want both nodes' keys, the last writer's value of both", got)
	}
	if v, _ := s2.Get("from1"); string(v) != "1" {
		t.Fatalf("the second node did not merge the first one's key: from1 = %s", v)
	}
}

func TestExpiredSessionsComeBackEmpty(t *testing.T) {
	// In a bubble, time is the fake clock the memory backend expires keys
	// by: the sleeps below move it exactly, however busy the machine is.
	synctest.Test(t, func(t *testing.T) {
		const ttl = 100 * time.Millisecond
		b := newBackend(t)
		st := newStore(t, b, session.Options{TTL: ttl, FlushInterval: -1, MaxIdleUsers: -1})
		set(t, acquire(t, st, "u"), "a", 1)
		release(t, st, "u")

		time.Sleep(ttl * 6 / 10)
		acquire(t, st, "u") // a visit restarts the TTL on disconnect
		release(t, st, "u")
		time.Sleep(ttl * 6 / 10)
		if got := acquire(t, st, "u").Keys(); !slices.Equal(got, []string{"a"}) {
			t.Fatalf("keys %v after a visit within the TTL, want [a]", got)
		}
		release(t, st, "u")

		time.Sleep(ttl * 3 / 2)
		if got := acquire(t, st, "u").Keys(); len(got) != 0 {
			t.Fatalf("keys %v after the TTL, want none", got)
		}
	})
}

// ttlRecorder is a real backend that remembers the TTL of the last write.
type ttlRecorder struct {
	backend.Backend
	ttl time.Duration
}

func (r *ttlRecorder) CompareAndSet(ctx context.Context, key string, value []byte, expect uint64, ttl time.Duration) (uint64, error) {
	r.ttl = ttl
	return r.Backend.CompareAndSet(ctx, key, value, expect, ttl)
}

func TestTheTTLOptionSetsTheBackendExpiry(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  time.Duration
		want time.Duration
	}{
		{"zero means a day", 0, 24 * time.Hour},
		{"a negative TTL means no expiry", -1, 0},
		{"a positive TTL is used as it is", 5 * time.Minute, 5 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &ttlRecorder{Backend: newBackend(t), ttl: -1}
			st := newStore(t, r, session.Options{TTL: tc.opt, FlushInterval: -1})
			set(t, acquire(t, st, "u"), "a", 1)
			release(t, st, "u")
			if r.ttl != tc.want {
				t.Fatalf("backend write TTL = %v, want %v", r.ttl, tc.want)
			}
		})
	}
}

func TestIdleUsersAreEvictedLeastRecentlyReleasedFirst(t *testing.T) {
	b := newBackend(t)
	st := newStore(t, b, session.Options{MaxIdleUsers: 2, FlushInterval: -1})
	for _, u := range []string{"u1", "u2", "u3", "u4"} {
		set(t, acquire(t, st, u), "k", u)
	}
	for _, u := range []string{"u1", "u2", "u3", "u4"} {
		release(t, st, u)
	}
	acquire(t, st, "u3") // reconnected: not idle any more
	for u, want := range map[string]bool{"u1": false, "u2": false, "u3": true, "u4": true} {
		if inMemory := st.Session(u) != nil; inMemory != want {
			t.Errorf("%s in memory = %v, want %v", u, inMemory, want)
		}
	}
	// An evicted user is loaded again on its next connection.
	if v, _ := acquire(t, st, "u1").Get("k"); string(v) != `"u1"` {
		t.Fatalf("u1 after reload: k = %s", v)
	}
}

func TestAnEvictedHandleRefusesChanges(t *testing.T) {
	b := newBackend(t)
	st := newStore(t, b, session.Options{MaxIdleUsers: -1})
	s := acquire(t, st, "u")
	set(t, s, "a", 1)
	release(t, st, "u")
	if err := s.Set("a", 2); !errors.Is(err, session.ErrEvicted) {
		t.Fatalf("Set on an evicted handle = %v, want ErrEvicted", err)
	}
	if v, _ := acquire(t, st, "u").Get("a"); string(v) != "1" {
		t.Fatalf("a = %s, want 1", v)
	}
}

func TestSetRejectsWhatExceedsTheLimits(t *testing.T) {
	b := newBackend(t)
	st := newStore(t, b, session.Options{MaxKeys: 2, MaxValueSize: 8})
	s := acquire(t, st, "u")
	set(t, s, "k1", 1)
	set(t, s, "k2", 2)
	for _, tc := range []struct {
		name  string
		key   string
		value any
		want  error
	}{
		{"an empty key is invalid", "", 1, session.ErrInvalidKey},
		{"a key over the length limit is invalid", strings.Repeat("k", session.MaxKeyLength+1), 1, session.ErrInvalidKey},
		{"a value whose JSON is over the size limit is too large", "k1", "123456789", session.ErrValueTooLarge},
		{"a new key beyond the key limit is too many", "k3", 3, session.ErrTooManyKeys},
		{"invalid raw JSON cannot be stored", "k1", json.RawMessage(`{`), nil},
		{"a value JSON cannot encode cannot be stored", "k1", make(chan int), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Set(tc.key, tc.value)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("Set = %v, want %v", err, tc.want)
			}
			if got := s.Keys(); !slices.Equal(got, []string{"k1", "k2"}) {
				t.Fatalf("a rejected Set changed the keys: %v", got)
			}
		})
	}
	t.Run("an existing key can be replaced at the key limit", func(t *testing.T) {
		set(t, s, "k2", 22)
	})
	t.Run("nothing can be changed after Close", func(t *testing.T) {
		if err := st.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.Set("k1", 0); !errors.Is(err, session.ErrClosed) {
			t.Fatalf("Set after Close = %v, want ErrClosed", err)
		}
		if err := s.Delete("k1"); !errors.Is(err, session.ErrClosed) {
			t.Fatalf("Delete after Close = %v, want ErrClosed", err)
		}
		if _, err := st.Acquire(ctx, "v"); !errors.Is(err, session.ErrClosed) {
			t.Fatalf("Acquire after Close = %v, want ErrClosed", err)
		}
	})
}

func TestOnChangeSeesEverySetAndDelete(t *testing.T) {
	b := newBackend(t)
	st := newStore(t, b, session.Options{})
	var got []session.Change
	off := st.OnChange(func(c session.Change) { got = append(got, c) })
	s := acquire(t, st, "u")
	set(t, s, "a", 1)
	set(t, s, "a", 2)
	if err := s.Delete("a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("a"); err != nil { // missing: no change
		t.Fatal(err)
	}
	off()
	set(t, s, "b", 1)

	want := []struct{ key, value string }{{"a", "1"}, {"a", "2"}, {"a", ""}}
	if len(got) != len(want) {
		t.Fatalf("got %d changes, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		c := got[i]
		if c.UserID != "u" || c.Key != w.key || string(c.Value) != w.value {
			t.Errorf("change %d = %+v, want key %s value %q", i, c, w.key, w.value)
		}
		if i > 0 && c.Version <= got[i-1].Version {
			t.Errorf("change %d has version %d, not above %d", i, c.Version, got[i-1].Version)
		}
	}
	if got[2].Value != nil {
		t.Errorf("a delete carries value %q, want nil", got[2].Value)
	}
}

func TestAnUnreadableStoredSessionStartsEmptyAndIsReplaced(t *testing.T) {
	b := newBackend(t)
	if _, err := b.Set(ctx, session.KeyPrefix+"u", []byte("not json"), 0); err != nil {
		t.Fatal(err)
	}
	st := newStore(t, b, session.Options{})
	s := acquire(t, st, "u")
	if keys := s.Keys(); len(keys) != 0 {
		t.Fatalf("keys = %v, want none", keys)
	}
	set(t, s, "a", 1)
	release(t, st, "u")
	if got := stored(t, b, "u"); string(got["a"]) != "1" {
		t.Fatalf("backend holds %s", got)
	}
}

func TestANilSessionReadsEmptyAndRefusesChanges(t *testing.T) {
	var s *session.Session
	if v, ok := s.Get("a"); ok || v != nil {
		t.Errorf("Get = %s, %v", v, ok)
	}
	var x int
	if ok, err := s.GetInto("a", &x); ok || err != nil {
		t.Errorf("GetInto = %v, %v", ok, err)
	}
	if keys := s.Keys(); len(keys) != 0 || s.UserID() != "" {
		t.Errorf("Keys = %v, UserID = %q", keys, s.UserID())
	}
	if err := s.Set("a", 1); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("Set = %v, want ErrNoSession", err)
	}
	if err := s.Delete("a"); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("Delete = %v, want ErrNoSession", err)
	}
}

func TestAcquireFailsWhenTheBackendCannotBeRead(t *testing.T) {
	f := &flaky{Backend: newBackend(t)}
	st := newStore(t, f, session.Options{})
	f.down.Store(true)
	if _, err := st.Acquire(ctx, "u"); !errors.Is(err, errDown) {
		t.Fatalf("Acquire = %v, want %v", err, errDown)
	}
	if st.Session("u") != nil {
		t.Fatal("a session that failed to load is handed out")
	}
	f.down.Store(false)
	set(t, acquire(t, st, "u"), "a", 1)
	release(t, st, "u") // would underflow if the failed Acquire had been counted
	if got := stored(t, f, "u"); string(got["a"]) != "1" {
		t.Fatalf("backend holds %s", got)
	}
}

func TestApplyRemoteUpdatesALoadedCopyAndTellsListeners(t *testing.T) {
	b := backend.NewMemory(backend.MemoryOptions{})
	defer b.Close()
	st, err := session.NewStore(session.Options{Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(context.Background())
	var got []session.Change
	st.OnChange(func(c session.Change) { got = append(got, c) })
	st.ApplyRemote(session.Change{UserID: "nobody", Key: "k", Value: []byte(`1`)}) // not loaded: ignored
	s, err := st.Acquire(context.Background(), "ann")
	if err != nil {
		t.Fatal(err)
	}
	st.ApplyRemote(session.Change{UserID: "ann", Key: "cart", Value: []byte(`["tea"]`)})
	if v, ok := s.Get("cart"); !ok || string(v) != `["tea"]` {
		t.Fatalf("cart = %s", v)
	}
	st.ApplyRemote(session.Change{UserID: "ann", Key: "cart"})
	if _, ok := s.Get("cart"); ok {
		t.Fatal("a remote delete was not applied")
	}
	if len(got) != 2 || !got[0].Remote || got[1].Value != nil {
		t.Fatalf("listeners saw %+v", got)
	}
}
