package backend_test

import (
	"context"
	"errors"
	"fmt"

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
