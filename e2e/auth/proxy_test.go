package auth_test

import (
	"crypto/x509/pkix"
	"encoding/pem"
	"net/http"
	"net/netip"
	"net/url"
	"testing"
	"time"

	dsmtls "github.com/datasole/datasole-go/auth/mtls"
	"github.com/datasole/datasole-go/datasole"
)

// The attack: a proxy that terminates the user's TLS and re-encrypts to the
// datasole server presents its own client certificate ("edge-proxy", OU
// "infra") and forwards the user's certificate in nginx headers. Over a real
// TLS WebSocket upgrade the user, not the proxy, must be who connects.
func TestMTLSBehindReencryptingProxyThroughServer(t *testing.T) {
	ca := newCA(t)
	const proxyID = "spiffe://example.org/ns/edge/sa/proxy"
	proxyCert := ca.issue(t, pkix.Name{CommonName: "edge-proxy", OrganizationalUnit: []string{"infra"}}, []string{proxyID}, time.Now().Add(time.Hour))
	userCert := ca.issue(t, pkix.Name{CommonName: "alice", OrganizationalUnit: []string{"dev"}}, nil, time.Now().Add(time.Hour))
	forwarded := http.Header{
		"X-Ssl-Client-Verify": {"SUCCESS"},
		"X-Ssl-Client-Cert":   {url.PathEscape(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: userCert.Leaf.Raw})))},
	}
	for name, o := range map[string]dsmtls.Options{
		"trusted by address":          {Proxy: dsmtls.ProxyNginx, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		"trusted by certificate name": {Proxy: dsmtls.ProxyNginx, TrustedProxyNames: []string{proxyID}},
	} {
		t.Run("a proxy "+name+" connects the user it forwards", func(t *testing.T) {
			auth, err := dsmtls.New(o)
			if err != nil {
				t.Fatal(err)
			}
			n := serve(t, datasole.Options{Auth: auth}, nil, ca.serverTLS())
			if _, user := n.mustUpgrade(t, nil, forwarded, &proxyCert); user != "alice" {
				t.Fatalf("connected as %q, want alice (the proxy's own certificate must not count)", user)
			}
			if _, status := n.upgrade(t, nil, nil, &proxyCert); status != http.StatusUnauthorized {
				t.Fatalf("the proxy without forwarded headers: %d, want 401", status)
			}
		})
	}
	t.Run("a direct client's headers are ignored when the proxy is known by name", func(t *testing.T) {
		auth, err := dsmtls.New(dsmtls.Options{Proxy: dsmtls.ProxyNginx, TrustedProxyNames: []string{proxyID}})
		if err != nil {
			t.Fatal(err)
		}
		n := serve(t, datasole.Options{Auth: auth}, nil, ca.serverTLS())
		bob := ca.issue(t, pkix.Name{CommonName: "bob"}, nil, time.Now().Add(time.Hour))
		if _, user := n.mustUpgrade(t, nil, forwarded, &bob); user != "bob" {
			t.Fatalf("connected as %q, want bob (his own certificate; the spoofed headers ignored)", user)
		}
	})
}
