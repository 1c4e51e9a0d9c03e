package dsmtls

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/authtest"
)

var (
	loopback  = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	elsewhere = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
)

func mustNew(t *testing.T, o Options) datasole.AuthHandler {
	t.Helper()
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func withHeaders(kv ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/__ds", nil)
	r.RemoteAddr = "127.0.0.1:40000"
	for i := 0; i+1 < len(kv); i += 2 {
		r.Header.Add(kv[i], kv[i+1])
	}
	return r
}

// x509 stores the OUs as a DER SET, so they come back sorted: dev, ops.
var alice = pkix.Name{CommonName: "alice", OrganizationalUnit: []string{"ops", "dev"}, Organization: []string{"Example, Inc."}}

func TestProxyHeadersAreRead(t *testing.T) {
	c := client(t, alice, []string{"spiffe://example.org/ns/chat/sa/alice"}, []string{"alice.example.org"})
	spoof := client(t, pkix.Name{CommonName: "admin"}, nil, nil)
	cases := []struct {
		name     string
		opts     Options
		req      *http.Request
		user     string
		roles    []string
		verified bool
	}{
		{"Envoy XFCC with Cert and Hash", Options{Proxy: ProxyEnvoy, ProxyVerifies: true},
			withHeaders("X-Forwarded-Client-Cert", `By=spiffe://example.org/envoy;Hash=`+c.hash()+`;Cert="`+c.escaped()+`";Subject="CN=alice,OU=ops"`),
			"alice", []string{"dev", "ops"}, true},
		{"Envoy XFCC with Subject and URI only, identity from the SPIFFE id",
			Options{Proxy: ProxyEnvoy, ProxyVerifies: true, Identity: IdentityURI, URIPrefix: "spiffe://example.org/"},
			withHeaders("X-Forwarded-Client-Cert", `By=spiffe://example.org/envoy;Subject="CN=bob,OU=qa,O=Example\, Inc.";URI=https://bob.example;URI=spiffe://example.org/ns/chat/sa/bob;DNS=bob.example`),
			"spiffe://example.org/ns/chat/sa/bob", []string{"qa"}, true},
		{"Envoy XFCC whose first element was appended by the client: the last one counts",
			Options{Proxy: ProxyEnvoy, ProxyVerifies: true},
			withHeaders("X-Forwarded-Client-Cert", `Hash=`+spoof.hash()+`;Cert="`+spoof.escaped()+`",Hash=`+c.hash()+`;Cert="`+c.escaped()+`"`),
			"alice", []string{"dev", "ops"}, true},
		{"nginx with a verified escaped certificate", Options{Proxy: ProxyNginx},
			withHeaders("X-SSL-Client-Verify", "SUCCESS", "X-SSL-Client-Cert", c.escaped(), "X-SSL-Client-S-DN", "CN=ignored"),
			"alice", []string{"dev", "ops"}, true},
		{"nginx with only the subject DN", Options{Proxy: ProxyNginx},
			withHeaders("X-SSL-Client-Verify", "SUCCESS", "X-SSL-Client-S-DN", `CN=carol\2C jr.,OU=support+OU=sales,O=Example\, Inc.,C=DE`),
			"carol, jr.", []string{"support", "sales"}, true},
		{"Traefik with the certificate header", Options{Proxy: ProxyTraefik, ProxyVerifies: true, Identity: IdentityDNS},
			withHeaders("X-Forwarded-Tls-Client-Cert", c.traefik()+"%2C"+client(t, pkix.Name{CommonName: "intermediate"}, nil, nil).traefik()),
			"alice.example.org", []string{"dev", "ops"}, true},
		{"Traefik with only the info header", Options{Proxy: ProxyTraefik, ProxyVerifies: true, Identity: IdentityURI},
			withHeaders("X-Forwarded-Tls-Client-Cert-Info", `Subject%3D%22C%3DFR%2COU%3Dops%2CCN%3Ddave%22%3BIssuer%3D%22CN%3DTest+CA%22%3BNB%3D%221544094616%22%3BSAN%3D%22dave.example.org%2Cdave%40example.org%2C10.0.1.1%2Cspiffe%3A%2F%2Fexample.org%2Fdave%22`),
			"spiffe://example.org/dave", []string{"ops"}, true},
		{"an ALB in verify mode", Options{Proxy: ProxyALB},
			withHeaders("X-Amzn-Mtls-Clientcert-Leaf", c.escaped(), "X-Amzn-Mtls-Clientcert-Subject", "CN=alice"),
			"alice", []string{"dev", "ops"}, true},
		{"an ALB in passthrough mode when unverified certificates are allowed", Options{Proxy: ProxyALB, AllowUnverified: true},
			withHeaders("X-Amzn-Mtls-Clientcert", c.escaped()+c.escaped()),
			"alice", []string{"dev", "ops"}, false},
		{"custom header names with a verify header", Options{Proxy: ProxyCustom,
			Headers: Headers{Cert: "X-Client-Cert", Verify: "X-Client-Verified", VerifySuccess: "yes"},
			Roles:   func(c *ClientCert) []string { return []string{"svc:" + c.Subject.CommonName} }},
			withHeaders("X-Client-Verified", "yes", "X-Client-Cert", c.escaped()),
			"alice", []string{"svc:alice"}, true},
	}
	for _, tc := range cases {
		t.Run("reads "+tc.name, func(t *testing.T) {
			tc.opts.TrustedProxies = loopback
			p := authtest.OK(t, mustNew(t, tc.opts), tc.req)
			if p.UserID != tc.user || !reflect.DeepEqual(p.Roles, tc.roles) || p.Metadata["verified"] != tc.verified {
				t.Fatalf("got %+v, want user %q roles %v verified %v", p, tc.user, tc.roles, tc.verified)
			}
			if s, _ := p.Metadata["subject"].(string); s == "" {
				t.Fatal("metadata lacks the subject")
			}
		})
	}
}

func TestSpoofedAndUnverifiedCertificatesAreRefused(t *testing.T) {
	c := client(t, alice, nil, nil)
	nginx := Options{Proxy: ProxyNginx, TrustedProxies: loopback}
	cases := []struct {
		name string
		opts Options
		req  *http.Request
	}{
		{"headers from an untrusted address when configured to reject",
			Options{Proxy: ProxyNginx, TrustedProxies: elsewhere, RejectUntrusted: true},
			withHeaders("X-SSL-Client-Verify", "SUCCESS", "X-SSL-Client-Cert", c.escaped())},
		{"an nginx certificate that failed verification", nginx,
			withHeaders("X-SSL-Client-Verify", "FAILED:certificate has expired", "X-SSL-Client-Cert", c.escaped())},
		{"an nginx certificate with verification NONE", nginx,
			withHeaders("X-SSL-Client-Verify", "NONE", "X-SSL-Client-Cert", c.escaped())},
		{"an nginx certificate without a verify header", nginx,
			withHeaders("X-SSL-Client-Cert", c.escaped())},
		{"an nginx subject with a lower-case success", nginx,
			withHeaders("X-SSL-Client-Verify", "success", "X-SSL-Client-S-DN", "CN=alice")},
		{"an Envoy certificate when Envoy is not declared to verify",
			Options{Proxy: ProxyEnvoy, TrustedProxies: loopback},
			withHeaders("X-Forwarded-Client-Cert", `Cert="`+c.escaped()+`"`)},
		{"a Traefik certificate when Traefik is not declared to verify",
			Options{Proxy: ProxyTraefik, TrustedProxies: loopback},
			withHeaders("X-Forwarded-Tls-Client-Cert", c.traefik())},
		{"an ALB passthrough (unverified) certificate",
			Options{Proxy: ProxyALB, TrustedProxies: loopback},
			withHeaders("X-Amzn-Mtls-Clientcert", c.escaped())},
		{"an oversized header", nginx,
			withHeaders("X-SSL-Client-Verify", "SUCCESS", "X-SSL-Client-Cert", c.escaped()+strings.Repeat("%0A", 6<<10))},
		{"a repeated header", nginx,
			withHeaders("X-SSL-Client-Verify", "SUCCESS", "X-SSL-Client-Verify", "SUCCESS", "X-SSL-Client-S-DN", "CN=alice")},
		{"an XFCC whose Hash does not match its Cert",
			Options{Proxy: ProxyEnvoy, TrustedProxies: loopback, ProxyVerifies: true},
			withHeaders("X-Forwarded-Client-Cert", `Hash=`+strings.Repeat("ab", 32)+`;Cert="`+c.escaped()+`"`)},
		{"a malformed XFCC",
			Options{Proxy: ProxyEnvoy, TrustedProxies: loopback, ProxyVerifies: true},
			withHeaders("X-Forwarded-Client-Cert", `Subject="CN=alice`)},
		{"an XFCC with only By and Hash",
			Options{Proxy: ProxyEnvoy, TrustedProxies: loopback, ProxyVerifies: true},
			withHeaders("X-Forwarded-Client-Cert", `By=spiffe://x;Hash=`+c.hash())},
		{"a certificate header that is not PEM", nginx,
			withHeaders("X-SSL-Client-Verify", "SUCCESS", "X-SSL-Client-Cert", "MIIBnotpem")},
		{"a malformed subject DN", nginx,
			withHeaders("X-SSL-Client-Verify", "SUCCESS", "X-SSL-Client-S-DN", "CN")},
		{"a certificate without the configured identity",
			Options{Proxy: ProxyNginx, TrustedProxies: loopback, Identity: IdentityURI},
			withHeaders("X-SSL-Client-Verify", "SUCCESS", "X-SSL-Client-Cert", c.escaped())},
	}
	for _, tc := range cases {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			authtest.Refused(t, mustNew(t, tc.opts), tc.req)
		})
	}
}

