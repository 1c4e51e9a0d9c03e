package dshttp_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"

	dshttp "github.com/datasole/datasole-go/adapters/stdlib"
	"github.com/datasole/datasole-go/datasole"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// Mount datasole beside the routes an app already has.
func ExampleWrap() {
	ds, err := datasole.New(datasole.Options{Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	defer ds.Close(context.Background())
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/hello", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hi") })
	if err := ds.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	hs := httptest.NewServer(dshttp.Wrap(mux, ds)) // http.ListenAndServe(":3000", dshttp.Wrap(mux, ds))
	defer hs.Close()

	for _, path := range []string{"/api/hello", "/__ds/datasole.iife.min.js", "/__ds"} {
		resp, _ := http.Get(hs.URL + path)
		resp.Body.Close()
		fmt.Println(path, resp.StatusCode)
	}
	// Output:
	// /api/hello 200
	// /__ds/datasole.iife.min.js 200
	// /__ds 426
}

type sessionUserKey struct{}

// Take the principal from the app's own auth middleware.
func ExampleOptions() {
	ds, err := datasole.New(datasole.Options{Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	defer ds.Close(context.Background())
	app := http.NewServeMux()
	if err := ds.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	h := dshttp.WrapWithOptions(app, ds, dshttp.Options{
		Principal: func(r *http.Request) *datasole.Principal {
			if user, ok := r.Context().Value(sessionUserKey{}).(string); ok {
				return &datasole.Principal{UserID: user}
			}
			return nil // the server's Options.Auth decides
		},
	})
	_ = h // wrap h in the middleware that sets sessionUserKey
}
