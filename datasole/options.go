package datasole

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/datasole/datasole-go/datasole/backend"
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
	// -1 means no limit.
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
	// MaxInFlight bounds the RPCs running per connection. A connection
	// that has MaxInFlight calls running is not read until one finishes:
	// its further calls wait in the socket (backpressure), none is
	// refused. Default 64.
	MaxInFlight int

	// SendQueueSize bounds the frames waiting to be written to one
	// connection. Default 16,384: the bytes (SendQueueBytes) are the memory
	// bound; the frame count only stops floods of tiny frames, and must
	// leave room for the burst a node delivers when the bus comes back from
	// an outage.
	SendQueueSize int
	// SendQueueBytes bounds the bytes of the frames waiting to be written
	// to one connection; a single frame larger than it still passes an
	// empty queue. Default 1 MiB.
	SendQueueBytes int
	// SlowConsumer says what happens when a send queue is full. Default
	// CloseSlowConsumer.
	SlowConsumer SlowConsumerPolicy
	// WriteTimeout bounds writing one batch of frames. A peer that cannot
	// take them in time is closed. Default 10s.
	WriteTimeout time.Duration

	// HeartbeatInterval is how often WebSocket pings are sent; a peer silent
	// for two intervals is closed as dead. Default 25s; -1 disables.
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

	// MaxConnectionsPerUser caps one user's connections on this server;
	// upgrades beyond it are refused with 429. Default 0: no cap; -1 is the
	// same.
	MaxConnectionsPerUser int
	// MaxConnectionsPerIP caps the connections from one client address on
	// this server (an IPv4 address, or an IPv6 /64, which one subscriber
	// holds whole), so that one client cannot take every slot; refused with
	// 429. Default 1,000; -1 means no cap. Behind a reverse proxy every
	// connection comes from the proxy: set TrustedProxies.
	MaxConnectionsPerIP int
	// TrustedProxies lists the proxies (CIDRs, e.g. "10.0.0.0/8", or single
	// addresses) whose X-Forwarded-For header names the client: for
	// connections from them, per-IP caps and rate limits count the client's
	// address instead of the proxy's. Default: none (the socket's peer).
	TrustedProxies []string

	// Session configures per-user sessions. Default: on.
	Session SessionOptions

	// PresenceTTL is how long the presence entries of this node outlive its
	// last keepalive (it sends one every third of it): when the node's
	// process dies, its entries vanish from Presence within this time.
	// Default 30s.
	PresenceTTL time.Duration

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

// OptionError is an invalid option: the field, the value given and how to
// fix it. New returns one per invalid field (joined); each matches
// ErrInvalidOption.
type OptionError struct {
	Field string // e.g. "Options.Path"
	Value any
	Fix   string
}

func (e *OptionError) Error() string {
	return fmt.Sprintf("datasole: %s = %#v: %s", e.Field, e.Value, e.Fix)
}

// Is makes every OptionError match ErrInvalidOption.
func (e *OptionError) Is(target error) bool { return target == ErrInvalidOption }

// ErrInvalidOption is matched by every error New returns for a bad option.
var ErrInvalidOption = errors.New("datasole: invalid option")

// optionChecker collects the errors of one validation pass.
type optionChecker struct{ errs []error }

func (c *optionChecker) fail(field string, value any, fix string) {
	c.errs = append(c.errs, &OptionError{Field: field, Value: value, Fix: fix})
}

// nonNegative checks a count or duration that may be zero (the default) but
// not negative.
func (c *optionChecker) nonNegative(field string, v int64, value any) {
	if v < 0 {
		c.fail(field, value, "must not be negative; leave it zero for the default")
	}
}

// offOrPositive checks a value where -1 means "off" and 0 the default.
func (c *optionChecker) offOrPositive(field string, v int64, value any) {
	if v < -1 {
		c.fail(field, value, "must be -1 (off), 0 (the default) or positive")
	}
}

