package datasole

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/datasole/datasole-go/datasole/protocol"
)

// RPC describes one method of a contract: its name, parameter type P and
// result type R. Declare it once in a package shared by server and clients:
//
//	var Add = datasole.NewRPC[AddParams, AddResult]("add")
type RPC[P, R any] struct {
	name string
}

// NewRPC declares a typed RPC method.
func NewRPC[P, R any](name string) RPC[P, R] { return RPC[P, R]{name: name} }

// Name returns the method name on the wire.
func (d RPC[P, R]) Name() string { return d.name }

// Handle registers fn as the server's handler for d. Parameters that do not
// decode into P are answered with error -32602 "Invalid params". It fails
// as HandleRPC does.
func (d RPC[P, R]) Handle(s *Server, fn func(c *Context, params P) (R, error)) error {
	if fn == nil {
		return s.HandleRPC(d.name, nil)
	}
	return s.HandleRPC(d.name, func(c *Context, raw json.RawMessage) (any, error) {
		var p P
		if err := decodeParams(raw, &p); err != nil {
			return nil, &Error{Code: protocol.CodeInvalidParams, Message: "Invalid params: " + err.Error()}
		}
		return fn(c, p)
	})
}

// Caller is what a client offers for typed calls; *client.Client implements it.
type Caller interface {
	CallRaw(ctx context.Context, method string, params any) (json.RawMessage, error)
}

// Call invokes d on a client and decodes the result into R.
func (d RPC[P, R]) Call(ctx context.Context, c Caller, params P) (R, error) {
	var r R
	raw, err := c.CallRaw(ctx, d.name, params)
	if err != nil {
		return r, err
	}
	if len(raw) == 0 {
		return r, nil
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return r, fmt.Errorf("datasole: decoding result of %s: %w", d.name, err)
	}
	return r, nil
}

// Event describes one event of a contract and its payload type T:
//
//	var ChatMessage = datasole.NewEvent[Message]("chat:message")
type Event[T any] struct {
	name string
}

// NewEvent declares a typed event.
func NewEvent[T any](name string) Event[T] { return Event[T]{name: name} }

// Name returns the event name on the wire.
func (e Event[T]) Name() string { return e.name }

// Handle registers a server handler for client events of this kind.
// Payloads that do not decode into T are refused with an ERROR frame. It
// fails as On does.
func (e Event[T]) Handle(s *Server, fn func(c *Context, data T)) error {
	if fn == nil {
		return s.On(e.name, nil)
	}
	return s.On(e.name, func(c *Context, raw json.RawMessage) {
		var v T
		if err := decodeParams(raw, &v); err != nil {
			c.conn.refuse(0, "bad-event-data", "event "+e.name+": invalid data")
			return
		}
		fn(c, v)
	})
}

// Send pushes the event to the connections t selects.
func (e Event[T]) Send(s *Server, t Target, data T) error { return s.Send(t, e.name, data) }

// Broadcast pushes the event to every connection.
func (e Event[T]) Broadcast(s *Server, data T) error { return s.Send(ToAll(), e.name, data) }

// Emitter is what a client offers for typed events; *client.Client
// implements it.
type Emitter interface {
	EmitRaw(ctx context.Context, event string, data any) error
	OnRaw(event string, fn func(data json.RawMessage)) (off func())
}

// Emit sends the event from a client to the server.
func (e Event[T]) Emit(ctx context.Context, c Emitter, data T) error {
	return c.EmitRaw(ctx, e.name, data)
}

// Listen calls fn for every event of this kind the server pushes to the
// client. Payloads that do not decode into T are skipped.
func (e Event[T]) Listen(c Emitter, fn func(data T)) (off func()) {
	return c.OnRaw(e.name, func(raw json.RawMessage) {
		var v T
		if decodeParams(raw, &v) == nil {
			fn(v)
		}
	})
}

// decodeParams decodes raw into v; null or absent leaves v at its zero value.
func decodeParams(raw json.RawMessage, v any) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	return json.Unmarshal(raw, v)
}

// State describes one live-state key of a contract and its value type T:
//
//	var Dashboard = datasole.NewState[DashboardState]("dashboard")
type State[T any] struct {
	key string
}

// NewState declares a typed state key.
func NewState[T any](key string) State[T] { return State[T]{key: key} }

// Key returns the key on the wire.
func (d State[T]) Key() string { return d.key }

// Set stores v as the key's global value and sends the change.
func (d State[T]) Set(ctx context.Context, s *Server, v T) error { return s.SetState(ctx, d.key, v) }

// SetIn stores v as the key's value in a scope and sends the change.
func (d State[T]) SetIn(ctx context.Context, s *Server, sc Scope, v T) error {
	return s.SetStateIn(ctx, sc, d.key, v)
}

// Update atomically replaces the key's value in a scope with fn(old); old
// is the zero T when the key has no value.
func (d State[T]) Update(ctx context.Context, s *Server, sc Scope, fn func(old T) (T, error)) error {
	return s.UpdateStateIn(ctx, sc, d.key, func(raw json.RawMessage) (any, error) {
		var old T
		if err := decodeParams(raw, &old); err != nil {
			return nil, err
		}
		return fn(old)
	})
}

// Get returns the key's value in a scope and its version.
func (d State[T]) Get(s *Server, sc Scope) (T, uint64, bool) {
	var v T
	raw, ver, ok := s.GetStateIn(sc, d.key)
	if !ok || json.Unmarshal(raw, &v) != nil {
		return v, ver, false
	}
	return v, ver, true
}

// StateSource is what a client offers for typed state; *client.Client
// implements it.
type StateSource interface {
	StateRaw(key string) (json.RawMessage, uint64, bool)
	SubscribeStateRaw(key string, fn func(value json.RawMessage, version uint64)) (off func())
}

// Value returns the client's current copy of the key.
func (d State[T]) Value(c StateSource) (T, bool) {
	var v T
	raw, _, ok := c.StateRaw(d.key)
	if !ok || json.Unmarshal(raw, &v) != nil {
		return v, false
	}
	return v, true
}

// Subscribe calls fn with the client's copy of the key now and after every
// change (the zero T once the key is deleted).
func (d State[T]) Subscribe(c StateSource, fn func(v T)) (off func()) {
	return c.SubscribeStateRaw(d.key, func(raw json.RawMessage, _ uint64) {
		var v T
		if raw == nil || json.Unmarshal(raw, &v) == nil {
			fn(v)
		}
	})
}
