package dscookie

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/backend"
)

// DefaultStorePrefix namespaces a Store's keys and its revocation channel
// within the backend (which adds its own prefix).
const DefaultStorePrefix = "dscookie:"

// SessionMetadataKey is the Principal.Metadata entry in which Store.Lookup
// puts the session's handle: a hash of the session id that identifies the
// session's connections without revealing the id.
const SessionMetadataKey = "dscookie.session"

// revokedMemory is how long a node remembers a revocation, to close a
// connection that passed Lookup just before the revocation and opens just
// after it (the upgrade handshake is bounded well below this).
const revokedMemory = 2 * time.Minute

// ErrSessionNotFound is returned by Store.Lookup for a session that does not
// exist, has expired or was revoked. It wraps datasole.ErrUnauthorized (401).
var ErrSessionNotFound = fmt.Errorf("dscookie: session not found: %w", datasole.ErrUnauthorized)

// StoreOptions configures NewStore.
type StoreOptions struct {
	// Backend keeps the sessions; with several nodes, the one they share.
	// Required.
	Backend backend.Backend
	// TTL is how long a session lives after Create; the backend drops it
	// then. Default DefaultMaxAge (24 h); match Options.MaxAge.
	TTL time.Duration
	// Prefix namespaces keys ("<Prefix>session:<hash>") and the revocation
	// channel ("<Prefix>revoke"). Default DefaultStorePrefix.
	Prefix string
}

// Store keeps cookie sessions in a backend: Create stores a principal under a
// new random session id, Lookup (for Options.Lookup) reads it back on every
// upgrade, Update changes it, and Revoke deletes it and closes its live
// connections (once Attach has tied the Store to the server). Session ids are stored only as their SHA-256, so reading the
// backend does not reveal them. It is safe for concurrent use.
type Store struct {
	b       backend.Backend
	ds      *datasole.Server
	ttl     time.Duration
	prefix  string
	cancel  func()
	mu      sync.Mutex
	conns   map[string]map[*datasole.Conn]struct{} // handle → live connections on this node
	revoked map[string]time.Time                   // handle → when this node learnt of its revocation
	closed  bool
}

// NewStore returns a Store. It does no I/O; Attach it to the server to
// have Revoke close connections.
func NewStore(o StoreOptions) (*Store, error) {
	if o.Backend == nil {
		return nil, errors.New("dscookie: StoreOptions.Backend is required")
	}
	if o.TTL < 0 {
		return nil, errors.New("dscookie: StoreOptions.TTL must not be negative")
	}
	st := &Store{b: o.Backend, ttl: o.TTL, prefix: o.Prefix,
		conns: make(map[string]map[*datasole.Conn]struct{}), revoked: make(map[string]time.Time)}
	if st.ttl == 0 {
		st.ttl = DefaultMaxAge
	}
	if st.prefix == "" {
		st.prefix = DefaultStorePrefix
	}
	return st, nil
}

// Attach makes Revoke close the session's connections on ds with
// datasole.CloseRevoked. It tracks ds's connections by session and
// subscribes to the revocation channel of the backend, so a session revoked
// on one node loses its connections on every node whose Store is attached
// to its server. Call it once, after datasole.New (whose Options.Auth uses
// this Store's Lookup); Close undoes it.
func (st *Store) Attach(ctx context.Context, ds *datasole.Server) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	switch {
	case st.closed:
		return errors.New("dscookie: Store is closed")
	case st.ds != nil:
		return errors.New("dscookie: Store is already attached to a server")
	}
	cancel, err := st.b.Subscribe(ctx, st.prefix+"revoke", func(msg []byte) {
		if h := string(msg); validHandle(h) {
			st.closeSession(h)
		}
	})
	if err != nil {
		return fmt.Errorf("dscookie: subscribing to revocations: %w", err)
	}
	st.ds, st.cancel = ds, cancel
	ds.OnConnect(st.connected)
	ds.OnDisconnect(st.disconnected)
	return nil
}

// Close stops listening for revocations. Sessions stay in the backend.
func (st *Store) Close() error {
	st.mu.Lock()
	st.closed = true
	st.conns, st.revoked = nil, nil
	cancel := st.cancel
	st.cancel = nil
	st.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	return nil
}

// record is a stored session.
type record struct {
	UserID    string         `json:"u"`
	Roles     []string       `json:"r,omitempty"`
	Metadata  map[string]any `json:"m,omitempty"`
	ExpiresAt time.Time      `json:"e"`
}

// Create stores p under a new random session id with the Store's TTL and
// returns the id, to be set with Session.IssueID.
func (st *Store) Create(ctx context.Context, p *datasole.Principal) (string, error) {
	if p == nil || p.UserID == "" {
		return "", errors.New("dscookie: a session needs a principal with a user id")
	}
	raw := make([]byte, 32)
	rand.Read(raw) // never fails (crypto/rand)
	id := base64.RawURLEncoding.EncodeToString(raw)
	val, err := json.Marshal(record{p.UserID, p.Roles, ownMetadata(p.Metadata), time.Now().Add(st.ttl)})
	if err != nil {
		return "", fmt.Errorf("dscookie: encoding session: %w", err)
	}
	if _, err := st.b.Set(ctx, st.key(handleOf(id)), val, st.ttl); err != nil {
		return "", fmt.Errorf("dscookie: storing session: %w", err)
	}
	return id, nil
}

