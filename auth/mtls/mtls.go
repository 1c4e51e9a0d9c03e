package dsmtls

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"github.com/datasole/datasole-go/datasole"
)

// DefaultMaxHeaderBytes caps each certificate header before it is decoded.
const DefaultMaxHeaderBytes = 16 << 10

// ErrInvalidCertificate is returned when a client certificate (or forwarded
// certificate headers) is present but not acceptable: unverified, spoofed,
// malformed, oversized or without the configured identity. It wraps
// [datasole.ErrUnauthorized] and deliberately carries no reason.
var ErrInvalidCertificate = fmt.Errorf("dsmtls: invalid client certificate: %w", datasole.ErrUnauthorized)

// Proxy selects how a TLS-terminating proxy forwards the client certificate.
type Proxy int

const (
	// ProxyNone reads only the request's own TLS connection (r.TLS).
	ProxyNone Proxy = iota
	// ProxyEnvoy reads X-Forwarded-Client-Cert (forward_client_cert_details).
	// The header says nothing about verification: set Options.ProxyVerifies
	// when Envoy requires and validates client certificates.
	ProxyEnvoy
	// ProxyNginx reads X-SSL-Client-Verify ($ssl_client_verify, which must be
	// "SUCCESS"), X-SSL-Client-Cert ($ssl_client_escaped_cert) and
	// X-SSL-Client-S-DN ($ssl_client_s_dn, used when no certificate is sent).
	ProxyNginx
	// ProxyTraefik reads X-Forwarded-Tls-Client-Cert (passTLSClientCert with
	// pem: true) or, without it, X-Forwarded-Tls-Client-Cert-Info. The headers
	// say nothing about verification: set Options.ProxyVerifies when the TLS
	// option uses clientAuthType RequireAndVerifyClientCert.
	ProxyTraefik
	// ProxyALB reads AWS Application Load Balancer mTLS headers. In verify
	// mode the ALB only forwards certificates it verified against its trust
	// store, in X-Amzn-Mtls-Clientcert-Leaf: these count as verified. In
	// passthrough mode it forwards whatever the client presented, in
	// X-Amzn-Mtls-Clientcert: these count as presented, not verified.
	ProxyALB
	// ProxyCustom reads the headers named in Options.Headers: a URL-escaped
	// PEM certificate and/or an RFC 4514 subject, plus an optional
	// verification header.
	ProxyCustom
)

// Identity selects which certificate field becomes the user id.
type Identity int

const (
	// IdentityCommonName uses the subject's common name (CN).
	IdentityCommonName Identity = iota
	// IdentityURI uses a URI SAN, such as a SPIFFE id; see Options.URIPrefix.
	IdentityURI
	// IdentityDNS uses the first DNS SAN.
	IdentityDNS
)

// Headers names the certificate headers. Empty fields take the Proxy's
// defaults; with ProxyCustom, Cert or Subject is required.
type Headers struct {
	// Cert carries the certificate in the proxy's format (XFCC for Envoy,
	// URL-escaped PEM for nginx, ALB and custom, URL-escaped base64 DER for
	// Traefik).
	Cert string
	// Subject carries the subject DN (nginx, custom) or Traefik's info header;
	// it is used only when Cert is absent.
	Subject string
	// Verify carries the proxy's verification result (nginx, custom).
	Verify string
	// VerifySuccess is the Verify value meaning verified. Default "SUCCESS".
	VerifySuccess string
}

// ClientCert is what is known about the client certificate.
type ClientCert struct {
	// Subject of the certificate.
	Subject pkix.Name
	// URIs and DNSNames are its subject alternative names.
	URIs     []*url.URL
	DNSNames []string
	// Certificate is the leaf certificate, or nil when the proxy forwarded
	// only its fields.
	Certificate *x509.Certificate
	// Verified reports whether a TLS stack (Go's or the proxy's) verified the
	// certificate chain, as opposed to the client merely presenting it.
	Verified bool
}

