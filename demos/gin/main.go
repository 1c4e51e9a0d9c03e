// Command gin is the demo app on gin:
//
//	go run ./demos/gin -addr :3000
package main

import (
	"context"
	"flag"
	"log"
	"net/http"
	"os"
	"os/signal"
	"time"

	dsgin "github.com/datasole/datasole-go/adapters/gin"
	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/demos/app"
	"github.com/datasole/datasole-go/demos/web"
	"github.com/gin-gonic/gin"
)

func main() {
	addr := flag.String("addr", ":3000", "listen address")
	flag.Parse()

	// Development only: everyone is admitted anonymously. See docs/auth.md.
	ds, err := datasole.New(datasole.Options{Auth: datasole.Anonymous})
	if err != nil {
		log.Fatal(err)
	}
	if err := app.Setup(ds); err != nil {
		log.Fatal(err)
	}
	if err := ds.Start(context.Background()); err != nil {
		log.Fatal(err)
	}

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.Logger(), gin.Recovery())
	r.Use(dsgin.Mount(ds)) // before the routes: gin copies middleware into each route as it is added
	r.GET("/healthz", func(c *gin.Context) { c.String(http.StatusOK, "ok") })
	r.NoRoute(gin.WrapH(http.FileServerFS(web.FS)))

	srv := &http.Server{Addr: *addr, Handler: r, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ds.Close(shutdown) // 1001 to every client; they reconnect elsewhere
		srv.Shutdown(shutdown)
	}()
	log.Printf("demo listening on %s", *addr)
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
