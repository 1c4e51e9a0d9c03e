// Package adaptertest is the test table every framework adapter runs: the
// same scenarios (RPC, events both ways, the runtime assets, an app route
// beside the mount, identity from the framework's auth middleware, the Origin
// check, skipping the mount) against a real server on a loopback port, bare
// and behind the framework's common middleware.
//
// An adapter's test supplies a Harness that builds the app the way its users
// would and calls Run:
//
//	func TestAdapter(t *testing.T) { adaptertest.Run(t, harness) }
//	func BenchmarkRPCEcho(b *testing.B) { adaptertest.BenchRPC(b, harness) }
package adaptertest

import (
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/datasole/datasole-go/datasole"
)

// What the app a Harness builds must do. Each constant names one duty.
const (
	// AppRoute is a GET route of the app; it answers 200 with AppBody.
	AppRoute = "/app/hello"
	// AppBody is the body of AppRoute.
	AppBody = "hello from the app"
	// NotFoundBody is what the app's own not-found handler answers (with
	// 404) for every path it has no route for, so a test can tell the app's
	// 404 from the core's.
	NotFoundBody = "app: no such route"

	// UserHeader and RolesHeader (comma-separated) are read by the app's
	// auth middleware, which runs before the mount: when UserHeader is
	// present it stores IdentityFrom(header) under UserKey the framework's
	// way (gin c.Set, echo c.Set, fiber Locals, a context value for
	// net/http), and the adapter is configured to turn that value into the
	// principal with PrincipalOf.
	UserHeader  = "X-Test-User"
	RolesHeader = "X-Test-Roles"
	// UserKey is the key the app's auth middleware stores the identity
	// under; "user" is also where echo-jwt and gofiber's jwt put the token.
	UserKey = "user"

	// SkipHeader marks requests the adapter's Skipper (echo), Next (fiber)
	// or skip option (gin, net/http) must pass to the app untouched.
	SkipHeader = "X-Test-Skip"
)

// Identity is what the app's auth middleware stores under UserKey. It stands
// in for what a real auth middleware stores (echo-jwt's *jwt.Token, a
// session user): a value of the app's own type that the adapter maps to a
// principal with a function the app supplies.
type Identity struct {
	Name  string
	Roles []string
}

// IdentityFrom returns the identity the request headers claim, or nil when
// UserHeader is absent.
func IdentityFrom(h http.Header) *Identity {
	name := h.Get(UserHeader)
	if name == "" {
		return nil
	}
	id := &Identity{Name: name}
	if roles := h.Get(RolesHeader); roles != "" {
		id.Roles = strings.Split(roles, ",")
	}
	return id
}

// PrincipalOf maps a value stored under UserKey to a principal: an
// *Identity becomes its name and roles; anything else is nil, which leaves
// the decision to the server's auth handler.
func PrincipalOf(v any) *datasole.Principal {
	id, ok := v.(*Identity)
	if !ok || id == nil {
		return nil
	}
	return &datasole.Principal{UserID: id.Name, Roles: id.Roles}
}

// Setup says how a Harness builds its app.
type Setup struct {
	// Middleware asks for the framework's common middleware (request
	// logging, recovery, CORS, compression, timeouts) around the mount, in
	// the order the adapter's documentation recommends.
	Middleware bool
}

// Harness starts one adapter under test.
type Harness struct {
	// Name names the adapter in test output.
	Name string
	// Serve starts a server on a loopback port that serves ds through the
	// adapter in an app built as the constants of this package describe,
	// and returns its base URL ("http://127.0.0.1:port"). It stops the
	// server when tb's test ends; ds is closed by the caller.
	Serve func(tb testing.TB, ds *datasole.Server, s Setup) string
}

// Core serves the bare core handler (ds.Handler() on net/http) with no
// framework in between. It builds no app around it, so it is a baseline for
// BenchRPC, not a Harness for Run.
var Core = Harness{
	Name: "core",
	Serve: func(tb testing.TB, ds *datasole.Server, _ Setup) string {
		tb.Helper()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		hs := &http.Server{Handler: ds.Handler()}
		go hs.Serve(ln)
		tb.Cleanup(func() { hs.Close() })
		return "http://" + ln.Addr().String()
	},
}
