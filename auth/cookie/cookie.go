package dscookie

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/gorilla/securecookie"
)

// Defaults applied to zero-valued [Options] fields.
const (
	DefaultName   = "datasole_session"
	DefaultMaxAge = 24 * time.Hour
	DefaultPath   = "/"
	// minHashKey is the HMAC-SHA256 block of entropy securecookie recommends.
	minHashKey = 32
)

// ErrInvalidCookie is returned for a session cookie that is present but
// tampered with, expired, signed with an unknown key or malformed. It wraps
// [datasole.ErrUnauthorized] and deliberately carries no reason.
var ErrInvalidCookie = fmt.Errorf("dscookie: invalid session cookie: %w", datasole.ErrUnauthorized)

// Key is one signing (and optionally encryption) key pair.
type Key struct {
	// Hash signs the cookie with HMAC-SHA256. At least 32 random bytes;
	// securecookie.GenerateRandomKey(32) makes one.
	Hash []byte
	// Block, when set, encrypts the cookie with AES so its content is not
	// readable by the client. 16, 24 or 32 bytes; nil means signed only.
	Block []byte
}

// Options configures [NewSession] and [New].
type Options struct {
	// Keys verify cookies; Keys[0] also signs new ones. Put the new key first
	// and keep the previous ones after it until cookies signed with them have
	// expired (MaxAge), then drop them. Required.
	Keys []Key
	// Name is the cookie name. Default DefaultName. A "__Host-" prefix is
	// recommended over https and requires Path "/", no Domain and Secure.
	Name string
	// MaxAge limits the age of an accepted cookie (checked against the signed
	// timestamp) and is sent as its Max-Age. Default DefaultMaxAge (24 h).
	MaxAge time.Duration
	// Path of the cookie. Default "/".
	Path string
	// Domain of the cookie. Default none (host-only), which is the safest.
	Domain string
	// SameSite mode. Default http.SameSiteLaxMode.
	SameSite http.SameSite
	// Insecure drops the Secure attribute so the cookie works over plain
	// http. Only for local development; browsers treat localhost as secure
	// and accept Secure cookies there anyway.
	Insecure bool
	// Logger receives the reason for each rejected cookie at debug level.
	// Cookie values are never logged. Default: discard.
	Logger *slog.Logger
	// Lookup, when set, makes the cookie carry a session id instead of the
	// principal: issue it with IssueID or EncodeID, and every upgrade asks
	// Lookup for the session's current principal, so roles can change and
	// sessions can be revoked before the cookie expires. Return an error
	// wrapping datasole.ErrUnauthorized (ErrSessionNotFound) for an unknown,
	// expired or revoked session (401), any other error for a failure (500).
	// Store.Lookup is a ready-made one over a backend. Default nil: the
	// cookie carries the principal, and cookies carrying a session id are
	// refused (and the other way round).
	Lookup func(ctx context.Context, sessionID string) (*datasole.Principal, error)
}

// Session issues, clears and verifies the session cookie. It is safe for
// concurrent use.
type Session struct {
	codecs   []securecookie.Codec
	name     string
	maxAge   time.Duration
	path     string
	domain   string
	sameSite http.SameSite
	secure   bool
	log      *slog.Logger
	lookup   func(ctx context.Context, sessionID string) (*datasole.Principal, error)
}

// payload is what the cookie carries. JSON keeps it readable by other
// languages and avoids gob's type registration; metadata numbers therefore
// come back as float64.
type payload struct {
	UserID    string         `json:"u,omitempty"`
	Roles     []string       `json:"r,omitempty"`
	Metadata  map[string]any `json:"m,omitempty"`
	SessionID string         `json:"s,omitempty"` // with Options.Lookup, instead of the above
}

