package datasole

import (
	"errors"
	"net/http"
	"time"
)

// Principal is who a connection belongs to, as established by the auth handler
// on the upgrade request.
type Principal struct {
	// UserID identifies the user. Several connections (tabs, devices) may share
	// it. Empty means anonymous: the server then uses "$anon:" and the
	// connection id, a namespace no auth handler may produce.
	UserID string
	// Roles are free-form role names, e.g. from a JWT "roles" or "scope" claim.
	Roles []string
	// Metadata holds opaque claims such as tenant or plan.
	Metadata map[string]any
	// ExpiresAt is when the credential expires (a JWT's exp, a session
	// cookie's expiry). The server closes the connection with
	// CloseSessionExpired once it passes. Zero means never.
	ExpiresAt time.Time
}

// HasRole reports whether p carries role.
func (p *Principal) HasRole(role string) bool {
	for _, r := range p.Roles {
		if r == role {
			return true
		}
	}
	return false
}

// AuthHandler turns an upgrade request into a principal. Return an error
// wrapping ErrUnauthorized to refuse with 401, ErrNoCredentials when the
// request carries no credential this handler understands (Chain then tries the
// next one; alone it is refused with 401), or any other error to refuse with 500.
// Nothing of the error reaches the client.
type AuthHandler func(r *http.Request) (*Principal, error)

// Errors returned by auth handlers.
var (
	// ErrUnauthorized refuses the upgrade with 401.
	ErrUnauthorized = errors.New("datasole: unauthorized")
	// ErrNoCredentials means the handler found no credential of its kind. It
	// wraps ErrUnauthorized.
	ErrNoCredentials = &noCredentialsError{}
)

type noCredentialsError struct{}

func (*noCredentialsError) Error() string { return "datasole: no credentials" }
func (*noCredentialsError) Unwrap() error { return ErrUnauthorized }

// Chain tries handlers in order. A handler that finds no credential of its
// kind (ErrNoCredentials) passes to the next; any other outcome — a principal,
// a bad credential, a failure — is final. When every handler finds nothing the
// result is ErrNoCredentials (401).
func Chain(handlers ...AuthHandler) AuthHandler {
	return func(r *http.Request) (*Principal, error) {
		for _, h := range handlers {
			p, err := h(r)
			if errors.Is(err, ErrNoCredentials) {
				continue
			}
			return p, err
		}
		return nil, ErrNoCredentials
	}
}

// Anonymous admits every request as an anonymous principal; the server keys
// it by connection id (never by IP address). It is the default and is meant for
// development: the server logs once that auth is open.
func Anonymous(*http.Request) (*Principal, error) { return &Principal{}, nil }

// anonymousPrefix starts the user id of every anonymous connection
// ("$anon:" + its connection id). No auth handler may produce it: the
// server refuses principals whose UserID starts with it, so an anonymous
// user never shares a namespace with a real one.
const anonymousPrefix = "$anon:"

// anonymous reports whether c was admitted without a user id.
func (c *Conn) anonymous() bool { return c.principal.UserID == "" }
