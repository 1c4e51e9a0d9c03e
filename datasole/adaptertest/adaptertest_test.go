package adaptertest_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/datasole/datasole-go/datasole/adaptertest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The baseline every adapter's BenchmarkRPCEcho is compared with.
func BenchmarkRPCEcho(b *testing.B) { adaptertest.BenchRPC(b, adaptertest.Core) }

func TestPrincipalOf(t *testing.T) {
	t.Run("an identity becomes its name and roles", func(t *testing.T) {
		p := adaptertest.PrincipalOf(&adaptertest.Identity{Name: "a", Roles: []string{"r"}})
		if p == nil || p.UserID != "a" || !p.HasRole("r") {
			t.Fatalf("got %+v", p)
		}
	})
	t.Run("any other value leaves the decision to the server", func(t *testing.T) {
		for _, v := range []any{nil, "alice", (*adaptertest.Identity)(nil)} {
			if p := adaptertest.PrincipalOf(v); p != nil {
				t.Fatalf("PrincipalOf(%#v) = %+v", v, p)
			}
		}
	})
}

// The app's auth middleware turns request headers into an identity; the
// adapter maps it to a principal.
func ExamplePrincipalOf() {
	h := http.Header{}
	h.Set(adaptertest.UserHeader, "alice")
	h.Set(adaptertest.RolesHeader, "admin,ops")
	p := adaptertest.PrincipalOf(adaptertest.IdentityFrom(h))
	fmt.Println(p.UserID, p.Roles)
	// Output: alice [admin ops]
}
