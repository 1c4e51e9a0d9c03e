package dsmtls

import (
	"crypto/x509/pkix"
	"errors"
	"reflect"
	"testing"

	"github.com/datasole/datasole-go/datasole"
)

func TestParseDN(t *testing.T) {
	cases := []struct {
		in   string
		want pkix.Name
	}{
		{"CN=alice", pkix.Name{CommonName: "alice"}},
		{"CN=alice,OU=ops+OU=dev,O=Example\\, Inc.,C=US", pkix.Name{CommonName: "alice", OrganizationalUnit: []string{"ops", "dev"}, Organization: []string{"Example, Inc."}, Country: []string{"US"}}},
		{`CN=J\C3\BCrgen\20,L=K\C3\B6ln`, pkix.Name{CommonName: "Jürgen ", Locality: []string{"Köln"}}},
		{` cn = spaced  , ou=x `, pkix.Name{CommonName: "spaced", OrganizationalUnit: []string{"x"}}},
		{`CN="quoted, value";O=legacy`, pkix.Name{CommonName: "quoted, value", Organization: []string{"legacy"}}},
		{"2.5.4.3=oid,UID=ignored,ST=Bavaria", pkix.Name{CommonName: "oid", Province: []string{"Bavaria"}}},
		{`CN=a\+b\=c\\d`, pkix.Name{CommonName: `a+b=c\d`}},
	}
	for _, tc := range cases {
		t.Run("parses "+tc.in, func(t *testing.T) {
			got, err := parseDN(tc.in)
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("parseDN = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
	for _, bad := range []string{"", "CN", "=x", "CN=#0403616263", `CN="open`, `CN=a\`, "CN=\xff", `CN="a"x`} {
		t.Run("refuses "+bad, func(t *testing.T) {
			if n, err := parseDN(bad); err == nil {
				t.Fatalf("parseDN(%q) = %+v, want an error", bad, n)
			}
		})
	}
}

func TestParseElements(t *testing.T) {
	got, err := parseElements(`By=spiffe://a;Hash=ab;Subject="CN=x,OU=\"q\";y";URI=;DNS=d1;dns=d2,by=b2;Cert="%2D%2D"`)
	want := [][]pair{
		{{"by", "spiffe://a"}, {"hash", "ab"}, {"subject", `CN=x,OU="q";y`}, {"uri", ""}, {"dns", "d1"}, {"dns", "d2"}},
		{{"by", "b2"}, {"cert", "%2D%2D"}},
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("parseElements = %q, %v; want %q", got, err, want)
	}
	for _, bad := range []string{"", "noequals", `Subject="open`, `a=b;`, `a=b,`, `a="x"y`, `=v`, `a=b"c`, `a=b=c`} {
		t.Run("refuses "+bad, func(t *testing.T) {
			if e, err := parseElements(bad); err == nil {
				t.Fatalf("parseElements(%q) = %q, want an error", bad, e)
			}
		})
	}
}

// FuzzParseDN checks that the DN parser never panics and that what it reads
// survives a round trip through pkix.Name's RFC 2253 rendering.
func FuzzParseDN(f *testing.F) {
	for _, s := range []string{"CN=alice,OU=ops+OU=dev,O=Example\\, Inc.,C=US", `CN=J\C3\BCrgen`, `CN="q, v"`, "CN=#04", `CN=a\`, " cn = x "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseDN(s)
		if err != nil {
			return
		}
		again, err := parseDN(n.String())
		if n.String() == "" {
			return // nothing this parser keeps
		}
		if err != nil || again.CommonName != n.CommonName || !reflect.DeepEqual(again.OrganizationalUnit, n.OrganizationalUnit) {
			t.Fatalf("round trip of %q via %q gave %+v, %v; want %+v", s, n.String(), again, err, n)
		}
	})
}

// FuzzParseElements checks that the XFCC parser never panics and only
// returns non-empty elements with non-empty keys.
func FuzzParseElements(f *testing.F) {
	for _, s := range []string{
		`By=spiffe://a;Hash=ab;Cert="-----BEGIN%20CERTIFICATE-----";Subject="CN=x,OU=y";URI=spiffe://b;DNS=c`,
		`a=1,b=2`, `Subject="a\"b"`, `x="`, `;;,,==`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		elems, err := parseElements(s)
		if err != nil {
			return
		}
		for _, e := range elems {
			if len(e) == 0 {
				t.Fatalf("empty element in %q", s)
			}
			for _, p := range e {
				if p.key == "" {
					t.Fatalf("empty key in %q", s)
				}
			}
		}
		xfccOf(elems[len(elems)-1])
	})
}

// FuzzProxyHeaders sends arbitrary certificate headers from a trusted proxy
// in every dialect: the handler never panics, refuses with an error wrapping
// ErrUnauthorized, and never admits a principal without a user id.
func FuzzProxyHeaders(f *testing.F) {
	f.Add(`Hash=ab;Cert="-----BEGIN%20CERTIFICATE-----%0AMIIB%0A-----END%20CERTIFICATE-----";Subject="CN=x"`, "SUCCESS", "CN=alice,OU=ops")
	f.Add("TUlJQg%3D%3D%2CTUlJQg", "", `Subject%3D%22CN%3Dx%22%3BSAN%3D%22a.example%2Cspiffe%3A%2F%2Fx%22`)
	f.Add("%zz", "NONE", `CN=\`)
	f.Add(`By=a,Subject="CN=b";URI=spiffe://c`, "SUCCESS", "")
	handlers := map[Proxy]datasole.AuthHandler{}
	for _, p := range []Proxy{ProxyEnvoy, ProxyNginx, ProxyTraefik, ProxyALB} {
		h, err := New(Options{Proxy: p, TrustedProxies: loopback, ProxyVerifies: true, AllowUnverified: true})
		if err != nil {
			f.Fatal(err)
		}
		handlers[p] = h
	}
	f.Fuzz(func(t *testing.T, cert, verify, subject string) {
		for p, h := range handlers {
			r := withHeaders()
			switch p {
			case ProxyEnvoy:
				r.Header.Set("X-Forwarded-Client-Cert", cert)
			case ProxyNginx:
				r.Header.Set("X-SSL-Client-Cert", cert)
				r.Header.Set("X-SSL-Client-Verify", verify)
				r.Header.Set("X-SSL-Client-S-DN", subject)
			case ProxyTraefik:
				r.Header.Set("X-Forwarded-Tls-Client-Cert", cert)
				r.Header.Set("X-Forwarded-Tls-Client-Cert-Info", subject)
			case ProxyALB:
				r.Header.Set("X-Amzn-Mtls-Clientcert-Leaf", cert)
				r.Header.Set("X-Amzn-Mtls-Clientcert", subject)
			}
			pr, err := h(r)
			if err != nil {
				if !errors.Is(err, datasole.ErrUnauthorized) {
					t.Fatalf("proxy %d: err %v does not wrap ErrUnauthorized", p, err)
				}
				continue
			}
			if pr == nil || pr.UserID == "" {
				t.Fatalf("proxy %d admitted %+v", p, pr)
			}
		}
	})
}
