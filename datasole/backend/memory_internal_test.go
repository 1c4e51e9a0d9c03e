package backend

import (
	"context"
	"strconv"
	"testing"
	"time"
)

func TestMemoryDropsExpiredEntriesWithoutReadingThem(t *testing.T) {
	m := NewMemory(MemoryOptions{})
	defer m.Close()
	ctx := context.Background()
	for i := range 100 {
		if _, err := m.Set(ctx, "short:"+strconv.Itoa(i), []byte("x"), 20*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Set(ctx, "short:0", []byte("x"), time.Hour); err != nil { // moved back in the heap
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if _, err := m.Set(ctx, "other", []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	m.store.mu.Lock()
	defer m.store.mu.Unlock()
	if n, h := len(m.store.entries), len(m.store.expiry); n != 2 || h != 1 {
		t.Fatalf("after expiry the store holds %d entries and %d timers, want 2 and 1", n, h)
	}
}
