package backend_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/datasole/datasole-go/datasole/backend"
)

func TestOpen(t *testing.T) {
	ctx := context.Background()
	t.Run("the empty URL and memory URLs give the memory backend", func(t *testing.T) {
		for _, u := range []string{"", "memory://", "memory:", "MEMORY://", "memory://?prefix=app:"} {
			b, err := backend.Open(ctx, u)
			if err != nil {
				t.Fatalf("Open(%q): %v", u, err)
			}
			if _, ok := b.(*backend.Memory); !ok {
				t.Errorf("Open(%q) = %T, want *backend.Memory", u, b)
			}
			_ = b.Close()
		}
	})
	t.Run("the prefix parameter sets the namespace", func(t *testing.T) {
		var gotPrefix, gotQuery string
		backend.Register("probe", func(_ context.Context, u *url.URL, prefix string) (backend.Backend, error) {
			gotPrefix, gotQuery = prefix, u.RawQuery
			return backend.NewMemory(backend.MemoryOptions{Prefix: prefix}), nil
		})
		b, err := backend.Open(ctx, "probe://host/db?prefix=chat%3A&pool=3")
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if gotPrefix != "chat:" || gotQuery != "pool=3" {
			t.Fatalf("opener got prefix %q and query %q, want %q and %q", gotPrefix, gotQuery, "chat:", "pool=3")
		}
	})
	t.Run("an unregistered scheme names the registered ones", func(t *testing.T) {
		_, err := backend.Open(ctx, "nosuch://x")
		if !errors.Is(err, backend.ErrUnknownScheme) || !strings.Contains(err.Error(), "memory") {
			t.Fatalf("error = %v, want ErrUnknownScheme listing memory", err)
		}
	})
	t.Run("opener errors are wrapped without the password", func(t *testing.T) {
		cause := errors.New("refused")
		backend.Register("failing", func(context.Context, *url.URL, string) (backend.Backend, error) {
			return nil, cause
		})
		_, err := backend.Open(ctx, "failing://user:secret@host")
		if !errors.Is(err, cause) || strings.Contains(err.Error(), "secret") {
			t.Fatalf("error = %v, want it to wrap the cause and hide the password", err)
		}
	})
	t.Run("the memory backend takes no host or options", func(t *testing.T) {
		for _, u := range []string{"memory://host", "memory:///path", "memory://?size=3"} {
			if _, err := backend.Open(ctx, u); err == nil {
				t.Errorf("Open(%q) succeeded, want an error", u)
			}
		}
	})
	t.Run("a malformed URL is an error", func(t *testing.T) {
		if _, err := backend.Open(ctx, "redis://%zz"); err == nil {
			t.Fatal("Open succeeded, want an error")
		}
	})
}

func TestFromEnv(t *testing.T) {
	t.Run("an unset variable gives the memory backend", func(t *testing.T) {
		t.Setenv(backend.EnvVar, "")
		b, err := backend.FromEnv(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if _, ok := b.(*backend.Memory); !ok {
			t.Fatalf("FromEnv = %T, want *backend.Memory", b)
		}
	})
	t.Run("the variable is opened as a URL", func(t *testing.T) {
		t.Setenv(backend.EnvVar, "nosuch://x")
		if _, err := backend.FromEnv(context.Background()); !errors.Is(err, backend.ErrUnknownScheme) {
			t.Fatalf("error = %v, want ErrUnknownScheme", err)
		}
	})
}
