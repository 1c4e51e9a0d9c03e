package datasole

import "net/http"

// serveAsset serves the browser runtime below the datasole path.
func (s *Server) serveAsset(w http.ResponseWriter, r *http.Request, name string) {
	http.NotFound(w, r)
}
