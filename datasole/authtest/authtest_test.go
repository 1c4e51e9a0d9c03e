package authtest_test

import (
	"errors"
	"net/http"
	"testing"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/authtest"
)

func TestOKAndRefused(t *testing.T) {
	h := func(r *http.Request) (*datasole.Principal, error) {
		if r.URL.Query().Get("token") == "good" {
			return &datasole.Principal{UserID: "u", Roles: []string{"r"}}, nil
		}
		return nil, errors.Join(datasole.ErrUnauthorized, errors.New("bad token"))
	}
	r, _ := http.NewRequest("GET", "/__ds?token=good", nil)
	if p := authtest.OK(t, h, r); p.UserID != "u" || p.Roles[0] != "r" {
		t.Fatalf("principal %+v", p)
	}
	r, _ = http.NewRequest("GET", "/__ds?token=bad", nil)
	authtest.Refused(t, h, r)
	failing := func(*http.Request) (*datasole.Principal, error) { return nil, errors.New("ldap down") }
	if status, _ := authtest.Send(t, authtest.Serve(t, failing), r); status != http.StatusInternalServerError {
		t.Fatalf("a failing handler gave %d, want 500", status)
	}
}