// Lookup returns the session's principal, with ExpiresAt set to the
// session's expiry and Metadata[SessionMetadataKey] to its handle. It
// returns ErrSessionNotFound for an unknown, expired or revoked session.
func (st *Store) Lookup(ctx context.Context, sessionID string) (*datasole.Principal, error) {
	if !validSessionID(sessionID) {
		return nil, ErrSessionNotFound
	}
	h := handleOf(sessionID)
	val, _, err := st.b.Get(ctx, st.key(h))
	if errors.Is(err, backend.ErrNotFound) {
		return nil, ErrSessionNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("dscookie: reading session: %w", err)
	}
	var rec record
	if err := json.Unmarshal(val, &rec); err != nil || rec.UserID == "" {
		return nil, fmt.Errorf("dscookie: stored session is unreadable: %v", err)
	}
	if !time.Now().Before(rec.ExpiresAt) {
		return nil, ErrSessionNotFound // the backend's TTL may lag
	}
	md := make(map[string]any, len(rec.Metadata)+1)
	for k, v := range rec.Metadata {
		md[k] = v
	}
	md[SessionMetadataKey] = h
	return &datasole.Principal{UserID: rec.UserID, Roles: rec.Roles, Metadata: md, ExpiresAt: rec.ExpiresAt}, nil
}

// Update replaces the principal of a live session, keeping its expiry. New
// connections see the change; open ones keep the principal they were
// admitted with (Revoke closes them). It returns ErrSessionNotFound when the
// session is gone, including when it is revoked while Update runs.
func (st *Store) Update(ctx context.Context, sessionID string, p *datasole.Principal) error {
	if p == nil || p.UserID == "" {
		return errors.New("dscookie: a session needs a principal with a user id")
	}
	if !validSessionID(sessionID) {
		return ErrSessionNotFound
	}
	key := st.key(handleOf(sessionID))
	val, ver, err := st.b.Get(ctx, key)
	if errors.Is(err, backend.ErrNotFound) {
		return ErrSessionNotFound
	}
	if err != nil {
		return fmt.Errorf("dscookie: reading session: %w", err)
	}
	var rec record
	if err := json.Unmarshal(val, &rec); err != nil {
		return fmt.Errorf("dscookie: stored session is unreadable: %w", err)
	}
	left := time.Until(rec.ExpiresAt)
	if left <= 0 {
		return ErrSessionNotFound
	}
	if val, err = json.Marshal(record{p.UserID, p.Roles, ownMetadata(p.Metadata), rec.ExpiresAt}); err != nil {
		return fmt.Errorf("dscookie: encoding session: %w", err)
	}
	// Compare-and-set: a session revoked since the read stays revoked.
	if _, err := st.b.CompareAndSet(ctx, key, val, ver, left); err != nil {
		if errors.Is(err, backend.ErrConflict) {
			return ErrSessionNotFound
		}
		return fmt.Errorf("dscookie: storing session: %w", err)
	}
	return nil
}

// Revoke deletes the session, so its cookie is refused from now on (401),
// and closes its open connections with datasole.CloseRevoked: at once on
// this node, and through the backend's bus on every node whose Store is
// attached to its server. Revoking an unknown session is not an error.
func (st *Store) Revoke(ctx context.Context, sessionID string) error {
	if !validSessionID(sessionID) {
		return nil
	}
	h := handleOf(sessionID)
	if err := st.b.Delete(ctx, st.key(h)); err != nil {
		return fmt.Errorf("dscookie: deleting session: %w", err)
	}
	st.closeSession(h)
	if err := st.b.Publish(ctx, st.prefix+"revoke", []byte(h)); err != nil {
		return fmt.Errorf("dscookie: session deleted, but other nodes were not told to close its connections: %w", err)
	}
	return nil
}

func (st *Store) key(handle string) string { return st.prefix + "session:" + handle }

// closeSession closes this node's connections of a session and remembers
// the revocation for connections still being opened.
func (st *Store) closeSession(h string) {
	now := time.Now()
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return
	}
	for k, at := range st.revoked {
		if now.Sub(at) > revokedMemory {
			delete(st.revoked, k)
		}
	}
	st.revoked[h] = now
	conns := st.conns[h]
	delete(st.conns, h)
	st.mu.Unlock()
	for c := range conns {
		c.Close(datasole.CloseRevoked, "session revoked")
	}
}

func (st *Store) connected(c *datasole.Conn) {
	h, _ := c.Principal().Metadata[SessionMetadataKey].(string)
	if h == "" {
		return
	}
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return
	}
	if at, ok := st.revoked[h]; ok && time.Since(at) <= revokedMemory {
		st.mu.Unlock()
		c.Close(datasole.CloseRevoked, "session revoked")
		return
	}
	set := st.conns[h]
	if set == nil {
		set = make(map[*datasole.Conn]struct{})
		st.conns[h] = set
	}
	set[c] = struct{}{}
	st.mu.Unlock()
}

func (st *Store) disconnected(c *datasole.Conn) {
	h, _ := c.Principal().Metadata[SessionMetadataKey].(string)
	if h == "" {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if set := st.conns[h]; set != nil {
		delete(set, c)
		if len(set) == 0 {
			delete(st.conns, h)
		}
	}
}

// ownMetadata is m without the entry Lookup adds, so a principal read from
// a connection can be stored back unchanged.
func ownMetadata(m map[string]any) map[string]any {
	if _, ok := m[SessionMetadataKey]; !ok {
		return m
	}
	out := make(map[string]any, len(m)-1)
	for k, v := range m {
		if k != SessionMetadataKey {
			out[k] = v
		}
	}
	return out
}

// handleOf is the stored, shareable form of a session id.
func handleOf(sessionID string) string {
	sum := sha256.Sum256([]byte(sessionID))
	return hex.EncodeToString(sum[:])
}

func validHandle(h string) bool {
	if len(h) != 2*sha256.Size {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil
}

// validSessionID reports whether id has the shape Create gives ids: 32
// bytes of unpadded base64url.
func validSessionID(id string) bool {
	if len(id) != 43 {
		return false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(id)
	return err == nil && len(b) == 32
}
