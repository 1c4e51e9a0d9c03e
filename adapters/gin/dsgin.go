// Package dsgin mounts a datasole server in a gin application.
//
//	r := gin.New()
//	r.Use(gin.Logger(), gin.Recovery())
//	r.Use(dsgin.Mount(ds))
//	r.GET("/api/hello", hello)
//
// Mount is global middleware: requests for the datasole path (the WebSocket
// upgrade at /__ds and the browser runtime below it) are served by ds and the
// chain is aborted; every other request goes on to the app untouched. Gin
// runs global middleware for requests no route matches too (through the
// engine's not-found chain, whether NoRoute is set before or after Use), so
// no route has to be declared for /__ds.
//
// Register it with r.Use before the routes: gin copies the global
// middleware into each route when the route is added, so routes added
// earlier would not see it. Middleware that only observes or sets headers
// (gin.Logger, gin.Recovery, CORS, gzip, auth) may come before it.
// Middleware that buffers the response or hides the connection (timeouts)
// must come after it, where it never runs for datasole requests.
//
// The same handler also mounts as routes, for example in a group whose
// middleware authenticates; the routes must be the server's Options.Path
// and everything below it:
//
//	ds, err := datasole.New(datasole.Options{Path: "/ws"})
//	…
//	api := r.Group("/", requireLogin)
//	api.GET("/ws", dsgin.Mount(ds))        // the WebSocket
//	api.GET("/ws/*asset", dsgin.Mount(ds)) // the browser runtime
//
// Mount takes no configuration; New takes one Config.
package dsgin

import (
	"net/http"

	"github.com/datasole/datasole-go/datasole"
	"github.com/gin-gonic/gin"
)

// Config configures Mount. The zero value is usable.
type Config struct {
	// Skip, when it returns true, passes the request on to the rest of the
	// chain even when it is for the datasole path. Default: never.
	Skip func(c *gin.Context) bool
	// Principal takes the identity of an upgrade request from the app's
	// own auth middleware, which runs before Mount (see PrincipalFromKey).
	// It returns nil to leave the decision to the server's auth handler
	// (Options.Auth of the datasole server). Default: always nil.
	Principal func(c *gin.Context) *datasole.Principal
}

// PrincipalFromKey returns a Config.Principal for an auth middleware that
// stores the caller with c.Set(key, v): a *datasole.Principal is used as it
// is, and a non-empty string, such as the user gin.BasicAuth stores under
// gin.AuthUserKey, becomes the user ID. Any other value, or none, leaves the
// decision to the server's auth handler.
func PrincipalFromKey(key string) func(c *gin.Context) *datasole.Principal {
	return func(c *gin.Context) *datasole.Principal {
		v, _ := c.Get(key)
		switch v := v.(type) {
		case *datasole.Principal:
			return v
		case string:
			if v != "" {
				return &datasole.Principal{UserID: v}
			}
		}
		return nil
	}
}

// Mount returns gin middleware that serves the datasole path with ds,
// aborting the chain, and passes every other request on with c.Next. It is
// New with the zero Config.
func Mount(ds *datasole.Server) gin.HandlerFunc {
	return New(ds, Config{})
}

// New returns the middleware of Mount configured by cfg.
func New(ds *datasole.Server, cfg Config) gin.HandlerFunc {
	h := ds.Handler()
	return func(c *gin.Context) {
		if !ds.Match(c.Request) || (cfg.Skip != nil && cfg.Skip(c)) {
			c.Next()
			return
		}
		c.Abort()
		r := c.Request
		if cfg.Principal != nil {
			if p := cfg.Principal(c); p != nil {
				r = r.WithContext(datasole.WithPrincipal(r.Context(), p))
			}
		}
		if c.IsWebsocket() {
			// The handshake's 101 goes out on the hijacked connection,
			// behind gin's back; record it so gin.Logger reports 101 rather
			// than the status gin preset (200, or 404 when no route
			// matched). A refusal overwrites it with its own status.
			c.Status(http.StatusSwitchingProtocols)
		}
		h.ServeHTTP(c.Writer, r)
	}
}
