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
//   - "exp" is required; "nbf" and "iat" are honoured; issuer and audience are
//     checked when configured; clock skew is limited by [Options.Leeway].
//   - The JWKS URL comes only from configuration, never from a token (no "jku",
//     "x5u" or issuer discovery). Its key cache belongs to that one URL.
//   - Rejections return an error wrapping [datasole.ErrUnauthorized] (401) that
//     says nothing about why; the reason is logged at debug level on
//     [Options.Logger]. Tokens are never logged.
//
// # Getting the token from a browser
//
// Browsers cannot set headers on a WebSocket upgrade. The stock datasole v1
// client sends its auth.token option as the query parameter "token"
// (…/__ds?token=…), which is why "query:token" is looked up first by default:
//
//	const ds = new Datasole.DatasoleClient({ url: location.origin, auth: { token } });
//
// Query strings may end up in proxy access logs, so issue short-lived tokens
// (minutes) for the upgrade. Native clients may send "Authorization: Bearer …"
// instead, and a token kept in a cookie can be read with "cookie:NAME" (then
// the server's Origin check must stay on, see the dscookie package).
package dsjwt
