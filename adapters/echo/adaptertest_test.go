package dsecho_test

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	dsecho "github.com/datasole/datasole-go/adapters/echo"
	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/adaptertest"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// harness builds the app the shared scenarios expect, the way the package
// documentation tells users to.
var harness = adaptertest.Harness{
	Name: "echo",
	Serve: func(tb testing.TB, ds *datasole.Server, s adaptertest.Setup) string {
		tb.Helper()
		e := newApp()
		if s.Middleware {
			e.Use(commonMiddleware(ds)...)
		}
		e.Use(testAuth)
		e.Use(dsecho.MountWithConfig(ds, dsecho.Config{
			Skipper:   func(c echo.Context) bool { return c.Request().Header.Get(adaptertest.SkipHeader) != "" },
			Principal: dsecho.PrincipalFromJWT(adaptertest.PrincipalOf),
		}))
		return serve(tb, e)
	},
}

// newApp is an Echo app with one route and its own not-found answer.
func newApp() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.Logger.SetOutput(io.Discard)
	e.GET(adaptertest.AppRoute, func(c echo.Context) error { return c.String(http.StatusOK, adaptertest.AppBody) })
	e.HTTPErrorHandler = func(err error, c echo.Context) {
		if he, ok := err.(*echo.HTTPError); ok && he.Code == http.StatusNotFound {
			c.String(http.StatusNotFound, adaptertest.NotFoundBody)
			return
		}
		e.DefaultHTTPErrorHandler(err, c)
	}
	return e
}

// commonMiddleware is Echo's usual stack, in the order the package
// documentation recommends.
func commonMiddleware(ds *datasole.Server) []echo.MiddlewareFunc {
	return []echo.MiddlewareFunc{
		//lint:ignore SA1019 users still run the deprecated Logger in front of the mount
		middleware.LoggerWithConfig(middleware.LoggerConfig{Output: io.Discard}),
		middleware.Recover(),
		middleware.CORSWithConfig(middleware.CORSConfig{AllowOrigins: []string{"https://app.example"}}),
		middleware.Gzip(),
		middleware.ContextTimeout(10 * time.Second),
		//lint:ignore SA1019 users still run the deprecated Timeout; the adapter documents Skip(ds) for it
		middleware.TimeoutWithConfig(middleware.TimeoutConfig{Skipper: dsecho.Skip(ds), Timeout: 10 * time.Second}),
	}
}

// testAuth stands in for echo-jwt: it stores the request's identity under
// "user".
func testAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if id := adaptertest.IdentityFrom(c.Request().Header); id != nil {
			c.Set(adaptertest.UserKey, id)
		}
		return next(c)
	}
}

// serve runs e on a loopback port until tb ends.
func serve(tb testing.TB, e *echo.Echo) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	hs := &http.Server{Handler: e}
	go hs.Serve(ln)
	tb.Cleanup(func() { hs.Close() })
	return "http://" + ln.Addr().String()
}

func TestAdapter(t *testing.T) { adaptertest.Run(t, harness) }

func BenchmarkRPCEcho(b *testing.B) { adaptertest.BenchRPC(b, harness) }