func TestUntrustedHeadersAreIgnored(t *testing.T) {
	c := client(t, alice, nil, nil)
	h := mustNew(t, Options{Proxy: ProxyNginx, TrustedProxies: elsewhere})
	r := withHeaders("X-SSL-Client-Verify", "SUCCESS", "X-SSL-Client-Cert", c.escaped())
	if _, err := h(r); !errors.Is(err, datasole.ErrNoCredentials) {
		t.Fatalf("err = %v, want ErrNoCredentials", err)
	}
	chained := datasole.Chain(h, datasole.Anonymous)
	if p := authtest.OK(t, chained, r); p.UserID != "" {
		t.Fatalf("spoofed headers gave user %q", p.UserID)
	}
	t.Run("and a trusted request without a certificate has no credentials", func(t *testing.T) {
		h := mustNew(t, Options{Proxy: ProxyNginx, TrustedProxies: loopback})
		for _, r := range []*http.Request{withHeaders(), withHeaders("X-SSL-Client-Verify", "NONE", "X-SSL-Client-Cert", "")} {
			if _, err := h(r); !errors.Is(err, datasole.ErrNoCredentials) {
				t.Fatalf("err = %v, want ErrNoCredentials", err)
			}
		}
	})
}

// serveTLS runs h on a loopback TLS server asking for client certificates
// with the given policy, and returns a client presenting cert.
func serveTLS(t *testing.T, h datasole.AuthHandler, auth tls.ClientAuthType, cert issued) (*httptest.Server, *http.Client) {
	t.Helper()
	srv := httptest.NewUnstartedServer(authtest.Endpoint(t, h))
	pool := x509.NewCertPool()
	pool.AddCert(ca().cert)
	srv.TLS = &tls.Config{ClientAuth: auth, ClientCAs: pool}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	cl := srv.Client()
	cl.Transport.(*http.Transport).TLSClientConfig.Certificates = []tls.Certificate{cert.tlsCert()}
	return srv, cl
}

