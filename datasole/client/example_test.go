package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http/httptest"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/client"
)

// Dial a server, call a method and follow a state key.
func ExampleDial() {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ds, err := datasole.New(datasole.Options{Auth: datasole.Anonymous, Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	ds.HandleRPC("echo", func(c *datasole.Context, p json.RawMessage) (any, error) { return p, nil })
	ds.SetState(context.Background(), "motd", "hello")
	if err := ds.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	hs := httptest.NewServer(ds.Handler())
	defer hs.Close()
	defer ds.Close(context.Background())

	ctx := context.Background()
	c, err := client.Dial(ctx, hs.URL, client.Options{
		Token:         "secret", // sent as ?token=, as the v1 browser client does
		OnStateChange: func(s client.State) {},
		Logger:        quiet,
	})
	if err != nil {
		panic(err)
	}
	defer c.Close()

	var out []int
	err = c.Call(ctx, "echo", []int{1, 2, 3}, &out)
	fmt.Println(out, err)

	motd := make(chan string, 1)
	c.SubscribeStateRaw("motd", func(v json.RawMessage, version uint64) { motd <- string(v) })
	fmt.Println(<-motd)
	// Output:
	// [1 2 3] <nil>
	// "hello"
}
