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
// with ds.Admit, and only then upgrades with gofiber/contrib/websocket and
// hands the connection to ds.ServeConn. Every datasole auth handler
// therefore works here unchanged. Assets and the other non-upgrade requests
// on the datasole path are served by ds.Handler() through fasthttpadaptor.
//
// Middleware order: recover, logger, CORS and compress may come before
// Mount (compress encodes the assets; the 101 upgrade has no body to
// encode). The app's auth middleware whose identity Config.Principal reads
// must come before Mount too. Fiber's timeout wraps single handlers, not
// the app, so it never sits in front of Mount.
package dsfiber

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// Both the contrib connection and the fasthttp one it embeds are what the
// core needs; the adapter hands the core the inner one (see serve).
var (
	_ datasole.WebSocket = (*websocket.Conn)(nil)
	_ datasole.WebSocket = websocket.Conn{}.Conn
)

// handshakeTimeout bounds the upgrade handshake, as in the core's upgrader.
// It is also how long an admission waits for fasthttp to run the upgraded
// connection before its slot is given back (see serveUpgrade).
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
// other request on with c.Next. Only the first Config is used.
func Mount(ds *datasole.Server, config ...Config) fiber.Handler {
	m := &mount{
		ds:     ds,
		path:   ds.Options().Path,
		assets: fasthttpadaptor.NewFastHTTPHandler(ds.Handler()),
	}
	if len(config) > 0 {
		m.cfg = config[0]
	}
	m.upgrade = websocket.New(m.serve, websocket.Config{
		HandshakeTimeout: handshakeTimeout,
		// Like the core's upgrader: pooled write buffers so idle
		// connections hold none, and no permessage-deflate (protocol v1
		// forbids it). Origins stays empty (any): the Origin policy is the
		// server's, applied by Admit before the upgrade.
		ReadBufferSize:  1024,
		WriteBufferSize: 4096,
		WriteBufferPool: &sync.Pool{},
		RecoverHandler:  m.recover,
	})
	return m.handle
}

type mount struct {
	ds      *datasole.Server
	cfg     Config
	path    string
	assets  fasthttp.RequestHandler
	upgrade fiber.Handler
}

func (m *mount) handle(c *fiber.Ctx) error {
	p := c.Path()
	if p != m.path && !strings.HasPrefix(p, m.path+"/") || m.cfg.Next != nil && m.cfg.Next(c) {
		return c.Next()
	}
	if p != m.path || !websocket.IsWebSocketUpgrade(c) {
		m.assets(c.Context())
		return nil
	}
	return m.serveUpgrade(c)
}

// serveUpgrade admits the request and upgrades it. Nothing is upgraded
// unless Admit said yes, and the admission's slot is given back on every
// path where the connection does not reach ServeConn.
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
	// fasthttp runs the upgraded connection after this handler returns,
	// and not at all when it cannot write the 101 response. The timer gives
	// the slot back in that case; should it fire first after all, ServeConn
	// finds the admission spent and closes the connection.
	up := &upgrade{a: a, timer: time.AfterFunc(handshakeTimeout, a.Release)}
	c.Locals(upgradeKey, up) // contrib/websocket copies Locals into its Conn
	if err := m.upgrade(c); err != nil {
		up.timer.Stop()
		a.Release()
		return err
	}
	return nil
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

// upgradeKey is the c.Locals key that carries the admission to the
// upgraded connection.
const upgradeKey = "datasole.upgrade"

type upgrade struct {
	a     *datasole.Admission
	timer *time.Timer
}

func (m *mount) serve(conn *websocket.Conn) {
	up := conn.Locals(upgradeKey).(*upgrade)
	up.timer.Stop()
	// The inner connection, not the contrib wrapper, which goes back to a
	// pool when this function returns. Guarded, because fasthttp then
	// recycles the hijacked net.Conn too, while a write the core started
	// may still be running.
	g := &guarded{ws: conn.Conn}
	defer g.retire()
	m.ds.ServeConn(g, up.a)
}

// recover keeps a panic on the connection from taking the process down.
// The core recovers its handlers' panics itself; this is the last line,
// and it closes the connection instead of writing contrib's default JSON
// error message, which is no protocol frame.
func (m *mount) recover(conn *websocket.Conn) {
	if p := recover(); p != nil {
		m.ds.Options().Logger.Error("datasole: fiber connection panicked", "panic", p)
		conn.Conn.Close()
	}
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
