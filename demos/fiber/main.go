// Command fiber is the datasole demo on Fiber: a chat (events), a live
// dashboard (state), a shared like counter (CRDT) and an RPC panel, on the
// in-memory backend.
//
// It is a whole program: copy this folder into an empty module and run it.
//
//	go mod init example.com/demo
//	go get github.com/datasole/datasole-go/adapters/fiber@latest
//	go mod tidy
//	go run . -addr :3000
//
// main.go is the Fiber part; app.go, contract.go and the page are the same
// in every framework's demo.
package main

import (
	"context"
	"flag"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	dsfiber "github.com/datasole/datasole-go/adapters/fiber"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/filesystem"
	"github.com/gofiber/fiber/v2/middleware/logger"
	"github.com/gofiber/fiber/v2/middleware/recover"
)

func main() {
	addr := flag.String("addr", ":3000", "listen address")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("demo listening on http://%s", ln.Addr())
	if err := run(ctx, ln, nil); err != nil {
		log.Fatal(err)
	}
}

// run serves the demo on ln until ctx ends, then shuts down gracefully.
func run(ctx context.Context, ln net.Listener, logs *slog.Logger) error {
	ds, err := newServer(ctx, logs)
	if err != nil {
		return err
	}

	app := fiber.New(fiber.Config{DisableStartupMessage: true, ReadTimeout: 10 * time.Second})
	app.Use(recover.New(), logger.New())
	app.Use(dsfiber.Mount(ds))
	app.Get("/healthz", func(c *fiber.Ctx) error { return c.SendString("ok") })
	app.Use(filesystem.New(filesystem.Config{Root: http.FS(page)}))

	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ds.Close(shutdown) // 1001 to every client; they reconnect elsewhere
		app.ShutdownWithContext(shutdown)
	}()
	if err := app.Listener(ln); err != nil {
		return err
	}
	<-stopped
	return nil
}
