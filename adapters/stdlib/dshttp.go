// Package dshttp mounts a datasole server in a net/http application.
//
//	mux := http.NewServeMux()
//	mux.HandleFunc("/api/hello", hello)
//	http.ListenAndServe(":3000", dshttp.Wrap(mux, ds))
//
// Wrap serves the datasole path (the WebSocket upgrade at /__ds and the
// browser runtime below it) and passes every other request to the app
// untouched. Handler is the same without the pass-through, for a mux route.
//
// Middleware order: put Wrap inside middleware that only observes (logging,
// recovery, CORS); keep it outside middleware that wraps the ResponseWriter in
// ways that break http.Hijacker or buffer responses (http.TimeoutHandler,
// gzip writers that do not implement Hijack): the upgrade needs the raw
// connection.
package dshttp

import (
	"net/http"

	"github.com/datasole/datasole-go/datasole"
)

// Options configures Wrap.
type Options struct {
	// Principal, when set, takes the identity from the app's own auth
	// middleware (running before Wrap): it returns the principal for the
	// request, or nil to fall back to the server's auth handler.
	Principal func(r *http.Request) *datasole.Principal
}

// Wrap returns a handler that serves the datasole path with ds and every
// other request with next.
func Wrap(next http.Handler, ds *datasole.Server, opts ...Options) http.Handler {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	h := Handler(ds, o)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ds.Match(r) {
			h.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Handler returns ds's handler for mounting at the datasole path of a mux
// (both the path and the path with a trailing slash).
func Handler(ds *datasole.Server, opts ...Options) http.Handler {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
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
