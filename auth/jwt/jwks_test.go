package dsjwt

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/datasole/datasole-go/datasole/authtest"
	"github.com/golang-jwt/jwt/v5"
)

// idp is a JWKS endpoint on loopback whose key set can be changed.
type idp struct {
	srv     *httptest.Server
	fetches atomic.Int32
	mu      sync.Mutex
	set     jwkset.JWKSMarshal
	status  int
}

func newIDP(t *testing.T) *idp {
	t.Helper()
	p := &idp{status: http.StatusOK}
	p.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.fetches.Add(1)
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.status != http.StatusOK {
			w.WriteHeader(p.status)
			return
		}
		_ = json.NewEncoder(w).Encode(p.set)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// publish replaces the served key set with the public halves of keys by kid.
func (p *idp) publish(t *testing.T, keys map[string]any) {
	t.Helper()
	var set jwkset.JWKSMarshal
	for kid, k := range keys {
		j, err := jwkset.NewJWKFromKey(k, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid, USE: jwkset.UseSig}})
		if err != nil {
			t.Fatal(err)
		}
		set.Keys = append(set.Keys, j.Marshal())
	}
	p.mu.Lock()
	p.set = set
	p.mu.Unlock()
}

// The provider's issuer and the audience of the application under test.
const (
	testIssuer   = "https://idp.example/realms/app"
	testAudience = "chat"
)

func (p *idp) options(minRefresh time.Duration) Options {
	return Options{
		Algorithms:     []string{"RS256", "ES256", "EdDSA"},
		JWKSURL:        p.srv.URL + "/jwks.json",
		JWKSClient:     p.srv.Client(),
		JWKSMinRefresh: minRefresh,
		Issuer:         testIssuer,
		Audience:       testAudience,
	}
}

// idpClaims are valid claims for user "u1" as the provider mints them for
// the application under test.
func idpClaims(extra jwt.MapClaims) jwt.MapClaims {
	c := jwt.MapClaims{"iss": testIssuer, "aud": []string{testAudience, "account"}}
	for k, v := range extra {
		c[k] = v
	}
	return claims(c)
}

