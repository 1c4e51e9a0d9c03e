package datasole_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/client"
)

// ChatMessage is one line of the chat in this example's contract.
type ChatMessage struct {
	From string `json:"from"`
	Text string `json:"text"`
}

// A server's life: declare the contract, register handlers (each
// registration returns an error: an empty or reserved name, a second
// handler for one method), start, mount on a router, serve a client, close.
func Example_lifecycle() {
	// The contract, shared with clients.
	shout := datasole.NewRPC[string, string]("shout")
	chatSend := datasole.NewEvent[ChatMessage]("chat:send")
	chatPosted := datasole.NewEvent[ChatMessage]("chat:posted")

	ds, err := datasole.New(datasole.Options{Auth: datasole.Anonymous, Logger: quiet()})
	if err != nil {
		log.Fatal(err)
	}
	err = errors.Join(
		shout.Handle(ds, func(c *datasole.Context, s string) (string, error) {
			return strings.ToUpper(s) + "!", nil
		}),
		chatSend.Handle(ds, func(c *datasole.Context, m ChatMessage) {
			m.From = "server"
			chatPosted.Broadcast(ds, m)
		}),
	)
	if err != nil {
		log.Fatal(err)
	}
	if err := ds.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	defer ds.Close(context.Background())

	mux := http.NewServeMux() // any router: the adapters do this in one line
	mux.Handle("/__ds", ds.Handler())
	mux.Handle("/__ds/", ds.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	ctx := context.Background()
	c, err := client.Dial(ctx, srv.URL, client.Options{Logger: quiet()})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	posted := make(chan ChatMessage, 1)
	chatPosted.Listen(c, func(m ChatMessage) { posted <- m })

	loud, err := shout.Call(ctx, c, "hello")
	fmt.Println(loud, err)
	chatSend.Emit(ctx, c, ChatMessage{Text: "hi"})
	fmt.Println(<-posted)
	// Output:
	// HELLO! <nil>
	// {server hi}
}
