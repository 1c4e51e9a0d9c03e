// Package dshttp mounts a datasole server in a net/http application.
//
//	mux := http.NewServeMux()
//	mux.HandleFunc("GET /api/hello", hello)
//	http.ListenAndServe(":3000", dshttp.Wrap(mux, ds))
//
// Wrap serves the datasole path (the WebSocket upgrade at /__ds and the
// browser runtime below it) and passes every other request to the app
// untouched. Handler is the same without the pass-through, for mounting on a
// mux pattern.
//
// Middleware order: middleware that only observes the request or sets
// headers (logging, recovery, CORS) may wrap Wrap, as long as any
// ResponseWriter it substitutes implements http.Hijacker or an Unwrap method
// (http.ResponseController finds the connection through it). Handlers that
// buffer the response or hide the connection — http.TimeoutHandler, most
// gzip writers — break the upgrade and the assets' Content-Length, so put
// them inside: Wrap(http.TimeoutHandler(app, d, msg), ds).
package dshttp

import (
	"net/http"

	"github.com/datasole/datasole-go/datasole"
)

// Options configures Wrap and Handler. The zero value is usable.
type Options struct {
	// Skipper, when it returns true, passes the request to the app even
	// when it is for the datasole path. Default: never.
	Skipper func(r *http.Request) bool
	// Principal takes the identity from the app's own auth middleware,
	// which runs before Wrap (typically from a request context value it
	// set). It returns nil to leave the decision to the server's auth
	// handler (Options.Auth of the datasole server). Default: always nil.
	Principal func(r *http.Request) *datasole.Principal
}

// Wrap returns a handler that serves the datasole path with ds and every
// other request with next. WrapWithOptions is the same with Options.
func Wrap(next http.Handler, ds *datasole.Server) http.Handler {
	return WrapWithOptions(next, ds, Options{})
}

// WrapWithOptions returns the handler Wrap returns, configured by o.
func WrapWithOptions(next http.Handler, ds *datasole.Server, o Options) http.Handler {
	h := HandlerWithOptions(ds, o)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ds.Match(r) && (o.Skipper == nil || !o.Skipper(r)) {
			h.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Handler returns ds's handler for a mux: register it at both the datasole
// path and the path with a trailing slash (mux.Handle("/__ds", h);
// mux.Handle("/__ds/", h)). HandlerWithOptions is the same with Options.
func Handler(ds *datasole.Server) http.Handler { return ds.Handler() }

// HandlerWithOptions returns ds's handler with the principal taken as o
// says. Options.Skipper is not consulted: the mux decides what reaches it.
func HandlerWithOptions(ds *datasole.Server, o Options) http.Handler {
	core := ds.Handler()
	if o.Principal == nil {
		return core
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := o.Principal(r); p != nil {
			r = r.WithContext(datasole.WithPrincipal(r.Context(), p))
		}
		core.ServeHTTP(w, r)
	})
}
