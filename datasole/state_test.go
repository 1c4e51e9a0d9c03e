package datasole_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/client"
	"github.com/datasole/datasole-go/datasole/protocol"
	"pgregory.net/rapid"
)

func jsonEqual(a, b json.RawMessage) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// waitSynced waits until client c holds the server's version of key and
// checks that its value is the server's.
func waitSynced(t interface{ Fatalf(string, ...any) }, ds *datasole.Server, c *client.Client, sc datasole.Scope, key, who string) {
	want, ver, _ := ds.GetStateIn(sc, key)
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, gotVer, _ := c.StateRaw(key)
		if gotVer == ver && jsonEqual(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: client has v%d %s, server has v%d %s", who, gotVer, got, ver, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// genJSON draws JSON values of every shape the diff must handle: objects,
// arrays that grow, shrink and gain elements at the front, numbers, strings,
// booleans, null and changes of type.
func genJSON(depth int) *rapid.Generator[any] {
	return rapid.Custom(func(t *rapid.T) any {
		kinds := 6
		if depth <= 0 {
			kinds = 4
		}
		switch rapid.IntRange(0, kinds-1).Draw(t, "kind") {
		case 0:
			return rapid.Float64Range(-1e6, 1e6).Draw(t, "num")
		case 1:
			return rapid.StringMatching(`[a-z~/ é]{0,6}`).Draw(t, "str")
		case 2:
			return rapid.Bool().Draw(t, "bool")
		case 3:
			return nil
		case 4:
			return rapid.SliceOfN(genJSON(depth-1), 0, 5).Draw(t, "arr")
		default:
			return rapid.MapOfN(rapid.StringMatching(`[a-c~/]{1,3}`), genJSON(depth-1), 0, 5).Draw(t, "obj")
		}
	})
}

func TestLiveStateConvergesForEveryClientIncludingLateJoiners(t *testing.T) {
	ts := startServer(t, datasole.Options{}, nil)
	early := dial(t, ts.url, client.Options{})
	ctx := context.Background()
	step := 0
	rapid.Check(t, func(rt *rapid.T) {
		key := fmt.Sprintf("k%d", step)
		step++
		values := rapid.SliceOfN(genJSON(3), 1, 12).Draw(rt, "values")
		joinAt := rapid.IntRange(0, len(values)-1).Draw(rt, "joinAt")
		var late *client.Client
		for i, v := range values {
			if i == joinAt {
				c, err := client.Dial(ctx, ts.url, client.Options{Logger: discardLogger()})
				if err != nil {
					rt.Fatal(err)
				}
				late = c
			}
			if v == nil && i%2 == 1 {
				v = json.RawMessage("null") // null is a value, distinct from delete
			}
			if err := ts.ds.SetState(ctx, key, v); err != nil {
				rt.Fatalf("set %v: %v", v, err)
			}
			waitSynced(rt, ts.ds, early, datasole.Global(), key, "early client")
			if late != nil {
				waitSynced(rt, ts.ds, late, datasole.Global(), key, "late joiner")
			}
		}
		late.Close()
	})
}

func TestLiveStateVersions(t *testing.T) {
	ts := startServer(t, datasole.Options{}, nil)
	ctx := context.Background()
	ds := ts.ds
	t.Run("each change adds one to the version and an unchanged value adds none", func(t *testing.T) {
		ds.SetState(ctx, "v", map[string]int{"n": 1})
		ds.SetState(ctx, "v", map[string]int{"n": 2})
		ds.SetState(ctx, "v", map[string]int{"n": 2})
		if _, ver, _ := ds.GetState("v"); ver != 2 {
			t.Fatalf("version %d, want 2", ver)
		}
	})
	t.Run("values are stored as copies", func(t *testing.T) {
		m := map[string]int{"n": 1}
		ds.SetState(ctx, "copy", m)
		m["n"] = 99 // mutating the caller's map must not change the state
		ds.SetState(ctx, "copy", m)
		got, ver, _ := ds.GetState("copy")
		if string(got) != `{"n":99}` || ver != 2 {
			t.Fatalf("got %s v%d: in-place mutation was invisible", got, ver)
		}
	})
	t.Run("concurrent updates of one key are serialized", func(t *testing.T) {
		var wg sync.WaitGroup
		for range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ds.UpdateState(ctx, "counter", func(old json.RawMessage) (any, error) {
					var n int
					json.Unmarshal(old, &n)
					return n + 1, nil
				})
			}()
		}
		wg.Wait()
		if got, ver, _ := ds.GetState("counter"); string(got) != "100" || ver != 100 {
			t.Fatalf("counter = %s v%d, want 100 v100", got, ver)
		}
	})
	t.Run("forbidden member names are refused and nothing is stored", func(t *testing.T) {
		for _, v := range []string{`{"__proto__":1}`, `{"a":{"constructor":{}}}`, `[{"prototype":0}]`} {
			err := ds.SetState(ctx, "evil", json.RawMessage(v))
			if !errors.Is(err, datasole.ErrForbiddenKey) {
				t.Fatalf("%s: got %v", v, err)
			}
		}
		if err := ds.SetState(ctx, "constructor", 1); !errors.Is(err, datasole.ErrForbiddenKey) {
			t.Fatalf("key constructor: got %v", err)
		}
		if _, _, ok := ds.GetState("evil"); ok {
			t.Fatal("a refused value was stored")
		}
	})
	t.Run("a value too large for a frame is refused before it is stored", func(t *testing.T) {
		err := ds.SetState(ctx, "huge", string(bytes.Repeat([]byte("x"), protocol.MaxPayload)))
		if !errors.Is(err, datasole.ErrStateTooLarge) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestLiveStateWireFrames(t *testing.T) {
	ts := startServer(t, datasole.Options{}, nil)
	ctx := context.Background()
	ts.ds.SetState(ctx, "dash", map[string]int{"n": 0})
	r := dialRaw(t, ts.url, nil)
	t.Run("a joining connection gets a snapshot with the version", func(t *testing.T) {
		f := r.next(protocol.StateSnapshot)
		if string(f.Payload) != `{"key":"dash","data":{"n":0},"version":1}` {
			t.Fatalf("snapshot %s", f.Payload)
		}
	})
	t.Run("a change arrives as one STATE_PATCH with the new version", func(t *testing.T) {
		ts.ds.SetState(ctx, "dash", map[string]int{"n": 1})
		f := r.next(protocol.StatePatch)
		if string(f.Payload) != `{"key":"dash","patches":[{"op":"replace","path":"/n","value":1}],"version":2}` {
			t.Fatalf("patch %s", f.Payload)
		}
	})
	t.Run("a primitive root is one root replace", func(t *testing.T) {
		ts.ds.SetState(ctx, "num", 5)
		r.next(protocol.StatePatch)
		ts.ds.SetState(ctx, "num", 6)
		f := r.next(protocol.StatePatch)
		if string(f.Payload) != `{"key":"num","patches":[{"op":"replace","path":"","value":6}],"version":2}` {
			t.Fatalf("patch %s", f.Payload)
		}
	})
	t.Run("deleting a key sends null with version 0", func(t *testing.T) {
		ts.ds.DeleteState(ctx, "num")
		f := r.next(protocol.StateSnapshot)
		if string(f.Payload) != `{"key":"num","data":null}` {
			t.Fatalf("snapshot %s", f.Payload)
		}
	})
}

func TestStateScopes(t *testing.T) {
	ts := startServer(t, datasole.Options{Auth: func(r *http.Request) (*datasole.Principal, error) {
		return &datasole.Principal{UserID: r.URL.Query().Get("token")}, nil
	}}, func(ds *datasole.Server) {
		ds.HandleRPC("join", func(c *datasole.Context, p json.RawMessage) (any, error) {
			var room string
			json.Unmarshal(p, &room)
			c.Conn().Tag(room)
			return nil, nil
		})
	})
	ctx := context.Background()
	ds := ts.ds
	ds.SetStateIn(ctx, datasole.ForUser("alice"), "cart", []string{"apple"})
	ds.SetStateIn(ctx, datasole.ForUser("bob"), "cart", []string{"bread"})
	ds.SetStateIn(ctx, datasole.ForTag("vip"), "lounge", map[string]bool{"open": true})

	alice := dial(t, ts.url, client.Options{Token: "alice"})
	bob := dial(t, ts.url, client.Options{Token: "bob"})
	waitSynced(t, ds, alice, datasole.ForUser("alice"), "cart", "alice")
	waitSynced(t, ds, bob, datasole.ForUser("bob"), "cart", "bob")

	ds.SetStateIn(ctx, datasole.ForUser("alice"), "cart", []string{"apple", "pear"})
	waitSynced(t, ds, alice, datasole.ForUser("alice"), "cart", "alice")
	if got, _, _ := bob.StateRaw("cart"); string(got) != `["bread"]` {
		t.Fatalf("bob sees %s: another user's key leaked", got)
	}
	if _, _, ok := alice.StateRaw("lounge"); ok {
		t.Fatal("a tag key reached a connection without the tag")
	}
	if err := bob.Call(ctx, "join", "vip", nil); err != nil {
		t.Fatal(err)
	}
	waitSynced(t, ds, bob, datasole.ForTag("vip"), "lounge", "bob after joining vip")
	ds.SetStateIn(ctx, datasole.ForTag("vip"), "lounge", map[string]bool{"open": false})
	waitSynced(t, ds, bob, datasole.ForTag("vip"), "lounge", "bob in vip")
	time.Sleep(20 * time.Millisecond)
	if _, _, ok := alice.StateRaw("lounge"); ok {
		t.Fatal("a tag key reached a connection without the tag")
	}
}

func TestSyncChannels(t *testing.T) {
	ctx := context.Background()
	// patchesUntilPong reads every STATE_PATCH queued for r before the PONG
	// of a PING sent now: frames to one connection keep their order.
	patchesUntilPong := func(t *testing.T, r *rawConn) (patches []protocol.Frame) {
		r.sendFrame(protocol.Ping, 77, "null")
		for {
			_, msg, err := r.ws.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			f, _ := protocol.Decode(msg)
			switch f.Opcode {
			case protocol.Pong:
				return patches
			case protocol.StatePatch:
				f.Payload = append([]byte(nil), f.Payload...)
				patches = append(patches, f)
			}
		}
	}
	t.Run("batched changes are coalesced into one STATE_PATCH per flush", func(t *testing.T) {
		ts := startServer(t, datasole.Options{}, func(ds *datasole.Server) {
			ds.ConfigureState("b", datasole.StateOptions{Flush: datasole.Batched(time.Hour, 10)})
		})
		r := dialRaw(t, ts.url, nil)
		eventually(t, "the connection to be attached", func() bool { return ts.ds.ConnectionCount() == 1 })
		for i := 1; i <= 10; i++ {
			ts.ds.SetState(ctx, "b", make([]int, i))
		}
		got := patchesUntilPong(t, r)
		if len(got) != 1 {
			t.Fatalf("%d STATE_PATCH frames, want 1", len(got))
		}
		body := decodeJSON[struct {
			Patches []any
			Version uint64
			Base    *uint64
		}](t, got[0].Payload)
		if len(body.Patches) != 10 || body.Version != 10 || body.Base == nil || *body.Base != 0 {
			t.Fatalf("flush %s", got[0].Payload)
		}
	})
	t.Run("a batch flushes early when it reaches its size", func(t *testing.T) {
		ts := startServer(t, datasole.Options{}, func(ds *datasole.Server) {
			ds.ConfigureState("b", datasole.StateOptions{Flush: datasole.Batched(time.Hour, 5)})
		})
		r := dialRaw(t, ts.url, nil)
		eventually(t, "the connection to be attached", func() bool { return ts.ds.ConnectionCount() == 1 })
		for i := 1; i <= 10; i++ {
			ts.ds.SetState(ctx, "b", i)
		}
		if n := len(patchesUntilPong(t, r)); n != 2 {
			t.Fatalf("%d flushes, want 2", n)
		}
	})
	// Timing of batches and debounces, on synctest's clock: the sleeps move
	// it exactly, however busy the machine is. Flushes are counted by the
	// observer (a push with no connection is still one).
	flushes := func(t *testing.T, strategy datasole.FlushStrategy, sets func(set func(int))) int {
		var n atomic.Int32
		synctest.Test(t, func(t *testing.T) {
			ds, err := datasole.New(quietOptions(datasole.Options{HeartbeatInterval: -1, Observer: patchCounter{n: &n}}))
			if err != nil {
				t.Fatal(err)
			}
			ds.ConfigureState("k", datasole.StateOptions{Flush: strategy})
			if err := ds.Start(ctx); err != nil {
				t.Fatal(err)
			}
			sets(func(v int) {
				if err := ds.SetState(ctx, "k", v); err != nil {
					t.Fatal(err)
				}
			})
			time.Sleep(time.Second)
			ds.Close(ctx)
		})
		return int(n.Load())
	}
	t.Run("debounced changes flush once quiet", func(t *testing.T) {
		n := flushes(t, datasole.Debounced(60*time.Millisecond), func(set func(int)) {
			for i := range 5 {
				set(i)
				time.Sleep(10 * time.Millisecond)
			}
		})
		if n != 1 {
			t.Fatalf("%d flushes, want 1", n)
		}
	})
	t.Run("a pause longer than the quiet time flushes twice", func(t *testing.T) {
		n := flushes(t, datasole.Debounced(60*time.Millisecond), func(set func(int)) {
			set(1)
			time.Sleep(100 * time.Millisecond)
			set(2)
		})
		if n != 2 {
			t.Fatalf("%d flushes, want 2", n)
		}
	})
	t.Run("batched changes flush once per interval", func(t *testing.T) {
		n := flushes(t, datasole.Batched(50*time.Millisecond, 0), func(set func(int)) {
			for i := range 10 { // 10 changes over 90 ms: two intervals
				set(i)
				time.Sleep(10 * time.Millisecond)
			}
		})
		if n != 2 {
			t.Fatalf("%d flushes, want 2", n)
		}
	})
	t.Run("a late joiner during a batch still ends equal", func(t *testing.T) {
		ts := startServer(t, datasole.Options{}, func(ds *datasole.Server) {
			ds.ConfigureState("b", datasole.StateOptions{Flush: datasole.Batched(80*time.Millisecond, 0)})
		})
		ts.ds.SetState(ctx, "b", []int{1})
		time.Sleep(120 * time.Millisecond)
		ts.ds.SetState(ctx, "b", []int{0, 1})
		c := dial(t, ts.url, client.Options{})
		ts.ds.SetState(ctx, "b", []int{0, 1, 2})
		waitSynced(t, ts.ds, c, datasole.Global(), "b", "late joiner")
	})
	t.Run("pending patches are flushed on close", func(t *testing.T) {
		ts := startServer(t, datasole.Options{}, func(ds *datasole.Server) {
			ds.ConfigureState("b", datasole.StateOptions{Flush: datasole.Batched(time.Hour, 0)})
		})
		r := dialRaw(t, ts.url, nil)
		eventually(t, "the connection to be attached", func() bool { return ts.ds.ConnectionCount() == 1 })
		ts.ds.SetState(ctx, "b", 1)
		go ts.ds.Close(ctx)
		r.next(protocol.StatePatch)
	})
}

// patchCounter counts STATE_PATCH pushes.
type patchCounter struct {
	datasole.NopObserver
	n *atomic.Int32
}

func (p patchCounter) Fanout(op protocol.Opcode, _ int) {
	if op == protocol.StatePatch {
		p.n.Add(1)
	}
}