// Options configures [New]. The zero value accepts verified client
// certificates on the server's own TLS connections and identifies users by
// subject CN with roles from the subject's OUs.
type Options struct {
	// Proxy selects the header dialect of a TLS-terminating proxy. Default
	// ProxyNone: headers are never read.
	Proxy Proxy
	// TrustedProxies lists the addresses the proxy connects from. Headers are
	// only read from requests whose remote address is inside one of them;
	// anywhere else anyone could send them. With a Proxy, at least one of
	// TrustedProxies and TrustedProxyNames is required; when both are set,
	// both must match.
	TrustedProxies []netip.Prefix
	// TrustedProxyNames identifies a re-encrypting proxy by the client
	// certificate it presents on its own TLS connection to this server: a
	// request comes from the proxy when that certificate was verified and
	// its subject CN, a URI SAN or a DNS SAN equals one of these names (use a
	// SPIFFE id or a name no user certificate can carry). Default none.
	TrustedProxyNames []string
	// RejectUntrusted refuses (401) requests that carry certificate headers
	// but do not come from the trusted proxy. Default false: the headers are
	// ignored; the request's own TLS certificate, if any, still counts, and
	// without one the handler reports no credentials, so datasole.Chain
	// moves on.
	RejectUntrusted bool
	// ProxyVerifies declares that the proxy only forwards certificates it has
	// verified. It is needed for Envoy, Traefik and custom headers without a
	// Verify header, whose headers cannot tell. Default false.
	ProxyVerifies bool
	// AllowUnverified admits certificates that were presented but not
	// verified. Default false; only for setups that verify the certificate
	// elsewhere (e.g. in Roles by pinning fingerprints).
	AllowUnverified bool
	// Headers overrides header names.
	Headers Headers
	// Identity selects the user id. Default IdentityCommonName.
	Identity Identity
	// URIPrefix, with IdentityURI, picks the first URI SAN with this prefix,
	// e.g. "spiffe://example.org/". Default: the first URI SAN.
	URIPrefix string
	// Roles maps a certificate to roles. Default: the subject's OUs.
	Roles func(*ClientCert) []string
	// MaxHeaderBytes caps each certificate header before decoding. Default
	// DefaultMaxHeaderBytes (16 KiB).
	MaxHeaderBytes int
	// Logger receives the reason for each refusal at debug level. Default:
	// discard.
	Logger *slog.Logger
}

type handler struct {
	o       Options
	h       Headers
	headers []string // every header of the dialect, to spot spoofing attempts
	log     *slog.Logger
}

// New returns an auth handler for client certificates. A request that
// comes from a trusted proxy (see [Options.TrustedProxies] and
// [Options.TrustedProxyNames]) is authenticated by the proxy's headers alone:
// the certificate the proxy presents on its own TLS connection identifies
// the proxy, never the user. Any other request is authenticated by its own
// TLS client certificate, and proxy headers on it are ignored (or refused
// with [Options.RejectUntrusted]). Without a certificate it returns
// [datasole.ErrNoCredentials]; a certificate that is not acceptable yields
// [ErrInvalidCertificate].
func New(o Options) (datasole.AuthHandler, error) {
	h := &handler{o: o, h: o.Headers, log: o.Logger}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.o.MaxHeaderBytes <= 0 {
		h.o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if h.o.Roles == nil {
		h.o.Roles = func(c *ClientCert) []string { return c.Subject.OrganizationalUnit }
	}
	if o.Identity < IdentityCommonName || o.Identity > IdentityDNS {
		return nil, fmt.Errorf("dsmtls: unknown Identity %d", o.Identity)
	}
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	switch o.Proxy {
	case ProxyNone:
		if len(o.TrustedProxies) > 0 || len(o.TrustedProxyNames) > 0 || o.Headers != (Headers{}) {
			return nil, errors.New("dsmtls: TrustedProxies, TrustedProxyNames and Headers need a Proxy")
		}
		return h.authenticate, nil
	case ProxyEnvoy:
		def(&h.h.Cert, "X-Forwarded-Client-Cert")
	case ProxyNginx:
		def(&h.h.Cert, "X-SSL-Client-Cert")
		def(&h.h.Subject, "X-SSL-Client-S-DN")
		def(&h.h.Verify, "X-SSL-Client-Verify")
	case ProxyTraefik:
		def(&h.h.Cert, "X-Forwarded-Tls-Client-Cert")
		def(&h.h.Subject, "X-Forwarded-Tls-Client-Cert-Info")
	case ProxyALB:
		def(&h.h.Cert, "X-Amzn-Mtls-Clientcert-Leaf")
		h.headers = append(h.headers, albPassthrough)
	case ProxyCustom:
		if o.Headers.Cert == "" && o.Headers.Subject == "" {
			return nil, errors.New("dsmtls: ProxyCustom needs Headers.Cert or Headers.Subject")
		}
	default:
		return nil, fmt.Errorf("dsmtls: unknown Proxy %d", o.Proxy)
	}
	if h.h.Verify != "" {
		def(&h.h.VerifySuccess, "SUCCESS")
	}
	if len(o.TrustedProxies) == 0 && len(o.TrustedProxyNames) == 0 {
		return nil, errors.New("dsmtls: a Proxy needs TrustedProxies or TrustedProxyNames")
	}
	for _, n := range o.TrustedProxyNames {
		if n == "" {
			return nil, errors.New("dsmtls: empty name in TrustedProxyNames")
		}
	}
	for _, p := range o.TrustedProxies {
		if !p.IsValid() {
			return nil, fmt.Errorf("dsmtls: invalid trusted proxy prefix %v", p)
		}
	}
	for _, name := range []string{h.h.Cert, h.h.Subject, h.h.Verify} {
		if name != "" {
			h.headers = append(h.headers, name)
		}
	}
	return h.authenticate, nil
}

func (h *handler) authenticate(r *http.Request) (*datasole.Principal, error) {
	if h.o.Proxy != ProxyNone && h.fromTrustedProxy(r) {
		return h.proxied(r)
	}
	if h.o.Proxy != ProxyNone && h.carriesHeaders(r) {
		// Anyone can send these headers; from here they mean nothing.
		h.log.DebugContext(r.Context(), "dsmtls: certificate headers from an untrusted peer", "remote", r.RemoteAddr)
		if h.o.RejectUntrusted {
			return nil, ErrInvalidCertificate
		}
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		leaf, verified := r.TLS.PeerCertificates[0], false
		if len(r.TLS.VerifiedChains) > 0 {
			leaf, verified = r.TLS.VerifiedChains[0][0], true
		}
		return h.admit(r, "tls", fromCert(leaf, verified))
	}
	return nil, datasole.ErrNoCredentials
}

// proxied authenticates a request from a trusted proxy by its headers.
func (h *handler) proxied(r *http.Request) (*datasole.Principal, error) {
	for _, name := range h.headers {
		vs := r.Header.Values(name)
		if len(vs) > 1 {
			return nil, h.reject(r, fmt.Errorf("header %s repeated", name))
		}
		if len(vs) == 1 && len(vs[0]) > h.o.MaxHeaderBytes {
			return nil, h.reject(r, fmt.Errorf("header %s larger than %d bytes", name, h.o.MaxHeaderBytes))
		}
	}
	cc, err := h.fromHeaders(r)
	if err != nil {
		return nil, h.reject(r, err)
	}
	if cc == nil {
		return nil, datasole.ErrNoCredentials
	}
	return h.admit(r, "proxy", cc)
}

// fromTrustedProxy reports whether r was sent by the configured proxy: its
// remote address is in TrustedProxies (when set) and its verified TLS client
// certificate carries one of TrustedProxyNames (when set).
func (h *handler) fromTrustedProxy(r *http.Request) bool {
	if len(h.o.TrustedProxies) > 0 && !h.trusted(r.RemoteAddr) {
		return false
	}
	if len(h.o.TrustedProxyNames) == 0 {
		return true
	}
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		return false
	}
	leaf := r.TLS.VerifiedChains[0][0]
	names := append([]string{leaf.Subject.CommonName}, leaf.DNSNames...)
	for _, u := range leaf.URIs {
		names = append(names, u.String())
	}
	for _, n := range names {
		if n != "" && slices.Contains(h.o.TrustedProxyNames, n) {
			return true
		}
	}
	return false
}

