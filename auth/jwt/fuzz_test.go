package dsjwt

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/datasole/datasole-go/datasole"
	"github.com/golang-jwt/jwt/v5"
)

// FuzzToken feeds arbitrary tokens, Authorization headers and subprotocol
// lists to a handler: it must never panic and never admit anything not signed
// with its key.
func FuzzToken(f *testing.F) {
	k := keys()
	f.Add(sign(f, jwt.SigningMethodHS256, k.hmac, "", claims(nil)), "Bearer x", "datasole.v1")
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1MSJ9.", "Bearer eyJhbGciOiJub25lIn0..", "datasole.token.a.b.c")
	f.Add("....", "bearer  ", ",datasole.token.,")
	f.Add("a.b.c", "Basic Zm9vOmJhcg==", "datasole.v1, datasole.token."+sign(f, jwt.SigningMethodHS256, k.hmac, "", claims(nil)))
	h, err := New(Options{Algorithms: []string{"HS256"}, Key: k.hmac})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, token, authz, protocols string) {
		r := httptest.NewRequest(http.MethodGet, "/__ds?token="+url.QueryEscape(token), nil)
		r.Header.Set("Authorization", authz)
		r.Header.Set("Sec-WebSocket-Protocol", protocols)
		p, err := h(r)
		if err == nil {
			// Only a correctly signed token can pass; re-verify independently.
			raw := datasole.RequestToken(r)
			if _, verr := jwt.Parse(raw, func(*jwt.Token) (any, error) { return k.hmac, nil },
				jwt.WithValidMethods([]string{"HS256"})); verr != nil || p == nil || p.UserID == "" {
				t.Fatalf("admitted %+v for a token that does not verify: %v", p, verr)
			}
			return
		}
		if !errors.Is(err, datasole.ErrUnauthorized) {
			t.Fatalf("err = %v, want one wrapping ErrUnauthorized", err)
		}
	})
}