func TestJWKS(t *testing.T) {
	k := keys()

	t.Run("verifies RSA, ECDSA and Ed25519 keys from the set", func(t *testing.T) {
		p := newIDP(t)
		p.publish(t, map[string]any{"r": &k.rsa.PublicKey, "e": &k.ec.PublicKey, "d": k.ed.Public()})
		h := mustNew(t, p.options(time.Minute))
		for kid, tok := range map[string]string{
			"r": sign(t, jwt.SigningMethodRS256, k.rsa, "r", idpClaims(nil)),
			"e": sign(t, jwt.SigningMethodES256, k.ec, "e", idpClaims(nil)),
			"d": sign(t, jwt.SigningMethodEdDSA, k.ed, "d", idpClaims(nil)),
		} {
			if p := authtest.OK(t, h, withQuery(tok)); p.UserID != "u1" {
				t.Fatalf("kid %s: UserID = %q", kid, p.UserID)
			}
		}
		if n := p.fetches.Load(); n != 1 {
			t.Fatalf("fetched the set %d times, want once", n)
		}
	})

	t.Run("an unknown kid triggers one rate-limited refresh", func(t *testing.T) {
		p := newIDP(t)
		p.publish(t, map[string]any{"old": &k.rsa.PublicKey})
		const gap = 300 * time.Millisecond
		h := mustNew(t, p.options(gap))
		authtest.OK(t, h, withQuery(sign(t, jwt.SigningMethodRS256, k.rsa, "old", idpClaims(nil))))

		// The provider rotates. Within the gap since the last fetch the new
		// kid is unknown and refused; once the gap is over it triggers a refresh.
		p.publish(t, map[string]any{"new": &k.rsa2.PublicKey})
		fresh := withQuery(sign(t, jwt.SigningMethodRS256, k.rsa2, "new", idpClaims(nil)))
		authtest.Refused(t, h, fresh)
		if n := p.fetches.Load(); n != 1 {
			t.Fatalf("fetches = %d within the gap, want 1", n)
		}
		time.Sleep(gap)
		authtest.OK(t, h, fresh)
		if n := p.fetches.Load(); n != 2 {
			t.Fatalf("fetches = %d, want 2 after rotation", n)
		}
		// The rotated-out key is gone from the cache with the refresh.
		authtest.Refused(t, h, withQuery(sign(t, jwt.SigningMethodRS256, k.rsa, "old", idpClaims(nil))))

		// A burst of unknown kids right after must not reach the provider.
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() {
				tok := sign(t, jwt.SigningMethodRS256, k.rsa, "forged-"+string(rune('a'+i)), idpClaims(nil))
				if _, err := h(withQuery(tok)); !errors.Is(err, ErrInvalidToken) {
					t.Errorf("err = %v, want ErrInvalidToken", err)
				}
			})
		}
		wg.Wait()
		if n := p.fetches.Load(); n != 2 {
			t.Fatalf("fetches = %d after a burst of unknown kids, want still 2", n)
		}
	})

	t.Run("concurrent first requests share one fetch", func(t *testing.T) {
		p := newIDP(t)
		p.publish(t, map[string]any{"r": &k.rsa.PublicKey})
		h := mustNew(t, p.options(time.Minute))
		tok := sign(t, jwt.SigningMethodRS256, k.rsa, "r", idpClaims(nil))
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				if _, err := h(withQuery(tok)); err != nil {
					t.Errorf("err = %v", err)
				}
			})
		}
		wg.Wait()
		if n := p.fetches.Load(); n != 1 {
			t.Fatalf("fetches = %d, want 1", n)
		}
	})

	t.Run("an unreachable set is a server error, not a 401", func(t *testing.T) {
		p := newIDP(t)
		p.status = http.StatusBadGateway
		h := mustNew(t, p.options(time.Minute))
		r := withQuery(sign(t, jwt.SigningMethodRS256, k.rsa, "r", idpClaims(nil)))
		if _, err := h(r); !errors.Is(err, ErrKeySetUnavailable) {
			t.Fatalf("err = %v, want ErrKeySetUnavailable", err)
		}
		if status, _ := authtest.Send(t, authtest.Serve(t, h), r); status != http.StatusInternalServerError {
			t.Fatalf("status = %d, want 500", status)
		}
	})

	t.Run("keys stay usable when a later refresh fails", func(t *testing.T) {
		p := newIDP(t)
		p.publish(t, map[string]any{"r": &k.rsa.PublicKey})
		o := p.options(time.Millisecond)
		o.JWKSRefresh = time.Millisecond
		h := mustNew(t, o)
		tok := sign(t, jwt.SigningMethodRS256, k.rsa, "r", idpClaims(nil))
		authtest.OK(t, h, withQuery(tok))
		p.mu.Lock()
		p.status = http.StatusServiceUnavailable
		p.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		authtest.OK(t, h, withQuery(tok))
		if n := p.fetches.Load(); n < 2 {
			t.Fatalf("fetches = %d, want a second (failed) attempt", n)
		}
	})

	t.Run("URLs in token headers or claims are never fetched", func(t *testing.T) {
		p := newIDP(t)
		p.publish(t, map[string]any{"r": &k.rsa.PublicKey})
		evil := newIDP(t)
		evil.publish(t, map[string]any{"x": &k.rsa2.PublicKey})
		h := mustNew(t, p.options(time.Minute))
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims(jwt.MapClaims{"iss": evil.srv.URL}))
		tok.Header["kid"] = "x"
		tok.Header["jku"] = evil.srv.URL + "/jwks.json"
		tok.Header["x5u"] = evil.srv.URL + "/cert.pem"
		s, err := tok.SignedString(k.rsa2)
		if err != nil {
			t.Fatal(err)
		}
		authtest.Refused(t, h, withQuery(s))
		if n := evil.fetches.Load(); n != 0 {
			t.Fatalf("the URL from the token was fetched %d times", n)
		}
	})
}

// One identity provider, one key set, several applications: a token the
// provider minted for another application (or another realm sharing the
// keys) must not open a connection here.
func TestTokensForOtherApplicationsAreRefused(t *testing.T) {
	k := keys()
	p := newIDP(t)
	p.publish(t, map[string]any{"r": &k.rsa.PublicKey})
	h := mustNew(t, p.options(time.Minute))
	mint := func(c jwt.MapClaims) *http.Request {
		return withQuery(sign(t, jwt.SigningMethodRS256, k.rsa, "r", idpClaims(c)))
	}
	authtest.OK(t, h, mint(nil))
	for name, c := range map[string]jwt.MapClaims{
		"for another application":        {"aud": "billing"},
		"for several other applications": {"aud": []string{"billing", "account"}},
		"without an audience":            {"aud": nil},
		"by another realm":               {"iss": "https://idp.example/realms/other"},
		"without an issuer":              {"iss": nil},
	} {
		t.Run("refuses a token "+name, func(t *testing.T) {
			authtest.Refused(t, h, mint(c))
		})
	}
	t.Run("unless the configuration opts out explicitly", func(t *testing.T) {
		o := p.options(time.Minute)
		o.Issuer, o.Audience, o.AcceptAnyIssuer, o.AcceptAnyAudience = "", "", true, true
		authtest.OK(t, mustNew(t, o), mint(jwt.MapClaims{"aud": "billing", "iss": "https://idp.example/realms/other"}))
	})
}
