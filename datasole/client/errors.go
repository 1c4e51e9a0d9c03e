package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/datasole/datasole-go/datasole"
)

// Why a connection attempt failed. Dial (and the reconnect loop, in its
// logs) returns an error that matches one of these with errors.Is when the
// cause is known, and is a *DialError with the HTTP status either way.
var (
	// ErrUnauthorized: the server refused the credential, or none was sent
	// (HTTP 401). It matches datasole.ErrUnauthorized too.
	ErrUnauthorized = fmt.Errorf("datasole client: unauthorized: %w", datasole.ErrUnauthorized)
	// ErrForbiddenOrigin: the server refused the request's Origin header
	// (HTTP 403).
	ErrForbiddenOrigin = errors.New("datasole client: origin refused")
	// ErrNotFound: nothing serves datasole at the URL's path (HTTP 404).
	ErrNotFound = errors.New("datasole client: no datasole endpoint at this path")
	// ErrOverCapacity: the server is at a connection limit, starting or
	// shutting down (HTTP 503 or 429). Retrying later may succeed.
	ErrOverCapacity = errors.New("datasole client: server over capacity")
	// ErrUnreachable: no server answered (connection refused, unknown host,
	// no route, timeout).
	ErrUnreachable = errors.New("datasole client: server unreachable")
)

// connectError is a failed dial with its cause and the likely fix. It
// unwraps to both the *DialError and the cause's sentinel.
type connectError struct {
	dial  *DialError
	cause error
	fix   string
}

func (e *connectError) Error() string   { return e.dial.Error() + ": " + e.fix }
func (e *connectError) Unwrap() []error { return []error{e.dial, e.cause} }

// dialError describes a failed dial: resp is the server's answer to the
// upgrade request, nil when none came.
func dialError(resp *http.Response, err error) error {
	d := &DialError{Err: err}
	if resp == nil {
		if !unreachable(err) {
			return d
		}
		return &connectError{d, ErrUnreachable, "no server answered: check that it runs and the URL's host and port (" + err.Error() + ")"}
	}
	d.Status = resp.StatusCode
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return &connectError{d, ErrUnauthorized, "the server refused the credential or none was sent; set Options.Token (or the header the server's auth reads in Options.Header)"}
	case http.StatusForbidden:
		return &connectError{d, ErrForbiddenOrigin, "the server refused the Origin header; send none, or one in the server's Options.AllowedOrigins"}
	case http.StatusNotFound:
		return &connectError{d, ErrNotFound, "nothing serves datasole at this path; Options.Path must equal the server's Options.Path (default /__ds)"}
	case http.StatusServiceUnavailable:
		return &connectError{d, ErrOverCapacity, "the server is at its connection limit, not started or shutting down; retry later"}
	case http.StatusTooManyRequests:
		return &connectError{d, ErrOverCapacity, "too many connections for this user or address (the server's MaxConnectionsPerUser or MaxConnectionsPerIP)"}
	}
	return d
}

// unreachable reports whether err means no server answered, as opposed to a
// canceled dial or a failed TLS handshake.
func unreachable(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
