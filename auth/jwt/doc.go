// Package dsjwt authenticates datasole upgrade requests with a bearer JSON Web
// Token, verified with github.com/golang-jwt/jwt/v5.
//
// Keys come from one of three places: a single static key ([Options.Key]), a
// static key set addressed by "kid" ([Options.Keys]), or a JSON Web Key Set
// fetched from a configured URL ([Options.JWKSURL]). HMAC (HS256/384/512),
// RSA (RS*, PS*), ECDSA (ES256/384/512) and EdDSA (Ed25519) are supported.
//
// The handler is safe by default:
//
//   - The accepted algorithms are pinned by [Options.Algorithms]; the token's
//     "alg" header only selects among them. "none" is never accepted, and HMAC
//     cannot be mixed with public-key algorithms, which rules out RS256→HS256
//     key confusion by construction.
//   - "exp" is required; "nbf" and "iat" are honoured; clock skew is limited
//     by [Options.Leeway]. The principal's ExpiresAt is exp plus the leeway,
//     and the server closes the connection then (close code 4001), so a
//     connection never outlives its token.
//   - Issuer and audience are checked when configured, and with a JWKS they
//     must be configured ([Options.AcceptAnyIssuer] and
//     [Options.AcceptAnyAudience] opt out explicitly): an identity provider
//     signs tokens for all its applications, and often all its tenants, with
//     the same keys, so without these checks a token minted for another
//     application would open a connection here. The same holds for a static
//     key or HMAC secret shared with other applications: set Issuer and
//     Audience there too.
//   - The JWKS URL comes only from configuration, never from a token (no "jku",
//     "x5u" or issuer discovery). Its key cache belongs to that one URL.
//   - Rejections return an error wrapping [datasole.ErrUnauthorized] (401) that
//     says nothing about why; the reason is logged at debug level on
//     [Options.Logger]. Tokens are never logged.
//
// # Getting the token onto the upgrade
//
// By default the token is read as [datasole.RequestToken] finds it: the
// Authorization header (Bearer) of native clients, then the WebSocket
// subprotocol entry "datasole.token.<token>" that our browser and Go clients
// send, then the query parameter "token" of the stock v1 browser client.
// Browsers cannot set headers on a WebSocket upgrade, but they can offer
// subprotocols, which keeps the token out of the URL and so out of access
// logs:
//
//	new WebSocket(url, ["datasole.v1", "datasole.token." + token]);
//
// A token in the query string (…/__ds?token=…) may end up in proxy and
// framework access logs: keep /__ds out of them (see docs/auth.md), issue
// short-lived tokens (minutes) for the upgrade, or use one-time tickets
// ([datasole.Tickets]). A token kept in a cookie can be read with
// "cookie:NAME" in [Options.Lookup] (then the server's Origin check must stay
// on, see the dscookie package).
package dsjwt
