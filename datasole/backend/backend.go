// Package backend defines the store and message bus that datasole nodes share.
//
// A Backend is two things at once: a key/value store whose entries carry a
// version that grows by one per write (so any node can serve a snapshot and
// detect gaps), and a publish/subscribe bus on which nodes exchange already
// encoded frames. The memory backend in this package is the embedded default
// for a single process; the redis and postgres modules implement the same
// contract for many nodes, and the backendtest package checks that they do.
//
// Keys and channels are namespaced by a prefix (DefaultPrefix unless
// configured) so that several applications can share one Redis server or one
// Postgres database without seeing each other's data.
//
// # Bus semantics
//
//   - Messages published on a channel reach every subscription of that
//     channel in the same namespace, on every node, in publish order.
//   - A publisher receives its own messages; callers that must not apply their
//     own messages twice filter them, for example by an origin id.
//   - Each subscription has one goroutine that calls its handler, and a
//     queue bounded in bytes in front of it (DefaultSubscriberQueueBytes
//     unless configured), so a slow handler never blocks Publish. When the
//     queue is full, messages for that subscription are dropped and the
//     backend reports a gap (see GapNotifier).
//   - A handler owns the slice it is given.
//   - The bus is not durable: a node that is disconnected from the store
//     misses what was published meanwhile. Backends that can lose messages
//     this way implement GapNotifier, so that the caller can resynchronize
//     from the versioned state in the store.
//
// # Optional interfaces
//
// Beyond Backend, a backend may implement BatchGetter (several keys in one
// round trip), History (bounded event streams with recovery positions),
// Presence (who is connected, across nodes) and GapNotifier. The memory,
// Redis and Postgres backends implement all of them; Compose combines a
// store from one backend with the bus of another.
//
// # Failures
//
// Errors that mean the backend's server cannot be reached or cannot serve
// right now (connection refused or lost, timeouts, a server loading its data
// or failing over) match ErrUnavailable, so callers can retry them.
package backend

import (
	"context"
	"errors"
	"time"
)

// DefaultPrefix namespaces keys and channels when no prefix is configured.
const DefaultPrefix = "ds:"

// Sentinel errors returned by every Backend; test for them with errors.Is.
var (
	// ErrNotFound is returned by Get for a key that does not exist or has expired.
	ErrNotFound = errors.New("backend: key not found")
	// ErrConflict is returned by CompareAndSet when the key's version is not
	// the expected one.
	ErrConflict = errors.New("backend: version conflict")
	// ErrNotCounter is returned by Incr when the key holds something other than
	// a decimal 64-bit integer, or when the increment would overflow it.
	ErrNotCounter = errors.New("backend: value is not a 64-bit integer counter")
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("backend: closed")
	// ErrUnavailable is matched by errors that mean the backend's server
	// could not be reached or could not serve the call right now: a refused
	// or broken connection, a network timeout (the call's deadline passing
	// while the server does not answer included), a server that is
	// starting, loading its data or failing over. The condition is expected
	// to pass,
	// so the call may be retried. When the connection broke after the
	// request was sent, the operation may or may not have been applied:
	// retrying a Publish can deliver a message twice, retrying Set or Incr
	// can apply it twice; a retried CompareAndSet reports ErrConflict if the
	// first attempt had succeeded.
	ErrUnavailable = errors.New("backend: unavailable")
)

// Unavailable wraps err so that it matches both ErrUnavailable and err with
// errors.Is. Backend implementations use it to classify their client
// library's connection errors; it returns nil for a nil err.
func Unavailable(err error) error {
	if err == nil {
		return nil
	}
	return unavailableError{err}
}

type unavailableError struct{ err error }

func (e unavailableError) Error() string   { return "backend unavailable: " + e.err.Error() }
func (e unavailableError) Unwrap() []error { return []error{ErrUnavailable, e.err} }

// Backend is the store and bus shared by the nodes of one application. All
// methods are safe for concurrent use. Values passed in are copied, and
// values returned belong to the caller.
//
// Versions start at 1 when a key is created and grow by one with every write
// (Set, CompareAndSet, Incr). A key that is deleted or expires starts again
// at version 1 when it is written next.
type Backend interface {
	// Get returns the value and version of key, or ErrNotFound.
	Get(ctx context.Context, key string) (value []byte, version uint64, err error)
	// Set stores value under key and returns its new version. A ttl above
	// zero makes the key expire after ttl; zero removes any expiry.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) (version uint64, err error)
	// CompareAndSet stores value only if key is at version expect, where
	// expect 0 means the key must not exist. Otherwise it returns
	// ErrConflict and changes nothing. The ttl works as in Set.
	CompareAndSet(ctx context.Context, key string, value []byte, expect uint64, ttl time.Duration) (version uint64, err error)
	// Delete removes key. Deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// Incr atomically adds delta to the decimal integer stored under key and
	// returns the result. A missing key counts as 0 and, when ttl is above
	// zero, is created with that expiry; an existing key keeps its expiry.
	Incr(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error)
	// Keys returns the keys that start with prefix, in no particular order.
	// It is meant for bounded uses such as restoring state at start.
	Keys(ctx context.Context, prefix string) ([]string, error)
	// Publish sends msg to every subscription of channel, this node's included.
	Publish(ctx context.Context, channel string, msg []byte) error
	// Subscribe calls handler with every message published on channel from
	// the moment Subscribe returns until cancel is called. After cancel
	// returns no further message is handed to handler, though a call already
	// under way may still be running.
	Subscribe(ctx context.Context, channel string, handler func(msg []byte)) (cancel func(), err error)
	// Close cancels all subscriptions, waits for their handlers to return and
	// releases the backend's connections. It must not be called from a
	// handler. Calling Close again returns nil.
	Close() error
}

// GapNotifier is implemented by backends that can lose bus messages, for
// example while reconnecting to their server or when a subscription's queue
// overflows. The function registered with OnGap is called, from a goroutine of
// the backend, after such a loss once delivery works again; the caller should
// then resynchronize from the store.
type GapNotifier interface {
	OnGap(fn func())
}
