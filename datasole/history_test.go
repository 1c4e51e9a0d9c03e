package datasole_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/datasole/datasole-go/datasole/protocol"
)

// keptEvent reads EVENT_S2C frames from r until one named name arrives.
func keptEvent(t *testing.T, r *rawConn, name string) protocol.Event {
	t.Helper()
	for {
		f := r.next(protocol.EventS2C)
		ev := decodeJSON[protocol.Event](t, f.Payload)
		if ev.Event == name {
			return ev
		}
	}
}

func TestKeptEventsCarryPositionsAndCanBeRecovered(t *testing.T) {
	ts := startServer(t, datasole.Options{Auth: byToken}, func(ds *datasole.Server) {
		if err := ds.KeepHistory(datasole.ToTag("room:*"), datasole.History{Size: 100}); err != nil {
			t.Fatal(err)
		}
		ds.HandleRPC("join", func(c *datasole.Context, p json.RawMessage) (any, error) {
			var tag string
			json.Unmarshal(p, &tag)
			c.Conn().Tag(tag)
			return nil, nil
		})
	})
	ctx := context.Background()
	r := dialRawPath(t, ts.url, "/__ds?token=ada")
	r.sendFrame(protocol.RPCReq, 1, `{"method":"join","params":"room:1","correlationId":1}`)
	r.next(protocol.RPCRes)

	for i := range 5 {
		if err := ts.ds.Send(datasole.ToTag("room:1"), "msg", i); err != nil {
			t.Fatal(err)
		}
	}
	var last protocol.StreamPos
	for i := range 5 {
		ev := keptEvent(t, r, "msg")
		if ev.Pos == nil || ev.Pos.Stream != "t:room:1" || ev.Pos.Offset != uint64(i+1) || string(ev.Data) != fmt.Sprint(i) {
			t.Fatalf("event %d: %s at %+v", i, ev.Data, ev.Pos)
		}
		last = *ev.Pos
	}
	t.Run("an event to an unkept target has no position", func(t *testing.T) {
		ts.ds.Send(datasole.ToUser("ada"), "plain", 1)
		if ev := keptEvent(t, r, "plain"); ev.Pos != nil {
			t.Fatalf("position %+v", ev.Pos)
		}
	})
	t.Run("History reads the stream server-side", func(t *testing.T) {
		events, top, err := ts.ds.History(ctx, datasole.ToTag("room:1"), backend.Position{Epoch: last.Epoch, Offset: 2}, 0)
		if err != nil || len(events) != 3 || top.Offset != 5 || events[0].Position.Offset != 3 || string(events[2].Data) != "4" {
			t.Fatalf("%+v top %+v: %v", events, top, err)
		}
	})
	t.Run("a recovery replays what was missed before its answer", func(t *testing.T) {
		req := fmt.Sprintf(`{"method":"$ds.recover","params":{"streams":{"t:room:1":{"e":%q,"o":2}}},"correlationId":2}`, last.Epoch)
		r.sendFrame(protocol.RPCReq, 2, req)
		for want := uint64(3); want <= 5; want++ {
			ev := keptEvent(t, r, "msg")
			if ev.Pos.Offset != want {
				t.Fatalf("replayed offset %d, want %d", ev.Pos.Offset, want)
			}
		}
		res := decodeJSON[protocol.RPCResponse](t, r.next(protocol.RPCRes).Payload)
		var body struct {
			Streams map[string]struct {
				Recovered bool   `json:"recovered"`
				E         string `json:"e"`
				O         uint64 `json:"o"`
			}
		}
		json.Unmarshal(res.Result, &body)
		if s := body.Streams["t:room:1"]; !s.Recovered || s.O != 5 || s.E != last.Epoch {
			t.Fatalf("answer %s", res.Result)
		}
	})
	t.Run("a position past the window is not recoverable", func(t *testing.T) {
		for i := range 150 { // Size 100: offsets 1..50 are trimmed
			ts.ds.Send(datasole.ToTag("room:1"), "msg", 100+i)
		}
		for range 150 {
			keptEvent(t, r, "msg")
		}
		r.sendFrame(protocol.RPCReq, 3, fmt.Sprintf(`{"method":"$ds.recover","params":{"streams":{"t:room:1":{"e":%q,"o":5}}},"correlationId":3}`, last.Epoch))
		res := decodeJSON[protocol.RPCResponse](t, r.next(protocol.RPCRes).Payload)
		if string(res.Result) == "" || !json.Valid(res.Result) || contains(res.Result, `"recovered":true`) {
			t.Fatalf("answer %s, want recovered false", res.Result)
		}
		if s := ts.ds.Snapshot(); s.RecoveriesFailed != 1 || s.Recoveries != 1 || s.HistoryAppends != 155 {
			t.Fatalf("counters: %d recovered, %d failed, %d appended", s.Recoveries, s.RecoveriesFailed, s.HistoryAppends)
		}
	})
	t.Run("a stream the connection may not see is not replayed", func(t *testing.T) {
		r.sendFrame(protocol.RPCReq, 4, fmt.Sprintf(`{"method":"$ds.recover","params":{"streams":{"t:room:2":{"e":%q,"o":0}}},"correlationId":4}`, last.Epoch))
		res := decodeJSON[protocol.RPCResponse](t, r.next(protocol.RPCRes).Payload)
		if !contains(res.Result, `"visible":false`) {
			t.Fatalf("answer %s", res.Result)
		}
	})
}

