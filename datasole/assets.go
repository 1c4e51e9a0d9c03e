package datasole

import (
	"net/http"

	"github.com/datasole/datasole-go/datasole/web"
)

// serveAsset serves the embedded browser runtime below the datasole path:
// datasole.iife.min.js (global Datasole), datasole-worker.iife.min.js (the
// transport worker the v1 client loads from the page's origin), datasole.mjs
// and datasole.d.ts.
func (s *Server) serveAsset(w http.ResponseWriter, r *http.Request, name string) {
	a, ok := web.Lookup(name)
	if !ok {
		http.NotFound(w, r)
		return
	}
	a.ServeHTTP(w, r)
}

// Asset returns an embedded browser bundle by name, with its content type
// and ETag, for apps that serve it elsewhere.
func Asset(name string) (*web.Asset, bool) { return web.Lookup(name) }
