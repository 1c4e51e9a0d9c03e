package datasole

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/datasole/datasole-go/datasole/protocol"
	"github.com/gorilla/websocket"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

func startInternal(t *testing.T, o Options) (*Server, *httptest.Server) {
	t.Helper()
	o.Logger = quietLog
	if o.Auth == nil {
		o.Auth = func(r *http.Request) (*Principal, error) { return &Principal{UserID: r.URL.Query().Get("u")}, nil }
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Close(ctx)
		hs.Close()
	})
	return s, hs
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestScopesLiveOnlyWhileTheyHaveLocalMembers(t *testing.T) {
	s, hs := startInternal(t, Options{})
	ctx := context.Background()
	for i := range 500 {
		if err := s.SetStateIn(ctx, ForUser(fmt.Sprint("u", i)), "cart", i); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(s.scopes.all()); n != 1 {
		t.Fatalf("%d scopes kept after writing 500 users' state with nobody connected, want only the global one", n)
	}
	if v, ver, ok := s.GetStateIn(ForUser("u7"), "cart"); !ok || string(v) != "7" || ver != 1 {
		t.Fatalf("a user's state not kept in memory is read from the store: %s v%d %v", v, ver, ok)
	}

	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(hs.URL, "http")+"/__ds?u=u7", nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, msg, err := ws.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	f, err := protocol.Decode(msg)
	var snap protocol.StateSnapshotBody
	if err != nil || f.Opcode != protocol.StateSnapshot || json.Unmarshal(f.Payload, &snap) != nil || snap.Key != "cart" || string(snap.Data) != "7" {
		t.Fatalf("a joining user got %v %s, want their stored cart as a snapshot", f.Opcode, f.Payload)
	}
	if n := len(s.scopes.all()); n != 2 {
		t.Fatalf("%d scopes with one user connected, want 2", n)
	}
	ws.Close()
	waitFor(t, "the connection to end", func() bool { return s.ConnectionCount() == 0 })
	waitFor(t, "the user's scope to be evicted", func() bool { return len(s.scopes.all()) == 1 })
}

// holdBus makes Publish wait until released.
type holdBus struct {
	*backend.Memory
	once    sync.Once
	release chan struct{}
}

func (b *holdBus) Publish(ctx context.Context, ch string, msg []byte) error {
	select {
	case <-b.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return b.Memory.Publish(ctx, ch, msg)
}

func TestAPublisherOverflowMakesTheOtherNodesReload(t *testing.T) {
	shared := backend.NewMemory(backend.MemoryOptions{})
	peer := backend.NewMemory(backend.MemoryOptions{Peer: shared})
	t.Cleanup(func() { shared.Close(); peer.Close() })
	held := &holdBus{Memory: shared, release: make(chan struct{})}
	a, _ := startInternal(t, Options{Backend: held})
	b, _ := startInternal(t, Options{Backend: peer})
	a.pub.mu.Lock()
	a.pub.limit = 1 // nothing fits: every message of a overflows
	a.pub.mu.Unlock()

	ctx := context.Background()
	for i := 1; i <= 3; i++ {
		if err := a.SetState(ctx, "k", i); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, ok := b.GetState("k"); ok {
		t.Fatal("b knows the key although every bus message was dropped")
	}
	close(held.release)
	waitFor(t, "b to reload after the gap announcement", func() bool {
		v, ver, ok := b.GetState("k")
		return ok && string(v) == "3" && ver == 3
	})
	if b.Snapshot().BusGaps == 0 {
		t.Fatal("b did not count the gap")
	}
}
