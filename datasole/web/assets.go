// Package web embeds the datasole browser client and serves it as PROTOCOL §9 requires.
//
// The bundles under dist/ are built from the TypeScript sources in this directory by
// `go generate` (a separate Go module in build/ drives esbuild, so the core module never
// depends on it) and committed, so importing this package needs neither Node nor esbuild.
package web

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
)

//go:generate go run -C build . -src .. -out ../dist

//go:embed dist/datasole.iife.min.js dist/datasole-worker.iife.min.js dist/datasole.mjs dist/datasole.d.ts
var dist embed.FS

const (
	jsType       = "application/javascript; charset=utf-8"
	cacheControl = "public, max-age=31536000, immutable"
)

// Asset is one embedded file with the response headers that go with it.
type Asset struct {
	// Name is the file name, e.g. "datasole.iife.min.js".
	Name string
	// ContentType is the Content-Type header value.
	ContentType string
	// ETag is the strong, quoted entity tag: the first 24 hex digits of the body's SHA-256.
	ETag string
	// Body is the file content; callers must not modify it.
	Body []byte
	// CORP is the Cross-Origin-Resource-Policy header value: "cross-origin" for the worker,
	// which pages may load from another origin, "same-origin" for everything else.
	CORP string
}

var assets = map[string]*Asset{}

// ETags are computed once here, not per request.
func init() {
	for _, f := range []struct{ name, ctype, corp string }{
		{"datasole.iife.min.js", jsType, "same-origin"},
		{"datasole-worker.iife.min.js", jsType, "cross-origin"},
		{"datasole.mjs", jsType, "same-origin"},
		{"datasole.d.ts", "text/plain; charset=utf-8", "same-origin"},
	} {
		body, err := dist.ReadFile("dist/" + f.name)
		if err != nil {
			panic("web: embedded asset missing: " + f.name) // unreachable: go:embed fails the build first
		}
		sum := sha256.Sum256(body)
		assets[f.name] = &Asset{
			Name:        f.name,
			ContentType: f.ctype,
			ETag:        `"` + hex.EncodeToString(sum[:])[:24] + `"`,
			Body:        body,
			CORP:        f.corp,
		}
	}
}

// Lookup returns the embedded asset with the given file name: "datasole.iife.min.js",
// "datasole-worker.iife.min.js", "datasole.mjs" or "datasole.d.ts".
func Lookup(name string) (*Asset, bool) {
	a, ok := assets[name]
	return a, ok
}

// ServeHTTP answers GET and HEAD with the asset, or 304 Not Modified when If-None-Match
// names its ETag; other methods get 405 with an Allow header. The headers are those of
// PROTOCOL §9: long-lived immutable caching and the cross-origin isolation trio, so pages
// that enable SharedArrayBuffer can still load the client and its worker.
func (a *Asset) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h.Set("ETag", a.ETag)
	h.Set("Cache-Control", cacheControl)
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Embedder-Policy", "require-corp")
	h.Set("Cross-Origin-Resource-Policy", a.CORP)
	if inm := r.Header.Values("If-None-Match"); len(inm) > 0 && matchesAny(inm, a.ETag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", a.ContentType)
	h.Set("Content-Length", strconv.Itoa(len(a.Body)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(a.Body)
	}
}

// matchesAny reports whether an If-None-Match field (possibly repeated, each a list) names
// etag. RFC 9110 §13.1.2 uses the weak comparison here, so a W/ prefix is ignored.
func matchesAny(fields []string, etag string) bool {
	for _, field := range fields {
		for _, tag := range strings.Split(field, ",") {
			tag = strings.TrimSpace(tag)
			if tag == "*" || strings.TrimPrefix(tag, "W/") == etag {
				return true
			}
		}
	}
	return false
}
