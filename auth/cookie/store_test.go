package dscookie

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/authtest"
	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/gorilla/websocket"
	"go.uber.org/goleak"
)

// noLeaks fails t if goroutines started during the test outlive it: it runs
// after every cleanup registered later (servers, stores, backends).
func noLeaks(t *testing.T) {
	t.Helper()
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
}

// node is one datasole server authenticating cookies against a Store on a
// shared backend, as each node of a cluster does.
type node struct {
	ds    *datasole.Server
	sess  *Session
	store *Store
	url   string
	conns chan *datasole.Conn
}

func newNode(t *testing.T, b backend.Backend) *node {
	t.Helper()
	store, err := NewStore(StoreOptions{Backend: b, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	sess := mustSession(t, Options{Keys: []Key{key(1, true)}, Insecure: true, Lookup: store.Lookup})
	ds, err := datasole.New(datasole.Options{Auth: sess.Authenticate, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Attach(context.Background(), ds); err != nil {
		t.Fatal(err)
	}
	n := &node{ds: ds, sess: sess, store: store, conns: make(chan *datasole.Conn, 8)}
	ds.OnConnect(func(c *datasole.Conn) { n.conns <- c })
	if err := ds.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(ds.Handler())
	n.url = "ws" + strings.TrimPrefix(hs.URL, "http") + "/__ds"
	t.Cleanup(func() {
		ds.Close(context.Background())
		hs.Close()
		store.Close()
	})
	return n
}

// login creates a session for p and returns its id and cookie header.
func (n *node) login(t *testing.T, p *datasole.Principal) (string, http.Header) {
	t.Helper()
	id, err := n.store.Create(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	name, value, err := n.sess.EncodeID(id)
	if err != nil {
		t.Fatal(err)
	}
	return id, http.Header{"Cookie": {name + "=" + value}}
}

// dial upgrades with the cookie; it returns the socket, or the refusal status.
func (n *node) dial(t *testing.T, hdr http.Header) (*websocket.Conn, int) {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.DialContext(t.Context(), n.url, hdr)
	if err != nil {
		if resp == nil {
			t.Fatalf("dial: %v", err)
		}
		return nil, resp.StatusCode
	}
	t.Cleanup(func() { ws.Close() })
	return ws, http.StatusSwitchingProtocols
}

// closeCode waits for the server to close ws and returns the close code.
func closeCode(t *testing.T, ws *websocket.Conn) int {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code
			}
			t.Fatalf("waiting for a close frame: %v", err)
		}
	}
}

func TestRevokedSessionIsRefusedAndItsConnectionClosed(t *testing.T) {
	noLeaks(t)
	b := backend.NewMemory(backend.MemoryOptions{Prefix: "revoke-test:"})
	t.Cleanup(func() { b.Close() })
	n := newNode(t, b)
	id, cookie := n.login(t, &datasole.Principal{UserID: "ann", Roles: []string{"member"}})
	_, otherCookie := n.login(t, &datasole.Principal{UserID: "ann", Roles: []string{"member"}}) // her other device

	ws, status := n.dial(t, cookie)
	if status != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade with a live session: %d", status)
	}
	<-n.conns
	other, _ := n.dial(t, otherCookie)
	otherConn := <-n.conns

	if err := n.store.Revoke(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	if code := closeCode(t, ws); code != datasole.CloseRevoked {
		t.Fatalf("live connection closed with %d, want %d", code, datasole.CloseRevoked)
	}
	if _, status := n.dial(t, cookie); status != http.StatusUnauthorized {
		t.Fatalf("upgrade with the revoked session: %d, want 401", status)
	}
	// The same user's other session is untouched.
	select {
	case <-otherConn.Context().Done():
		t.Fatal("revoking one session closed the user's other session")
	default:
	}
	if err := other.WriteMessage(websocket.BinaryMessage, []byte{0x07, 0, 0, 0, 1, 0, 0, 0, 0}); err != nil { // PING
		t.Fatalf("the other session's socket: %v", err)
	}
	other.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, msg, err := other.ReadMessage(); err != nil || len(msg) == 0 || msg[0] != 0x08 { // PONG
		t.Fatalf("the other session did not answer a ping: % x, %v", msg, err)
	}
}

func TestRevocationReachesOtherNodes(t *testing.T) {
	noLeaks(t)
	shared := backend.NewMemory(backend.MemoryOptions{Prefix: "revoke-nodes:"})
	peer := backend.NewMemory(backend.MemoryOptions{Prefix: "revoke-nodes:", Peer: shared})
	t.Cleanup(func() { shared.Close(); peer.Close() })
	a, b := newNode(t, shared), newNode(t, peer)
	id, cookie := a.login(t, &datasole.Principal{UserID: "ben"})
	ws, status := b.dial(t, cookie) // logged in through a, connected to b
	if status != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade on the other node: %d", status)
	}
	<-b.conns
	if err := a.store.Revoke(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	if code := closeCode(t, ws); code != datasole.CloseRevoked {
		t.Fatalf("connection on the other node closed with %d, want %d", code, datasole.CloseRevoked)
	}
	if _, status := b.dial(t, cookie); status != http.StatusUnauthorized {
		t.Fatalf("upgrade on the other node after revocation: %d, want 401", status)
	}
}

// A connection whose cookie passed Lookup just before a revocation reached
// this node, and that opens just after, is closed as it opens.
func TestRevocationDuringTheUpgradeClosesTheConnection(t *testing.T) {
	noLeaks(t)
	b := backend.NewMemory(backend.MemoryOptions{Prefix: "revoke-race:"})
	t.Cleanup(func() { b.Close() })
	store, err := NewStore(StoreOptions{Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	sess := mustSession(t, Options{Keys: []Key{key(1, false)}, Insecure: true, Lookup: store.Lookup})
	var id string
	ds, err := datasole.New(datasole.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Auth: func(r *http.Request) (*datasole.Principal, error) {
			p, err := sess.Authenticate(r)
			if err == nil {
				// The revocation message arrives between the lookup and
				// the open (handled as the bus handler does, and nothing
				// else: no message follows that could close it later).
				store.closeSession(handleOf(id))
			}
			return p, err
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Attach(t.Context(), ds); err != nil {
		t.Fatal(err)
	}
	if err := ds.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(ds.Handler())
	t.Cleanup(func() { ds.Close(context.Background()); hs.Close() })
	if id, err = store.Create(t.Context(), &datasole.Principal{UserID: "cy"}); err != nil {
		t.Fatal(err)
	}
	name, value, _ := sess.EncodeID(id)
	ws, _, err := websocket.DefaultDialer.DialContext(t.Context(), "ws"+strings.TrimPrefix(hs.URL, "http")+"/__ds",
		http.Header{"Cookie": {name + "=" + value}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if code := closeCode(t, ws); code != datasole.CloseRevoked {
		t.Fatalf("closed with %d, want %d", code, datasole.CloseRevoked)
	}
}

func TestStoreSessions(t *testing.T) {
	b := backend.NewMemory(backend.MemoryOptions{Prefix: "store-test:"})
	t.Cleanup(func() { b.Close() })
	store, err := NewStore(StoreOptions{Backend: b, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	sess := mustSession(t, Options{Keys: []Key{key(1, false)}, Lookup: store.Lookup})
	ctx := t.Context()
	id, err := store.Create(ctx, &datasole.Principal{UserID: "dee", Roles: []string{"viewer"}, Metadata: map[string]any{"plan": "free"}})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	if err := sess.IssueID(w, id); err != nil {
		t.Fatal(err)
	}
	c := w.Result().Cookies()[0]
	if strings.Contains(c.Value, "dee") {
		t.Fatal("the cookie carries the principal, not only the session id")
	}
	req := func() *http.Request { return withCookie(c.Name, c.Value) }

	t.Run("the principal comes from the store", func(t *testing.T) {
		p := authtest.OK(t, sess.Authenticate, req())
		if p.UserID != "dee" || !reflect.DeepEqual(p.Roles, []string{"viewer"}) || p.Metadata["plan"] != "free" || p.Metadata[SessionMetadataKey] != handleOf(id) {
			t.Fatalf("principal %+v", p)
		}
		if d := time.Until(p.ExpiresAt); d <= 0 || d > time.Hour {
			t.Fatalf("ExpiresAt %v is not the session's expiry", p.ExpiresAt)
		}
		if got, err := sess.SessionID(req()); err != nil || got != id {
			t.Fatalf("SessionID = %q, %v", got, err)
		}
	})
	t.Run("roles changed in the store apply to the next upgrade", func(t *testing.T) {
		cur, err := store.Lookup(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		cur.Roles = []string{"editor"}
		if err := store.Update(ctx, id, cur); err != nil {
			t.Fatal(err)
		}
		if p := authtest.OK(t, sess.Authenticate, req()); !reflect.DeepEqual(p.Roles, []string{"editor"}) {
			t.Fatalf("roles %v after Update", p.Roles)
		}
		raw, _, _ := b.Get(ctx, store.key(handleOf(id)))
		if strings.Contains(string(raw), SessionMetadataKey) || strings.Contains(string(raw), id) {
			t.Fatalf("stored session %s carries the handle entry or the id", raw)
		}
	})
	t.Run("a revoked session is refused and cannot be updated back", func(t *testing.T) {
		if err := store.Revoke(ctx, id); err != nil {
			t.Fatal(err)
		}
		authtest.Refused(t, sess.Authenticate, req())
		if err := store.Update(ctx, id, &datasole.Principal{UserID: "dee"}); !errors.Is(err, ErrSessionNotFound) {
			t.Fatalf("Update after Revoke: %v, want ErrSessionNotFound", err)
		}
	})
	t.Run("a cookie carrying a principal is refused when sessions are looked up", func(t *testing.T) {
		plain := mustSession(t, Options{Keys: []Key{key(1, false)}})
		name, value, _ := plain.Encode(&datasole.Principal{UserID: "dee"})
		authtest.Refused(t, sess.Authenticate, withCookie(name, value))
		_, idValue, _ := sess.EncodeID(id)
		authtest.Refused(t, plain.Authenticate, withCookie(name, idValue))
	})
	t.Run("a failing store answers 500, not 401", func(t *testing.T) {
		failing := mustSession(t, Options{Keys: []Key{key(1, false)}, Lookup: func(context.Context, string) (*datasole.Principal, error) {
			return nil, errors.New("store down")
		}})
		if status, _ := authtest.Send(t, authtest.Serve(t, failing.Authenticate), req()); status != http.StatusInternalServerError {
			t.Fatalf("status %d, want 500", status)
		}
	})
	t.Run("a session ends at the earlier of its own expiry and the cookie's", func(t *testing.T) {
		short := mustSession(t, Options{Keys: []Key{key(1, false)}, MaxAge: time.Minute, Lookup: store.Lookup})
		id2, _ := store.Create(ctx, &datasole.Principal{UserID: "eve"})
		name, value, _ := short.EncodeID(id2)
		p := authtest.OK(t, short.Authenticate, withCookie(name, value))
		if d := time.Until(p.ExpiresAt); d <= 0 || d > time.Minute+time.Second {
			t.Fatalf("ExpiresAt in %v, want the cookie's minute", d)
		}
	})
}

func TestCookieExpiresAtIsItsLastAcceptedSecond(t *testing.T) {
	k := key(1, false)
	s := mustSession(t, Options{Keys: []Key{k}, MaxAge: time.Hour})
	issuedAt := time.Now().Add(-10 * time.Minute).Unix()
	p := authtest.OK(t, s.Authenticate, withCookie(DefaultName, forge(DefaultName, k.Hash, issuedAt, payload{UserID: "u1"})))
	if want := time.Unix(issuedAt+3600+1, 0); !p.ExpiresAt.Equal(want) {
		t.Fatalf("ExpiresAt %v, want %v (signed timestamp + MaxAge, first refused second)", p.ExpiresAt, want)
	}
	// One second older and the same cookie is past that instant: refused.
	authtest.Refused(t, s.Authenticate, withCookie(DefaultName, forge(DefaultName, k.Hash, time.Now().Unix()-3601, payload{UserID: "u1"})))
}

// FuzzCookieTimestamp reads arbitrary values as securecookie values: it never
// panics and only reports positive timestamps.
func FuzzCookieTimestamp(f *testing.F) {
	f.Add(forge(DefaultName, key(1, false).Hash, 1700000000, payload{UserID: "u"}))
	f.Add("MTcwMDAwMDAwMHx8")
	f.Add("LTF8eHx4")
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		if ts, ok := cookieTimestamp(v); ok && ts <= 0 {
			t.Fatalf("timestamp %d from %q", ts, v)
		}
	})
}

// FuzzStoreLookup looks up arbitrary session ids: nothing but the one created
// is ever found, and a wrong id is always ErrSessionNotFound.
func FuzzStoreLookup(f *testing.F) {
	b := backend.NewMemory(backend.MemoryOptions{})
	f.Cleanup(func() { b.Close() })
	store, err := NewStore(StoreOptions{Backend: b})
	if err != nil {
		f.Fatal(err)
	}
	id, err := store.Create(context.Background(), &datasole.Principal{UserID: "u"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(id[:42])
	f.Add(id + "A")
	f.Add(strings.Repeat("A", 43))
	f.Add(strings.Repeat("=", 43))
	f.Fuzz(func(t *testing.T, s string) {
		if s == id {
			return
		}
		if p, err := store.Lookup(context.Background(), s); !errors.Is(err, ErrSessionNotFound) {
			t.Fatalf("Lookup(%q) = %+v, %v", s, p, err)
		}
	})
}
