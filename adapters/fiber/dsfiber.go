// Package dsfiber mounts a datasole server in a Fiber (v2) application.
//
//	app := fiber.New()
//	app.Use(recover.New(), logger.New())
//	app.Use(dsfiber.Mount(ds))
//	app.Get("/api/hello", hello)
//
// Mount is middleware for app.Use: it serves the datasole path (the
// WebSocket upgrade at /__ds and the browser runtime below it) and passes
// every other request on with c.Next. Fiber runs app.Use middleware for
// paths no route matches too, so the datasole path needs no route of its
// own.
//
// Fiber runs on fasthttp, not net/http, so the upgrade cannot go through
// ds.Handler(). Mount converts the request once to an *http.Request, runs
// the server's checks on it (Origin, connection caps, the auth handler)
// with ds.Admit, and only then answers the WebSocket handshake (101, with
// the headers ds's Admission.Handshake returns), hijacks the connection
// and hands fasthttp's raw socket to ds.ServeUpgraded. A TCP socket is
// then read by the server's poller, so an idle connection holds no
// goroutine; other sockets (TLS) are served by a goroutine. Every datasole
// auth handler works here unchanged. Assets and the other non-upgrade
// requests on the datasole path are served by ds.Handler() through
// fasthttpadaptor.
//
// Middleware order: recover, logger, CORS and compress may come before
// Mount (compress encodes the assets; the 101 upgrade has no body to
// encode). The app's auth middleware whose identity Config.Principal reads
// must come before Mount too. Fiber's timeout wraps single handlers, not
// the app, so it never sits in front of Mount.
package dsfiber

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// handshakeTimeout is how long an admission waits for fasthttp to run the
// upgraded connection before its slot is given back (see serveUpgrade).
const handshakeTimeout = 10 * time.Second

// Config configures Mount. The zero value is usable.
type Config struct {
	// Next, when it returns true, skips the middleware: the request goes on
	// to the app even when it is for the datasole path. It is asked only
	// about requests for the datasole path. Default: nil (never skips).
	Next func(c *fiber.Ctx) bool
	// Principal takes the identity from the app's own auth middleware,
	// which runs before Mount (typically a value it stored with c.Locals;
	// see PrincipalFromLocals). It returns nil to leave the decision to
	// the server's auth handler (Options.Auth of the datasole server). It
	// is asked about upgrade requests only. Strings in the principal must
	// not point into Fiber's reused buffers: copy values taken from c.Get,
	// c.Params or c.Query with utils.CopyString, as Fiber requires for any
	// value kept beyond the handler. Default: nil (always the auth handler).
	Principal func(c *fiber.Ctx) *datasole.Principal
}

// PrincipalFromLocals returns a Config.Principal that reads the
// *datasole.Principal the app's auth middleware stored with
// c.Locals(key, p). A missing value or one of another type yields nil,
// which leaves the decision to the server's auth handler. To map a value
// of the app's own type (a *jwt.Token, a session user), write the
// Config.Principal function directly.
func PrincipalFromLocals(key string) func(c *fiber.Ctx) *datasole.Principal {
	return func(c *fiber.Ctx) *datasole.Principal {
		p, _ := c.Locals(key).(*datasole.Principal)
		return p
	}
}

// Mount returns the middleware that serves ds's path and passes every
// other request on with c.Next. New is the same with a Config.
func Mount(ds *datasole.Server) fiber.Handler { return New(ds, Config{}) }

// New returns the middleware Mount returns, configured by cfg.
func New(ds *datasole.Server, cfg Config) fiber.Handler {
	m := &mount{
		ds:     ds,
		cfg:    cfg,
		path:   ds.Options().Path,
		assets: fasthttpadaptor.NewFastHTTPHandler(ds.Handler()),
	}
	return m.handle
}

type mount struct {
	ds     *datasole.Server
	cfg    Config
	path   string
	assets fasthttp.RequestHandler
}

func (m *mount) handle(c *fiber.Ctx) error {
	p := c.Path()
	if p != m.path && !strings.HasPrefix(p, m.path+"/") || m.cfg.Next != nil && m.cfg.Next(c) {
		return c.Next()
	}
	if p != m.path || !isUpgrade(c) {
		m.assets(c.Context())
		return nil
	}
	return m.serveUpgrade(c)
}

