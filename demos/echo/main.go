// Command echo is the demo app on Echo:
//
//	go run ./demos/echo -addr :3000
package main

import (
	"context"
	"flag"
	"log"
	"net/http"
	"os"
	"os/signal"
	"time"

	dsecho "github.com/datasole/datasole-go/adapters/echo"
	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/demos/app"
	"github.com/datasole/datasole-go/demos/web"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
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

	e := echo.New()
	e.HideBanner = true
	e.Use(middleware.Recover())
	e.Use(dsecho.Mount(ds))
	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok") })
	e.GET("/*", echo.WrapHandler(http.FileServerFS(web.FS)))

	srv := &http.Server{Addr: *addr, Handler: e, ReadHeaderTimeout: 10 * time.Second}
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
