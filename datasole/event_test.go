package datasole_test

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"net/http"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/client"
	"github.com/datasole/datasole-go/datasole/protocol"
)

type chatMsg struct {
	Text string `json:"text"`
	From string `json:"from,omitempty"`
}

var (
	chatSend    = datasole.NewEvent[chatMsg]("chat:send")
	chatMessage = datasole.NewEvent[chatMsg]("chat:message")
)

// collector gathers events a client receives.
type collector struct {
	mu  sync.Mutex
	got []string
}

func (c *collector) add(s string) { c.mu.Lock(); c.got = append(c.got, s); c.mu.Unlock() }
func (c *collector) list() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.got...)
}

func listen(c *client.Client, event string) *collector {
	col := &collector{}
	c.On(event, func(data json.RawMessage) { col.add(string(data)) })
	return col
}

func TestEvents(t *testing.T) {
	var senders sync.Map
	ts := startServer(t, datasole.Options{}, func(ds *datasole.Server) {
		chatSend.Handle(ds, func(c *datasole.Context, m chatMsg) {
			senders.Store(m.Text, c.ConnID())
			chatMessage.Broadcast(ds, chatMsg{Text: m.Text, From: c.UserID()})
		})
	})
	a := dial(t, ts.url, client.Options{})
	b := dial(t, ts.url, client.Options{})
	var gotA, gotB atomic.Int32
	chatMessage.Listen(a, func(m chatMsg) { gotA.Add(1) })
	chatMessage.Listen(b, func(m chatMsg) {
		if m.Text == "hi" && m.From != "" {
			gotB.Add(1)
		}
	})
	rawEcho := listen(b, "chat:send")
	eventually(t, "both connections attached", func() bool { return ts.ds.ConnectionCount() == 2 })

	if err := chatSend.Emit(context.Background(), a, chatMsg{Text: "hi"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "both clients to get the server's broadcast", func() bool { return gotA.Load() == 1 && gotB.Load() == 1 })
	if v, ok := senders.Load("hi"); !ok || v == "" {
		t.Fatal("the event handler did not see the sender's connection")
	}
	// Frames to one connection arrive in order: once the answer to a ping
	// sent now is back, anything queued for b before it has arrived too.
	if _, err := b.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(rawEcho.list()) != 0 {
		t.Fatal("a client event reached another client without server code sending it")
	}
}

func TestEventNamesAreValidated(t *testing.T) {
	ts := startServer(t, datasole.Options{MaxEventNameLength: 8}, func(ds *datasole.Server) {
		ds.On("ok", func(*datasole.Context, json.RawMessage) {})
	})
	r := dialRaw(t, ts.url, nil)
	r.sendFrame(protocol.EventC2S, 0, `{"event":"much-too-long-name","data":1}`)
	f := r.next(protocol.Error)
	if body := decodeJSON[protocol.ErrorBody](t, f.Payload); body.Code != "bad-event-name" {
		t.Fatalf("got %s", f.Payload)
	}
	r.sendFrame(protocol.EventC2S, 0, `{"event":""}`)
	r.next(protocol.Error)
}

func TestTargetedSends(t *testing.T) {
	users := map[string]string{"alice-1": "alice", "alice-2": "alice", "bob": "bob"}
	ts := startServer(t, datasole.Options{
		Auth: func(r *http.Request) (*datasole.Principal, error) {
			return &datasole.Principal{UserID: users[r.URL.Query().Get("token")]}, nil
		},
	}, func(ds *datasole.Server) {
		ds.HandleRPC("join", func(c *datasole.Context, p json.RawMessage) (any, error) {
			var room string
			json.Unmarshal(p, &room)
			c.Conn().Tag(room)
			return c.ConnID(), nil
		})
	})
	cols := map[string]*collector{}
	conns := map[string]string{}
	for token := range users {
		c := dial(t, ts.url, client.Options{Token: token})
		cols[token] = listen(c, "note")
		var id string
		room := "lobby"
		if token == "bob" {
			room = "kitchen"
		}
		if err := c.Call(context.Background(), "join", room, &id); err != nil {
			t.Fatal(err)
		}
		conns[token] = id
	}
	ds := ts.ds
	ds.Send(datasole.ToConn(conns["alice-2"]), "note", "conn")
	ds.Send(datasole.ToUser("alice"), "note", "user")
	ds.Send(datasole.ToTag("kitchen"), "note", "tag")
	ds.Broadcast("note", "all")

	want := map[string][]string{
		"alice-1": {`"user"`, `"all"`},
		"alice-2": {`"conn"`, `"user"`, `"all"`},
		"bob":     {`"tag"`, `"all"`},
	}
	for token, w := range want {
		eventually(t, token+" to receive its notes", func() bool { return len(cols[token].list()) >= len(w) })
		time.Sleep(20 * time.Millisecond)
		got := cols[token].list()
		if len(got) != len(w) {
			t.Fatalf("%s got %v, want %v", token, got, w)
		}
		for i := range w {
			if got[i] != w[i] {
				t.Fatalf("%s got %v, want %v (in order)", token, got, w)
			}
		}
	}
}

func TestPingIsAnsweredWithPongOfTheSameID(t *testing.T) {
	ts := startServer(t, datasole.Options{}, nil)
	r := dialRaw(t, ts.url, nil)
	r.sendFrame(protocol.Ping, 4242, "")
	f := r.next(protocol.Pong)
	if f.CorrelationID != 4242 || string(f.Payload) != "null" {
		t.Fatalf("pong id %d payload %q", f.CorrelationID, f.Payload)
	}
	c := dial(t, ts.url, client.Options{})
	if _, err := c.Ping(context.Background()); err != nil {
		t.Fatalf("client ping: %v", err)
	}
}
