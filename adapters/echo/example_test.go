package dsecho_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	dsecho "github.com/datasole/datasole-go/adapters/echo"
	"github.com/datasole/datasole-go/datasole"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// Mount datasole beside the routes an Echo app already has.
func ExampleMount() {
	ds, err := datasole.New(datasole.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer ds.Close(context.Background())

	e := echo.New()
	e.Use(middleware.Recover())
	if err := ds.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	e.Use(dsecho.Mount(ds))
	e.GET("/api/hello", func(c echo.Context) error { return c.String(http.StatusOK, "hi") })

	for _, path := range []string{"/api/hello", "/__ds/datasole.iife.min.js"} {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		fmt.Println(path, rec.Code, rec.Header().Get("Content-Type"))
	}
	// Output:
	// /api/hello 200 text/plain; charset=UTF-8
	// /__ds/datasole.iife.min.js 200 application/javascript; charset=utf-8
}

// Take the identity from the app's auth middleware (echo-jwt stores its
// *jwt.Token under "user"; this app stores a user name), and keep the
// Timeout middleware away from the upgrade.
func ExampleMountWithConfig() {
	ds, err := datasole.New(datasole.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer ds.Close(context.Background())

	type user struct{ name string }
	e := echo.New()
	//lint:ignore SA1019 users still run the deprecated Timeout; the adapter documents Skip(ds) for it
	e.Use(middleware.TimeoutWithConfig(middleware.TimeoutConfig{Skipper: dsecho.Skip(ds), Timeout: 30 * time.Second}))
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc { // stands in for echojwt.WithConfig(…)
		return func(c echo.Context) error {
			c.Set("user", &user{name: "alice"})
			return next(c)
		}
	})
	if err := ds.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	e.Use(dsecho.MountWithConfig(ds, dsecho.Config{
		Principal: dsecho.PrincipalFromJWT(func(u *user) *datasole.Principal {
			return &datasole.Principal{UserID: u.name, Roles: []string{"member"}}
		}),
	}))

	srv := httptest.NewServer(e)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/__ds/datasole.mjs")
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode)
	// Output: 200
}

// Route-style: a group on the server's path, whose middleware runs only for
// datasole requests.
func ExampleMount_group() {
	ds, err := datasole.New(datasole.Options{Path: "/ws"})
	if err != nil {
		log.Fatal(err)
	}
	if err := ds.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	defer ds.Close(context.Background())

	e := echo.New()
	e.Group("/ws", middleware.Recover(), dsecho.Mount(ds))

	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ws/datasole.iife.min.js", nil))
	fmt.Println(rec.Code, rec.Header().Get("Content-Type"))
	// Output: 200 application/javascript; charset=utf-8
}
