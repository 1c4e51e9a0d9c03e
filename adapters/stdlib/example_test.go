package dshttp_test

import (
	"io"
	"net/http"

	"github.com/datasole/datasole-go/adapters/stdlib"
	"github.com/datasole/datasole-go/datasole"
)

// Mount datasole beside the routes an app already has.
func ExampleWrap() {
	ds := datasole.New(datasole.Options{})
	mux := http.NewServeMux()
	mux.HandleFunc("/api/hello", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hi") })
	srv := &http.Server{Addr: ":3000", Handler: dshttp.Wrap(mux, ds)}
	_ = srv // srv.ListenAndServe()
}
