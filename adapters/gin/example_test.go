package dsgin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"

	dsgin "github.com/datasole/datasole-go/adapters/gin"
	"github.com/datasole/datasole-go/datasole"
	"github.com/gin-gonic/gin"
)

// The app's auth middleware stores the caller under "principal"; Mount turns
// it into the datasole identity and serves /__ds, even though no route is
// declared for it.
func ExampleMount() {
	ds, err := datasole.New(datasole.Options{Auth: datasole.Anonymous})
	if err != nil {
		log.Fatal(err)
	}
	defer ds.Close(context.Background())
	ds.HandleRPC("add", func(_ *datasole.Context, raw json.RawMessage) (any, error) {
		var p struct{ A, B int }
		err := json.Unmarshal(raw, &p)
		return p.A + p.B, err
	})

	r := gin.New()
	r.Use(gin.Recovery())
	r.Use(func(c *gin.Context) { // stands in for session or JWT middleware
		if user := c.GetHeader("X-User"); user != "" {
			c.Set("principal", &datasole.Principal{UserID: user})
		}
	})
	if err := ds.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	r.Use(dsgin.Mount(ds, dsgin.Config{Principal: dsgin.PrincipalFromKey("principal")}))
	r.GET("/api/hello", func(c *gin.Context) { c.String(http.StatusOK, "hello") })

	srv := httptest.NewServer(r)
	defer srv.Close()
	for _, path := range []string{"/api/hello", "/__ds/datasole.iife.min.js"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			fmt.Println(err)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		fmt.Println(path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// Output:
	// /api/hello 200 text/plain; charset=utf-8
	// /__ds/datasole.iife.min.js 200 application/javascript; charset=utf-8
}
