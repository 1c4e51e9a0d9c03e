// Package authtest checks auth handlers the way a datasole server runs them:
// behind a real HTTP server on loopback, with the server's own mapping of
// outcomes to statuses (401 for ErrUnauthorized, 500 for other errors, 408
// past the auth timeout). The ready-made handlers use it, and so can yours.
package authtest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/datasole/datasole-go/datasole"
)

// Endpoint answers a request as datasole answers an upgrade request: the
// status the server would refuse it with, or 200 with the principal as JSON.
// The server behind it is closed when the test ends.
func Endpoint(t testing.TB, h datasole.AuthHandler) http.Handler {
	t.Helper()
	ds, err := datasole.New(datasole.Options{Auth: h, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		HeartbeatInterval: -1, Session: datasole.SessionOptions{Disabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ds.Close(context.Background()) })
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := ds.Authenticate(r)
		var re *datasole.RejectError
		switch {
		case errors.As(err, &re):
			http.Error(w, http.StatusText(re.Status), re.Status)
		case err != nil:
			http.Error(w, "internal error", http.StatusInternalServerError)
		default:
			json.NewEncoder(w).Encode(p)
		}
	})
}

// Serve runs Endpoint(h) on loopback until the test ends.
func Serve(t testing.TB, h datasole.AuthHandler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(Endpoint(t, h))
	t.Cleanup(srv.Close)
	return srv
}

// Send makes r to srv (keeping r's path, query, headers and cookies) and
// returns the status and, on 200, the principal.
func Send(t testing.TB, srv *httptest.Server, r *http.Request) (int, *datasole.Principal) {
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

// OK asserts that h admits r when served over loopback and returns the
// principal as the server saw it.
func OK(t testing.TB, h datasole.AuthHandler, r *http.Request) *datasole.Principal {
	t.Helper()
	status, p := Send(t, Serve(t, h), r)
	if status != http.StatusOK {
		t.Fatalf("status = %d, want 200", status)
	}
	return p
}

// Refused asserts that h refuses r with an error wrapping ErrUnauthorized
// that is not ErrNoCredentials, and that the server answers 401.
func Refused(t testing.TB, h datasole.AuthHandler, r *http.Request) {
	t.Helper()
	p, err := h(r)
	if !errors.Is(err, datasole.ErrUnauthorized) || errors.Is(err, datasole.ErrNoCredentials) {
		t.Fatalf("h(r) = %+v, %v; want an error wrapping ErrUnauthorized but not ErrNoCredentials", p, err)
	}
	if status, _ := Send(t, Serve(t, h), r); status != http.StatusUnauthorized {
		t.Fatalf("status = %d, want 401", status)
	}
}
