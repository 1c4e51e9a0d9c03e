package datasole

import (
	"errors"
	"fmt"

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
)

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
