package backend

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
)

// EnvVar names the environment variable FromEnv reads.
const EnvVar = "DATASOLE_BACKEND"

// ErrUnknownScheme is returned by Open for a URL whose scheme no driver has
// registered; importing the driver package registers it.
var ErrUnknownScheme = errors.New("backend: unknown URL scheme")

// Opener opens a backend for a URL. Open has already removed the prefix
// query parameter from u and passes its value as prefix ("" when absent).
type Opener func(ctx context.Context, u *url.URL, prefix string) (Backend, error)

var (
	driversMu sync.RWMutex
	drivers   = map[string]Opener{"memory": openMemory}
)

// Register makes a backend available to Open under a URL scheme, the way
// database/sql drivers register themselves. Driver packages call it from
// init; importing them for effect is enough:
//
//	import _ "github.com/datasole/datasole-go/datasole/backend/redis"
//
// Registering a scheme twice replaces the earlier opener.
func Register(scheme string, open Opener) {
	driversMu.Lock()
	drivers[strings.ToLower(scheme)] = open
	driversMu.Unlock()
}

// Open returns the backend a URL describes. The empty URL and the scheme
// "memory" give the in-process backend; "redis", "rediss", "postgres" and
// "postgresql" need the matching driver package to be imported. The optional
// query parameter prefix sets the namespace, for example
//
//	redis://localhost:6379/0?prefix=chat:
//	postgres://app@db/app?sslmode=disable&prefix=chat:
//	memory://?prefix=chat:
func Open(ctx context.Context, rawURL string) (Backend, error) {
	if rawURL == "" {
		return NewMemory(MemoryOptions{}), nil
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("backend: parse URL: %w", err)
	}
	q := u.Query()
	prefix := q.Get("prefix")
	q.Del("prefix")
	u.RawQuery = q.Encode()

	driversMu.RLock()
	open := drivers[strings.ToLower(u.Scheme)]
	driversMu.RUnlock()
	if open == nil {
		return nil, fmt.Errorf("%w %q (registered: %s)", ErrUnknownScheme, u.Scheme, strings.Join(schemes(), ", "))
	}
	b, err := open(ctx, u, prefix)
	if err != nil {
		return nil, fmt.Errorf("backend: open %s: %w", u.Redacted(), err)
	}
	return b, nil
}

// FromEnv opens the backend named by the DATASOLE_BACKEND environment
// variable, or the in-process backend when it is unset or empty.
func FromEnv(ctx context.Context) (Backend, error) {
	return Open(ctx, os.Getenv(EnvVar))
}

func schemes() []string {
	driversMu.RLock()
	defer driversMu.RUnlock()
	s := make([]string, 0, len(drivers))
	for k := range drivers {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}

func openMemory(_ context.Context, u *url.URL, prefix string) (Backend, error) {
	if u.Host != "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, fmt.Errorf("memory backend takes no host, path or options other than prefix")
	}
	return NewMemory(MemoryOptions{Prefix: prefix}), nil
}
