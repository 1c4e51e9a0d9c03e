package dsmtls

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// albPassthrough is the header an ALB in passthrough mode fills with the
// presented, unverified chain (URL-encoded PEM, leaf first).
const albPassthrough = "X-Amzn-Mtls-Clientcert"

// fromHeaders reads the certificate forwarded by a trusted proxy; nil, nil
// means the proxy forwarded none.
func (h *handler) fromHeaders(r *http.Request) (*ClientCert, error) {
	get := func(name string) string {
		if name == "" {
			return ""
		}
		return r.Header.Get(name)
	}
	switch h.o.Proxy {
	case ProxyEnvoy:
		return envoyCert(get(h.h.Cert), h.o.ProxyVerifies)
	case ProxyTraefik:
		return traefikCert(get(h.h.Cert), get(h.h.Subject), h.o.ProxyVerifies)
	case ProxyALB:
		if leaf := get(h.h.Cert); leaf != "" {
			return pemOrSubject(leaf, "", true)
		}
		return pemOrSubject(get(albPassthrough), "", false)
	default: // nginx and custom
		verified := h.o.ProxyVerifies
		if h.h.Verify != "" {
			verified = get(h.h.Verify) == h.h.VerifySuccess
		}
		return pemOrSubject(get(h.h.Cert), get(h.h.Subject), verified)
	}
}

// pemOrSubject reads a URL-escaped PEM certificate or, without one, an
// RFC 4514 subject.
func pemOrSubject(escapedPEM, subject string, verified bool) (*ClientCert, error) {
	if escapedPEM != "" {
		c, err := parseEscapedPEM(escapedPEM)
		if err != nil {
			return nil, err
		}
		return fromCert(c, verified), nil
	}
	if subject != "" {
		n, err := parseDN(subject)
		if err != nil {
			return nil, err
		}
		return &ClientCert{Subject: n, Verified: verified}, nil
	}
	return nil, nil
}

func parseEscapedPEM(s string) (*x509.Certificate, error) {
	// PathUnescape keeps a literal "+" (a base64 character) as it is.
	raw, err := url.PathUnescape(s)
	if err != nil {
		return nil, fmt.Errorf("unescaping certificate: %w", err)
	}
	block, _ := pem.Decode([]byte(raw))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

// envoyCert reads the last X-Forwarded-Client-Cert element: the one added by
// the proxy that connects to us, whatever earlier hops appended before it.
func envoyCert(v string, verified bool) (*ClientCert, error) {
	if v == "" {
		return nil, nil
	}
	elems, err := parseElements(v)
	if err != nil {
		return nil, err
	}
	x := xfccOf(elems[len(elems)-1])
	if x.cert != "" {
		c, err := parseEscapedPEM(x.cert)
		if err != nil {
			return nil, err
		}
		if x.hash != "" {
			sum := sha256.Sum256(c.Raw)
			if !strings.EqualFold(x.hash, hex.EncodeToString(sum[:])) {
				return nil, errors.New("XFCC Hash does not match Cert")
			}
		}
		return fromCert(c, verified), nil
	}
	cc := &ClientCert{Verified: verified, DNSNames: x.dns}
	if x.subject != "" {
		if cc.Subject, err = parseDN(x.subject); err != nil {
			return nil, err
		}
	}
	for _, s := range x.uris {
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("XFCC URI: %w", err)
		}
		cc.URIs = append(cc.URIs, u)
	}
	if x.subject == "" && len(cc.URIs) == 0 && len(cc.DNSNames) == 0 {
		return nil, errors.New("XFCC element has neither Cert, Subject, URI nor DNS")
	}
	return cc, nil
}

// traefikCert reads Traefik's certificate header (URL-escaped, comma-separated
// base64 DER, leaf first) or, without it, the first element of its info header.
func traefikCert(certs, info string, verified bool) (*ClientCert, error) {
	if certs != "" {
		raw, err := url.QueryUnescape(certs)
		if err != nil {
			return nil, fmt.Errorf("unescaping certificate: %w", err)
		}
		leaf, _, _ := strings.Cut(raw, ",")
		der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(leaf))
		if err != nil {
			return nil, fmt.Errorf("decoding certificate: %w", err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, err
		}
		return fromCert(c, verified), nil
	}
	if info == "" {
		return nil, nil
	}
	raw, err := url.QueryUnescape(info)
	if err != nil {
		return nil, fmt.Errorf("unescaping certificate info: %w", err)
	}
	elems, err := parseElements(raw)
	if err != nil {
		return nil, err
	}
	cc := &ClientCert{Verified: verified}
	for _, p := range elems[0] {
		switch p.key {
		case "subject":
			if cc.Subject, err = parseDN(p.value); err != nil {
				return nil, err
			}
		case "san":
			// Traefik lists every SAN kind in one field; tell them apart.
			for s := range strings.SplitSeq(p.value, ",") {
				switch s = strings.TrimSpace(s); {
				case s == "" || net.ParseIP(s) != nil:
				case strings.Contains(s, ":"): // IPv6 is taken above
					if u, err := url.Parse(s); err == nil {
						cc.URIs = append(cc.URIs, u)
					}
				case strings.Contains(s, "@"): // e-mail address
				default:
					cc.DNSNames = append(cc.DNSNames, s)
				}
			}
		}
	}
	return cc, nil
}