func status(t *testing.T, srv *httptest.Server, cl *http.Client) int {
	t.Helper()
	resp, err := cl.Get(srv.URL + "/__ds")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestDirectTLS(t *testing.T) {
	c := client(t, alice, nil, nil)
	t.Run("a verified client certificate is admitted", func(t *testing.T) {
		var got *datasole.Principal
		h := mustNew(t, Options{})
		srv, cl := serveTLS(t, func(r *http.Request) (*datasole.Principal, error) {
			p, err := h(r)
			got = p
			return p, err
		}, tls.VerifyClientCertIfGiven, c)
		if s := status(t, srv, cl); s != http.StatusOK {
			t.Fatalf("status = %d, want 200", s)
		}
		if got.UserID != "alice" || got.Metadata["verified"] != true {
			t.Fatalf("principal %+v", got)
		}
	})
	t.Run("a presented but unverified certificate is refused", func(t *testing.T) {
		srv, cl := serveTLS(t, mustNew(t, Options{}), tls.RequireAnyClientCert, c)
		if s := status(t, srv, cl); s != http.StatusUnauthorized {
			t.Fatalf("status = %d, want 401", s)
		}
	})
	t.Run("unless unverified certificates are allowed", func(t *testing.T) {
		srv, cl := serveTLS(t, mustNew(t, Options{AllowUnverified: true}), tls.RequireAnyClientCert, c)
		if s := status(t, srv, cl); s != http.StatusOK {
			t.Fatalf("status = %d, want 200", s)
		}
	})
	t.Run("a plain request has no credentials", func(t *testing.T) {
		if _, err := mustNew(t, Options{})(withHeaders()); !errors.Is(err, datasole.ErrNoCredentials) {
			t.Fatalf("err = %v, want ErrNoCredentials", err)
		}
	})
}

func TestUnsafeConfigurationIsRefused(t *testing.T) {
	cases := []struct {
		name string
		opts Options
	}{
		{"a proxy without trusted addresses", Options{Proxy: ProxyNginx}},
		{"trusted addresses without a proxy", Options{TrustedProxies: loopback}},
		{"an invalid prefix", Options{Proxy: ProxyEnvoy, TrustedProxies: []netip.Prefix{{}}}},
		{"a custom proxy without header names", Options{Proxy: ProxyCustom, TrustedProxies: loopback}},
		{"an unknown proxy", Options{Proxy: Proxy(42), TrustedProxies: loopback}},
		{"an unknown identity", Options{Identity: Identity(7)}},
		{"trusted proxy names without a proxy", Options{TrustedProxyNames: []string{"edge"}}},
		{"an empty trusted proxy name", Options{Proxy: ProxyNginx, TrustedProxyNames: []string{""}}},
	}
	for _, tc := range cases {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			if h, err := New(tc.opts); err == nil || h != nil {
				t.Fatal("New succeeded")
			}
		})
	}
}
