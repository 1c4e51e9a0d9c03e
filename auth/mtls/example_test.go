package dsmtls_test

import (
	"fmt"
	"net/http/httptest"
	"net/netip"

	dsmtls "github.com/datasole/datasole-go/auth/mtls"
)

// Behind nginx, which verifies client certificates (ssl_verify_client on)
// and forwards the result. Headers are trusted only from nginx's address.
func ExampleNew_nginx() {
	auth, err := dsmtls.New(dsmtls.Options{
		Proxy:          dsmtls.ProxyNginx,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.5/32")},
	})
	if err != nil {
		panic(err)
	}
	r := httptest.NewRequest("GET", "/__ds", nil)
	r.RemoteAddr = "10.0.0.5:51234"
	r.Header.Set("X-SSL-Client-Verify", "SUCCESS")
	r.Header.Set("X-SSL-Client-S-DN", "CN=alice,OU=ops,O=Example")

	p, err := auth(r)
	fmt.Println(p.UserID, p.Roles, err)
	// Output: alice [ops] <nil>
}

// Behind an Envoy sidecar that requires and validates client certificates
// and sets X-Forwarded-Client-Cert; the SPIFFE id becomes the user id.
func ExampleNew_envoySPIFFE() {
	auth, err := dsmtls.New(dsmtls.Options{
		Proxy:          dsmtls.ProxyEnvoy,
		ProxyVerifies:  true,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		Identity:       dsmtls.IdentityURI,
		URIPrefix:      "spiffe://example.org/",
		Roles: func(c *dsmtls.ClientCert) []string {
			return []string{"service"}
		},
	})
	if err != nil {
		panic(err)
	}
	r := httptest.NewRequest("GET", "/__ds", nil)
	r.RemoteAddr = "127.0.0.1:40000"
	r.Header.Set("X-Forwarded-Client-Cert",
		`By=spiffe://example.org/ns/edge/sa/envoy;Subject="CN=billing";URI=spiffe://example.org/ns/prod/sa/billing`)

	p, err := auth(r)
	fmt.Println(p.UserID, p.Roles, err)
	// Output: spiffe://example.org/ns/prod/sa/billing [service] <nil>
}
