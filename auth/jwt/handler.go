package dsjwt

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/datasole/datasole-go/datasole"
	"github.com/golang-jwt/jwt/v5"
)

var (
	errTooLarge  = errors.New("token longer than MaxTokenSize")
	errNoSubject = errors.New("user id claim missing or not a non-empty string")
	errBadRoles  = errors.New("roles claim is neither a string nor an array of strings")
)

func (h *handler) authenticate(r *http.Request) (*datasole.Principal, error) {
	raw, source := h.find(r)
	if raw == "" {
		return nil, datasole.ErrNoCredentials
	}
	if len(raw) > h.maxSize {
		return nil, h.reject(r, source, errTooLarge)
	}
	claims := jwt.MapClaims{}
	if _, err := h.parser.ParseWithClaims(raw, claims, h.keys(r)); err != nil {
		if errors.Is(err, ErrKeySetUnavailable) {
			return nil, ErrKeySetUnavailable
		}
		return nil, h.reject(r, source, err)
	}
	p, err := h.principal(claims)
	if err != nil {
		return nil, h.reject(r, source, err)
	}
	// The server closes the connection once the token would no longer be
	// accepted by a new upgrade: at exp plus the leeway.
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
		p.ExpiresAt = exp.Add(h.leeway)
	}
	return p, nil
}

// reject logs why a token was refused and returns the reasonless error.
func (h *handler) reject(r *http.Request, source string, reason error) error {
	h.log.DebugContext(r.Context(), "dsjwt: token rejected",
		"source", source, "remote", r.RemoteAddr, "reason", reason)
	return ErrInvalidToken
}

// find returns the first non-empty token in lookup order and where it was.
func (h *handler) find(r *http.Request) (token, source string) {
	if h.lookups == nil {
		return datasole.RequestToken(r), "request"
	}
	for _, l := range h.lookups {
		var v string
		switch l.kind {
		case "protocol":
			v = datasole.ProtocolToken(r)
		case "query":
			v = r.URL.Query().Get(l.name)
		case "header":
			v = r.Header.Get(l.name)
			if http.CanonicalHeaderKey(l.name) == "Authorization" {
				v = bearer(v)
			}
		case "cookie":
			if c, err := r.Cookie(l.name); err == nil {
				v = c.Value
			}
		}
		if v = strings.TrimSpace(v); v != "" {
			return v, strings.TrimSuffix(l.kind+":"+l.name, ":")
		}
	}
	return "", ""
}

// bearer extracts the credentials of the Bearer scheme (RFC 6750 §2.1); any
// other scheme is not this handler's credential.
func bearer(v string) string {
	scheme, cred, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return cred
}

func (h *handler) principal(c jwt.MapClaims) (*datasole.Principal, error) {
	uid, _ := lookupClaim(c, h.userID)
	s, ok := uid.(string)
	if !ok || s == "" {
		return nil, errNoSubject
	}
	p := &datasole.Principal{UserID: s}
	if v, ok := lookupClaim(c, h.roles); ok {
		roles, err := rolesOf(v)
		if err != nil {
			return nil, err
		}
		p.Roles = roles
	}
	for _, path := range h.metadata {
		if v, ok := lookupClaim(c, path); ok {
			if p.Metadata == nil {
				p.Metadata = make(map[string]any, len(h.metadata))
			}
			p.Metadata[strings.Join(path, ".")] = v
		}
	}
	return p, nil
}

func lookupClaim(c map[string]any, path []string) (any, bool) {
	var v any = c
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[k]; !ok {
			return nil, false
		}
	}
	return v, true
}

func rolesOf(v any) ([]string, error) {
	switch v := v.(type) {
	case string:
		return strings.Fields(v), nil
	case []any:
		roles := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("%w: element of type %T", errBadRoles, e)
			}
			roles = append(roles, s)
		}
		return roles, nil
	}
	return nil, errBadRoles
}
