package dsfiber_test

import (
	"context"
	"fmt"
	"log"
	"net/http/httptest"

	dsfiber "github.com/datasole/datasole-go/adapters/fiber"
	"github.com/datasole/datasole-go/datasole"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/logger"
	"github.com/gofiber/fiber/v2/middleware/recover"
)

// Mount datasole beside the routes a Fiber app already has.
func ExampleMount() {
	ds, err := datasole.New(datasole.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer ds.Close(context.Background())

	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Use(recover.New())
	if err := ds.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	app.Use(dsfiber.Mount(ds))
	app.Get("/api/hello", func(c *fiber.Ctx) error { return c.SendString("hi") })
	// app.Listen(":3000")

	resp, err := app.Test(httptest.NewRequest("GET", "/__ds/datasole.iife.min.js", nil))
	if err != nil {
		panic(err)
	}
	fmt.Println(resp.StatusCode, resp.Header.Get("Content-Type"))
	// Output: 200 application/javascript; charset=utf-8
}

// Take the identity from the app's own auth middleware, which stores a
// principal in c.Locals; upgrades without one go to the server's Auth.
func ExamplePrincipalFromLocals() {
	ds, err := datasole.New(datasole.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer ds.Close(context.Background())

	app := fiber.New()
	app.Use(logger.New())
	app.Use(func(c *fiber.Ctx) error {
		// A real app verifies a session cookie or a token here.
		if c.Cookies("session") == "valid" {
			c.Locals("principal", &datasole.Principal{UserID: "alice", Roles: []string{"member"}})
		}
		return c.Next()
	})
	if err := ds.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	app.Use(dsfiber.New(ds, dsfiber.Config{Principal: dsfiber.PrincipalFromLocals("principal")}))
	_ = app // app.Listen(":3000")
}
