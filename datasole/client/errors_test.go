package client_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/client"
)

// server runs a started datasole server on loopback; its handler is mounted at
// /__ds only, as an app would mount it.
func server(t *testing.T, o datasole.Options) *httptest.Server {
	t.Helper()
	o.Logger = slog.New(slog.DiscardHandler)
	if o.Auth == nil {
		o.Auth = datasole.Anonymous
	}
	ds, err := datasole.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := ds.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/__ds", ds.Handler())
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ds.Close(ctx)
		hs.Close()
	})
	return hs
}

func tryDial(t *testing.T, url string, o client.Options) error {
	t.Helper()
	o.NoReconnect = true
	o.Logger = slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, url, o)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return err
}

var sentinels = map[string]error{
	"ErrUnauthorized":    client.ErrUnauthorized,
	"ErrForbiddenOrigin": client.ErrForbiddenOrigin,
	"ErrNotFound":        client.ErrNotFound,
	"ErrOverCapacity":    client.ErrOverCapacity,
	"ErrUnreachable":     client.ErrUnreachable,
}

func TestDialErrorsNameTheCauseAndTheFix(t *testing.T) {
	tokenAuth := func(r *http.Request) (*datasole.Principal, error) {
		if r.URL.Query().Get("token") != "good" {
			return nil, datasole.ErrUnauthorized
		}
		return &datasole.Principal{UserID: "ann"}, nil
	}
	stopped := httptest.NewServer(http.NotFoundHandler())
	stoppedURL := stopped.URL
	stopped.Close()

	for _, tc := range []struct {
		name   string
		url    func(t *testing.T) string
		opts   client.Options
		want   string // the sentinel's name
		status int
		fix    string // a piece of the message
	}{
		{"no token", func(t *testing.T) string { return server(t, datasole.Options{Auth: tokenAuth}).URL }, client.Options{},
			"ErrUnauthorized", 401, "Options.Token"},
		{"a wrong token", func(t *testing.T) string { return server(t, datasole.Options{Auth: tokenAuth}).URL }, client.Options{Token: "bad"},
			"ErrUnauthorized", 401, "Options.Token"},
		{"a foreign origin", func(t *testing.T) string { return server(t, datasole.Options{}).URL },
			client.Options{Header: http.Header{"Origin": {"https://evil.example"}}}, "ErrForbiddenOrigin", 403, "AllowedOrigins"},
		{"a wrong path", func(t *testing.T) string { return server(t, datasole.Options{}).URL }, client.Options{Path: "/ws"},
			"ErrNotFound", 404, "Options.Path"},
		{"a full server", func(t *testing.T) string {
			hs := server(t, datasole.Options{MaxConnections: 1})
			if err := tryDial(t, hs.URL, client.Options{}); err != nil {
				t.Fatal(err)
			}
			return hs.URL
		}, client.Options{}, "ErrOverCapacity", 503, "connection limit"},
		{"a per-address cap", func(t *testing.T) string {
			hs := server(t, datasole.Options{MaxConnectionsPerIP: 1})
			if err := tryDial(t, hs.URL, client.Options{}); err != nil {
				t.Fatal(err)
			}
			return hs.URL
		}, client.Options{}, "ErrOverCapacity", 429, "MaxConnectionsPerIP"},
		{"a stopped server", func(*testing.T) string { return stoppedURL }, client.Options{}, "ErrUnreachable", 0, "no server answered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tryDial(t, tc.url(t), tc.opts)
			if err == nil {
				t.Fatal("dial succeeded")
			}
			for name, s := range sentinels {
				if got := errors.Is(err, s); got != (name == tc.want) {
					t.Errorf("errors.Is(err, %s) = %v (err: %v)", name, got, err)
				}
			}
			var de *client.DialError
			if !errors.As(err, &de) || de.Status != tc.status {
				t.Errorf("DialError status: %+v, want %d", de, tc.status)
			}
			if !strings.Contains(err.Error(), tc.fix) {
				t.Errorf("message %q does not mention %q", err, tc.fix)
			}
		})
	}
}

func TestAnUnauthorizedDialMatchesTheCoreSentinel(t *testing.T) {
	hs := server(t, datasole.Options{Auth: func(*http.Request) (*datasole.Principal, error) { return nil, datasole.ErrUnauthorized }})
	if err := tryDial(t, hs.URL, client.Options{}); !errors.Is(err, datasole.ErrUnauthorized) {
		t.Errorf("err = %v, want one matching datasole.ErrUnauthorized", err)
	}
}

func TestACanceledDialIsNotUnreachable(t *testing.T) {
	hs := server(t, datasole.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := client.Dial(ctx, hs.URL, client.Options{NoReconnect: true, Logger: slog.New(slog.DiscardHandler)})
	if !errors.Is(err, context.Canceled) || errors.Is(err, client.ErrUnreachable) {
		t.Errorf("err = %v, want context.Canceled and not ErrUnreachable", err)
	}
}