// NewSession validates o and returns a Session.
func NewSession(o Options) (*Session, error) {
	s := &Session{
		name: o.Name, maxAge: o.MaxAge, path: o.Path, domain: o.Domain,
		sameSite: o.SameSite, secure: !o.Insecure, log: o.Logger, lookup: o.Lookup,
	}
	if s.name == "" {
		s.name = DefaultName
	}
	if s.maxAge <= 0 {
		s.maxAge = DefaultMaxAge
	}
	if s.path == "" {
		s.path = DefaultPath
	}
	if s.sameSite == 0 || s.sameSite == http.SameSiteDefaultMode {
		s.sameSite = http.SameSiteLaxMode
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := s.check(o.Keys); err != nil {
		return nil, err
	}
	if s.maxAge < time.Second {
		return nil, errors.New("dscookie: MaxAge must be at least one second")
	}
	pairs := make([][]byte, 0, 2*len(o.Keys))
	for _, k := range o.Keys {
		pairs = append(pairs, k.Hash, k.Block)
	}
	s.codecs = securecookie.CodecsFromPairs(pairs...)
	for _, c := range s.codecs {
		c.(*securecookie.SecureCookie).MaxAge(int(s.maxAge / time.Second)).SetSerializer(securecookie.JSONEncoder{})
	}
	return s, nil
}

func (s *Session) check(keys []Key) error {
	if len(keys) == 0 {
		return errors.New("dscookie: Options.Keys is required")
	}
	for i, k := range keys {
		if len(k.Hash) < minHashKey {
			return fmt.Errorf("dscookie: Keys[%d].Hash is %d bytes, need at least %d", i, len(k.Hash), minHashKey)
		}
		if n := len(k.Block); n != 0 && n != 16 && n != 24 && n != 32 {
			return fmt.Errorf("dscookie: Keys[%d].Block is %d bytes, want 16, 24 or 32", i, n)
		}
	}
	if !s.secure && s.sameSite == http.SameSiteNoneMode {
		return errors.New("dscookie: SameSite=None requires Secure; browsers drop the cookie otherwise")
	}
	switch {
	case strings.HasPrefix(s.name, "__Host-") && (!s.secure || s.path != "/" || s.domain != ""):
		return errors.New("dscookie: a __Host- cookie needs Secure, Path \"/\" and no Domain")
	case strings.HasPrefix(s.name, "__Secure-") && !s.secure:
		return errors.New("dscookie: a __Secure- cookie needs Secure")
	}
	return nil
}

// New returns an auth handler that admits requests carrying a valid session
// cookie. Without the cookie it returns [datasole.ErrNoCredentials], so
// [datasole.Chain] can try another handler; a bad cookie yields
// [ErrInvalidCookie]. Use [NewSession] with the same Options to issue cookies.
func New(o Options) (datasole.AuthHandler, error) {
	s, err := NewSession(o)
	if err != nil {
		return nil, err
	}
	return s.Authenticate, nil
}

// Authenticate is the [datasole.AuthHandler] of s. The principal's
// ExpiresAt is when the cookie stops being accepted (its signed timestamp
// plus MaxAge) or, with Options.Lookup, the session's own expiry if that
// comes first; the server closes the connection then.
func (s *Session) Authenticate(r *http.Request) (*datasole.Principal, error) {
	c, err := r.Cookie(s.name)
	if err != nil || c.Value == "" {
		return nil, datasole.ErrNoCredentials
	}
	var p payload
	if err := securecookie.DecodeMulti(s.name, c.Value, &p, s.codecs...); err != nil {
		return nil, s.reject(r, err)
	}
	expires, ok := s.expiry(c.Value)
	if !ok {
		return nil, s.reject(r, errors.New("cookie timestamp unreadable"))
	}
	if s.lookup == nil {
		if p.UserID == "" {
			return nil, s.reject(r, errors.New("cookie carries no user id"))
		}
		return &datasole.Principal{UserID: p.UserID, Roles: p.Roles, Metadata: p.Metadata, ExpiresAt: expires}, nil
	}
	if p.SessionID == "" {
		return nil, s.reject(r, errors.New("cookie carries no session id"))
	}
	pr, err := s.lookup(r.Context(), p.SessionID)
	switch {
	case errors.Is(err, datasole.ErrUnauthorized):
		return nil, s.reject(r, err)
	case err != nil:
		return nil, fmt.Errorf("dscookie: looking up the session: %w", err)
	case pr == nil || pr.UserID == "":
		return nil, s.reject(r, errors.New("session has no user id"))
	}
	out := *pr
	if out.ExpiresAt.IsZero() || expires.Before(out.ExpiresAt) {
		out.ExpiresAt = expires
	}
	return &out, nil
}

// SessionID returns the session id carried by r's cookie, e.g. for a logout
// handler that revokes it. It fails with ErrInvalidCookie for a missing,
// invalid or expired cookie, or one that carries a principal instead.
func (s *Session) SessionID(r *http.Request) (string, error) {
	c, err := r.Cookie(s.name)
	if err != nil || c.Value == "" {
		return "", ErrInvalidCookie
	}
	var p payload
	if err := securecookie.DecodeMulti(s.name, c.Value, &p, s.codecs...); err != nil || p.SessionID == "" {
		return "", ErrInvalidCookie
	}
	return p.SessionID, nil
}

// expiry is the first instant at which a verified cookie value is refused:
// securecookie admits it while now (in whole seconds) is at most its signed
// timestamp plus MaxAge.
func (s *Session) expiry(value string) (time.Time, bool) {
	ts, ok := cookieTimestamp(value)
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(ts+int64(s.maxAge/time.Second)+1, 0), true
}

// cookieTimestamp reads the signed timestamp of a securecookie value:
// base64url("date|value|mac").
func cookieTimestamp(value string) (int64, bool) {
	b, err := base64.URLEncoding.DecodeString(value)
	if err != nil {
		return 0, false
	}
	date, _, ok := strings.Cut(string(b), "|")
	if !ok {
		return 0, false
	}
	ts, err := strconv.ParseInt(date, 10, 64)
	return ts, err == nil && ts > 0
}

func (s *Session) reject(r *http.Request, reason error) error {
	s.log.DebugContext(r.Context(), "dscookie: cookie rejected", "remote", r.RemoteAddr, "reason", reason)
	return ErrInvalidCookie
}

// Encode returns the cookie name and the signed value carrying p, for
// frameworks that set cookies their own way (fiber: see the package doc). The
// cookie attributes must match Options for the browser to send it back. With
// Options.Lookup, use EncodeID.
func (s *Session) Encode(p *datasole.Principal) (name, value string, err error) {
	if s.lookup != nil {
		return "", "", errors.New("dscookie: with Options.Lookup the cookie carries a session id: use EncodeID")
	}
	if p == nil || p.UserID == "" {
		return "", "", errors.New("dscookie: a session needs a principal with a user id")
	}
	return s.encode(payload{UserID: p.UserID, Roles: p.Roles, Metadata: p.Metadata})
}

// EncodeID returns the cookie name and the signed value carrying a session
// id, with Options.Lookup.
func (s *Session) EncodeID(sessionID string) (name, value string, err error) {
	if s.lookup == nil {
		return "", "", errors.New("dscookie: a session id cookie needs Options.Lookup")
	}
	if sessionID == "" {
		return "", "", errors.New("dscookie: empty session id")
	}
	return s.encode(payload{SessionID: sessionID})
}

func (s *Session) encode(p payload) (name, value string, err error) {
	value, err = securecookie.EncodeMulti(s.name, p, s.codecs[0])
	if err != nil {
		return "", "", fmt.Errorf("dscookie: encoding session: %w", err)
	}
	return s.name, value, nil
}

// IssueID sets the session cookie carrying sessionID on w, with
// Options.Lookup; Store.Create makes the id.
func (s *Session) IssueID(w http.ResponseWriter, sessionID string) error {
	_, value, err := s.EncodeID(sessionID)
	if err != nil {
		return err
	}
	http.SetCookie(w, s.cookie(value, int(s.maxAge/time.Second)))
	return nil
}

// Issue sets the session cookie for p on w, typically from a login handler.
// It fails when p has no user id, the encoded cookie exceeds 4096 bytes, or
// Options.Lookup is set (then use IssueID).
func (s *Session) Issue(w http.ResponseWriter, p *datasole.Principal) error {
	_, value, err := s.Encode(p)
	if err != nil {
		return err
	}
	http.SetCookie(w, s.cookie(value, int(s.maxAge/time.Second)))
	return nil
}

// Clear removes the session cookie, typically from a logout handler.
func (s *Session) Clear(w http.ResponseWriter) {
	http.SetCookie(w, s.cookie("", -1))
}

func (s *Session) cookie(value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name: s.name, Value: value, Path: s.path, Domain: s.domain, MaxAge: maxAge,
		HttpOnly: true, Secure: s.secure, SameSite: s.sameSite,
	}
}
