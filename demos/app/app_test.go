package app_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/client"
	"github.com/datasole/datasole-go/demos/app"
	"github.com/datasole/datasole-go/demos/contract"
)

func TestDemoApp(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ds, err := datasole.New(datasole.Options{Auth: datasole.Anonymous, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := ds.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := app.Setup(ds); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(ds.Handler())
	defer hs.Close()
	defer ds.Close(context.Background())
	ctx := context.Background()
	a, err := client.Dial(ctx, hs.URL, client.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := client.Dial(ctx, hs.URL, client.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	sum, err := contract.Add.Call(ctx, a, contract.AddParams{A: 2, B: 3})
	if err != nil || sum.Sum != 5 {
		t.Fatalf("add: %v %v", sum, err)
	}
	me, err := contract.WhoAmI.Call(ctx, a, struct{}{})
	if err != nil || me.ConnectionID == "" || me.UserID != "$anon:"+me.ConnectionID {
		t.Fatalf("whoami: %+v %v", me, err)
	}
	got := make(chan contract.ChatMessage, 1)
	contract.ChatMessageEvent.Listen(b, func(m contract.ChatMessage) { got <- m })
	contract.ChatSendEvent.Emit(ctx, a, contract.ChatSend{Text: " hello "})
	select {
	case m := <-got:
		if m.Text != "hello" || m.From != me.UserID {
			t.Fatalf("chat: %+v", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no chat message")
	}
	likes, _ := b.Counter(contract.LikesKey)
	likes.Increment(ctx, 1)
	deadline := time.Now().Add(5 * time.Second)
	for {
		d, _ := contract.DashboardState.Value(a)
		la, _ := a.Counter(contract.LikesKey)
		if d.Connections == 2 && d.Messages == 1 && la.Value() == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dashboard %+v, likes %d", d, la.Value())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
