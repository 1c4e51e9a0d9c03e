package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole/client"
)

// TestDemo runs the demo on a loopback port and uses it as the page does:
// the page and the browser runtime load, and two Go clients call the RPCs,
// chat, like and watch the dashboard.
func TestDemo(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, ln, quiet) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	url := "http://" + ln.Addr().String()

	for path, want := range map[string]string{
		"/":                          "datasole demo",
		"/app.js":                    "DatasoleClient",
		"/__ds/datasole.iife.min.js": "Datasole",
	} {
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Fatalf("GET %s: %d, %d bytes without %q", path, resp.StatusCode, len(body), want)
		}
	}

	wait, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	dial := func() *client.Client {
		c, err := client.Dial(wait, url, client.Options{Logger: quiet, NoReconnect: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := dial(), dial()

	sum, err := Add.Call(wait, a, AddParams{A: 2, B: 3})
	if err != nil || sum.Sum != 5 {
		t.Fatalf("add = %+v, %v; want 5", sum, err)
	}
	me, err := WhoAmI.Call(wait, a, struct{}{})
	if err != nil || me.ConnectionID == "" || !strings.Contains(me.UserID, me.ConnectionID) {
		t.Fatalf("whoami = %+v, %v; want an anonymous user named for its connection", me, err)
	}

	chat := make(chan ChatMessage, 1)
	ChatMessageEvent.Listen(b, func(m ChatMessage) { chat <- m })
	// An answered call shows the server has attached b, so b gets the broadcast.
	if _, err := WhoAmI.Call(wait, b, struct{}{}); err != nil {
		t.Fatal(err)
	}
	if err := ChatSendEvent.Emit(wait, a, ChatSend{Text: " hello "}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-chat:
		if m.Text != "hello" || m.From != me.UserID {
			t.Fatalf("chat:message = %+v, want hello from %s", m, me.UserID)
		}
	case <-wait.Done():
		t.Fatal("no chat:message")
	}

	changed := make(chan struct{}, 1)
	notify := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	DashboardState.Subscribe(a, func(Dashboard) { notify() })
	seen, err := a.Counter(LikesKey) // the replica OnCRDT watches
	if err != nil {
		t.Fatal(err)
	}
	a.OnCRDT(LikesKey, notify)
	likes, err := b.Counter(LikesKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := likes.Increment(wait, 1); err != nil {
		t.Fatal(err)
	}
	for {
		d, _ := DashboardState.Value(a)
		if d.Connections == 2 && d.Messages == 1 && seen.Value() == 1 {
			return
		}
		select {
		case <-changed:
		case <-wait.Done():
			t.Fatalf("dashboard %+v and likes %d, want 2 connections, 1 message, 1 like", d, seen.Value())
		}
	}
}
