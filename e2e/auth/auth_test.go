// Package auth_test upgrades through real adapters with each ready-made auth
// handler and checks what the RPC handler sees: the user id, roles and
// metadata the credential carries.
package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"reflect"
	"testing"
	"time"

	dsecho "github.com/datasole/datasole-go/adapters/echo"
	dshttp "github.com/datasole/datasole-go/adapters/stdlib"
	dscookie "github.com/datasole/datasole-go/auth/cookie"
	dsjwt "github.com/datasole/datasole-go/auth/jwt"
	dsmtls "github.com/datasole/datasole-go/auth/mtls"
	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/client"
	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type seen struct {
	User     string         `json:"user"`
	Roles    []string       `json:"roles"`
	Metadata map[string]any `json:"metadata"`
}

// mounts serve ds through two different adapters.
var mounts = map[string]func(ds *datasole.Server) http.Handler{
	"net/http": func(ds *datasole.Server) http.Handler { return dshttp.Wrap(http.NotFoundHandler(), ds) },
	"echo": func(ds *datasole.Server) http.Handler {
		e := echo.New()
		e.Use(dsecho.Mount(ds))
		return e
	},
}

// whoIs upgrades through every mount with auth as the server's auth handler
// and the credential set by cred, and returns what the RPC handler saw.
func whoIs(t *testing.T, auth datasole.AuthHandler, cred func(o *client.Options)) map[string]seen {
	out := map[string]seen{}
	for name, mount := range mounts {
		ds, err := datasole.New(datasole.Options{Auth: auth, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		if err := ds.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		ds.HandleRPC("whoami", func(c *datasole.Context, _ json.RawMessage) (any, error) {
			p := c.Principal()
			return seen{User: c.UserID(), Roles: p.Roles, Metadata: p.Metadata}, nil
		})
		hs := httptest.NewServer(mount(ds))
		o := client.Options{Logger: quiet, NoReconnect: true}
		cred(&o)
		c, err := client.Dial(context.Background(), hs.URL, o)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var s seen
		if err := c.Call(context.Background(), "whoami", nil, &s); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[name] = s
		c.Close()
		ds.Close(context.Background())
		hs.Close()
		// A request without the credential is refused with 401.
		if _, err := client.Dial(context.Background(), hs.URL, client.Options{Logger: quiet, NoReconnect: true}); err == nil {
			t.Fatalf("%s: an upgrade without credentials was admitted", name)
		}
	}
	return out
}

func expect(t *testing.T, got map[string]seen, want seen) {
	t.Helper()
	for name, s := range got {
		if !reflect.DeepEqual(s, want) {
			t.Fatalf("through %s the handler saw %+v, want %+v", name, s, want)
		}
	}
}

func TestJWTThroughAdapters(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef-test-key")
	h, err := dsjwt.New(dsjwt.Options{Algorithms: []string{"HS256"}, Key: key, Issuer: "https://id.example",
		RolesClaim: "realm_access.roles", MetadataClaims: []string{"tenant"}})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "u-42", "iss": "https://id.example", "exp": time.Now().Add(time.Hour).Unix(),
		"realm_access": map[string]any{"roles": []string{"admin", "editor"}}, "tenant": "acme",
	}).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	got := whoIs(t, h, func(o *client.Options) { o.Token = tok }) // ?token=, as browsers send it
	expect(t, got, seen{User: "u-42", Roles: []string{"admin", "editor"}, Metadata: map[string]any{"tenant": "acme"}})
}

func TestCookieThroughAdapters(t *testing.T) {
	sess, err := dscookie.NewSession(dscookie.Options{Keys: []dscookie.Key{{Hash: []byte("0123456789abcdef0123456789abcdef")}}, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	name, value, err := sess.Encode(&datasole.Principal{UserID: "ann", Roles: []string{"member"}, Metadata: map[string]any{"plan": "pro"}})
	if err != nil {
		t.Fatal(err)
	}
	got := whoIs(t, sess.Authenticate, func(o *client.Options) {
		o.Header = http.Header{"Cookie": {name + "=" + value}}
	})
	expect(t, got, seen{User: "ann", Roles: []string{"member"}, Metadata: map[string]any{"plan": "pro"}})
}

func TestMTLSProxyHeadersThroughAdapters(t *testing.T) {
	pemCert := clientCert(t, "svc-7", "payments")
	h, err := dsmtls.New(dsmtls.Options{Proxy: dsmtls.ProxyNginx, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	got := whoIs(t, h, func(o *client.Options) {
		// What nginx forwards with ssl_verify_client on: $ssl_client_verify
		// and $ssl_client_escaped_cert.
		o.Header = http.Header{"X-Ssl-Client-Verify": {"SUCCESS"}, "X-Ssl-Client-Cert": {url.PathEscape(pemCert)}}
	})
	for name, s := range got {
		if s.User != "svc-7" || !reflect.DeepEqual(s.Roles, []string{"payments"}) {
			t.Fatalf("through %s the handler saw %+v", name, s)
		}
	}
}

// clientCert makes a self-signed client certificate with a CN and one OU.
func clientCert(t *testing.T, cn, ou string) string {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: cn, OrganizationalUnit: []string{ou}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}
