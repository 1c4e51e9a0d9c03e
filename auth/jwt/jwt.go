package dsjwt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/golang-jwt/jwt/v5"
)

// Defaults applied by [New] to zero-valued [Options] fields.
const (
	DefaultLeeway         = 30 * time.Second
	DefaultUserIDClaim    = "sub"
	DefaultRolesClaim     = "roles"
	DefaultMaxTokenSize   = 8 << 10
	DefaultJWKSRefresh    = time.Hour
	DefaultJWKSMinRefresh = time.Minute
	// minHMACKeySize is the RFC 7518 §3.2 minimum for HS256; shorter secrets
	// can be brute-forced offline from a single token.
	minHMACKeySize = 32
)

// DefaultLookup is the token lookup order used when [Options.Lookup] is
// empty, the order of [datasole.RequestToken]: the Authorization header
// (Bearer), the "datasole.token.<token>" WebSocket subprotocol entry our
// clients send, then the query parameter "token" of the stock v1 browser
// client.
var DefaultLookup = []string{"header:Authorization", "protocol", "query:token"}

var (
	// ErrInvalidToken is returned for every rejected token. It wraps
	// [datasole.ErrUnauthorized] and deliberately carries no reason.
	ErrInvalidToken = fmt.Errorf("dsjwt: invalid token: %w", datasole.ErrUnauthorized)
	// ErrKeySetUnavailable means no JWKS could be fetched yet, so no token can
	// be verified. It does not wrap ErrUnauthorized: the server answers 500.
	ErrKeySetUnavailable = errors.New("dsjwt: key set unavailable")
)

// Options configures [New]. Exactly one of Key, Keys and JWKSURL must be set.
type Options struct {
	// Algorithms lists the accepted "alg" values, e.g. {"RS256"} or
	// {"ES256", "EdDSA"}. Required. HMAC algorithms (HS*) cannot be combined
	// with public-key ones, and "none" is refused.
	Algorithms []string

	// Key verifies every token: []byte (at least 32 bytes) for HS*,
	// *rsa.PublicKey for RS*/PS*, *ecdsa.PublicKey for ES*, ed25519.PublicKey
	// for EdDSA. A private key is accepted and its public half is used.
	Key any
	// Keys maps "kid" header values to keys of the same kinds as Key; a token
	// whose kid is not in the map is refused. Use it to rotate static keys.
	Keys map[string]any
	// JWKSURL is an https URL serving a JSON Web Key Set (RFC 7517), such as
	// an identity provider's jwks_uri. Keys are fetched on first use, reused for
	// JWKSRefresh, and refetched early when a token names an unknown kid, at
	// most once per JWKSMinRefresh. HMAC algorithms cannot use a JWKS.
	JWKSURL string
	// JWKSClient fetches JWKSURL. Default: a client with a 10 s timeout.
	JWKSClient *http.Client
	// JWKSRefresh is how long a fetched key set is used before it is fetched
	// again. Default DefaultJWKSRefresh (1 h).
	JWKSRefresh time.Duration
	// JWKSMinRefresh is the least time between two fetches, bounding how often
	// tokens with unknown kids can make the handler call the identity
	// provider. Default DefaultJWKSMinRefresh (1 min).
	JWKSMinRefresh time.Duration

	// Issuer, when set, must equal the "iss" claim. Required with JWKSURL
	// unless AcceptAnyIssuer is set: one identity provider (and one JWKS)
	// often serves many tenants or realms.
	Issuer string
	// Audience, when set, must be one of the "aud" values. Required with
	// JWKSURL unless AcceptAnyAudience is set: without it, a token the
	// provider minted for any other application is accepted here.
	Audience string
	// AcceptAnyIssuer lets New accept a JWKS configuration without Issuer.
	// Only for a key set that signs for exactly one issuer.
	AcceptAnyIssuer bool
	// AcceptAnyAudience lets New accept a JWKS configuration without
	// Audience. Only when no other application gets tokens from the same
	// provider, or the provider cannot put an audience in its tokens.
	AcceptAnyAudience bool
	// Leeway is the clock skew allowed on exp, nbf and iat. Default
	// DefaultLeeway (30 s). Negative means none.
	Leeway time.Duration

	// Lookup lists where to look for the token, first match wins:
	// "header:NAME" (the Authorization header takes the Bearer scheme; other
	// headers carry the bare token), "protocol" (the WebSocket subprotocol
	// entry datasole.TokenProtocolPrefix + token), "query:NAME" and
	// "cookie:NAME". Default DefaultLookup, read with datasole.RequestToken.
	Lookup []string
	// MaxTokenSize refuses longer tokens before parsing them. Default
	// DefaultMaxTokenSize (8 KiB).
	MaxTokenSize int

	// UserIDClaim is the claim holding the user id; it must be a non-empty
	// string. Default "sub".
	UserIDClaim string
	// RolesClaim is a dot-separated path to the roles, e.g. "roles",
	// "realm_access.roles" (Keycloak) or "scope" (OAuth 2.0). The value may be
	// an array of strings or a space-separated string. A missing claim means no
	// roles. Default "roles".
	RolesClaim string
	// MetadataClaims lists claims (dot-separated paths) copied into the
	// principal's Metadata under the same name, e.g. {"tenant", "plan"}.
	// Missing claims are skipped. Default none.
	MetadataClaims []string

	// Logger receives the reason for each rejection at debug level. Tokens
	// are never logged. Default: discard.
	Logger *slog.Logger
}