func contains(b []byte, s string) bool { return bytes.Contains(b, []byte(s)) }

func TestKeepHistoryNeedsABackendThatKeepsIt(t *testing.T) {
	type plain struct{ backend.Backend } // hides the memory backend's History
	mem := backend.NewMemory(backend.MemoryOptions{})
	defer mem.Close()
	ds := mustServer(t, datasole.Options{Backend: plain{mem}})
	if err := ds.KeepHistory(datasole.ToAll(), datasole.History{}); !errors.Is(err, datasole.ErrNoHistory) {
		t.Fatalf("KeepHistory = %v", err)
	}
	if err := ds.Start(context.Background()); !errors.Is(err, datasole.ErrNoHistory) {
		t.Fatalf("Start = %v, want the registration error", err)
	}
}

func TestPresenceListsJoinsAndLeaves(t *testing.T) {
	ts := startServer(t, datasole.Options{Auth: byToken}, func(ds *datasole.Server) {
		if err := ds.TrackPresence("room:*", datasole.PresenceOptions{Events: true,
			Info: func(c *datasole.Conn) any { return map[string]string{"name": c.UserID()} }}); err != nil {
			t.Fatal(err)
		}
		ds.HandleRPC("join", func(c *datasole.Context, p json.RawMessage) (any, error) {
			var tag string
			json.Unmarshal(p, &tag)
			c.Conn().Tag(tag)
			return nil, nil
		})
	})
	ctx := context.Background()
	join := func(user string) *rawConn {
		r := dialRawPath(t, ts.url, "/__ds?token="+user)
		r.sendFrame(protocol.RPCReq, 1, `{"method":"join","params":"room:1","correlationId":1}`)
		r.next(protocol.RPCRes)
		return r
	}
	ada := join("ada")
	bob := join("bob")
	ev := keptEvent(t, ada, "$ds.join")
	if !contains(ev.Data, `"user":"bob"`) || !contains(ev.Data, `"name":"bob"`) {
		t.Fatalf("join event %s", ev.Data)
	}
	eventually(t, "both listed", func() bool {
		es, err := ts.ds.Presence(ctx, "room:1")
		return err == nil && len(es) == 2
	})
	if st, err := ts.ds.PresenceStats(ctx, "room:1"); err != nil || st.Connections != 2 || st.Users != 2 {
		t.Fatalf("stats %+v %v", st, err)
	}
	ada.sendFrame(protocol.RPCReq, 5, `{"method":"$ds.presence","params":{"tag":"room:1"},"correlationId":5}`)
	if res := decodeJSON[protocol.RPCResponse](t, ada.next(protocol.RPCRes).Payload); !contains(res.Result, `"user":"bob"`) {
		t.Fatalf("$ds.presence answered %s", res.Result)
	}
	outsider := dialRawPath(t, ts.url, "/__ds?token=eve")
	outsider.sendFrame(protocol.RPCReq, 6, `{"method":"$ds.presence","params":{"tag":"room:1"},"correlationId":6}`)
	if res := decodeJSON[protocol.RPCResponse](t, outsider.next(protocol.RPCRes).Payload); res.Error == nil || res.Error.Code != datasole.CodeNotMember {
		t.Fatalf("a non-member listed the room: %+v", res)
	}
	bob.ws.Close()
	ev = keptEvent(t, ada, "$ds.leave")
	if !contains(ev.Data, `"user":"bob"`) {
		t.Fatalf("leave event %s", ev.Data)
	}
	eventually(t, "bob gone from the list", func() bool {
		es, err := ts.ds.Presence(ctx, "room:1")
		return err == nil && len(es) == 1 && es[0].UserID == "ada"
	})
	if _, err := ts.ds.Presence(ctx, "lobby"); !errors.Is(err, datasole.ErrNoPresence) {
		t.Fatalf("an untracked tag: %v", err)
	}
}
