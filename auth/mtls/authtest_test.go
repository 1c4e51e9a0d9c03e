package dsmtls

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/datasole/datasole-go/datasole"
)

// serve runs h behind a real HTTP server on loopback. The server answers as
// datasole does on an upgrade: 401 for ErrUnauthorized, 500 for any other
// error, otherwise 200 with the principal as JSON.
func serve(t *testing.T, h datasole.AuthHandler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(authEndpoint(h))
	t.Cleanup(srv.Close)
	return srv
}

func authEndpoint(h datasole.AuthHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := h(r)
		switch {
		case errors.Is(err, datasole.ErrUnauthorized):
			http.Error(w, "unauthorized", http.StatusUnauthorized)
		case err != nil:
			http.Error(w, "internal error", http.StatusInternalServerError)
		default:
			_ = json.NewEncoder(w).Encode(p)
		}
	})
}

// send makes r to srv (keeping r's path, query, headers and cookies) and
// returns the status and, on 200, the principal.
func send(t *testing.T, srv *httptest.Server, r *http.Request) (int, *datasole.Principal) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+r.URL.RequestURI(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = r.Header.Clone()
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil
	}
	var p datasole.Principal
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		t.Fatalf("decoding principal: %v", err)
	}
	return resp.StatusCode, &p
}

// authOK asserts that h admits r when served over loopback and returns the
// principal as the server saw it.
func authOK(t *testing.T, h datasole.AuthHandler, r *http.Request) *datasole.Principal {
	t.Helper()
	status, p := send(t, serve(t, h), r)
	if status != http.StatusOK {
		t.Fatalf("status = %d, want 200", status)
	}
	return p
}

// authRefused asserts that h refuses r with an error wrapping ErrUnauthorized
// that is not ErrNoCredentials, and that the server answers 401.
func authRefused(t *testing.T, h datasole.AuthHandler, r *http.Request) {
	t.Helper()
	p, err := h(r)
	if !errors.Is(err, datasole.ErrUnauthorized) || errors.Is(err, datasole.ErrNoCredentials) {
		t.Fatalf("h(r) = %+v, %v; want an error wrapping ErrUnauthorized but not ErrNoCredentials", p, err)
	}
	if status, _ := send(t, serve(t, h), r); status != http.StatusUnauthorized {
		t.Fatalf("status = %d, want 401", status)
	}
}
