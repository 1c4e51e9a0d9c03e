package session_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/datasole/datasole-go/datasole/session"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// newBackend returns a memory backend closed at the end of the test.
func newBackend(t testing.TB) *backend.Memory {
	t.Helper()
	b := backend.NewMemory(backend.MemoryOptions{})
	t.Cleanup(func() { b.Close() })
	return b
}

// newStore returns a store on b, closed at the end of the test. Tests that
// need precise control disable the timer themselves.
func newStore(t testing.TB, b backend.Backend, opts session.Options) *session.Store {
	t.Helper()
	opts.Backend = b
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	st, err := session.NewStore(opts)
	if err != nil {
		t.Fatalf("NewStore: %v", err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	return st
}

func acquire(t testing.TB, st *session.Store, user string) *session.Session {
	t.Helper()
	s, err := st.Acquire(context.Background(), user)
	if err != nil {
		t.Fatalf("Acquire(%q): %v", user, err)
	}
	return s
}

func release(t testing.TB, st *session.Store, user string) {
	t.Helper()
	if err := st.Release(context.Background(), user); err != nil {
		t.Fatalf("Release(%q): %v", user, err)
	}
}

func set(t testing.TB, s *session.Session, key string, v any) {
	t.Helper()
	if err := s.Set(key, v); err != nil {
		t.Fatalf("Set(%q): %v", key, err)
	}
}

// stored returns the session of user as the backend holds it, nil if absent.
func stored(t testing.TB, b backend.Backend, user string) map[string]json.RawMessage {
	t.Helper()
	raw, _, err := b.Get(context.Background(), session.KeyPrefix+user)
	if errors.Is(err, backend.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatalf("backend Get: %v", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("stored session is not a JSON object: %v: %s", err, raw)
	}
	return m
}

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var errDown = errors.New("backend down")

// flaky is a real backend whose reads and writes fail while down is set.
type flaky struct {
	backend.Backend
	down atomic.Bool
}

func (f *flaky) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	if f.down.Load() {
		return nil, 0, errDown
	}
	return f.Backend.Get(ctx, key)
}

func (f *flaky) CompareAndSet(ctx context.Context, key string, value []byte, expect uint64, ttl time.Duration) (uint64, error) {
	if f.down.Load() {
		return 0, errDown
	}
	return f.Backend.CompareAndSet(ctx, key, value, expect, ttl)
}