// withDefaults validates o and fills in every default. It returns all
// problems at once, joined.
func (o Options) withDefaults() (Options, error) {
	var c optionChecker
	if o.Path == "" {
		o.Path = "/__ds"
	}
	checkPath(&c, o.Path)
	if len(o.Path) > 1 && o.Path[len(o.Path)-1] == '/' {
		o.Path = o.Path[:len(o.Path)-1]
	}
	for i, pattern := range o.AllowedOrigins {
		if err := checkOriginPattern(pattern); err != nil {
			c.fail(fmt.Sprintf("Options.AllowedOrigins[%d]", i), pattern, err.Error())
		}
	}
	c.nonNegative("Options.AuthTimeout", int64(o.AuthTimeout), o.AuthTimeout)
	c.offOrPositive("Options.MaxConnections", int64(o.MaxConnections), o.MaxConnections)
	c.offOrPositive("Options.MaxConnectionsPerUser", int64(o.MaxConnectionsPerUser), o.MaxConnectionsPerUser)
	c.offOrPositive("Options.MaxConnectionsPerIP", int64(o.MaxConnectionsPerIP), o.MaxConnectionsPerIP)
	c.nonNegative("Options.MaxEventNameLength", int64(o.MaxEventNameLength), o.MaxEventNameLength)
	c.nonNegative("Options.RPCTimeout", int64(o.RPCTimeout), o.RPCTimeout)
	c.nonNegative("Options.MaxHandlers", int64(o.MaxHandlers), o.MaxHandlers)
	c.nonNegative("Options.MaxInFlight", int64(o.MaxInFlight), o.MaxInFlight)
	c.nonNegative("Options.SendQueueSize", int64(o.SendQueueSize), o.SendQueueSize)
	c.nonNegative("Options.SendQueueBytes", int64(o.SendQueueBytes), o.SendQueueBytes)
	c.nonNegative("Options.WriteTimeout", int64(o.WriteTimeout), o.WriteTimeout)
	c.nonNegative("Options.PresenceTTL", int64(o.PresenceTTL), o.PresenceTTL)
	c.offOrPositive("Options.HeartbeatInterval", int64(o.HeartbeatInterval), o.HeartbeatInterval)
	switch {
	case o.MaxMessageSize < 0:
		c.fail("Options.MaxMessageSize", o.MaxMessageSize, "must not be negative; leave it zero for the default")
	case o.MaxMessageSize > 0 && o.MaxMessageSize < protocol.HeaderSize+1024:
		c.fail("Options.MaxMessageSize", o.MaxMessageSize, "too small to carry protocol frames; use at least 1 KiB, or zero for the default")
	}
	if o.MaxEventNameLength > 1<<16 {
		c.fail("Options.MaxEventNameLength", o.MaxEventNameLength, "must be at most 65536 UTF-16 code units")
	}
	if o.SlowConsumer != CloseSlowConsumer && o.SlowConsumer != DropNewest {
		c.fail("Options.SlowConsumer", o.SlowConsumer, "use CloseSlowConsumer or DropNewest")
	}
	o.Session.check(&c)
	o.CRDT.check(&c)
	o.RateLimit.check(&c)

	if o.AuthTimeout == 0 {
		o.AuthTimeout = 10 * time.Second
	}
	if o.MaxConnections == 0 {
		o.MaxConnections = 10000
	}
	if o.MaxConnectionsPerIP == 0 {
		o.MaxConnectionsPerIP = 1000
	}
	for i, p := range o.TrustedProxies {
		if _, err := parsePrefix(p); err != nil {
			c.fail(fmt.Sprintf("Options.TrustedProxies[%d]", i), p, "a CIDR (\"10.0.0.0/8\") or an IP address")
		}
	}
	if o.MaxMessageSize == 0 {
		o.MaxMessageSize = protocol.MaxCompressed + 1024
	}
	if o.MaxEventNameLength == 0 {
		o.MaxEventNameLength = protocol.MaxEventName
	}
	if o.RPCTimeout == 0 {
		o.RPCTimeout = 30 * time.Second
	}
	if o.MaxHandlers == 0 {
		o.MaxHandlers = 1024
	}
	if o.MaxInFlight == 0 {
		o.MaxInFlight = 64
	}
	if o.SendQueueSize == 0 {
		o.SendQueueSize = 16384
	}
	if o.SendQueueBytes == 0 {
		o.SendQueueBytes = 1 << 20
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = 25 * time.Second
	}
	if o.PresenceTTL == 0 {
		o.PresenceTTL = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.CRDT = o.CRDT.withDefaults()
	o.RateLimit = o.RateLimit.withDefaults(o.Backend)
	if o.Observer == nil {
		o.Observer = NopObserver{}
	}
	return o, errors.Join(c.errs...)
}

// checkPath accepts clean absolute URL paths: what a request for the path
// carries in r.URL.Path, so that it can match.
func checkPath(c *optionChecker, p string) {
	u, err := url.Parse(p)
	switch {
	case p[0] != '/':
		c.fail("Options.Path", p, "must start with \"/\", e.g. \"/__ds\"")
	case err != nil || u.Path != p || u.RawQuery != "" || u.Fragment != "":
		c.fail("Options.Path", p, "must be a plain URL path without query, fragment or escapes, e.g. \"/__ds\"")
	case u.EscapedPath() != p:
		c.fail("Options.Path", p, "contains characters a URL path must escape (spaces, non-ASCII); use letters, digits, \"-\", \"_\", \".\" and \"/\"")
	case path.Clean(p) != strings.TrimSuffix(p, "/") && p != "/":
		c.fail("Options.Path", p, "must be a clean path (no \"//\", \".\" or \"..\" segments)")
	}
}

// checkOriginPattern accepts "*", "scheme://host[:port]" and
// "scheme://*.domain[:port]".
func checkOriginPattern(pattern string) error {
	if pattern == "*" {
		return nil
	}
	u, err := url.Parse(pattern)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return fmt.Errorf("an origin is scheme://host[:port], e.g. %q; a bare host never matches", "https://"+strings.TrimPrefix(pattern, "//"))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("scheme must be http or https (browsers send those origins)")
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("an origin has no path, query or user info; use %q", u.Scheme+"://"+u.Host)
	}
	host := strings.TrimPrefix(u.Hostname(), "*.")
	if host == "" || strings.Contains(host, "*") {
		return fmt.Errorf("a wildcard is allowed only as the first label, e.g. %q", "https://*.example.com")
	}
	return nil
}

// parsePrefix parses a CIDR or a single address as a prefix.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
