package dsjwt

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/authtest"
	"github.com/golang-jwt/jwt/v5"
)

type testKeys struct {
	rsa    *rsa.PrivateKey
	rsa2   *rsa.PrivateKey
	ec     *ecdsa.PrivateKey
	ed     ed25519.PrivateKey
	hmac   []byte
	rsaPEM []byte
	rsaDER []byte
}

var keys = sync.OnceValue(func() testKeys {
	var k testKeys
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.rsa2, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		panic(err)
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		panic(err)
	}
	k.hmac = make([]byte, 32)
	rand.Read(k.hmac)
	if k.rsaDER, err = x509.MarshalPKIXPublicKey(&k.rsa.PublicKey); err != nil {
		panic(err)
	}
	k.rsaPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: k.rsaDER})
	return k
})

// claims returns valid claims for user "u1" expiring in a minute.
func claims(extra jwt.MapClaims) jwt.MapClaims {
	c := jwt.MapClaims{"sub": "u1", "exp": time.Now().Add(time.Minute).Unix(), "iat": time.Now().Unix()}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

func sign(t testing.TB, m jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func withQuery(tok string) *http.Request {
	return httptest.NewRequest(http.MethodGet, "/__ds?token="+tok, nil)
}

// recorder keeps what the handler logs so tests can check the logged reason
// and that no token ever reaches the log.
type recorder struct {
	mu      sync.Mutex
	text    strings.Builder
	reasons []error
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.text.WriteString(rec.Message)
	rec.Attrs(func(a slog.Attr) bool {
		r.text.WriteString(" " + a.String())
		if e, ok := a.Value.Any().(error); ok && a.Key == "reason" {
			r.reasons = append(r.reasons, e)
		}
		return true
	})
	r.text.WriteString("\n")
	return nil
}

func (r *recorder) lastReason() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reasons) == 0 {
		return nil
	}
	return r.reasons[len(r.reasons)-1]
}

func mustNew(t testing.TB, o Options) datasole.AuthHandler {
	t.Helper()
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestAcceptsEachKeyKind(t *testing.T) {
	k := keys()
	cases := []struct {
		name string
		alg  jwt.SigningMethod
		key  any // verification key given to Options.Key
		sign any
	}{
		{"HS256 with a shared secret", jwt.SigningMethodHS256, k.hmac, k.hmac},
		{"RS256 with an RSA public key", jwt.SigningMethodRS256, &k.rsa.PublicKey, k.rsa},
		{"PS256 with an RSA private key given as config", jwt.SigningMethodPS256, k.rsa, k.rsa},
		{"ES256 with a P-256 key", jwt.SigningMethodES256, &k.ec.PublicKey, k.ec},
		{"EdDSA with an Ed25519 key", jwt.SigningMethodEdDSA, k.ed.Public(), k.ed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := mustNew(t, Options{Algorithms: []string{tc.alg.Alg()}, Key: tc.key})
			p := authtest.OK(t, h, withQuery(sign(t, tc.alg, tc.sign, "", claims(nil))))
			if p.UserID != "u1" {
				t.Fatalf("UserID = %q, want u1", p.UserID)
			}
		})
	}
}

