package auth_test

import (
	"context"
	"crypto/x509/pkix"
	"net/http"
	"testing"
	"time"

	dscookie "github.com/datasole/datasole-go/auth/cookie"
	dsjwt "github.com/datasole/datasole-go/auth/jwt"
	dsmtls "github.com/datasole/datasole-go/auth/mtls"
	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/golang-jwt/jwt/v5"
)

// expiresSoon connects with a credential that expires within seconds, checks
// the connection is served, then waits for the server to close it: with
// CloseSessionExpired, and not before the credential's expiry.
func expiresSoon(t *testing.T, n *node, expiry time.Time, protocols []string, hdr http.Header) {
	t.Helper()
	ws, _ := n.mustUpgrade(t, protocols, hdr, nil)
	alive(t, ws)
	code := closeCode(t, ws)
	if code != datasole.CloseSessionExpired {
		t.Fatalf("closed with %d, want %d (session expired)", code, datasole.CloseSessionExpired)
	}
	if now := time.Now(); now.Before(expiry) {
		t.Fatalf("closed at %v, before the credential expired at %v", now, expiry)
	}
}

// A credential that expires ends its connection with close code 4001, for
// every ready-made handler: the connection never outlives its token, cookie,
// session or certificate. Lifetimes are one to two seconds of real time; the
// test waits on the close itself.
func TestExpiredCredentialClosesTheConnection(t *testing.T) {
	t.Run("dsjwt: a token past its exp", func(t *testing.T) {
		t.Parallel()
		key := []byte("0123456789abcdef0123456789abcdef-expiry")
		auth, err := dsjwt.New(dsjwt.Options{Algorithms: []string{"HS256"}, Key: key, Leeway: -1})
		if err != nil {
			t.Fatal(err)
		}
		exp := time.Now().Add(2 * time.Second).Truncate(time.Second)
		tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "jay", "exp": exp.Unix()}).SignedString(key)
		expiresSoon(t, serve(t, datasole.Options{Auth: auth}, nil, nil), exp, tokenProtocols(tok), nil)
	})

	t.Run("dscookie: a cookie past its MaxAge", func(t *testing.T) {
		t.Parallel()
		sess, err := dscookie.NewSession(dscookie.Options{Keys: []dscookie.Key{{Hash: []byte("0123456789abcdef0123456789abcdef")}}, Insecure: true, MaxAge: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		issued := time.Now().Truncate(time.Second)
		name, value, _ := sess.Encode(&datasole.Principal{UserID: "kim"})
		expiresSoon(t, serve(t, datasole.Options{Auth: sess.Authenticate}, nil, nil), issued.Add(2*time.Second),
			nil, http.Header{"Cookie": {name + "=" + value}})
	})

	t.Run("dscookie with a Store: a session past its TTL", func(t *testing.T) {
		t.Parallel()
		b := backend.NewMemory(backend.MemoryOptions{})
		t.Cleanup(func() { b.Close() })
		store, err := dscookie.NewStore(dscookie.StoreOptions{Backend: b, TTL: 1500 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		sess, err := dscookie.NewSession(dscookie.Options{Keys: []dscookie.Key{{Hash: []byte("0123456789abcdef0123456789abcdef")}},
			Insecure: true, MaxAge: time.Hour, Lookup: store.Lookup})
		if err != nil {
			t.Fatal(err)
		}
		n := serve(t, datasole.Options{Auth: sess.Authenticate}, func(ds *datasole.Server) {
			if err := store.Attach(context.Background(), ds); err != nil {
				t.Fatal(err)
			}
		}, nil)
		created := time.Now()
		id, err := store.Create(t.Context(), &datasole.Principal{UserID: "lou"})
		if err != nil {
			t.Fatal(err)
		}
		name, value, _ := sess.EncodeID(id)
		expiresSoon(t, n, created.Add(1500*time.Millisecond), nil, http.Header{"Cookie": {name + "=" + value}})
	})

	t.Run("Tickets: the principal's own expiry carries over", func(t *testing.T) {
		t.Parallel()
		tickets, err := datasole.NewTickets(datasole.TicketOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n := serve(t, datasole.Options{Auth: tickets.Authenticate}, nil, nil)
		exp := time.Now().Add(1500 * time.Millisecond)
		ticket, err := tickets.Issue(t.Context(), &datasole.Principal{UserID: "max", ExpiresAt: exp})
		if err != nil {
			t.Fatal(err)
		}
		expiresSoon(t, n, exp, tokenProtocols(ticket), nil)
	})

	t.Run("dsmtls: a client certificate past its NotAfter", func(t *testing.T) {
		t.Parallel()
		ca := newCA(t)
		auth, err := dsmtls.New(dsmtls.Options{})
		if err != nil {
			t.Fatal(err)
		}
		n := serve(t, datasole.Options{Auth: auth}, nil, ca.serverTLS())
		notAfter := time.Now().Add(2 * time.Second).Truncate(time.Second)
		cert := ca.issue(t, pkix.Name{CommonName: "nia"}, nil, notAfter)
		ws, user := n.mustUpgrade(t, nil, nil, &cert)
		if user != "nia" {
			t.Fatalf("connected as %q", user)
		}
		alive(t, ws)
		if code := closeCode(t, ws); code != datasole.CloseSessionExpired {
			t.Fatalf("closed with %d, want %d", code, datasole.CloseSessionExpired)
		}
		if time.Now().Before(notAfter) {
			t.Fatal("closed before the certificate expired")
		}
	})
}
