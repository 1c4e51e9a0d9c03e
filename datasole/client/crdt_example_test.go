package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http/httptest"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/client"
	"github.com/datasole/datasole-go/datasole/crdt"
)

// A CRDT op the server refuses is dropped from the outbox, its local
// effect is undone, and OnCRDTError says which op and why. Ops the local
// replica refuses (too large, forbidden members) fail at once instead.
func ExampleClient_OnCRDTError() {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ds, err := datasole.New(datasole.Options{Auth: datasole.Anonymous, Logger: quiet, CRDT: datasole.CRDTOptions{
		Authorize: func(c *datasole.Conn, key string, op crdt.Op) error { return errors.New("read-only") },
	}})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := ds.RegisterCRDTType("votes", datasole.Global(), crdt.TypePNCounter); err != nil {
		log.Fatal(err)
	}
	if err := ds.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	hs := httptest.NewServer(ds.Handler())
	defer hs.Close()
	defer ds.Close(context.Background())

	ctx := context.Background()
	c, err := client.Dial(ctx, hs.URL, client.Options{Logger: quiet})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	refused := make(chan *client.CRDTError, 1)
	c.OnCRDTError(func(e *client.CRDTError) { refused <- e })

	votes, _ := c.Counter("votes")
	_ = votes.Increment(ctx, 1)
	e := <-refused
	fmt.Println(e.Key, e.Op.Op, e.Server.Code)
	fmt.Println(votes.Value(), c.Pending())

	m, _ := c.Map("profile")
	err = m.Set(ctx, "bio", map[string]any{"__proto__": "x"})
	fmt.Println(errors.Is(err, crdt.ErrForbiddenValue))
	// Output:
	// votes increment crdt-forbidden
	// 0 0
	// true
}