func TestAttacksAreRefused(t *testing.T) {
	k := keys()
	rs256 := Options{Algorithms: []string{"RS256"}, Key: &k.rsa.PublicKey, Issuer: "https://idp.example", Audience: "chat"}
	good := jwt.MapClaims{"iss": "https://idp.example", "aud": "chat"}
	valid := sign(t, jwt.SigningMethodRS256, k.rsa, "", claims(good))
	noneTok, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims(good)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	withGood := func(extra jwt.MapClaims) jwt.MapClaims {
		c := claims(good)
		for k, v := range extra {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
		return c
	}
	cases := []struct {
		name   string
		opts   Options
		token  string
		reason error
	}{
		{"a token with alg none", rs256, noneTok, jwt.ErrTokenSignatureInvalid},
		{"an HS256 token keyed with the RSA public key PEM (key confusion)", rs256,
			sign(t, jwt.SigningMethodHS256, k.rsaPEM, "", withGood(nil)), jwt.ErrTokenSignatureInvalid},
		{"an HS256 token keyed with the RSA public key DER (key confusion)", rs256,
			sign(t, jwt.SigningMethodHS256, k.rsaDER, "", withGood(nil)), jwt.ErrTokenSignatureInvalid},
		{"a token signed by another RSA key", rs256,
			sign(t, jwt.SigningMethodRS256, k.rsa2, "", withGood(nil)), jwt.ErrTokenSignatureInvalid},
		{"a token whose payload was altered", rs256, tamper(t, valid), jwt.ErrTokenSignatureInvalid},
		{"an expired token", rs256,
			sign(t, jwt.SigningMethodRS256, k.rsa, "", withGood(jwt.MapClaims{"exp": time.Now().Add(-time.Hour).Unix()})), jwt.ErrTokenExpired},
		{"a token that is not valid yet", rs256,
			sign(t, jwt.SigningMethodRS256, k.rsa, "", withGood(jwt.MapClaims{"nbf": time.Now().Add(time.Hour).Unix()})), jwt.ErrTokenNotValidYet},
		{"a token issued in the future", rs256,
			sign(t, jwt.SigningMethodRS256, k.rsa, "", withGood(jwt.MapClaims{"iat": time.Now().Add(time.Hour).Unix()})), jwt.ErrTokenUsedBeforeIssued},
		{"a token without exp", rs256,
			sign(t, jwt.SigningMethodRS256, k.rsa, "", withGood(jwt.MapClaims{"exp": nil})), jwt.ErrTokenRequiredClaimMissing},
		{"a token from another issuer", rs256,
			sign(t, jwt.SigningMethodRS256, k.rsa, "", withGood(jwt.MapClaims{"iss": "https://evil.example"})), jwt.ErrTokenInvalidIssuer},
		{"a token for another audience", rs256,
			sign(t, jwt.SigningMethodRS256, k.rsa, "", withGood(jwt.MapClaims{"aud": "billing"})), jwt.ErrTokenInvalidAudience},
		{"a token without a subject", rs256,
			sign(t, jwt.SigningMethodRS256, k.rsa, "", withGood(jwt.MapClaims{"sub": nil})), errNoSubject},
		{"a token whose roles claim is a number", rs256,
			sign(t, jwt.SigningMethodRS256, k.rsa, "", withGood(jwt.MapClaims{"roles": 7})), errBadRoles},
		{"a token with an unknown kid",
			Options{Algorithms: []string{"RS256"}, Keys: map[string]any{"k1": &k.rsa.PublicKey}},
			sign(t, jwt.SigningMethodRS256, k.rsa, "k9", claims(nil)), errUnknownKey},
		{"an ES256 token checked against a P-384 key",
			Options{Algorithms: []string{"ES256", "ES384"}, Keys: map[string]any{"k1": p384(t)}},
			sign(t, jwt.SigningMethodES256, k.ec, "k1", claims(nil)), errWrongKey},
		{"a token of many dots", rs256, strings.Repeat(".", 4000), jwt.ErrTokenMalformed},
		{"a huge token", rs256, strings.Repeat("a", 64<<10) + "." + valid, errTooLarge},
		{"garbage", rs256, "not-a-jwt", jwt.ErrTokenMalformed},
	}
	for _, tc := range cases {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			rec := &recorder{}
			tc.opts.Logger = slog.New(rec)
			h := mustNew(t, tc.opts)
			authtest.Refused(t, h, withQuery(tc.token))
			if got := rec.lastReason(); !errors.Is(got, tc.reason) {
				t.Fatalf("logged reason %v, want %v", got, tc.reason)
			}
			if strings.Contains(rec.text.String(), tc.token) {
				t.Fatal("the token was written to the log")
			}
			_, err := h(withQuery(tc.token))
			if err != ErrInvalidToken {
				t.Fatalf("error %q reveals more than ErrInvalidToken", err)
			}
		})
	}
}

func tamper(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	c := claims(jwt.MapClaims{"sub": "admin"})
	forged := sign(t, jwt.SigningMethodHS256, keys().hmac, "", c)
	parts[1] = strings.Split(forged, ".")[1]
	return strings.Join(parts, ".")
}

func p384(t *testing.T) *ecdsa.PublicKey {
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &k.PublicKey
}

