package clustertest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/client"
	"github.com/gorilla/websocket"
)

// RunHistory runs the history and recovery scenarios on n nodes (n = 1 for
// a backend whose nodes cannot share it, the memory backend without peers):
// a client whose connection the server cuts misses events to a kept tag,
// then reconnects — to the last node — and must get every missed event, in
// order, exactly once, before live ones; with a history window smaller than
// what it missed, it must be told it did not recover.
func RunHistory(t *testing.T, newCluster NewCluster, n int) {
	t.Run("a client that reconnects to another node gets every event it missed, in order, once, then live ones", func(t *testing.T) {
		testRecovery(t, newCluster(t), n, 1000, true)
	})
	t.Run("a client that missed more than the window is told it did not recover", func(t *testing.T) {
		testRecovery(t, newCluster(t), n, 100, false)
	})
}

// gatedDialer dials the first node, then, once released, the last one: the
// client's reconnect lands on another node than the one that cut it.
type gatedDialer struct {
	first, last string // host:port
	dialed      atomic.Int32
	release     chan struct{}
}

func (g *gatedDialer) dial(ctx context.Context, network, _ string) (net.Conn, error) {
	addr := g.first
	if g.dialed.Add(1) > 1 {
		select {
		case <-g.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		addr = g.last
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

func hostOf(rawURL string) string {
	u, _ := url.Parse(rawURL)
	return u.Host
}

func testRecovery(t *testing.T, newBackend NewBackend, n, size int, recoverable bool) {
	const before, missed, after = 10, 1000, 10
	tagged := make(chan struct{}, 4) // a connection joined the room (OnConnect runs after the client sees the upgrade)
	nodes := Start(t, n, newBackend, func(ds *datasole.Server) {
		if err := ds.KeepHistory(datasole.ToTag("room"), datasole.History{Size: size}); err != nil {
			t.Fatal(err)
		}
		ds.OnConnect(func(c *datasole.Conn) {
			c.Tag("room")
			tagged <- struct{}{}
		})
	})
	first, last := nodes[0], nodes[len(nodes)-1]
	g := &gatedDialer{first: hostOf(first.URL), last: hostOf(last.URL), release: make(chan struct{})}
	disconnected := make(chan struct{}, 1)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, first.URL, client.Options{Token: "u", Logger: quiet, ReconnectInterval: 5 * time.Millisecond,
		Dialer: &websocket.Dialer{NetDialContext: g.dial, HandshakeTimeout: 10 * time.Second},
		OnStateChange: func(s client.State) {
			if s == client.Disconnected {
				select {
				case disconnected <- struct{}{}:
				default:
				}
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })

	var mu sync.Mutex
	var got []int
	c.On("msg", func(d json.RawMessage) {
		var i int
		json.Unmarshal(d, &i)
		mu.Lock()
		got = append(got, i)
		mu.Unlock()
	})
	recovered := make(chan bool, 4)
	c.OnRecover(func(stream string, ok bool) {
		if stream == "t:room" {
			recovered <- ok
		}
	})
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
	appended := func(nd *Node) uint64 { return nd.DS.Snapshot().HistoryAppends }

	<-tagged
	seq := 0
	send := func(nd *Node, k int) {
		for range k {
			if err := nd.DS.Send(datasole.ToTag("room"), "msg", seq); err != nil {
				t.Fatal(err)
			}
			seq++
		}
	}
	send(first, before)
	eventually(t, "the first events", func() bool { return count() == before })

	first.DS.CloseUser("u", datasole.CloseGoingAway, "cut") // the server cuts the connection
	<-disconnected
	base := appended(first)
	send(first, missed)
	eventually(t, "the missed events stored", func() bool { return appended(first)-base == missed })
	close(g.release) // the client reconnects, to the last node
	ok := <-recovered
	if ok != recoverable {
		t.Fatalf("recovered = %v, want %v", ok, recoverable)
	}
	<-tagged // back, on the last node
	send(last, after)

	want := make([]int, 0, before+missed+after)
	for i := range before + missed + after {
		if recoverable || i < before || i >= before+missed {
			want = append(want, i)
		}
	}
	eventually(t, fmt.Sprintf("%d events", len(want)), func() bool { return count() >= len(want) })
	// Frames to one connection keep their order: once a ping sent now is
	// answered, a duplicate queued before it would have arrived too.
	if _, err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("event %d is %d, want %d: out of order, lost or twice", i, got[i], want[i])
		}
	}
	if g.dialed.Load() < 2 {
		t.Fatal("the client never reconnected")
	}
}
