package backend_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/datasole/datasole-go/datasole/backend"
)

// Versions make read-modify-write safe across nodes: CompareAndSet only
// succeeds on the version that was read.
func ExampleBackend_compareAndSet() {
	ctx := context.Background()
	b, err := backend.Open(ctx, "memory://?prefix=example:")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()

	v, _ := b.Set(ctx, "greeting", []byte("hello"), 0)
	_, err = b.CompareAndSet(ctx, "greeting", []byte("stale write"), v-1, 0)
	fmt.Println(errors.Is(err, backend.ErrConflict))
	v, _ = b.CompareAndSet(ctx, "greeting", []byte("hello, world"), v, 0)
	value, _, _ := b.Get(ctx, "greeting")
	fmt.Println(v, string(value))
	// Output:
	// true
	// 2 hello, world
}

// Two nodes sharing a store exchange messages on the bus; the publisher
// receives its own messages too.
func ExampleNewMemory_peers() {
	ctx := context.Background()
	a := backend.NewMemory(backend.MemoryOptions{})
	b := backend.NewMemory(backend.MemoryOptions{Peer: a})
	defer a.Close()
	defer b.Close()

	got := make(chan string, 2)
	for _, node := range []*backend.Memory{a, b} {
		if _, err := node.Subscribe(ctx, "news", func(msg []byte) { got <- string(msg) }); err != nil {
			fmt.Println(err)
			return
		}
	}
	_ = a.Publish(ctx, "news", []byte("hi"))
	fmt.Println(<-got, <-got)
	// Output: hi hi
}

// A subscriber that was away reads what it missed from the stream's
// history, from the last position it saw; a position the stream can no
// longer serve is reported, and the subscriber starts over from the top.
func ExampleHistory() {
	ctx := context.Background()
	var b backend.Backend = backend.NewMemory(backend.MemoryOptions{})
	defer b.Close()
	h := b.(backend.History)
	o := backend.StreamOptions{Size: 3, TTL: time.Minute}

	// Subscribing: the current top, before any event.
	_, seen, _ := h.ReadHistory(ctx, "room:1", backend.Position{}, 0, o)
	for _, msg := range []string{"hello", "how are you?"} {
		_, _ = h.AppendPublish(ctx, "room:1", "events", []byte(msg), o)
	}
	missed, seen, _ := h.ReadHistory(ctx, "room:1", seen, 0, o)
	for _, e := range missed {
		fmt.Println(e.Offset, string(e.Data))
	}
	// Away again for four events: with Size 3 the first is gone.
	for _, msg := range []string{"a", "b", "c", "d"} {
		_, _ = h.AppendPublish(ctx, "room:1", "events", []byte(msg), o)
	}
	_, top, err := h.ReadHistory(ctx, "room:1", seen, 0, o)
	fmt.Println(errors.Is(err, backend.ErrUnrecoverable), "from", seen.Offset, "- start again at", top.Offset)
	// Output:
	// 1 hello
	// 2 how are you?
	// true from 2 - start again at 6
}

// Subscribers of a history channel receive envelopes: the stream, the
// position and the data.
func ExampleDecodeStreamEnvelope() {
	ctx := context.Background()
	m := backend.NewMemory(backend.MemoryOptions{})
	defer m.Close()
	got := make(chan []byte, 1)
	if _, err := m.Subscribe(ctx, "events", func(msg []byte) { got <- msg }); err != nil {
		fmt.Println(err)
		return
	}
	pos, _ := m.AppendPublish(ctx, "room:1", "events", []byte("hello"), backend.StreamOptions{})
	env, err := backend.DecodeStreamEnvelope(<-got)
	fmt.Println(err, env.Stream, env.Position == pos, env.Position.Offset, string(env.Data))
	// Output: <nil> room:1 true 1 hello
}

// Presence is kept alive per node: one call keeps all of the node's
// entries, in every set.
func ExamplePresence() {
	ctx := context.Background()
	var b backend.Backend = backend.NewMemory(backend.MemoryOptions{})
	defer b.Close()
	p := b.(backend.Presence)

	_, _ = p.KeepNodeAlive(ctx, "node-1", 30*time.Second) // then every 10 s
	_ = p.AddPresence(ctx, "room:1", backend.PresenceEntry{ConnID: "c1", UserID: "ann", NodeID: "node-1"})
	_ = p.AddPresence(ctx, "room:1", backend.PresenceEntry{ConnID: "c2", UserID: "ann", NodeID: "node-1"})
	_ = p.AddPresence(ctx, "room:1", backend.PresenceEntry{ConnID: "c3", UserID: "bob", NodeID: "node-1"})
	stats, _ := p.PresenceStats(ctx, "room:1")
	fmt.Println(stats.Connections, stats.Users)
	// Output: 3 2
}

// State in one backend, messages on another's bus.
func ExampleCompose() {
	ctx := context.Background()
	store := backend.NewMemory(backend.MemoryOptions{}) // e.g. Postgres
	bus := backend.NewMemory(backend.MemoryOptions{})   // e.g. Redis
	b := backend.Compose(store, bus)
	defer b.Close()

	_, _ = b.Set(ctx, "k", []byte("v"), 0)
	_, _, errStore := store.Get(ctx, "k")
	_, _, errBus := bus.Get(ctx, "k")
	_, unordered := b.(backend.UnorderedHistory)
	fmt.Println(errStore, errors.Is(errBus, backend.ErrNotFound), unordered)
	// Output: <nil> true true
}
