package backend_test

import (
	"context"
	"errors"
	"testing"

	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/datasole/datasole-go/datasole/backend/backendtest"
)

// onlyBackend hides every optional interface of the backend it wraps.
type onlyBackend struct{ backend.Backend }

// Data in one memory store, messages on another memory bus: the composite
// passes the whole suite, history included, as an UnorderedHistory.
func TestComposeConformance(t *testing.T) {
	stores := backend.NewMemory(backend.MemoryOptions{})
	buses := backend.NewMemory(backend.MemoryOptions{})
	t.Cleanup(func() { _ = stores.Close(); _ = buses.Close() })
	backendtest.Run(t, func(t *testing.T, prefix string) backend.Backend {
		return backend.Compose(
			backend.NewMemory(backend.MemoryOptions{Prefix: prefix, Peer: stores}),
			backend.NewMemory(backend.MemoryOptions{Prefix: prefix, Peer: buses}))
	})
}

func TestCompose(t *testing.T) {
	ctx := context.Background()
	t.Run("store and bus are the given ones", func(t *testing.T) {
		store, bus := backend.NewMemory(backend.MemoryOptions{}), backend.NewMemory(backend.MemoryOptions{})
		c := backend.Compose(store, bus)
		defer c.Close()
		if _, err := c.Set(ctx, "k", []byte("v"), 0); err != nil {
			t.Fatal(err)
		}
		if _, _, err := store.Get(ctx, "k"); err != nil {
			t.Fatalf("the store does not hold the key: %v", err)
		}
		if _, _, err := bus.Get(ctx, "k"); !errors.Is(err, backend.ErrNotFound) {
			t.Fatalf("the bus backend holds the key: %v", err)
		}
		got := make(chan string, 1)
		if _, err := bus.Subscribe(ctx, "c", func(m []byte) { got <- string(m) }); err != nil {
			t.Fatal(err)
		}
		if err := c.Publish(ctx, "c", []byte("hi")); err != nil {
			t.Fatal(err)
		}
		if m := <-got; m != "hi" {
			t.Fatalf("the bus received %q", m)
		}
		h := c.(backend.History)
		pos, err := h.AppendPublish(ctx, "s", "c", []byte("x"), backend.StreamOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if m, err := backend.DecodeStreamEnvelope([]byte(<-got)); err != nil || m.Position != pos {
			t.Fatalf("the bus received %+v, %v; want the envelope at %+v", m, err, pos)
		}
		if _, top, err := store.ReadHistory(ctx, "s", backend.Position{}, 0, backend.StreamOptions{}); err != nil || top != pos {
			t.Fatalf("the store's stream is at %+v, %v; want %+v", top, err, pos)
		}
	})
	t.Run("optional interfaces follow the store", func(t *testing.T) {
		plain := backend.Compose(onlyBackend{backend.NewMemory(backend.MemoryOptions{})}, backend.NewMemory(backend.MemoryOptions{}))
		defer plain.Close()
		if _, ok := plain.(backend.History); ok {
			t.Error("composite of a store without history implements History")
		}
		if _, ok := plain.(backend.Presence); ok {
			t.Error("composite of a store without presence implements Presence")
		}
		if _, ok := plain.(backend.BatchGetter); !ok {
			t.Error("composite does not implement BatchGetter")
		}
		full := backend.Compose(backend.NewMemory(backend.MemoryOptions{}), backend.NewMemory(backend.MemoryOptions{}))
		defer full.Close()
		if _, ok := full.(backend.UnorderedHistory); !ok {
			t.Error("composite of a memory store does not implement UnorderedHistory")
		}
		if _, ok := full.(backend.Presence); !ok {
			t.Error("composite of a memory store does not implement Presence")
		}
	})
	t.Run("one backend as both is closed once", func(t *testing.T) {
		m := backend.NewMemory(backend.MemoryOptions{})
		if err := backend.Compose(m, m).Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Set(ctx, "k", nil, 0); !errors.Is(err, backend.ErrClosed) {
			t.Fatalf("Set after Close: %v", err)
		}
	})
}

func TestGetManyFallsBackToGet(t *testing.T) {
	ctx := context.Background()
	m := backend.NewMemory(backend.MemoryOptions{})
	defer m.Close()
	if _, err := m.Set(ctx, "a", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	got, err := backend.GetMany(ctx, onlyBackend{m}, []string{"a", "b"})
	if err != nil || len(got) != 2 || string(got[0].Value) != "1" || got[0].Version != 1 || got[1].Found() {
		t.Fatalf("GetMany = %+v, %v", got, err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := backend.GetMany(ctx, onlyBackend{m}, []string{"a"}); !errors.Is(err, backend.ErrClosed) {
		t.Fatalf("GetMany on a closed backend: %v", err)
	}
}

func TestUnavailable(t *testing.T) {
	cause := errors.New("connection refused")
	err := backend.Unavailable(cause)
	if !errors.Is(err, backend.ErrUnavailable) || !errors.Is(err, cause) {
		t.Fatalf("%v matches ErrUnavailable %v, its cause %v", err, errors.Is(err, backend.ErrUnavailable), errors.Is(err, cause))
	}
	if backend.Unavailable(nil) != nil {
		t.Fatal("Unavailable(nil) is not nil")
	}
}
