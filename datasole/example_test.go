package datasole_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http/httptest"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/client"
	"github.com/datasole/datasole-go/datasole/crdt"
)

// A contract, declared once and shared by server and clients.
type AddParams struct{ A, B int }
type AddResult struct{ Sum int }
type Dashboard struct{ Visitors int }

var (
	Add       = datasole.NewRPC[AddParams, AddResult]("add")
	Greeting  = datasole.NewEvent[string]("greeting")
	DashState = datasole.NewState[Dashboard]("dashboard")
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// A server with one typed RPC, mounted on a plain net/http server, and a Go
// client calling it.
func Example() {
	ds, err := datasole.New(datasole.Options{Auth: datasole.Anonymous, Logger: quiet()})
	if err != nil {
		log.Fatal(err)
	}
	Add.Handle(ds, func(c *datasole.Context, p AddParams) (AddResult, error) {
		return AddResult{Sum: p.A + p.B}, nil
	})
	if err := ds.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	hs := httptest.NewServer(ds.Handler())
	defer hs.Close()
	defer ds.Close(context.Background())

	ctx := context.Background()
	c, err := client.Dial(ctx, hs.URL, client.Options{Logger: quiet()})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	res, err := Add.Call(ctx, c, AddParams{A: 2, B: 3})
	fmt.Println(res.Sum, err)
	// Output: 5 <nil>
}

// Events both ways: a client emits, a server handler sees who sent it and
// answers that user only.
func ExampleEvent() {
	ds, err := datasole.New(datasole.Options{Auth: datasole.Anonymous, Logger: quiet()})
	if err != nil {
		log.Fatal(err)
	}
	hello := datasole.NewEvent[string]("hello")
	hello.Handle(ds, func(c *datasole.Context, name string) {
		Greeting.Send(ds, datasole.ToUser(c.UserID()), "hi "+name)
	})
	if err := ds.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	hs := httptest.NewServer(ds.Handler())
	defer hs.Close()
	defer ds.Close(context.Background())

	c, _ := client.Dial(context.Background(), hs.URL, client.Options{Logger: quiet()})
	defer c.Close()
	got := make(chan string, 1)
	Greeting.Listen(c, func(s string) { got <- s })
	hello.Emit(context.Background(), c, "ada")
	fmt.Println(<-got)
	// Output: hi ada
}

// Live state: the server sets a value, every client holds a copy that
// follows it, and late joiners start from a snapshot.
func ExampleState() {
	ds, err := datasole.New(datasole.Options{Auth: datasole.Anonymous, Logger: quiet()})
	if err != nil {
		log.Fatal(err)
	}
	if err := ds.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	hs := httptest.NewServer(ds.Handler())
	defer hs.Close()
	defer ds.Close(context.Background())
	ctx := context.Background()
	DashState.Set(ctx, ds, Dashboard{Visitors: 1})

	c, _ := client.Dial(ctx, hs.URL, client.Options{Logger: quiet()})
	defer c.Close()
	changes := make(chan int, 4)
	DashState.Subscribe(c, func(d Dashboard) { changes <- d.Visitors })
	fmt.Println(<-changes) // the snapshot sent on connect
	DashState.Update(ctx, ds, datasole.Global(), func(d Dashboard) (Dashboard, error) {
		d.Visitors++
		return d, nil
	})
	fmt.Println(<-changes) // one STATE_PATCH
	_, version, _ := DashState.Get(ds, datasole.Global())
	fmt.Println("version", version)
	// Output:
	// 1
	// 2
	// version 2
}

// A pn-counter that clients increment; every replica converges.
func ExampleServer_RegisterCRDTType() {
	ds, err := datasole.New(datasole.Options{Auth: datasole.Anonymous, Logger: quiet()})
	if err != nil {
		log.Fatal(err)
	}
	if err := ds.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	ds.RegisterCRDTType("likes", datasole.Global(), crdt.TypePNCounter)
	hs := httptest.NewServer(ds.Handler())
	defer hs.Close()
	defer ds.Close(context.Background())

	ctx := context.Background()
	c, _ := client.Dial(ctx, hs.URL, client.Options{Logger: quiet()})
	defer c.Close()
	likes, _ := c.Counter("likes")
	likes.Increment(ctx, 3)
	for c.Pending() > 0 { // until the server confirms
		time.Sleep(time.Millisecond)
	}
	server, _ := ds.CRDT("likes")
	fmt.Println(likes.Value(), string(server.State().Value))
	// Output: 3 3
}

// The pattern stock v1 browser clients use for CRDTs: they emit the op as an
// ordinary event; the server applies it once and every client gets the new
// CRDT_STATE.
func ExampleServer_ApplyCRDT() {
	ds, err := datasole.New(datasole.Options{Auth: datasole.Anonymous, Logger: quiet()})
	if err != nil {
		log.Fatal(err)
	}
	ds.RegisterCRDTType("votes", datasole.Global(), crdt.TypePNCounter)
	ds.On("crdt:op", func(c *datasole.Context, data json.RawMessage) {
		var msg struct {
			Key string  `json:"key"`
			Op  crdt.Op `json:"op"`
		}
		if json.Unmarshal(data, &msg) == nil {
			ds.ApplyCRDT(c, msg.Key, msg.Op)
		}
	})
	if err := ds.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	hs := httptest.NewServer(ds.Handler())
	defer hs.Close()
	defer ds.Close(context.Background())

	ctx := context.Background()
	c, _ := client.Dial(ctx, hs.URL, client.Options{Logger: quiet()})
	defer c.Close()
	op := crdt.Op{Type: crdt.TypePNCounter, NodeID: "tab-1", Timestamp: time.Now().UnixMilli(), Op: crdt.OpIncrement}
	c.Emit(ctx, "crdt:op", map[string]any{"key": "votes", "op": op})
	votes, _ := ds.CRDT("votes")
	for string(votes.State().Value) != "1" {
		time.Sleep(time.Millisecond)
	}
	fmt.Println(string(votes.State().Value))
	// Output: 1
}
