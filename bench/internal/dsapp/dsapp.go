// Package dsapp is the datasole application that the datasole server
// programs of the comparison serve, each through its adapter: the RPC method
// "echo" returning its params, and publications broadcast to every
// connection as the event "tick".
package dsapp

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"

	"github.com/datasole/datasole-go/datasole"
)

// Event is the name publications are broadcast under.
const Event = "tick"

// New returns a started server with the application registered. It keeps
// the defaults except what a load test must change: anonymous auth, any
// origin, no rate limit (the floors have none either; the limiter is a
// policy, not engine cost) and room for 1,048,576 connections, all from the
// load client's few addresses (no per-IP cap).
func New(ctx context.Context) (*datasole.Server, error) {
	ds, err := datasole.New(datasole.Options{
		Auth:                datasole.Anonymous,
		AllowedOrigins:      []string{"*"},
		RateLimit:           datasole.RateLimit{Disabled: true},
		MaxConnections:      1 << 20,
		MaxConnectionsPerIP: -1,
		Logger:              slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return nil, err
	}
	if err := ds.HandleRPC("echo", func(_ *datasole.Context, params json.RawMessage) (any, error) {
		return params, nil
	}); err != nil {
		return nil, err
	}
	if err := ds.Start(ctx); err != nil {
		return nil, err
	}
	return ds, nil
}

// Server adapts a datasole server to the bench's server kit.
type Server struct{ DS *datasole.Server }

// Publish broadcasts msg (JSON) to every connection as the event "tick".
func (s Server) Publish(msg []byte) { s.DS.Broadcast(Event, json.RawMessage(msg)) }

// Conns returns the number of open connections.
func (s Server) Conns() int { return s.DS.ConnectionCount() }
