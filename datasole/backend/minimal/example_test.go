package minimal_test

import (
	"context"
	"fmt"

	"github.com/datasole/datasole-go/datasole/backend/minimal"
)

// Two nodes on one hub share state and bus.
func ExampleHub_Open() {
	ctx := context.Background()
	hub := minimal.NewHub()
	a, b := hub.Open("app:"), hub.Open("app:")
	defer a.Close()
	defer b.Close()

	got := make(chan string, 1)
	if _, err := b.Subscribe(ctx, "news", func(msg []byte) { got <- string(msg) }); err != nil {
		fmt.Println(err)
		return
	}
	v, _ := a.Set(ctx, "greeting", []byte("hello"), 0)
	_ = a.Publish(ctx, "news", []byte("greeting changed"))
	value, version, _ := b.Get(ctx, "greeting")
	fmt.Println(v, string(value), version, <-got)
	// Output: 1 hello 1 greeting changed
}
