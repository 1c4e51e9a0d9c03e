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

// get prints the status and content type of GET url+path.
func get(url, path string) {
	resp, err := http.Get(url + path)
	if err != nil {
		fmt.Println(err)
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	fmt.Println(path, resp.StatusCode, resp.Header.Get("Content-Type"))
}

// Mount serves /__ds beside the app's routes, even though no route is
// declared for it.
func ExampleMount() {
	ds, err := datasole.New(datasole.Options{Auth: datasole.Anonymous})
	if err != nil {
		log.Fatal(err)
	}
	err = ds.HandleRPC("add", func(_ *datasole.Context, raw json.RawMessage) (any, error) {
		var p struct{ A, B int }
		err := json.Unmarshal(raw, &p)
		return p.A + p.B, err
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := ds.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	defer ds.Close(context.Background())

	r := gin.New()
	r.Use(gin.Recovery())
	r.Use(dsgin.Mount(ds))
	r.GET("/api/hello", func(c *gin.Context) { c.String(http.StatusOK, "hello") })

	srv := httptest.NewServer(r)
	defer srv.Close()
	get(srv.URL, "/api/hello")
	get(srv.URL, "/__ds/datasole.iife.min.js")
	// Output:
	// /api/hello 200 text/plain; charset=utf-8
	// /__ds/datasole.iife.min.js 200 application/javascript; charset=utf-8
}

// The app's auth middleware stores the caller under "principal"; the
// configured mount turns it into the datasole identity.
func ExampleNew() {
	ds, err := datasole.New(datasole.Options{})
	if err != nil {
		log.Fatal(err)
	}
	if err := ds.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	defer ds.Close(context.Background())

	r := gin.New()
	r.Use(func(c *gin.Context) { // stands in for session or JWT middleware
		if user := c.GetHeader("X-User"); user != "" {
			c.Set("principal", &datasole.Principal{UserID: user})
		}
	})
	r.Use(dsgin.New(ds, dsgin.Config{Principal: dsgin.PrincipalFromKey("principal")}))

	srv := httptest.NewServer(r)
	defer srv.Close()
	get(srv.URL, "/__ds/datasole.mjs")
	// Output: /__ds/datasole.mjs 200 application/javascript; charset=utf-8
}

// Route-style: the mount as the handler of the server's path and of the
// runtime below it, inside a group whose middleware runs only there.
func ExampleMount_routes() {
	ds, err := datasole.New(datasole.Options{Path: "/ws"})
	if err != nil {
		log.Fatal(err)
	}
	if err := ds.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	defer ds.Close(context.Background())

	r := gin.New()
	live := r.Group("/", gin.Recovery())
	live.GET("/ws", dsgin.Mount(ds))        // the WebSocket
	live.GET("/ws/*asset", dsgin.Mount(ds)) // the browser runtime

	srv := httptest.NewServer(r)
	defer srv.Close()
	get(srv.URL, "/ws/datasole.iife.min.js")
	// Output: /ws/datasole.iife.min.js 200 application/javascript; charset=utf-8
}
