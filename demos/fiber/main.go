// Command fiber is the demo app on Fiber:
//
//	go run ./demos/fiber -addr :3000
package main

import (
	"context"
	"flag"
	"log"
	"net/http"
	"os"
	"os/signal"
	"time"

	dsfiber "github.com/datasole/datasole-go/adapters/fiber"
	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/demos/app"
	"github.com/datasole/datasole-go/demos/web"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/filesystem"
	"github.com/gofiber/fiber/v2/middleware/logger"
	"github.com/gofiber/fiber/v2/middleware/recover"
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

	f := fiber.New(fiber.Config{DisableStartupMessage: true, ReadTimeout: 10 * time.Second})
	f.Use(recover.New(), logger.New())
	f.Use(dsfiber.Mount(ds))
	f.Get("/healthz", func(c *fiber.Ctx) error { return c.SendString("ok") })
	f.Use(filesystem.New(filesystem.Config{Root: http.FS(web.FS)}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ds.Close(shutdown) // 1001 to every client; they reconnect elsewhere
		f.ShutdownWithContext(shutdown)
	}()
	log.Printf("demo listening on %s", *addr)
	if err := f.Listen(*addr); err != nil {
		log.Fatal(err)
	}
}
