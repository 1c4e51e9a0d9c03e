package dsjwt_test

import (
	"fmt"
	"net/http/httptest"
	"time"

	dsjwt "github.com/datasole/datasole-go/auth/jwt"
	"github.com/datasole/datasole-go/datasole"
	"github.com/golang-jwt/jwt/v5"
)

// A handler for HS256 tokens from the app's own login endpoint. Our clients
// send the token as the WebSocket subprotocol entry "datasole.token.<token>",
// which keeps it out of the URL.
func ExampleNew() {
	secret := []byte("0123456789abcdef0123456789abcdef") // load from a secret store
	auth, err := dsjwt.New(dsjwt.Options{
		Algorithms:     []string{"HS256"},
		Key:            secret,
		Issuer:         "https://app.example",
		Audience:       "chat",
		RolesClaim:     "scope",
		MetadataClaims: []string{"tenant"},
	})
	if err != nil {
		panic(err)
	}

	token, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss":    "https://app.example",
		"aud":    "chat",
		"sub":    "user-42",
		"scope":  "chat:read chat:write",
		"tenant": "acme",
		"exp":    time.Now().Add(5 * time.Minute).Unix(),
	}).SignedString(secret)

	r := httptest.NewRequest("GET", "/__ds", nil)
	r.Header.Set("Sec-WebSocket-Protocol", "datasole.v1, "+datasole.TokenProtocolPrefix+token)
	p, err := auth(r)
	fmt.Println(p.UserID, p.Roles, p.Metadata["tenant"], err)
	// Output: user-42 [chat:read chat:write] acme <nil>
}

// Keys from an identity provider's JWKS, Keycloak-style realm roles, and a
// fallback to anonymous access when no token is sent.
func ExampleNew_jwks() {
	auth, err := dsjwt.New(dsjwt.Options{
		Algorithms: []string{"RS256", "ES256"},
		JWKSURL:    "https://idp.example/realms/app/protocol/openid-connect/certs",
		Issuer:     "https://idp.example/realms/app",
		Audience:   "chat",
		RolesClaim: "realm_access.roles",
	})
	if err != nil {
		panic(err)
	}
	handler := datasole.Chain(auth, datasole.Anonymous)
	_ = handler // pass as the server's auth handler

	p, err := handler(httptest.NewRequest("GET", "/__ds", nil))
	fmt.Printf("%q %v\n", p.UserID, err)
	// Output: "" <nil>
}