type lookup struct{ kind, name string }

type handler struct {
	parser   *jwt.Parser
	keys     func(r *http.Request) jwt.Keyfunc
	lookups  []lookup
	maxSize  int
	userID   []string
	roles    []string
	metadata [][]string
	leeway   time.Duration
	log      *slog.Logger
}

// New returns an auth handler that verifies bearer JWTs as configured. It
// validates the configuration and returns an error for anything unsafe or
// inconsistent. A request without a token yields [datasole.ErrNoCredentials],
// so [datasole.Chain] can try another handler; a bad token yields an error
// wrapping [datasole.ErrUnauthorized].
func New(o Options) (datasole.AuthHandler, error) {
	h := &handler{
		maxSize: o.MaxTokenSize,
		log:     o.Logger,
	}
	if h.maxSize <= 0 {
		h.maxSize = DefaultMaxTokenSize
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if err := checkAlgorithms(o.Algorithms); err != nil {
		return nil, err
	}
	if o.JWKSURL != "" && o.Issuer == "" && !o.AcceptAnyIssuer {
		return nil, errors.New("dsjwt: a JWKS needs Options.Issuer (or AcceptAnyIssuer): other issuers may share its keys")
	}
	if o.JWKSURL != "" && o.Audience == "" && !o.AcceptAnyAudience {
		return nil, errors.New("dsjwt: a JWKS needs Options.Audience (or AcceptAnyAudience): tokens minted for other applications of the provider would pass")
	}
	keys, err := keySource(o)
	if err != nil {
		return nil, err
	}
	h.keys = keys
	if h.lookups, err = parseLookups(o.Lookup); err != nil {
		return nil, err
	}
	h.userID = claimPath(o.UserIDClaim, DefaultUserIDClaim)
	h.roles = claimPath(o.RolesClaim, DefaultRolesClaim)
	for _, c := range o.MetadataClaims {
		if c == "" {
			return nil, errors.New("dsjwt: empty metadata claim name")
		}
		h.metadata = append(h.metadata, strings.Split(c, "."))
	}

	leeway := o.Leeway
	switch {
	case leeway == 0:
		leeway = DefaultLeeway
	case leeway < 0:
		leeway = 0
	}
	h.leeway = leeway
	popts := []jwt.ParserOption{
		jwt.WithValidMethods(o.Algorithms),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
	}
	if o.Issuer != "" {
		popts = append(popts, jwt.WithIssuer(o.Issuer))
	}
	if o.Audience != "" {
		popts = append(popts, jwt.WithAudience(o.Audience))
	}
	h.parser = jwt.NewParser(popts...)
	return h.authenticate, nil
}

func checkAlgorithms(algs []string) error {
	if len(algs) == 0 {
		return errors.New("dsjwt: Options.Algorithms is required")
	}
	hmac, public := false, false
	for _, a := range algs {
		switch jwt.GetSigningMethod(a).(type) {
		case *jwt.SigningMethodHMAC:
			hmac = true
		case *jwt.SigningMethodRSA, *jwt.SigningMethodRSAPSS, *jwt.SigningMethodECDSA, *jwt.SigningMethodEd25519:
			public = true
		default:
			return fmt.Errorf("dsjwt: algorithm %q is not supported", a)
		}
	}
	if hmac && public {
		return errors.New("dsjwt: HMAC algorithms cannot be combined with public-key algorithms")
	}
	return nil
}

// keySource validates the configured keys and returns the jwt.Keyfunc factory.
func keySource(o Options) (func(*http.Request) jwt.Keyfunc, error) {
	set := 0
	for _, b := range []bool{o.Key != nil, o.Keys != nil, o.JWKSURL != ""} {
		if b {
			set++
		}
	}
	if set != 1 {
		return nil, errors.New("dsjwt: set exactly one of Options.Key, Options.Keys and Options.JWKSURL")
	}
	switch {
	case o.Key != nil:
		key, err := usableKey(o.Key, o.Algorithms)
		if err != nil {
			return nil, err
		}
		kf := func(t *jwt.Token) (any, error) { return fitting(t, key) }
		return func(*http.Request) jwt.Keyfunc { return kf }, nil
	case o.Keys != nil:
		keys := make(map[string]any, len(o.Keys))
		for kid, k := range o.Keys {
			key, err := usableKey(k, o.Algorithms)
			if err != nil {
				return nil, fmt.Errorf("dsjwt: key %q: %w", kid, err)
			}
			keys[kid] = key
		}
		kf := func(t *jwt.Token) (any, error) {
			kid, _ := t.Header["kid"].(string)
			key, ok := keys[kid]
			if !ok {
				return nil, errUnknownKey
			}
			return fitting(t, key)
		}
		return func(*http.Request) jwt.Keyfunc { return kf }, nil
	default:
		u, err := url.Parse(o.JWKSURL)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("dsjwt: Options.JWKSURL must be an absolute https URL")
		}
		for _, a := range o.Algorithms {
			if _, ok := jwt.GetSigningMethod(a).(*jwt.SigningMethodHMAC); ok {
				return nil, errors.New("dsjwt: HMAC algorithms cannot use a JWKS")
			}
		}
		ks := newKeySet(o)
		return func(r *http.Request) jwt.Keyfunc {
			return func(t *jwt.Token) (any, error) { return ks.keyfunc(r.Context(), t) }
		}, nil
	}
}

