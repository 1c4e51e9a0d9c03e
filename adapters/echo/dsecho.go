// Package dsecho mounts a datasole server in an Echo (v4) application as
// middleware:
//
//	e := echo.New()
//	e.Use(middleware.Recover())
//	e.Use(dsecho.Mount(ds))
//	e.GET("/api/hello", hello)
//
// The middleware serves the datasole path (the WebSocket upgrade at /__ds and
// the browser runtime below it) and calls the next handler for every other
// request. Register it with e.Use: Echo runs e.Use middleware for requests no
// route matches too, so the datasole path needs no route of its own.
//
// Route-style, it goes on a group whose prefix is the server's Options.Path;
// Echo routes the prefix and everything below it through the group's
// middleware, so middleware given to the group (auth, say) runs for datasole
// requests only:
//
//	ds, err := datasole.New(datasole.Options{Path: "/ws"})
//	…
//	e.Group("/ws", requireLogin, dsecho.Mount(ds))
//
// A group whose prefix does not cover the datasole path never sees it.
//
// Identity: when the app authenticates with its own Echo middleware
// (echo-jwt, a session middleware), register that first and give
// Config.Principal a function that turns what it stored into a
// *datasole.Principal; PrincipalFromJWT does this for echo-jwt's "user" key.
// Without a principal from the app, the server's Options.Auth decides.
//
// Mount takes no configuration; MountWithConfig takes one Config.
//
// Middleware order: Logger, Recover, CORS, Gzip and ContextTimeout may run
// before Mount; Gzip compresses the runtime assets (clients see the same
// bytes after decompression) and passes the upgrade's Hijack through.
// Timeout runs the handler behind http.TimeoutHandler, whose writer cannot
// be hijacked, so the upgrade fails with 500 behind it: give it Skip(ds) as
// its Skipper, or register it after Mount.
package dsecho

import (
	"github.com/datasole/datasole-go/datasole"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// Config configures MountWithConfig. The zero value is usable.
type Config struct {
	// Skipper, when it returns true, passes the request to the next handler
	// even when it is for the datasole path. Default: middleware.DefaultSkipper
	// (never skips).
	Skipper middleware.Skipper
	// Principal takes the identity from the app's own auth middleware,
	// which runs before Mount (typically from a value it stored with
	// c.Set). It returns nil to leave the decision to the server's auth
	// handler (Options.Auth of the datasole server). Default: always nil.
	Principal func(c echo.Context) *datasole.Principal
}

// Mount returns middleware that serves ds's path and passes every other
// request on. It is MountWithConfig with the zero Config.
func Mount(ds *datasole.Server) echo.MiddlewareFunc {
	return MountWithConfig(ds, Config{})
}

// MountWithConfig returns middleware that serves ds's path, as cfg says,
// and passes every other request on.
func MountWithConfig(ds *datasole.Server, cfg Config) echo.MiddlewareFunc {
	if cfg.Skipper == nil {
		cfg.Skipper = middleware.DefaultSkipper
	}
	core := ds.Handler()
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			if !ds.Match(r) || cfg.Skipper(c) {
				return next(c)
			}
			if cfg.Principal != nil {
				if p := cfg.Principal(c); p != nil {
					r = r.WithContext(datasole.WithPrincipal(r.Context(), p))
				}
			}
			// The core writes the response itself (or hijacks the
			// connection); c.Response() keeps Echo's status and size
			// bookkeeping for the logger and unwraps to the real writer.
			core.ServeHTTP(c.Response(), r)
			return nil
		}
	}
}

// PrincipalFromJWT returns a Config.Principal that reads the value the
// app's auth middleware stored under the context key "user" — where
// echo-jwt (github.com/labstack/echo-jwt/v4) puts the parsed token, a
// *jwt.Token of golang-jwt v5 — and maps it with mapper:
//
//	dsecho.PrincipalFromJWT(func(t *jwt.Token) *datasole.Principal {
//		sub, _ := t.Claims.GetSubject()
//		return &datasole.Principal{UserID: sub}
//	})
//
// When nothing is stored under "user", or the value is not a T, mapper is
// not called and the principal is nil, so the server's auth handler decides.
func PrincipalFromJWT[T any](mapper func(token T) *datasole.Principal) func(echo.Context) *datasole.Principal {
	return func(c echo.Context) *datasole.Principal {
		t, ok := c.Get("user").(T)
		if !ok {
			return nil
		}
		return mapper(t)
	}
}

// Skip returns a middleware.Skipper that is true for requests on ds's path,
// for middleware that must not see them — middleware.Timeout, which breaks
// the upgrade:
//
//	e.Use(middleware.TimeoutWithConfig(middleware.TimeoutConfig{
//		Skipper: dsecho.Skip(ds),
//		Timeout: 30 * time.Second,
//	}))
func Skip(ds *datasole.Server) middleware.Skipper {
	return func(c echo.Context) bool { return ds.Match(c.Request()) }
}