func (h *handler) carriesHeaders(r *http.Request) bool {
	for _, name := range h.headers {
		if _, ok := r.Header[http.CanonicalHeaderKey(name)]; ok {
			return true
		}
	}
	return false
}

func (h *handler) trusted(remote string) bool {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return false
	}
	addr := ap.Addr().Unmap()
	for _, p := range h.o.TrustedProxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

func (h *handler) admit(r *http.Request, source string, c *ClientCert) (*datasole.Principal, error) {
	if !c.Verified && !h.o.AllowUnverified {
		return nil, h.reject(r, fmt.Errorf("%s certificate was presented but not verified", source))
	}
	id := h.identity(c)
	if id == "" {
		return nil, h.reject(r, errors.New("certificate lacks the configured identity"))
	}
	p := &datasole.Principal{
		UserID:   id,
		Roles:    h.o.Roles(c),
		Metadata: map[string]any{"subject": c.Subject.String(), "verified": c.Verified},
	}
	if c.Certificate != nil {
		p.ExpiresAt = c.Certificate.NotAfter // the connection closes when the certificate expires
	}
	return p, nil
}

func (h *handler) identity(c *ClientCert) string {
	switch h.o.Identity {
	case IdentityURI:
		for _, u := range c.URIs {
			if s := u.String(); strings.HasPrefix(s, h.o.URIPrefix) {
				return s
			}
		}
		return ""
	case IdentityDNS:
		if len(c.DNSNames) > 0 {
			return c.DNSNames[0]
		}
		return ""
	}
	return c.Subject.CommonName
}

func (h *handler) reject(r *http.Request, reason error) error {
	h.log.DebugContext(r.Context(), "dsmtls: certificate rejected", "remote", r.RemoteAddr, "reason", reason)
	return ErrInvalidCertificate
}

func fromCert(c *x509.Certificate, verified bool) *ClientCert {
	return &ClientCert{Subject: c.Subject, URIs: c.URIs, DNSNames: c.DNSNames, Certificate: c, Verified: verified}
}
