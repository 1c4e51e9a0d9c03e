package dscookie_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	dscookie "github.com/datasole/datasole-go/auth/cookie"
	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/gorilla/securecookie"
)

// A login handler issues the cookie; the datasole server authenticates the
// WebSocket upgrade with the same Session, to which the browser sends the
// cookie by itself. Keep the server's Origin check on.
func ExampleSession() {
	sess, err := dscookie.NewSession(dscookie.Options{
		Keys: []dscookie.Key{{
			Hash:  securecookie.GenerateRandomKey(32), // load both from a secret store
			Block: securecookie.GenerateRandomKey(32),
		}},
	})
	if err != nil {
		panic(err)
	}

	login := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// … check the password, then:
		if err := sess.Issue(w, &datasole.Principal{UserID: "user-42", Roles: []string{"editor"}}); err != nil {
			http.Error(w, "login failed", http.StatusInternalServerError)
		}
	})
	rec := httptest.NewRecorder()
	login.ServeHTTP(rec, httptest.NewRequest("POST", "/login", nil))

	upgrade := httptest.NewRequest("GET", "/__ds", nil)
	for _, c := range rec.Result().Cookies() {
		upgrade.AddCookie(c)
	}
	p, err := sess.Authenticate(upgrade)
	fmt.Println(p.UserID, p.Roles, err)
	// Output: user-42 [editor] <nil>
}

// Rotating keys: the new key goes first, the previous one stays until the
// cookies it signed have expired.
func ExampleNew() {
	newKey, oldKey := securecookie.GenerateRandomKey(32), securecookie.GenerateRandomKey(32)
	auth, err := dscookie.New(dscookie.Options{
		Keys: []dscookie.Key{{Hash: newKey}, {Hash: oldKey}},
		Name: "__Host-datasole",
	})
	if err != nil {
		panic(err)
	}
	_, err = auth(httptest.NewRequest("GET", "/__ds", nil))
	fmt.Println(err)
	// Output: datasole: no credentials
}

// Sessions kept in the backend: the cookie carries only a session id, the
// principal is read on every upgrade, and Revoke ends the session at once.
func ExampleStore() {
	ctx := context.Background()
	b := backend.NewMemory(backend.MemoryOptions{}) // Redis or Postgres with several nodes
	defer b.Close()
	store, err := dscookie.NewStore(dscookie.StoreOptions{Backend: b, TTL: 12 * time.Hour})
	if err != nil {
		panic(err)
	}
	defer store.Close()
	sess, err := dscookie.NewSession(dscookie.Options{
		Keys:   []dscookie.Key{{Hash: securecookie.GenerateRandomKey(32)}},
		MaxAge: 12 * time.Hour,
		Lookup: store.Lookup,
	})
	if err != nil {
		panic(err)
	}
	ds, err := datasole.New(datasole.Options{Backend: b, Auth: sess.Authenticate})
	if err != nil {
		panic(err)
	}
	defer ds.Close(ctx)
	if err := store.Attach(ctx, ds); err != nil { // Revoke closes ds's connections of the session
		panic(err)
	}

	// Login: store the principal, set the cookie.
	id, _ := store.Create(ctx, &datasole.Principal{UserID: "user-42", Roles: []string{"editor"}})
	rec := httptest.NewRecorder()
	sess.IssueID(rec, id)
	upgrade := httptest.NewRequest("GET", "/__ds", nil)
	upgrade.AddCookie(rec.Result().Cookies()[0])

	p, err := sess.Authenticate(upgrade)
	fmt.Println(p.UserID, p.Roles, err)

	// Logout, or an administrator ending the session.
	store.Revoke(ctx, id)
	_, err = sess.Authenticate(upgrade)
	fmt.Println(errors.Is(err, datasole.ErrUnauthorized))
	// Output:
	// user-42 [editor] <nil>
	// true
}
