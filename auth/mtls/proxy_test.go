package dsmtls

import (
	"crypto/tls"
	"crypto/x509/pkix"
	"encoding/json"
	"net/http"
	"reflect"
	"testing"

	"github.com/datasole/datasole-go/datasole"
)

// asProxy sends a request over a TLS connection on which the sender presents
// cert, as a re-encrypting proxy (or a client) does, with the given headers.
// It returns the status and, on 200, the principal the server saw.
func asProxy(t *testing.T, h datasole.AuthHandler, cert issued, kv ...string) (int, *datasole.Principal) {
	t.Helper()
	srv, cl := serveTLS(t, h, tls.VerifyClientCertIfGiven, cert)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/__ds", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		req.Header.Add(kv[i], kv[i+1])
	}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil
	}
	var p datasole.Principal
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, &p
}

// A proxy that terminates the user's TLS and opens its own TLS connection to
// the server, presenting its own client certificate, forwards the user's
// certificate in headers. The headers must win: before, every user became
// the proxy ("edge-proxy", roles "infra").
func TestReencryptingProxyForwardsTheUserNotItself(t *testing.T) {
	const proxyID = "spiffe://example.org/ns/edge/sa/proxy"
	proxy := client(t, pkix.Name{CommonName: "edge-proxy", OrganizationalUnit: []string{"infra"}}, []string{proxyID}, nil)
	alice := client(t, alice, nil, nil)
	bob := client(t, pkix.Name{CommonName: "bob", OrganizationalUnit: []string{"qa"}}, nil, nil)
	forwarded := []string{"X-SSL-Client-Verify", "SUCCESS", "X-SSL-Client-Cert", alice.escaped()}

	byAddress := Options{Proxy: ProxyNginx, TrustedProxies: loopback}
	byName := Options{Proxy: ProxyNginx, TrustedProxyNames: []string{proxyID}}
	byBoth := Options{Proxy: ProxyNginx, TrustedProxies: loopback, TrustedProxyNames: []string{proxyID}}
	byBothStrict := byBoth
	byBothStrict.RejectUntrusted = true

	cases := []struct {
		name   string
		opts   Options
		sender issued
		hdr    []string
		status int
		user   string
		roles  []string
	}{
		{"a proxy trusted by address forwards alice", byAddress, proxy, forwarded, 200, "alice", []string{"dev", "ops"}},
		{"a proxy trusted by certificate name forwards alice", byName, proxy, forwarded, 200, "alice", []string{"dev", "ops"}},
		{"a proxy trusted by both forwards alice", byBoth, proxy, forwarded, 200, "alice", []string{"dev", "ops"}},
		{"a trusted proxy forwarding no certificate is not itself a user", byAddress, proxy, nil, 401, "", nil},
		{"a trusted proxy forwarding a failed verification is refused", byBoth, proxy,
			[]string{"X-SSL-Client-Verify", "FAILED:expired", "X-SSL-Client-Cert", alice.escaped()}, 401, "", nil},
		{"a direct client on a trusted address but without the proxy's name is itself", byBoth, bob, forwarded, 200, "bob", []string{"qa"}},
		{"a direct client spoofing headers is refused with RejectUntrusted", byBothStrict, bob, forwarded, 401, "", nil},
		{"a direct client without headers is itself even with RejectUntrusted", byBothStrict, bob, nil, 200, "bob", []string{"qa"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, p := asProxy(t, mustNew(t, tc.opts), tc.sender, tc.hdr...)
			if status != tc.status {
				t.Fatalf("status %d, want %d (principal %+v)", status, tc.status, p)
			}
			if p != nil && (p.UserID != tc.user || !reflect.DeepEqual(p.Roles, tc.roles)) {
				t.Fatalf("principal %+v, want user %q roles %v", p, tc.user, tc.roles)
			}
		})
	}

	t.Run("a proxy name needs a verified certificate", func(t *testing.T) {
		// The server asks for any certificate and verifies none, so the
		// presented proxy certificate is not trusted and the headers are not
		// read; the unverified certificate itself is refused.
		h := mustNew(t, byName)
		srv, cl := serveTLS(t, h, tls.RequireAnyClientCert, proxy)
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/__ds", nil)
		req.Header.Set("X-SSL-Client-Verify", "SUCCESS")
		req.Header.Set("X-SSL-Client-Cert", alice.escaped())
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401", resp.StatusCode)
		}
	})
}

func TestCertificateExpiryBecomesExpiresAt(t *testing.T) {
	c := client(t, alice, nil, nil)
	status, p := asProxy(t, mustNew(t, Options{}), c)
	if status != http.StatusOK || !p.ExpiresAt.Equal(c.cert.NotAfter) {
		t.Fatalf("status %d, principal %+v; want ExpiresAt %v", status, p, c.cert.NotAfter)
	}
	t.Run("and a subject forwarded without a certificate has none", func(t *testing.T) {
		h := mustNew(t, Options{Proxy: ProxyNginx, TrustedProxies: loopback})
		p, err := h(withHeaders("X-SSL-Client-Verify", "SUCCESS", "X-SSL-Client-S-DN", "CN=alice"))
		if err != nil || !p.ExpiresAt.IsZero() {
			t.Fatalf("principal %+v, %v; want no expiry", p, err)
		}
	})
}
