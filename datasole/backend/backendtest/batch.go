package backendtest

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole/backend"
)

func (s *suite) batchedReads(t *testing.T) {
	if _, ok := s.fresh(t).(backend.BatchGetter); !ok {
		t.Skip("backend does not implement BatchGetter")
	}
	getMany := func(t *testing.T, b backend.Backend, keys ...string) []backend.Versioned {
		t.Helper()
		got, err := b.(backend.BatchGetter).GetMany(ctxFor(t), keys)
		if err != nil {
			t.Fatalf("GetMany(%q): %v", keys, err)
		}
		if len(got) != len(keys) {
			t.Fatalf("GetMany(%q) returned %d results", keys, len(got))
		}
		return got
	}
	t.Run("values and versions come back in the order of the keys, missing keys marked", func(t *testing.T) {
		prefix := NewPrefix()
		writer, reader := s.node(t, prefix), s.node(t, prefix)
		mustSet(t, writer, "a", []byte("alpha"), 0)
		mustSet(t, writer, "b", []byte("beta"), 0)
		mustSet(t, writer, "b", []byte("beta 2"), 0)
		mustSet(t, writer, "empty", []byte{}, 0)
		got := getMany(t, reader, "a", "missing", "b", "a", "empty", "")
		want := []backend.Versioned{
			{Value: []byte("alpha"), Version: 1}, {}, {Value: []byte("beta 2"), Version: 2},
			{Value: []byte("alpha"), Version: 1}, {Value: []byte{}, Version: 1}, {},
		}
		for i := range want {
			if got[i].Found() != want[i].Found() || !bytes.Equal(got[i].Value, want[i].Value) || got[i].Version != want[i].Version {
				t.Errorf("result %d = %q v%d, want %q v%d", i, got[i].Value, got[i].Version, want[i].Value, want[i].Version)
			}
		}
	})
	t.Run("no keys give no results", func(t *testing.T) {
		if got := getMany(t, s.fresh(t)); len(got) != 0 {
			t.Fatalf("GetMany() = %v", got)
		}
	})
	t.Run("expired keys are missing", func(t *testing.T) {
		b := s.fresh(t)
		mustSet(t, b, "gone", []byte("x"), 300*time.Millisecond)
		mustSet(t, b, "kept", []byte("y"), 0)
		waitMissing(t, b, "gone")
		got := getMany(t, b, "gone", "kept")
		if got[0].Found() || !got[1].Found() {
			t.Fatalf("GetMany = %+v, want gone missing and kept found", got)
		}
	})
	t.Run("returned values belong to the caller", func(t *testing.T) {
		b := s.fresh(t)
		mustSet(t, b, "k", []byte("original"), 0)
		got := getMany(t, b, "k", "k")
		got[0].Value[0] = 'X'
		if string(got[1].Value) != "original" {
			t.Fatalf("the second result changed with the first: %q", got[1].Value)
		}
		wantValue(t, b, "k", []byte("original"), 1)
	})
	t.Run("namespaces are apart", func(t *testing.T) {
		a, b := s.fresh(t), s.fresh(t)
		mustSet(t, a, "k", []byte("a"), 0)
		if got := getMany(t, b, "k"); got[0].Found() {
			t.Fatalf("another namespace reads %q", got[0].Value)
		}
	})
	t.Run("a closed backend refuses", func(t *testing.T) {
		b := s.open(t, NewPrefix())
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := b.(backend.BatchGetter).GetMany(ctxFor(t), []string{"k"}); !errors.Is(err, backend.ErrClosed) {
			t.Fatalf("GetMany after Close: %v, want ErrClosed", err)
		}
	})
}
