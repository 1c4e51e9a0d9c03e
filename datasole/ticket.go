package datasole

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/datasole/datasole-go/datasole/backend"
)

// DefaultTicketTTL is how long a ticket can be redeemed unless
// TicketOptions.TTL says otherwise: long enough for a page to open its
// socket, short enough that a leaked ticket is useless.
const DefaultTicketTTL = 30 * time.Second

// ticketPrefix starts every ticket, so Tickets.Authenticate can tell its own
// credential from other bearer tokens (a JWT never starts like this). What
// follows is 32 random bytes, unpadded base64url.
const (
	ticketPrefix  = "dst1."
	ticketRandLen = 32
	ticketLen     = len(ticketPrefix) + 43 // base64.RawURLEncoding.EncodedLen(32)
)

// ErrInvalidTicket is returned for a ticket that is malformed, unknown,
// expired or already redeemed. It wraps ErrUnauthorized and deliberately says
// nothing about which.
var ErrInvalidTicket = fmt.Errorf("datasole: invalid ticket: %w", ErrUnauthorized)

// TicketOptions configures NewTickets.
type TicketOptions struct {
	// TTL is how long a ticket can be redeemed after it was issued. Default
	// DefaultTicketTTL (30 s).
	TTL time.Duration
	// Auth authenticates requests for a ticket, e.g. a dscookie session's
	// Authenticate. Default: the principal the app's own auth middleware
	// stored with WithPrincipal; a request without one is refused with 401.
	// Anonymous principals (no user id) never get a ticket.
	Auth AuthHandler
	// Backend stores tickets. Pass the server's Options.Backend so that any
	// node redeems a ticket another node issued. Default: an in-process
	// store, for a single node. Tickets are stored under "ticket:" and the
	// SHA-256 of the ticket, never the ticket itself.
	Backend backend.Backend
}

// Tickets hands out one-time, short-lived tickets for the upgrade, so a
// browser never puts a long-lived credential into the WebSocket URL: the page
// asks an endpoint of the app, behind the app's own authentication, for a
// ticket, and opens the socket with it. The upgrade redeems the ticket
// exactly once. Create one Tickets per server and use it both to issue
// (ServeHTTP, Issue) and to redeem (Authenticate).
type Tickets struct {
	ttl   time.Duration
	auth  AuthHandler
	store ticketStore
}

// NewTickets returns a ticket issuer and redeemer. Create it before the
// server, whose Options.Auth includes its Authenticate.
func NewTickets(o TicketOptions) (*Tickets, error) {
	if o.TTL < 0 {
		return nil, errors.New("datasole: TicketOptions.TTL must not be negative")
	}
	t := &Tickets{ttl: o.TTL, auth: o.Auth}
	if t.ttl == 0 {
		t.ttl = DefaultTicketTTL
	}
	if o.Backend != nil {
		t.store = backendTickets{o.Backend}
	} else {
		t.store = &memoryTickets{m: make(map[string]memoryTicket)}
	}
	return t, nil
}

// ticketResponse is the body ServeHTTP answers with.
type ticketResponse struct {
	Ticket    string `json:"ticket"`
	ExpiresIn int    `json:"expiresIn"` // seconds
}

// ServeHTTP hands out a ticket for the request's principal: POST only (405
// otherwise), 401 without an authenticated, non-anonymous principal, else 200
// with {"ticket": "...", "expiresIn": seconds} and Cache-Control: no-store.
// Mount it behind the app's authentication, e.g. at POST /api/ds-ticket.
func (t *Tickets) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	p, err := t.principal(r)
	switch {
	case errors.Is(err, ErrUnauthorized):
		http.Error(w, http.StatusText(http.StatusUnauthorized), http.StatusUnauthorized)
		return
	case err != nil:
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return
	}
	ticket, err := t.Issue(r.Context(), p)
	if err != nil {
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(ticketResponse{Ticket: ticket, ExpiresIn: int((t.ttl + time.Second - 1) / time.Second)})
}

func (t *Tickets) principal(r *http.Request) (*Principal, error) {
	if t.auth == nil {
		p, ok := PrincipalFromContext(r.Context())
		if !ok || p.UserID == "" {
			return nil, ErrNoCredentials
		}
		return p, nil
	}
	p, err := t.auth(r)
	if err != nil {
		return nil, err
	}
	if p == nil || p.UserID == "" {
		return nil, ErrNoCredentials
	}
	return p, nil
}

// Issue stores a new ticket for p and returns it. p must have a user id.
// Apps that answer the ticket request themselves call it instead of
// mounting ServeHTTP.
func (t *Tickets) Issue(ctx context.Context, p *Principal) (string, error) {
	if p == nil || p.UserID == "" {
		return "", errors.New("datasole: a ticket needs a principal with a user id")
	}
	raw := make([]byte, ticketRandLen)
	rand.Read(raw) // never fails (crypto/rand)
	ticket := ticketPrefix + base64.RawURLEncoding.EncodeToString(raw)
	val, err := json.Marshal(ticketPrincipal{p.UserID, p.Roles, p.Metadata, p.ExpiresAt})
	if err != nil {
		return "", fmt.Errorf("datasole: encoding ticket principal: %w", err)
	}
	if err := t.store.put(ctx, ticketKey(ticket), val, t.ttl); err != nil {
		return "", fmt.Errorf("datasole: storing ticket: %w", err)
	}
	return ticket, nil
}

