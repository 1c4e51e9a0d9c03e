package main

import (
	"context"
	"embed"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/crdt"
)

// page is the demo page. It loads the browser client from the server
// (/__ds/datasole.iife.min.js) and needs no build step.
//
//go:embed index.html app.js app.css
var page embed.FS

// newServer returns the demo's datasole server, started: the handlers of
// the contract, the live dashboard and the likes counter, on the in-memory
// backend. A nil logger means slog.Default().
func newServer(ctx context.Context, logger *slog.Logger) (*datasole.Server, error) {
	// Development only: everyone is admitted anonymously. See docs/auth.md.
	ds, err := datasole.New(datasole.Options{Auth: datasole.Anonymous, Logger: logger})
	if err != nil {
		return nil, err
	}
	err = errors.Join(
		Add.Handle(ds, func(c *datasole.Context, p AddParams) (AddResult, error) {
			return AddResult{Sum: p.A + p.B}, nil
		}),
		WhoAmI.Handle(ds, func(c *datasole.Context, _ struct{}) (WhoAmIResult, error) {
			roles := c.Principal().Roles
			if roles == nil {
				roles = []string{}
			}
			return WhoAmIResult{UserID: c.UserID(), ConnectionID: c.ConnID(), Roles: roles}, nil
		}),
		ChatSendEvent.Handle(ds, func(c *datasole.Context, m ChatSend) {
			text := strings.TrimSpace(m.Text)
			if text == "" || len(text) > 500 {
				return
			}
			ChatMessageEvent.Broadcast(ds, ChatMessage{From: c.UserID(), Text: text, At: time.Now().UnixMilli()})
			bump(c, ds, func(d *Dashboard) { d.Messages++ })
		}),
	)
	if err != nil {
		return nil, err
	}
	ds.OnConnect(func(c *datasole.Conn) { bump(c.Context(), ds, func(d *Dashboard) { d.Connections++ }) })
	ds.OnDisconnect(func(c *datasole.Conn) { bump(context.Background(), ds, func(d *Dashboard) { d.Connections-- }) })
	if _, err := ds.RegisterCRDTType(LikesKey, datasole.Global(), crdt.TypePNCounter); err != nil {
		return nil, err
	}
	if err := ds.Start(ctx); err != nil {
		return nil, err
	}
	if err := DashboardState.Set(ctx, ds, Dashboard{StartedAt: time.Now().UnixMilli()}); err != nil {
		ds.Close(ctx)
		return nil, err
	}
	return ds, nil
}

// bump changes the dashboard; every page sees the new value.
func bump(ctx context.Context, ds *datasole.Server, fn func(*Dashboard)) {
	DashboardState.Update(ctx, ds, datasole.Global(), func(d Dashboard) (Dashboard, error) {
		fn(&d)
		return d, nil
	})
}