// isUpgrade reports whether c asks for a WebSocket upgrade (the Connection
// and Upgrade tokens); the rest of the handshake is checked after Admit.
func isUpgrade(c *fiber.Ctx) bool {
	return hasToken(c.Get(fiber.HeaderConnection), "upgrade") && hasToken(c.Get(fiber.HeaderUpgrade), "websocket")
}

func hasToken(header, token string) bool {
	for t := range strings.SplitSeq(header, ",") {
		if strings.EqualFold(strings.TrimSpace(t), token) {
			return true
		}
	}
	return false
}

// serveUpgrade admits the request and upgrades it. Nothing is upgraded
// unless Admit said yes, and the admission's slot is given back on every
// path where the connection does not reach ServeUpgraded.
func (m *mount) serveUpgrade(c *fiber.Ctx) error {
	r, err := request(c)
	if err != nil {
		return fiber.ErrBadRequest
	}
	if m.cfg.Principal != nil {
		if p := m.cfg.Principal(c); p != nil {
			r = r.WithContext(datasole.WithPrincipal(r.Context(), p))
		}
	}
	a, err := m.ds.Admit(r)
	if err != nil {
		return refuse(c, err)
	}
	hdr, err := a.Handshake()
	if err != nil {
		a.Release()
		return c.Status(http.StatusBadRequest).SendString(http.StatusText(http.StatusBadRequest))
	}
	// fasthttp runs the hijack handler after the 101 is written, and not
	// at all when it cannot write it. The timer gives the slot back in
	// that case; should it fire first after all, ServeUpgraded finds the
	// admission spent and closes the connection.
	timer := time.AfterFunc(handshakeTimeout, a.Release)
	raw := c.Context().Conn() // the socket itself, not fasthttp's reader over it
	c.Status(fiber.StatusSwitchingProtocols)
	for k, v := range hdr {
		c.Set(k, v[0])
	}
	c.Context().Hijack(func(hijacked net.Conn) {
		timer.Stop()
		if sentEarly(raw, hijacked) {
			// The client sent frames before it saw the 101; they sit in
			// fasthttp's reader, out of the engine's reach. Refuse, as
			// gorilla does.
			a.Release()
			return
		}
		m.ds.ServeUpgraded(raw, a)
	})
	return nil
}

// sentEarly reports whether fasthttp's reader holds bytes of the client's
// that followed the upgrade request: it reads the hijacked connection with
// the socket's deadline in the past, so only buffered bytes can come back.
func sentEarly(raw, hijacked net.Conn) bool {
	raw.SetReadDeadline(time.Unix(1, 0))
	var b [1]byte
	n, _ := hijacked.Read(b[:])
	raw.SetReadDeadline(time.Time{})
	return n > 0
}

// refuse answers a refused upgrade as the core's net/http handler does.
func refuse(c *fiber.Ctx, err error) error {
	status := http.StatusInternalServerError
	var re *datasole.RejectError
	if errors.As(err, &re) {
		status = re.Status
	}
	if status == http.StatusServiceUnavailable {
		c.Set(fiber.HeaderRetryAfter, "5")
	}
	return c.Status(status).SendString(http.StatusText(status))
}

// request converts c's request to an *http.Request for Admit: method, URL
// with query, Host, RemoteAddr, headers, TLS state and c.UserContext(),
// with no body. fasthttpadaptor points its strings into fasthttp's buffers,
// which are reused once the connection ends, while the core and the auth
// handler may keep some (a user ID read from a header or the query) for a
// session's life, so every string is copied.
func request(c *fiber.Ctx) (*http.Request, error) {
	r := new(http.Request)
	if err := fasthttpadaptor.ConvertRequest(c.Context(), r, true); err != nil {
		return nil, err
	}
	r.Method = strings.Clone(r.Method)
	r.Proto = strings.Clone(r.Proto)
	r.Host = strings.Clone(r.Host)
	r.RequestURI = strings.Clone(r.RequestURI)
	u, err := url.ParseRequestURI(r.RequestURI)
	if err != nil {
		return nil, err
	}
	r.URL = u
	h := make(http.Header, len(r.Header))
	for k, vs := range r.Header {
		own := make([]string, len(vs))
		for i, v := range vs {
			own[i] = strings.Clone(v)
		}
		h[strings.Clone(k)] = own
	}
	delete(h, "Host") // net/http keeps it in r.Host only
	r.Header = h
	r.TransferEncoding = nil
	r.Body = http.NoBody
	r.ContentLength = 0
	return r.WithContext(c.UserContext()), nil
}
