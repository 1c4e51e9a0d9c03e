package datasole

import (
	"errors"
	"fmt"
	"strings"

	"github.com/datasole/datasole-go/datasole/protocol"
)

// Sentinel errors.
var (
	// ErrClosed is returned when the server or connection is closed.
	ErrClosed = errors.New("datasole: closed")
	// ErrRateLimited is returned when a frame was refused by the rate limiter.
	ErrRateLimited = errors.New("datasole: rate limited")
	// ErrForbiddenKey is returned for state keys or members that would produce
	// the path segments __proto__, constructor or prototype.
	ErrForbiddenKey = errors.New("datasole: forbidden key")

	// ErrInvalidRegistration is matched by every error of HandleRPC, On and
	// the typed Handle methods: a nil handler, an empty, reserved or too
	// long name, or a second handler for one RPC method.
	ErrInvalidRegistration = errors.New("datasole: invalid registration")
)

// ErrBackend is matched by every *BackendError.
var ErrBackend = errors.New("datasole: backend unavailable")

// BackendError is a failed backend operation behind a server call: a state
// update whose store write failed, say. An RPC handler that returns it (or
// wraps it) answers the caller with the retryable code -32010
// (protocol.CodeUnavailable) instead of -32000, so clients can tell "try
// again" from "your request is wrong".
type BackendError struct {
	Op  string // "cas", "get", "delete", …
	Key string // the state key, when there is one
	Err error
}

func (e *BackendError) Error() string {
	if e.Key != "" {
		return fmt.Sprintf("datasole: backend %s of %q failed: %v", e.Op, e.Key, e.Err)
	}
	return fmt.Sprintf("datasole: backend %s failed: %v", e.Op, e.Err)
}

func (e *BackendError) Unwrap() error { return e.Err }

// Is makes a BackendError match ErrBackend.
func (e *BackendError) Is(target error) bool { return target == ErrBackend }

// reservedPrefix starts the names of the protocol's own extension methods.
const reservedPrefix = "$ds."

// register validates the registration of a handler for name and records a
// failure so that Start returns it too: a node with a broken registration
// fails at start even when the caller ignored the error.
func (s *Server) register(kind, name string, nilHandler bool) error {
	var problem string
	switch {
	case nilHandler:
		problem = "the handler is nil"
	case name == "":
		problem = "the name is empty"
	case strings.HasPrefix(name, reservedPrefix):
		problem = "names starting with " + reservedPrefix + " are reserved for protocol extensions"
	case utf16Len(name) > s.opts.MaxEventNameLength:
		problem = fmt.Sprintf("the name is longer than %d UTF-16 code units (Options.MaxEventNameLength)", s.opts.MaxEventNameLength)
	default:
		return nil
	}
	return s.registrationFailed(fmt.Errorf("%w: %s %q: %s", ErrInvalidRegistration, kind, name, problem))
}

func (s *Server) registrationFailed(err error) error {
	s.startMu.Lock()
	s.regErrs = append(s.regErrs, err)
	s.startMu.Unlock()
	return err
}

// registrationErrors returns the recorded registration failures; startMu is
// held.
func (s *Server) registrationErrors() error { return errors.Join(s.regErrs...) }

// Error is an application error an RPC handler returns to the caller as is:
// its code, message and data reach the client. Any other error returned by a
// handler is logged and answered with code -32000 "Internal error".
type Error struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    any    `json:"data,omitempty"`
}

// Errorf returns an *Error with code -32000 and a formatted message.
func Errorf(format string, args ...any) *Error {
	return &Error{Code: protocol.CodeInternal, Message: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string { return fmt.Sprintf("datasole: rpc error %d: %s", e.Code, e.Message) }
