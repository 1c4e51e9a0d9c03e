package datasole_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/datasole/datasole-go/datasole/client"
	"github.com/datasole/datasole-go/datasole/protocol"
)

// stalledBus is a memory backend whose bus hangs, the way a paused Redis
// does: Publish blocks until the bus is released (or its context ends).
type stalledBus struct {
	*backend.Memory
	mu        sync.Mutex
	stalled   chan struct{} // closed to release the bus
	published [][]byte
}

func newStalledBus(t *testing.T) *stalledBus {
	b := &stalledBus{Memory: backend.NewMemory(backend.MemoryOptions{}), stalled: make(chan struct{})}
	t.Cleanup(func() { b.release(); b.Memory.Close() })
	return b
}

func (b *stalledBus) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-b.stalled:
	default:
		close(b.stalled)
	}
}

func (b *stalledBus) Publish(ctx context.Context, channel string, msg []byte) error {
	select {
	case <-b.stalled:
	case <-ctx.Done():
		return ctx.Err()
	}
	b.mu.Lock()
	b.published = append(b.published, append([]byte(nil), msg...))
	b.mu.Unlock()
	return b.Memory.Publish(ctx, channel, msg)
}

// within fails the test unless fn returns within a generous bound: it is a
// check that fn does not wait on something that never comes, not a timing.
func within(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { fn(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s waited on the stalled bus", what)
	}
}

func TestCallersNeverWaitOnAStalledBus(t *testing.T) {
	b := newStalledBus(t)
	ts := startServer(t, datasole.Options{Backend: b}, nil)
	c := dial(t, ts.url, client.Options{})
	news := make(chan string, 100)
	c.On("news", func(d json.RawMessage) { news <- string(d) })
	ctx := context.Background()
	eventually(t, "the client attached", func() bool { return ts.ds.ConnectionCount() == 1 })

	for i := range 50 {
		within(t, "Broadcast", func() { ts.ds.Broadcast("news", i) })
	}
	within(t, "SetState", func() {
		if err := ts.ds.SetState(ctx, "dash", map[string]int{"n": 1}); err != nil {
			t.Error(err)
		}
	})
	for i := range 50 {
		select {
		case got := <-news:
			if got != fmt.Sprint(i) {
				t.Fatalf("event %d arrived as %s: local delivery is out of order", i, got)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("event %d never reached the local client", i)
		}
	}
	waitSynced(t, ts.ds, c, datasole.Global(), "dash", "the local client")

	// Once the bus is back, everything queued goes out in order, in few
	// publications.
	b.release()
	var events []string
	eventually(t, "the queued messages published", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		events = events[:0]
		for _, p := range b.published {
			events = append(events, busEvents(p)...)
		}
		return len(events) == 50
	})
	for i, e := range events {
		if e != fmt.Sprint(i) {
			t.Fatalf("published event %d is %s: the bus lost the order", i, e)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if n := len(b.published); n > 10 {
		t.Fatalf("%d publications for 51 messages queued during the stall, want them batched", n)
	}
}

// busEvents extracts the EVENT_S2C data of a bus payload (it carries the
// encoded frames verbatim).
func busEvents(payload []byte) []string {
	var out []string
	for i := 0; i+protocol.HeaderSize <= len(payload); i++ {
		if payload[i] != byte(protocol.EventS2C) {
			continue
		}
		f, err := protocol.ParseFrame(payload[i:])
		if err != nil {
			continue
		}
		var ev protocol.Event
		if json.Unmarshal(f.Payload, &ev) == nil && ev.Event == "news" {
			out = append(out, string(ev.Data))
			i += protocol.HeaderSize + len(f.Payload) - 1
		}
	}
	return out
}

func TestUpdateFunctionsMayUseTheServer(t *testing.T) {
	tagged := make(chan *datasole.Conn, 1)
	ts := startServer(t, datasole.Options{}, func(ds *datasole.Server) {
		ds.OnConnect(func(c *datasole.Conn) { tagged <- c })
	})
	c := dial(t, ts.url, client.Options{})
	conn := <-tagged
	ctx := context.Background()
	within(t, "an update whose function sets another key, tags and sends", func() {
		err := ts.ds.UpdateState(ctx, "a", func(old json.RawMessage) (any, error) {
			if err := ts.ds.SetState(ctx, "b", 1); err != nil {
				return nil, err
			}
			if err := ts.ds.SetStateIn(ctx, datasole.ForTag("room"), "c", 2); err != nil {
				return nil, err
			}
			conn.Tag("room")
			ts.ds.Broadcast("hello", nil)
			return 3, nil
		})
		if err != nil {
			t.Error(err)
		}
	})
	for _, k := range []struct {
		sc  datasole.Scope
		key string
	}{{datasole.Global(), "a"}, {datasole.Global(), "b"}, {datasole.ForTag("room"), "c"}} {
		waitSynced(t, ts.ds, c, k.sc, k.key, "the client")
	}
}

// countingStore counts reads and can make them hang until their context
// ends.
type countingStore struct {
	*backend.Memory
	gets     atomic.Int64
	batches  atomic.Int64 // GetMany calls
	batchLen atomic.Int64 // keys of the last one
	hang     atomic.Bool
}

func (b *countingStore) GetMany(ctx context.Context, keys []string) ([]backend.Versioned, error) {
	b.batches.Add(1)
	b.batchLen.Store(int64(len(keys)))
	if b.hang.Load() {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return b.Memory.GetMany(ctx, keys)
}

func (b *countingStore) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	b.gets.Add(1)
	if b.hang.Load() {
		<-ctx.Done()
		return nil, 0, ctx.Err()
	}
	return b.Memory.Get(ctx, key)
}

func TestResyncIsBoundedAndKeepsItsDeadline(t *testing.T) {
	b := &countingStore{Memory: backend.NewMemory(backend.MemoryOptions{})}
	t.Cleanup(func() { b.Memory.Close() })
	ts := startServer(t, datasole.Options{Backend: b, RPCTimeout: 300 * time.Millisecond}, nil)
	ctx := context.Background()
	if err := ts.ds.SetState(ctx, "k1", 1); err != nil {
		t.Fatal(err)
	}
	c := dial(t, ts.url, client.Options{})

	keys := make([]string, 0, 1024)
	for i := range 1024 {
		keys = append(keys, fmt.Sprintf("k%d", i%300)) // 300 distinct names, each several times
	}
	before, batches := b.gets.Load(), b.batches.Load()
	var res struct{ Keys int }
	if err := c.Call(ctx, datasole.ResyncMethod, map[string]any{"keys": keys}, &res); err != nil {
		t.Fatal(err)
	}
	if res.Keys != 256 {
		t.Fatalf("resync served %d keys, want the cap of 256 distinct ones", res.Keys)
	}
	// One batched read of two scopes (global and the user's) × 256 keys,
	// never the 2,049 reads of 1,024 duplicated keys.
	if n, m := b.gets.Load()-before, b.batches.Load()-batches; n != 0 || m != 1 || b.batchLen.Load() != 2*256 {
		t.Fatalf("resync made %d reads and %d batched reads of %d keys", n, m, b.batchLen.Load())
	}

	b.hang.Store(true)
	err := c.Call(ctx, datasole.ResyncMethod, map[string]any{"keys": []string{"k1"}}, nil)
	var de *datasole.Error
	if !errors.As(err, &de) || (de.Code != protocol.CodeUnavailable && de.Code != protocol.CodeTimeout) {
		t.Fatalf("resync on a hanging store = %v, want a retryable error at the call's deadline", err)
	}
}

func TestBackendFailuresAreRetryableErrors(t *testing.T) {
	b := &countingStore{Memory: backend.NewMemory(backend.MemoryOptions{})}
	t.Cleanup(func() { b.Memory.Close() })
	ts := startServer(t, datasole.Options{Backend: b, Auth: func(r *http.Request) (*datasole.Principal, error) {
		return &datasole.Principal{UserID: "ada"}, nil
	}}, func(ds *datasole.Server) {
		ds.HandleRPC("save", func(c *datasole.Context, p json.RawMessage) (any, error) {
			ctx, cancel := context.WithTimeout(c, 100*time.Millisecond)
			defer cancel()
			return nil, ds.SetStateIn(ctx, datasole.ForUser("someone-else"), "note", p)
		})
	})
	c := dial(t, ts.url, client.Options{})
	b.hang.Store(true)
	err := c.Call(context.Background(), "save", "hi", nil)
	var de *datasole.Error
	if !errors.As(err, &de) || de.Code != protocol.CodeUnavailable {
		t.Fatalf("a state update on a failing store = %v, want code %d", err, protocol.CodeUnavailable)
	}
	if !strings.Contains(de.Message, "retry") {
		t.Fatalf("message %q does not tell the caller to retry", de.Message)
	}
}
