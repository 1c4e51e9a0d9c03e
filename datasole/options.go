package datasole

import (
	"log/slog"

	"github.com/datasole/datasole-go/datasole/backend"
	"net/http"
	"time"

	"github.com/datasole/datasole-go/datasole/protocol"
)

// Options configures a Server. The zero value is usable: every field documents
// its default, and defaults are applied in one place (withDefaults).
type Options struct {
	// Path is where the WebSocket is upgraded and the browser runtime is
	// served. Default "/__ds".
	Path string

	// Auth turns the upgrade request into a principal. Default Anonymous,
	// which admits everyone (the server logs once that auth is open).
	Auth AuthHandler
	// AuthTimeout bounds Auth. Past it the upgrade is refused with 408.
	// Default 10s.
	AuthTimeout time.Duration

	// AllowedOrigins lists the browser origins allowed to connect besides the
	// server's own: exact origins ("https://app.example.com"), wildcard
	// subdomains ("https://*.example.com") or "*" for any origin. Requests
	// without an Origin header (non-browser clients) are always allowed.
	// Default: same origin only.
	AllowedOrigins []string
	// CheckOrigin, when set, replaces the AllowedOrigins policy.
	CheckOrigin func(r *http.Request) bool

	// MaxConnections caps concurrent connections on this server; upgrades
	// beyond it are refused with 503 before upgrading. Default 10,000;
	// negative means no limit.
	MaxConnections int
	// MaxMessageSize caps one inbound WebSocket message; larger messages
	// close the connection with 1009. Default 4 MiB + 1 KiB (no well-formed
	// protocol message is larger).
	MaxMessageSize int64
	// MaxEventNameLength caps event names in UTF-16 code units, as v1 does.
	// Default 256.
	MaxEventNameLength int

	// RPCTimeout bounds every RPC handler; its Context is cancelled at the
	// deadline and the caller gets error code -32001. Default 30s.
	RPCTimeout time.Duration
	// MaxHandlers bounds RPC handlers running at once across the server (the
	// executor). When all are busy, connections stop reading until one
	// finishes: backpressure instead of unbounded goroutines. Default 1024.
	MaxHandlers int
	// MaxInFlight bounds RPCs in flight per connection; calls beyond it are
	// answered at once with error code -32003. Default 64.
	MaxInFlight int

	// SendQueueSize bounds the frames waiting to be written to one
	// connection. Default 1024.
	SendQueueSize int
	// SlowConsumer says what happens when a send queue is full. Default
	// CloseSlowConsumer.
	SlowConsumer SlowConsumerPolicy
	// WriteTimeout bounds writing one batch of frames. A peer that cannot
	// take them in time is closed. Default 10s.
	WriteTimeout time.Duration

	// HeartbeatInterval is how often WebSocket pings are sent; a peer silent
	// for two intervals is closed as dead. Default 25s; negative disables.
	HeartbeatInterval time.Duration

	// Backend is the store and bus shared by the nodes of a cluster (Redis,
	// Postgres, …). With one, every push, state change and CRDT change
	// reaches the clients of every node, state versions live in the store,
	// and CRDT states survive restarts. The application owns it: Close does
	// not close it. Default: none, a single node keeping everything in
	// process.
	Backend backend.Backend

	// RateLimit limits inbound frames. Default: on, 600 frames per minute
	// per connection; see RateLimit.
	RateLimit RateLimit

	// MaxConnectionsPerUser and MaxConnectionsPerIP cap one user's and one
	// IP address's connections on this server; upgrades beyond them are
	// refused with 429. Default 0: no cap.
	MaxConnectionsPerUser int
	MaxConnectionsPerIP   int

	// Session configures per-user sessions. Default: on.
	Session SessionOptions

	// Observer receives measurements for metrics and tracing. Default: none
	// (the counters of Snapshot are always kept).
	Observer Observer

	// CRDT configures CRDT limits and authorization.
	CRDT CRDTOptions

	// ExposeErrors sends the text of non-*Error handler errors to clients.
	// For development only: it may leak internals. Default false.
	ExposeErrors bool

	// Logger receives structured logs. Default slog.Default().
	Logger *slog.Logger
}

// SlowConsumerPolicy decides the fate of a connection whose send queue is full.
type SlowConsumerPolicy int

const (
	// CloseSlowConsumer closes the connection with 1008 "slow consumer"; its
	// client reconnects and resyncs. Nothing else waits for it.
	CloseSlowConsumer SlowConsumerPolicy = iota
	// DropNewest drops the frame that did not fit and keeps the connection.
	// Use it only for streams where losing a push is acceptable.
	DropNewest
)

func (o Options) withDefaults() Options {
	if o.Path == "" {
		o.Path = "/__ds"
	}
	if o.Path[0] != '/' {
		o.Path = "/" + o.Path
	}
	if len(o.Path) > 1 && o.Path[len(o.Path)-1] == '/' {
		o.Path = o.Path[:len(o.Path)-1]
	}
	if o.AuthTimeout <= 0 {
		o.AuthTimeout = 10 * time.Second
	}
	if o.MaxConnections == 0 {
		o.MaxConnections = 10000
	}
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = protocol.MaxCompressed + 1024
	}
	if o.MaxEventNameLength <= 0 {
		o.MaxEventNameLength = protocol.MaxEventName
	}
	if o.RPCTimeout <= 0 {
		o.RPCTimeout = 30 * time.Second
	}
	if o.MaxHandlers <= 0 {
		o.MaxHandlers = 1024
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 64
	}
	if o.SendQueueSize <= 0 {
		o.SendQueueSize = 1024
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = 25 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.CRDT = o.CRDT.withDefaults()
	o.RateLimit = o.RateLimit.withDefaults(o.Backend)
	if o.Observer == nil {
		o.Observer = NopObserver{}
	}
	return o
}
