// Package app is the demo application every framework demo mounts: the
// handlers of the demo contract, the live dashboard and the likes counter.
package app

import (
	"context"
	"strings"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/crdt"
	"github.com/datasole/datasole-go/demos/contract"
)

// Setup registers the demo contract's handlers, state and CRDT on ds.
func Setup(ds *datasole.Server) error {
	contract.Add.Handle(ds, func(c *datasole.Context, p contract.AddParams) (contract.AddResult, error) {
		return contract.AddResult{Sum: p.A + p.B}, nil
	})
	contract.WhoAmI.Handle(ds, func(c *datasole.Context, _ struct{}) (contract.WhoAmIResult, error) {
		roles := c.Principal().Roles
		if roles == nil {
			roles = []string{}
		}
		return contract.WhoAmIResult{UserID: c.UserID(), ConnectionID: c.ConnID(), Roles: roles}, nil
	})
	contract.ChatSendEvent.Handle(ds, func(c *datasole.Context, m contract.ChatSend) {
		text := strings.TrimSpace(m.Text)
		if text == "" || len(text) > 500 {
			return
		}
		contract.ChatMessageEvent.Broadcast(ds, contract.ChatMessage{From: c.UserID(), Text: text, At: time.Now().UnixMilli()})
		bump(c, ds, func(d *contract.Dashboard) { d.Messages++ })
	})
	ds.OnConnect(func(c *datasole.Conn) { bump(c.Context(), ds, func(d *contract.Dashboard) { d.Connections++ }) })
	ds.OnDisconnect(func(c *datasole.Conn) {
		bump(context.Background(), ds, func(d *contract.Dashboard) { d.Connections-- })
	})
	if _, err := ds.RegisterCRDTType(contract.LikesKey, datasole.Global(), crdt.TypePNCounter); err != nil {
		return err
	}
	return contract.DashboardState.Set(context.Background(), ds, contract.Dashboard{StartedAt: time.Now().UnixMilli()})
}

func bump(ctx context.Context, ds *datasole.Server, fn func(*contract.Dashboard)) {
	contract.DashboardState.Update(ctx, ds, datasole.Global(), func(d contract.Dashboard) (contract.Dashboard, error) {
		fn(&d)
		return d, nil
	})
}
