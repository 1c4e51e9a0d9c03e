package datasole_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/client"
	"github.com/datasole/datasole-go/datasole/crdt"
	"github.com/datasole/datasole-go/datasole/protocol"
)

func crdtServer(t *testing.T, o datasole.Options) *testServer {
	return startServer(t, o, func(ds *datasole.Server) {
		for key, typ := range map[string]string{"votes": crdt.TypePNCounter, "m": crdt.TypeLWWMap, "title": crdt.TypeLWWRegister} {
			if _, err := ds.RegisterCRDTType(key, datasole.Global(), typ); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func stateOf(t *testing.T, ds *datasole.Server, key string) crdt.State {
	c, ok := ds.CRDT(key)
	if !ok {
		t.Fatalf("no crdt %s", key)
	}
	return c.State()
}

func TestCRDTOpsFromRawFrames(t *testing.T) {
	ts := crdtServer(t, datasole.Options{})
	r := dialRaw(t, ts.url, nil)
	now := time.Now().UnixMilli()
	op := func(key, op string) {
		r.sendFrame(protocol.CRDTOp, 0, fmt.Sprintf(`{"key":%q,"op":%s}`, key, op))
	}
	t.Run("two +1 increments give exactly 2", func(t *testing.T) {
		op("votes", fmt.Sprintf(`{"type":"pn-counter","nodeId":"c1","timestamp":%d,"op":"increment","value":1}`, now))
		op("votes", fmt.Sprintf(`{"type":"pn-counter","nodeId":"c1","timestamp":%d,"op":"increment","value":1}`, now))
		eventually(t, "two ops applied", func() bool { return ts.ds.Snapshot().CRDTOps == 2 })
		if v := string(stateOf(t, ts.ds, "votes").Value); v != "2" {
			t.Fatalf("counter = %s, want 2", v)
		}
	})
	t.Run("an lww-map set of field f on key m gives {f: …}", func(t *testing.T) {
		op("m", fmt.Sprintf(`{"type":"lww-map","nodeId":"c1","timestamp":%d,"op":"set","key":"f","value":"blue"}`, now))
		eventually(t, "the set applied", func() bool { return string(stateOf(t, ts.ds, "m").Value) == `{"f":"blue"}` })
	})
	t.Run("a delete wins over an older concurrent set", func(t *testing.T) {
		op("m", fmt.Sprintf(`{"type":"lww-map","nodeId":"c2","timestamp":%d,"op":"remove","key":"f"}`, now+10))
		op("m", fmt.Sprintf(`{"type":"lww-map","nodeId":"c3","timestamp":%d,"op":"set","key":"f","value":"red"}`, now+5))
		eventually(t, "both ops applied", func() bool { return ts.ds.Snapshot().CRDTOps == 5 })
		if v := string(stateOf(t, ts.ds, "m").Value); v != `{}` {
			t.Fatalf("map = %s: an older set resurrected a deleted field", v)
		}
	})
	t.Run("a far-future timestamp is clamped to server time plus the skew", func(t *testing.T) {
		future := now + int64(365*24*time.Hour/time.Millisecond)
		op("title", fmt.Sprintf(`{"type":"lww-register","nodeId":"evil","timestamp":%d,"op":"set","value":"forever"}`, future))
		eventually(t, "the set applied", func() bool { return ts.ds.Snapshot().CRDTOps == 6 })
		if ts := stateOf(t, ts.ds, "title").Metadata.Timestamp; ts > time.Now().Add(2*time.Minute).UnixMilli() {
			t.Fatalf("timestamp %d was not clamped", ts)
		}
		// A later honest write (after the skew) wins again.
		later := time.Now().Add(2 * time.Minute).UnixMilli()
		op("title", fmt.Sprintf(`{"type":"lww-register","nodeId":"honest","timestamp":%d,"op":"set","value":"fixed"}`, later))
		eventually(t, "the honest write to win", func() bool { return string(stateOf(t, ts.ds, "title").Value) == `"fixed"` })
	})
	t.Run("invalid ops are refused with an ERROR frame", func(t *testing.T) {
		for _, bad := range []string{
			`{"key":"votes","op":{"type":"pn-counter","nodeId":"c1","timestamp":1,"op":"increment","value":-5}}`,
			`{"key":"votes","op":{"type":"pn-counter","nodeId":"c1","timestamp":1,"op":"increment","value":"7"}}`,
			`{"key":"votes","op":{"type":"lww-register","nodeId":"c1","timestamp":1,"op":"set","value":1}}`,
			`{"op":{"type":"pn-counter","nodeId":"c1","timestamp":1,"op":"increment"}}`,
			`{"key":"nope","op":{"type":"pn-counter","nodeId":"c1","timestamp":1,"op":"increment"}}`,
		} {
			r.sendFrame(protocol.CRDTOp, 0, bad)
			r.next(protocol.Error)
		}
		if v := string(stateOf(t, ts.ds, "votes").Value); v != "2" {
			t.Fatalf("counter = %s after invalid ops", v)
		}
	})
	t.Run("every connection receives the states on connect", func(t *testing.T) {
		late := dialRaw(t, ts.url, nil)
		seen := map[string]bool{}
		for len(seen) < 3 {
			var b protocol.CRDTStateBody
			json.Unmarshal(late.next(protocol.CRDTState).Payload, &b)
			seen[b.Key] = true
		}
	})
}

func TestCRDTKeyLimits(t *testing.T) {
	ts := crdtServer(t, datasole.Options{
		Auth: func(r *http.Request) (*datasole.Principal, error) {
			return &datasole.Principal{UserID: r.URL.Query().Get("token")}, nil
		},
		CRDT: datasole.CRDTOptions{
			MaxKeysPerUser: 2,
			AllowCreate:    func(c *datasole.Conn, key, typ string) bool { return true },
		}})
	dialUser := func(user string) *rawConn {
		return dialRawPath(t, ts.url, "/__ds?token="+user)
	}
	create := func(r *rawConn, key string) {
		r.sendFrame(protocol.CRDTOp, 0, fmt.Sprintf(`{"key":%q,"op":{"type":"pn-counter","nodeId":"g","timestamp":1,"op":"increment"}}`, key))
	}
	greedy := dialUser("greedy")
	t.Run("clients create only keys with the client prefix", func(t *testing.T) {
		create(greedy, "likes") // a name the application might register later
		if body := decodeJSON[protocol.ErrorBody](t, greedy.next(protocol.Error).Payload); body.Code != "crdt-unknown-key" {
			t.Fatalf("got %+v", body)
		}
		if _, ok := ts.ds.CRDT("likes"); ok {
			t.Fatal("a client squatted an application name")
		}
		if _, err := ts.ds.RegisterCRDTType("client:mine", datasole.Global(), crdt.TypePNCounter); err == nil {
			t.Fatal("the application registered a name in the clients' namespace")
		}
	})
	t.Run("the quota is per user and survives a reconnect", func(t *testing.T) {
		for i := range 3 {
			create(greedy, fmt.Sprint("client:k", i))
		}
		if body := decodeJSON[protocol.ErrorBody](t, greedy.next(protocol.Error).Payload); body.Code != "crdt-key-limit" {
			t.Fatalf("got %+v", body)
		}
		if _, ok := ts.ds.CRDT("client:k2"); ok {
			t.Fatal("a key over the limit was created")
		}
		greedy.ws.Close()
		again := dialUser("greedy")
		create(again, "client:k3")
		if body := decodeJSON[protocol.ErrorBody](t, again.next(protocol.Error).Payload); body.Code != "crdt-key-limit" {
			t.Fatalf("after a reconnect: %+v", body)
		}
	})
	t.Run("another user has a quota of their own", func(t *testing.T) {
		other := dial(t, ts.url, client.Options{Token: "other"})
		k, err := other.Counter("client:mine")
		if err != nil {
			t.Fatal(err)
		}
		k.Increment(context.Background(), 3)
		eventually(t, "another client to create its key", func() bool {
			c, ok := ts.ds.CRDT("client:mine")
			return ok && string(c.State().Value) == "3"
		})
	})
}

func TestGoClientCRDTs(t *testing.T) {
	ts := crdtServer(t, datasole.Options{})
	ctx := context.Background()
	a := dial(t, ts.url, client.Options{})
	b := dial(t, ts.url, client.Options{})
	ka, _ := a.Counter("votes")
	kb, _ := b.Counter("votes")
	for range 5 {
		ka.Increment(ctx, 1)
		kb.Increment(ctx, 2)
	}
	kb.Decrement(ctx, 1)
	eventually(t, "both replicas to converge on 14", func() bool { return ka.Value() == 14 && kb.Value() == 14 })
	eventually(t, "every op to be acknowledged", func() bool { return a.Pending() == 0 && b.Pending() == 0 })

	ma, _ := a.Map("m")
	mb, _ := b.Map("m")
	ma.Set(ctx, "color", "blue")
	eventually(t, "b to see the field", func() bool { v, ok := mb.Get("color"); return ok && string(v) == `"blue"` })
	time.Sleep(2 * time.Millisecond)
	mb.Delete(ctx, "color")
	eventually(t, "a to see the delete", func() bool { _, ok := ma.Get("color"); return !ok })
}

func TestCRDTOpsWrittenWhileDisconnectedAreSentAfterReconnect(t *testing.T) {
	ts := crdtServer(t, datasole.Options{})
	ctx := context.Background()
	conns := make(chan *datasole.Conn, 4)
	ts.ds.OnConnect(func(c *datasole.Conn) { conns <- c })
	dropped := make(chan struct{}, 1)
	c := dial(t, ts.url, client.Options{ReconnectInterval: 10 * time.Millisecond, OnStateChange: func(s client.State) {
		if s == client.Disconnected {
			select {
			case dropped <- struct{}{}:
			default:
			}
		}
	}})
	k, _ := c.Counter("votes")
	k.Increment(ctx, 1)
	eventually(t, "the first op acknowledged", func() bool { return c.Pending() == 0 })
	// Drop the link from the server side and write while it is down.
	(<-conns).Close(datasole.CloseGoingAway, "test")
	<-dropped // the client noticed
	k.Increment(ctx, 1)
	k.Increment(ctx, 1)
	eventually(t, "the server to count all three", func() bool {
		cr, _ := ts.ds.CRDT("votes")
		return string(cr.State().Value) == "3"
	})
	eventually(t, "the outbox to drain", func() bool { return c.Pending() == 0 })
	if k.Value() != 3 {
		t.Fatalf("local value %d", k.Value())
	}
	if _, err := ts.ds.RegisterCRDTType("votes", datasole.Global(), crdt.TypePNCounter); !errors.Is(err, datasole.ErrCRDTExists) {
		t.Fatalf("registering twice: %v", err)
	}
}
