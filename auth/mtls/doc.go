// Package dsmtls authenticates datasole upgrade requests with TLS client
// certificates, either on the server's own TLS connection or as forwarded by
// a TLS-terminating proxy: Envoy (X-Forwarded-Client-Cert), nginx, Traefik,
// AWS Application Load Balancer, or custom headers.
//
// The handler is safe by default:
//
//   - Only verified certificates are accepted. Go's TLS stack reports
//     verification in r.TLS.VerifiedChains; nginx and the ALB report it in
//     their headers; for Envoy and Traefik, whose headers cannot tell, the
//     operator declares it with [Options.ProxyVerifies].
//   - Proxy headers are read only from the trusted proxy: a request whose
//     remote address is in [Options.TrustedProxies] and, when
//     [Options.TrustedProxyNames] is set, whose verified TLS client
//     certificate carries one of those names. From anywhere else they are
//     ignored (or refused with [Options.RejectUntrusted]). The proxy must
//     also overwrite, not append to, these headers on requests it forwards
//     (Envoy: SANITIZE_SET; nginx: proxy_set_header).
//   - A request from the trusted proxy is authenticated by the headers
//     alone. A proxy that re-encrypts to this server presents its own client
//     certificate; that certificate identifies the proxy, never the user, so
//     without forwarded headers the request has no credentials.
//   - A certificate's NotAfter becomes the principal's ExpiresAt: the server
//     closes the connection when the certificate expires.
//   - Each header is capped at [Options.MaxHeaderBytes] before decoding, and a
//     repeated header is refused.
//
// The user id is the subject common name, a URI SAN (e.g. a SPIFFE id) or a
// DNS SAN ([Options.Identity]); roles are the subject's OUs or come from
// [Options.Roles]. Metadata holds "subject" (the RFC 4514 subject) and
// "verified".
//
// # Getting the credential from a browser
//
// A browser presents a client certificate from the user's certificate store
// (or a smart card) during the TLS handshake, including the WebSocket
// upgrade's, when the server or proxy asks for one. Nothing has to be done in
// JavaScript. In practice the certificate is requested and verified by the
// edge proxy, which forwards it in headers; configure the matching [Proxy].
package dsmtls