var (
	errUnknownKey = errors.New("no key for the token's kid")
	errWrongKey   = errors.New("key does not fit the token's algorithm")
)

// usableKey turns private keys into public ones and checks that the key fits
// at least one configured algorithm.
func usableKey(key any, algs []string) (any, error) {
	switch k := key.(type) {
	case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
		key = k.(crypto.Signer).Public()
	case []byte:
		if len(k) < minHMACKeySize {
			return nil, fmt.Errorf("dsjwt: HMAC key is %d bytes, need at least %d", len(k), minHMACKeySize)
		}
	}
	for _, a := range algs {
		if keyFits(jwt.GetSigningMethod(a), key) {
			return key, nil
		}
	}
	return nil, fmt.Errorf("dsjwt: key of type %T fits none of the algorithms %v", key, algs)
}

// keyFits reports whether key can verify signatures of method m. golang-jwt
// checks key types too; checking here as well turns a misconfiguration into an
// error at construction and keeps key lookup from offering unfit keys.
func keyFits(m jwt.SigningMethod, key any) bool {
	switch m := m.(type) {
	case *jwt.SigningMethodHMAC:
		_, ok := key.([]byte)
		return ok
	case *jwt.SigningMethodRSA, *jwt.SigningMethodRSAPSS:
		_, ok := key.(*rsa.PublicKey)
		return ok
	case *jwt.SigningMethodECDSA:
		k, ok := key.(*ecdsa.PublicKey)
		return ok && k.Curve.Params().BitSize == m.CurveBits
	case *jwt.SigningMethodEd25519:
		_, ok := key.(ed25519.PublicKey)
		return ok
	}
	return false
}

func fitting(t *jwt.Token, key any) (any, error) {
	if !keyFits(t.Method, key) {
		return nil, errWrongKey
	}
	return key, nil
}

// parseLookups parses Options.Lookup; nil means the default order, which
// find reads with datasole.RequestToken.
func parseLookups(specs []string) ([]lookup, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	out := make([]lookup, 0, len(specs))
	for _, s := range specs {
		if s == "protocol" {
			out = append(out, lookup{kind: "protocol"})
			continue
		}
		kind, name, ok := strings.Cut(s, ":")
		if !ok || name == "" || (kind != "query" && kind != "header" && kind != "cookie") {
			return nil, fmt.Errorf("dsjwt: bad lookup %q (want header:NAME, protocol, query:NAME or cookie:NAME)", s)
		}
		out = append(out, lookup{kind, name})
	}
	return out, nil
}

func claimPath(p, def string) []string {
	if p == "" {
		p = def
	}
	return strings.Split(p, ".")
}