func TestLookupOrder(t *testing.T) {
	k := keys()
	tok := sign(t, jwt.SigningMethodHS256, k.hmac, "", claims(nil))
	other := sign(t, jwt.SigningMethodHS256, k.hmac, "", claims(jwt.MapClaims{"sub": "u2"}))
	base := Options{Algorithms: []string{"HS256"}, Key: k.hmac}

	third := sign(t, jwt.SigningMethodHS256, k.hmac, "", claims(jwt.MapClaims{"sub": "u3"}))
	t.Run("the default reads the Authorization header, then the subprotocol entry, then the query", func(t *testing.T) {
		h := mustNew(t, base)
		r := withQuery(tok)
		r.Header.Set("Sec-WebSocket-Protocol", "datasole.v1, datasole.token."+third)
		if p := authtest.OK(t, h, r); p.UserID != "u3" {
			t.Fatalf("UserID = %q, want u3 from the subprotocol entry", p.UserID)
		}
		r.Header.Set("Authorization", "Bearer "+other)
		if p := authtest.OK(t, h, r); p.UserID != "u2" {
			t.Fatalf("UserID = %q, want u2 from the Authorization header", p.UserID)
		}
		if p := authtest.OK(t, h, withQuery(tok)); p.UserID != "u1" {
			t.Fatalf("UserID = %q, want u1 from the query", p.UserID)
		}
	})
	t.Run("the default reads a Bearer Authorization header", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodGet, "/__ds", nil)
		r.Header.Set("Authorization", "bearer "+other)
		if p := authtest.OK(t, mustNew(t, base), r); p.UserID != "u2" {
			t.Fatalf("UserID = %q, want u2", p.UserID)
		}
	})
	t.Run("a configured protocol lookup reads only the subprotocol entry", func(t *testing.T) {
		o := base
		o.Lookup = []string{"protocol"}
		r := withQuery(tok)
		r.Header.Set("Sec-WebSocket-Protocol", "datasole.v1,datasole.token."+third)
		if p := authtest.OK(t, mustNew(t, o), r); p.UserID != "u3" {
			t.Fatalf("UserID = %q, want u3", p.UserID)
		}
		if _, err := mustNew(t, o)(withQuery(tok)); !errors.Is(err, datasole.ErrNoCredentials) {
			t.Fatalf("a query token with only the protocol lookup: %v, want ErrNoCredentials", err)
		}
	})
	t.Run("a configured cookie is read", func(t *testing.T) {
		o := base
		o.Lookup = []string{"header:Authorization", "cookie:session"}
		r := httptest.NewRequest(http.MethodGet, "/__ds?token="+other, nil)
		r.AddCookie(&http.Cookie{Name: "session", Value: tok})
		if p := authtest.OK(t, mustNew(t, o), r); p.UserID != "u1" {
			t.Fatalf("UserID = %q, want u1 from the cookie (the query is not configured)", p.UserID)
		}
	})
	t.Run("no token, or another Authorization scheme, is ErrNoCredentials so Chain moves on", func(t *testing.T) {
		h := mustNew(t, base)
		for _, r := range []*http.Request{
			httptest.NewRequest(http.MethodGet, "/__ds", nil),
			httptest.NewRequest(http.MethodGet, "/__ds?token=", nil),
			func() *http.Request {
				r := httptest.NewRequest(http.MethodGet, "/__ds", nil)
				r.Header.Set("Authorization", "Basic dTpw")
				return r
			}(),
		} {
			if _, err := h(r); !errors.Is(err, datasole.ErrNoCredentials) {
				t.Fatalf("%s: err = %v, want ErrNoCredentials", r.URL, err)
			}
		}
		chained := datasole.Chain(h, func(*http.Request) (*datasole.Principal, error) {
			return &datasole.Principal{UserID: "next"}, nil
		})
		if p := authtest.OK(t, chained, httptest.NewRequest(http.MethodGet, "/__ds", nil)); p.UserID != "next" {
			t.Fatalf("Chain gave %q, want the next handler's principal", p.UserID)
		}
	})
}

func TestClaimMapping(t *testing.T) {
	k := keys()
	c := claims(jwt.MapClaims{
		"email":        "ada@example.com",
		"roles":        []string{"admin", "ops"},
		"scope":        "read write",
		"realm_access": map[string]any{"roles": []string{"realm-admin"}},
		"tenant":       "acme",
		"org":          map[string]any{"plan": "pro"},
	})
	cases := []struct {
		name     string
		opts     Options
		user     string
		roles    []string
		metadata map[string]any
	}{
		{"defaults map sub and roles", Options{}, "u1", []string{"admin", "ops"}, nil},
		{"the user id claim is configurable", Options{UserIDClaim: "email"}, "ada@example.com", []string{"admin", "ops"}, nil},
		{"a space-separated scope becomes roles", Options{RolesClaim: "scope"}, "u1", []string{"read", "write"}, nil},
		{"a nested roles path is followed", Options{RolesClaim: "realm_access.roles"}, "u1", []string{"realm-admin"}, nil},
		{"a missing roles claim means no roles", Options{RolesClaim: "groups"}, "u1", nil, nil},
		{"selected claims become metadata", Options{MetadataClaims: []string{"tenant", "org.plan", "missing"}}, "u1",
			[]string{"admin", "ops"}, map[string]any{"tenant": "acme", "org.plan": "pro"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Algorithms, tc.opts.Key = []string{"HS256"}, k.hmac
			p := authtest.OK(t, mustNew(t, tc.opts), withQuery(sign(t, jwt.SigningMethodHS256, k.hmac, "", c)))
			if p.UserID != tc.user || !reflect.DeepEqual(p.Roles, tc.roles) || !reflect.DeepEqual(p.Metadata, tc.metadata) {
				t.Fatalf("got %+v, want user %q roles %v metadata %v", p, tc.user, tc.roles, tc.metadata)
			}
		})
	}
}

