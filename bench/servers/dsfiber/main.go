// Command dsfiber serves the datasole application of the comparison through
// adapters/fiber (dsfiber.Mount on a Fiber app), at /__ds.
package main

import (
	"context"
	"errors"
	"net"

	"github.com/gofiber/fiber/v2"

	dsfiber "github.com/datasole/datasole-go/adapters/fiber"

	"github.com/datasole/datasole-go/bench/internal/dsapp"
	"github.com/datasole/datasole-go/bench/internal/serverkit"
)

func main() {
	serverkit.Main("dsfiber", func(addr string) (serverkit.Server, func(context.Context) error, error) {
		ds, err := dsapp.New(context.Background())
		if err != nil {
			return nil, nil, err
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, nil, err
		}
		app := fiber.New(fiber.Config{DisableStartupMessage: true})
		app.Use(dsfiber.Mount(ds))
		go app.Listener(ln)
		stop := func(ctx context.Context) error {
			return errors.Join(app.ShutdownWithContext(ctx), ds.Close(ctx))
		}
		return dsapp.Server{DS: ds}, stop, nil
	})
}