// Authenticate is the AuthHandler that redeems a ticket sent the way
// RequestToken finds it (best as the "datasole.token.<ticket>" subprotocol
// entry). A request whose token is not a ticket gets ErrNoCredentials, so
// Chain(tickets.Authenticate, jwtAuth) passes JWTs on; a ticket that is
// malformed, unknown, expired or already redeemed gets ErrInvalidTicket (401).
// Of two upgrades racing with the same ticket exactly one is admitted.
func (t *Tickets) Authenticate(r *http.Request) (*Principal, error) {
	tok := RequestToken(r)
	if !strings.HasPrefix(tok, ticketPrefix) {
		return nil, ErrNoCredentials
	}
	return t.Redeem(r.Context(), tok)
}

// Redeem returns the principal of ticket and makes the ticket unusable. Of
// concurrent redemptions of one ticket, on any nodes sharing the backend,
// exactly one succeeds; the others get ErrInvalidTicket.
func (t *Tickets) Redeem(ctx context.Context, ticket string) (*Principal, error) {
	if !validTicket(ticket) {
		return nil, ErrInvalidTicket
	}
	val, err := t.store.take(ctx, ticketKey(ticket), t.ttl)
	if err != nil {
		return nil, err
	}
	var tp ticketPrincipal
	if err := json.Unmarshal(val, &tp); err != nil || tp.UserID == "" {
		return nil, ErrInvalidTicket
	}
	return &Principal{UserID: tp.UserID, Roles: tp.Roles, Metadata: tp.Metadata, ExpiresAt: tp.ExpiresAt}, nil
}

// validTicket reports whether s has the shape of a ticket: the prefix and
// exactly 32 bytes of unpadded base64url.
func validTicket(s string) bool {
	if len(s) != ticketLen || !strings.HasPrefix(s, ticketPrefix) {
		return false
	}
	n, err := base64.RawURLEncoding.Strict().DecodeString(s[len(ticketPrefix):])
	return err == nil && len(n) == ticketRandLen
}

// ticketKey is where a ticket is stored: its hash, so that whoever reads the
// backend's keys cannot redeem the tickets in it.
func ticketKey(ticket string) string {
	sum := sha256.Sum256([]byte(ticket))
	return "ticket:" + hex.EncodeToString(sum[:])
}

// ticketPrincipal is the stored form of a principal. Metadata goes through
// JSON, so numbers come back as float64.
type ticketPrincipal struct {
	UserID    string         `json:"u"`
	Roles     []string       `json:"r,omitempty"`
	Metadata  map[string]any `json:"m,omitempty"`
	ExpiresAt time.Time      `json:"e,omitzero"`
}

// ticketStore keeps tickets until their TTL and hands each out once.
type ticketStore interface {
	put(ctx context.Context, key string, val []byte, ttl time.Duration) error
	// take returns the value under key and removes it, atomically: of two
	// concurrent takes at most one gets it. ErrInvalidTicket when absent.
	take(ctx context.Context, key string, ttl time.Duration) ([]byte, error)
}

// backendTickets stores tickets in a shared backend. Redemption is a
// compare-and-set from the stored version to a tombstone, which the
// backend contract makes atomic across nodes.
type backendTickets struct{ b backend.Backend }

// tombstone replaces a redeemed ticket until its TTL removes it.
var tombstone = []byte{0}

func (s backendTickets) put(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	_, err := s.b.Set(ctx, key, val, ttl)
	return err
}

func (s backendTickets) take(ctx context.Context, key string, ttl time.Duration) ([]byte, error) {
	val, ver, err := s.b.Get(ctx, key)
	switch {
	case errors.Is(err, backend.ErrNotFound):
		return nil, ErrInvalidTicket
	case err != nil:
		return nil, fmt.Errorf("datasole: reading ticket: %w", err)
	case len(val) == 1 && val[0] == tombstone[0]:
		return nil, ErrInvalidTicket
	}
	if _, err := s.b.CompareAndSet(ctx, key, tombstone, ver, ttl); err != nil {
		if errors.Is(err, backend.ErrConflict) {
			return nil, ErrInvalidTicket // redeemed (or replaced) meanwhile
		}
		return nil, fmt.Errorf("datasole: redeeming ticket: %w", err)
	}
	return val, nil
}

// memoryTickets stores tickets in this process, for a server without a
// backend. Expired tickets are swept when the map has doubled since the
// last sweep, so memory stays bounded by the tickets issued within one TTL.
type memoryTickets struct {
	mu        sync.Mutex
	m         map[string]memoryTicket
	nextSweep int
}

type memoryTicket struct {
	val     []byte
	expires time.Time
}

func (s *memoryTickets) put(_ context.Context, key string, val []byte, ttl time.Duration) error {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= s.nextSweep {
		for k, e := range s.m {
			if !now.Before(e.expires) {
				delete(s.m, k)
			}
		}
		s.nextSweep = max(2*len(s.m), 64)
	}
	s.m[key] = memoryTicket{val, now.Add(ttl)}
	return nil
}

func (s *memoryTickets) take(_ context.Context, key string, _ time.Duration) ([]byte, error) {
	s.mu.Lock()
	e, ok := s.m[key]
	delete(s.m, key)
	s.mu.Unlock()
	if !ok || !time.Now().Before(e.expires) {
		return nil, ErrInvalidTicket
	}
	return e.val, nil
}