func TestUnsafeConfigurationIsRefused(t *testing.T) {
	k := keys()
	cases := []struct {
		name string
		opts Options
	}{
		{"no algorithms", Options{Key: k.hmac}},
		{"alg none", Options{Algorithms: []string{"none"}, Key: k.hmac}},
		{"an unknown algorithm", Options{Algorithms: []string{"XS256"}, Key: k.hmac}},
		{"HMAC mixed with RSA", Options{Algorithms: []string{"RS256", "HS256"}, Key: &k.rsa.PublicKey}},
		{"a short HMAC secret", Options{Algorithms: []string{"HS256"}, Key: []byte("secret")}},
		{"a key that fits no algorithm", Options{Algorithms: []string{"RS256"}, Key: &k.ec.PublicKey}},
		{"no key source", Options{Algorithms: []string{"RS256"}}},
		{"two key sources", Options{Algorithms: []string{"RS256"}, Key: &k.rsa.PublicKey, JWKSURL: "https://idp.example/jwks"}},
		{"a plain-http JWKS URL", Options{Algorithms: []string{"RS256"}, JWKSURL: "http://idp.example/jwks"}},
		{"a relative JWKS URL", Options{Algorithms: []string{"RS256"}, JWKSURL: "/jwks"}},
		{"HMAC with a JWKS", Options{Algorithms: []string{"HS256"}, JWKSURL: "https://idp.example/jwks"}},
		{"a malformed lookup", Options{Algorithms: []string{"HS256"}, Key: k.hmac, Lookup: []string{"body:token"}}},
		{"an empty metadata claim", Options{Algorithms: []string{"HS256"}, Key: k.hmac, MetadataClaims: []string{""}}},
		{"a JWKS without issuer and audience", Options{Algorithms: []string{"RS256"}, JWKSURL: "https://idp.example/jwks"}},
		{"a JWKS without audience", Options{Algorithms: []string{"RS256"}, JWKSURL: "https://idp.example/jwks", Issuer: "https://idp.example"}},
		{"a JWKS without issuer", Options{Algorithms: []string{"RS256"}, JWKSURL: "https://idp.example/jwks", Audience: "chat"}},
		{"a JWKS opting out of the audience only", Options{Algorithms: []string{"RS256"}, JWKSURL: "https://idp.example/jwks", AcceptAnyAudience: true}},
	}
	for _, tc := range cases {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			if h, err := New(tc.opts); err == nil || h != nil {
				t.Fatalf("New = %v, %v; want an error", h != nil, err)
			}
		})
	}
}

func TestLeeway(t *testing.T) {
	k := keys()
	tok := sign(t, jwt.SigningMethodHS256, k.hmac, "", claims(jwt.MapClaims{"exp": time.Now().Add(-5 * time.Second).Unix()}))
	t.Run("a token expired a few seconds ago passes within the default leeway", func(t *testing.T) {
		authtest.OK(t, mustNew(t, Options{Algorithms: []string{"HS256"}, Key: k.hmac}), withQuery(tok))
	})
	t.Run("a negative leeway allows no skew", func(t *testing.T) {
		authtest.Refused(t, mustNew(t, Options{Algorithms: []string{"HS256"}, Key: k.hmac, Leeway: -1}), withQuery(tok))
	})
}

func TestExpiresAtFollowsExp(t *testing.T) {
	k := keys()
	exp := time.Now().Add(10 * time.Minute).Truncate(time.Second)
	tok := sign(t, jwt.SigningMethodHS256, k.hmac, "", claims(jwt.MapClaims{"exp": exp.Unix()}))
	for _, tc := range []struct {
		name   string
		leeway time.Duration
		want   time.Time
	}{
		{"exp plus the default leeway", 0, exp.Add(DefaultLeeway)},
		{"exp itself without leeway", -1, exp},
		{"exp plus a configured leeway", 5 * time.Second, exp.Add(5 * time.Second)},
	} {
		t.Run("ExpiresAt is "+tc.name, func(t *testing.T) {
			h := mustNew(t, Options{Algorithms: []string{"HS256"}, Key: k.hmac, Leeway: tc.leeway})
			if p := authtest.OK(t, h, withQuery(tok)); !p.ExpiresAt.Equal(tc.want) {
				t.Fatalf("ExpiresAt = %v, want %v", p.ExpiresAt, tc.want)
			}
		})
	}
}
