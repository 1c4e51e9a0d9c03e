package datasole_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/datasole/datasole-go/datasole/client"
	"github.com/datasole/datasole-go/datasole/clustertest"
)

// The cluster suite's server-event scenarios on memory peers (the Redis
// and Postgres modules run them on real servers).
func TestServerEventsOnMemoryPeers(t *testing.T) {
	clustertest.RunServerEvents(t, clustertest.MemoryCluster)
}

// gatedBackend holds every publication until its gate opens, as a backend
// in the middle of a slow round trip would.
type gatedBackend struct {
	backend.Backend
	gate chan struct{}
}

func (g *gatedBackend) Publish(ctx context.Context, channel string, msg []byte) error {
	select {
	case <-g.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.Backend.Publish(ctx, channel, msg)
}

// wait takes one value from ch, failing the test after 10 s.
func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// twoNodes starts two servers on memory peers; a's publications wait for
// gate when it is not nil.
func twoNodes(t *testing.T, gate chan struct{}, setup func(i int, ds *datasole.Server)) (a, b *testServer) {
	pa := backend.NewMemory(backend.MemoryOptions{})
	pb := backend.NewMemory(backend.MemoryOptions{Peer: pa})
	t.Cleanup(func() { pa.Close(); pb.Close() })
	var ba backend.Backend = pa
	if gate != nil {
		ba = &gatedBackend{Backend: pa, gate: gate}
	}
	a = startServer(t, datasole.Options{Backend: ba}, func(ds *datasole.Server) { setup(0, ds) })
	b = startServer(t, datasole.Options{Backend: pb}, func(ds *datasole.Server) { setup(1, ds) })
	return a, b
}

func TestServerEvents(t *testing.T) {
	t.Run("the emitting node runs its handlers without waiting for the bus", func(t *testing.T) {
		gate := make(chan struct{})
		got := [2]chan string{make(chan string, 1), make(chan string, 1)}
		a, _ := twoNodes(t, gate, func(i int, ds *datasole.Server) {
			ds.OnServer("order.placed", func(_ context.Context, data json.RawMessage) { got[i] <- string(data) })
		})
		if err := a.ds.Emit(context.Background(), "order.placed", map[string]int{"id": 7}); err != nil {
			t.Fatal(err)
		}
		if v := wait(t, got[0], "the emitting node's handler while its publication is held"); v != `{"id":7}` {
			t.Fatalf("handler got %s", v)
		}
		select {
		case v := <-got[1]:
			t.Fatalf("the other node handled %s before the publication left", v)
		default:
		}
		close(gate)
		if v := wait(t, got[1], "the other node's handler"); v != `{"id":7}` {
			t.Fatalf("the other node's handler got %s", v)
		}
	})

	t.Run("a slow handler holds up neither the bus nor the other server events' senders", func(t *testing.T) {
		release := make(chan struct{})
		started := make(chan struct{}, 1)
		a, b := twoNodes(t, nil, func(i int, ds *datasole.Server) {
			if i == 1 {
				ds.OnServer("slow", func(context.Context, json.RawMessage) {
					select {
					case started <- struct{}{}:
					default:
					}
					<-release
				})
			}
		})
		defer close(release)
		c := dial(t, b.url, client.Options{})
		pushed := make(chan string, 1)
		c.On("news", func(d json.RawMessage) { pushed <- string(d) })
		if err := a.ds.Emit(context.Background(), "slow", nil); err != nil {
			t.Fatal(err)
		}
		wait(t, started, "node b's slow handler to start")
		// b's handler is blocked; a push from a still reaches b's client
		// through the bus, and a can keep emitting.
		eventually(t, "the client to attach", func() bool { return b.ds.ConnectionCount() == 1 })
		if err := a.ds.Broadcast("news", "still flowing"); err != nil {
			t.Fatal(err)
		}
		if v := wait(t, pushed, "a push through the bus while a handler blocks"); v != `"still flowing"` {
			t.Fatalf("pushed %s", v)
		}
		for range 100 {
			if err := a.ds.Emit(context.Background(), "slow", nil); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("handlers run in registration order, a panic spares the rest", func(t *testing.T) {
		var mu sync.Mutex
		var order []string
		done := make(chan struct{})
		ts := startServer(t, datasole.Options{}, func(ds *datasole.Server) {
			add := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
			ds.OnServer("e", func(context.Context, json.RawMessage) { add("first"); panic("handler bug") })
			ds.OnServer("e", func(_ context.Context, d json.RawMessage) { add("second " + string(d)) })
			ds.OnServer("end", func(context.Context, json.RawMessage) { close(done) })
		})
		ts.ds.Emit(context.Background(), "e", 1)
		ts.ds.Emit(context.Background(), "e", 2)
		ts.ds.Emit(context.Background(), "end", nil)
		wait(t, done, "the last event")
		mu.Lock()
		defer mu.Unlock()
		want := []string{"first", "second 1", "first", "second 2"}
		if len(order) != len(want) {
			t.Fatalf("ran %q, want %q", order, want)
		}
		for i := range want {
			if order[i] != want[i] {
				t.Fatalf("ran %q, want %q", order, want)
			}
		}
	})

	t.Run("server and client events are separate namespaces", func(t *testing.T) {
		server := make(chan string, 4)
		clientEvents := make(chan string, 4)
		ts := startServer(t, datasole.Options{}, func(ds *datasole.Server) {
			ds.OnServer("ping", func(_ context.Context, d json.RawMessage) { server <- string(d) })
			ds.On("ping", func(_ *datasole.Context, d json.RawMessage) { clientEvents <- string(d) })
		})
		c := dial(t, ts.url, client.Options{})
		if err := c.Emit(context.Background(), "ping", "from a client"); err != nil {
			t.Fatal(err)
		}
		if v := wait(t, clientEvents, "the client event"); v != `"from a client"` {
			t.Fatalf("client handler got %s", v)
		}
		if err := ts.ds.Emit(context.Background(), "ping", "from the server"); err != nil {
			t.Fatal(err)
		}
		if v := wait(t, server, "the server event"); v != `"from the server"` {
			t.Fatalf("server handler got %s", v)
		}
		// One more of each: had either reached the other's handler, it
		// would be there before these.
		c.Emit(context.Background(), "ping", "client 2")
		ts.ds.Emit(context.Background(), "ping", "server 2")
		if v := wait(t, clientEvents, "the second client event"); v != `"client 2"` {
			t.Fatalf("client handler got %s", v)
		}
		if v := wait(t, server, "the second server event"); v != `"server 2"` {
			t.Fatalf("server handler got %s", v)
		}
	})

	t.Run("typed events skip data that does not decode", func(t *testing.T) {
		type order struct{ ID int }
		placed := datasole.NewServerEvent[order]("order.placed")
		typed := make(chan order, 2)
		raw := make(chan string, 2)
		ts := startServer(t, datasole.Options{}, func(ds *datasole.Server) {
			if err := placed.Handle(ds, func(_ context.Context, o order) { typed <- o }); err != nil {
				t.Fatal(err)
			}
			ds.OnServer(placed.Name(), func(_ context.Context, d json.RawMessage) { raw <- string(d) })
		})
		ts.ds.Emit(context.Background(), placed.Name(), "not an order")
		if err := placed.Emit(context.Background(), ts.ds, order{ID: 9}); err != nil {
			t.Fatal(err)
		}
		wait(t, raw, "the raw handler")
		wait(t, raw, "the raw handler")
		if o := wait(t, typed, "the typed handler"); o.ID != 9 {
			t.Fatalf("typed handler got %+v, want the order only", o)
		}
	})

	t.Run("Close runs the queued events, then ends the handlers' context", func(t *testing.T) {
		ds, err := datasole.New(quietOptions(datasole.Options{}))
		if err != nil {
			t.Fatal(err)
		}
		gate := make(chan struct{})
		var mu sync.Mutex
		ran := 0
		var handlerCtx context.Context
		ds.OnServer("job", func(ctx context.Context, _ json.RawMessage) {
			<-gate
			mu.Lock()
			ran++
			handlerCtx = ctx
			mu.Unlock()
		})
		if err := ds.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		for range 10 {
			if err := ds.Emit(context.Background(), "job", nil); err != nil {
				t.Fatal(err)
			}
		}
		closed := make(chan error, 1)
		go func() { closed <- ds.Close(context.Background()) }()
		close(gate)
		if err := wait(t, closed, "Close"); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if ran != 10 || handlerCtx.Err() == nil {
			t.Fatalf("%d of 10 queued events ran before Close returned; handlers' context err %v", ran, handlerCtx.Err())
		}
		if err := ds.Emit(context.Background(), "job", nil); !errors.Is(err, datasole.ErrClosed) {
			t.Fatalf("Emit after Close: %v, want ErrClosed", err)
		}
	})
}

func TestServerEventBacklog(t *testing.T) {
	t.Run("Emit refuses once this node's handlers are 4,096 events behind", func(t *testing.T) {
		release := make(chan struct{})
		started := make(chan struct{}, 1)
		ts := startServer(t, datasole.Options{}, func(ds *datasole.Server) {
			ds.OnServer("e", func(context.Context, json.RawMessage) {
				select {
				case started <- struct{}{}:
				default:
				}
				<-release
			})
		})
		defer close(release)
		if err := ts.ds.Emit(context.Background(), "e", nil); err != nil {
			t.Fatal(err)
		}
		wait(t, started, "the first handler")
		queued := 0
		for ; queued < 10000; queued++ {
			err := ts.ds.Emit(context.Background(), "e", nil)
			if errors.Is(err, datasole.ErrServerEventBacklog) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if queued != 4096 {
			t.Fatalf("%d events queued behind the running one, want 4096", queued)
		}
	})

	t.Run("a node far behind drops what arrives from the bus and counts it", func(t *testing.T) {
		release := make(chan struct{})
		started := make(chan struct{}, 1)
		handledB := make(chan struct{}, 8192)
		a, b := twoNodes(t, nil, func(i int, ds *datasole.Server) {
			if i == 1 {
				ds.OnServer("e", func(context.Context, json.RawMessage) {
					select {
					case started <- struct{}{}:
						<-release
					default:
					}
					handledB <- struct{}{}
				})
			}
		})
		before := b.ds.Snapshot().BackendErrors
		if err := a.ds.Emit(context.Background(), "e", nil); err != nil {
			t.Fatal(err)
		}
		wait(t, started, "node b's first handler")
		for range 4096 + 10 {
			if err := a.ds.Emit(context.Background(), "e", nil); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, "node b to count 10 dropped events", func() bool { return b.ds.Snapshot().BackendErrors-before == 10 })
		close(release)
		for range 1 + 4096 {
			wait(t, handledB, "node b's queued handlers")
		}
		// A marker from b itself proves nothing more was queued.
		marker := make(chan struct{})
		b.ds.OnServer("marker", func(context.Context, json.RawMessage) { close(marker) })
		b.ds.Emit(context.Background(), "marker", nil)
		wait(t, marker, "the marker")
		if n := len(handledB); n != 0 {
			t.Fatalf("node b handled %d events more than fitted its queue", n)
		}
	})
}

func TestServerEventRefusals(t *testing.T) {
	ds, err := datasole.New(quietOptions(datasole.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close(context.Background())
	fn := func(context.Context, json.RawMessage) {}
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"an empty name", ds.OnServer("", fn)},
		{"a reserved name", ds.OnServer("$ds.resync", fn)},
		{"a nil handler", ds.OnServer("ok", nil)},
		{"a nil typed handler", datasole.NewServerEvent[int]("ok").Handle(ds, nil)},
	} {
		if !errors.Is(tc.err, datasole.ErrInvalidRegistration) {
			t.Errorf("OnServer with %s: %v, want ErrInvalidRegistration", tc.name, tc.err)
		}
	}
	if err := ds.Start(context.Background()); !errors.Is(err, datasole.ErrInvalidRegistration) {
		t.Fatalf("Start after invalid registrations: %v", err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"an empty name", ds.Emit(context.Background(), "", 1)},
		{"a reserved name", ds.Emit(context.Background(), "$ds.x", 1)},
		{"data that does not encode", ds.Emit(context.Background(), "e", make(chan int))},
		{"raw data that is not JSON", ds.Emit(context.Background(), "e", json.RawMessage("{"))},
		{"data over 1 MiB", ds.Emit(context.Background(), "e", make([]byte, 1<<20))},
		{"a cancelled context", ds.Emit(cancelled, "e", 1)},
	} {
		if tc.err == nil {
			t.Errorf("Emit with %s succeeded", tc.name)
		}
	}
}
