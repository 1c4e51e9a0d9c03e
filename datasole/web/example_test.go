package web_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/datasole/datasole-go/datasole/web"
)

// Serve the client bundle and its worker under the protocol path, as the stock client expects.
func ExampleLookup() {
	mux := http.NewServeMux()
	for _, name := range []string{"datasole.iife.min.js", "datasole-worker.iife.min.js"} {
		asset, _ := web.Lookup(name)
		mux.Handle("/__ds/"+name, asset)
	}

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/__ds/datasole-worker.iife.min.js", nil))
	fmt.Println(rec.Code, rec.Header().Get("Content-Type"), rec.Header().Get("Cross-Origin-Resource-Policy"))
	// Output: 200 application/javascript; charset=utf-8 cross-origin
}
