package datasole

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"sync/atomic"

	"github.com/datasole/datasole-go/datasole/protocol"
)

// RPCFunc handles one RPC method. params is the raw JSON the client sent
// (null when it sent none). The result is marshalled as JSON; a nil result
// is sent as a success without a result member.
type RPCFunc func(c *Context, params json.RawMessage) (any, error)

// HandleRPC registers fn for method. It refuses (ErrInvalidRegistration) a
// nil fn, an empty or reserved ("$ds.") name, a name longer than
// Options.MaxEventNameLength and a second handler for the same method;
// Start returns the same errors.
func (s *Server) HandleRPC(method string, fn RPCFunc) error {
	if err := s.register("RPC", method, fn == nil); err != nil {
		return err
	}
	if _, dup := s.rpcs.LoadOrStore(method, fn); dup {
		return s.registrationFailed(fmt.Errorf("%w: RPC %q: a handler is already registered", ErrInvalidRegistration, method))
	}
	return nil
}

func (c *Conn) handleRPC(f protocol.Frame) {
	id := f.CorrelationID
	var req protocol.RPCRequest
	err := json.Unmarshal(f.Payload, &req)
	if ok, retry := c.allow("rpc", req.Method, id); !ok {
		c.s.obs.RPCRefused(req.Method, "rate-limited")
		c.replyError(id, req.CorrelationID, &Error{Code: protocol.CodeRateLimited, Message: "Rate limit exceeded",
			Data: map[string]int64{"retryAfter": retry.Milliseconds()}})
		return
	}
	if err != nil || req.Method == "" {
		c.s.obs.RPCRefused(req.Method, "parse-error")
		c.s.logSampled("datasole: malformed RPC request", "conn", c.id)
		c.replyError(id, req.CorrelationID, &Error{Code: protocol.CodeParseError, Message: "Parse error: an RPC request is a JSON object with a method"})
		return
	}
	v, ok := c.s.rpcs.Load(req.Method)
	if !ok {
		c.s.obs.RPCRefused(req.Method, "not-found")
		c.replyError(id, req.CorrelationID, &Error{Code: protocol.CodeMethodNotFound, Message: "Method not found: " + req.Method})
		return
	}
	if int(c.inFlight.Add(1)) > c.s.opts.MaxInFlight {
		c.inFlight.Add(-1)
		c.s.obs.RPCRefused(req.Method, "overloaded")
		c.replyError(id, req.CorrelationID, &Error{Code: protocol.CodeOverloaded, Message: "Too many calls in flight"})
		return
	}
	c.rpcs.Add(1)
	select {
	case c.s.exec <- struct{}{}: // wait for an executor slot: backpressure
	case <-c.ctx.Done():
		c.inFlight.Add(-1)
		c.rpcs.Done()
		return
	}
	go func() {
		defer func() {
			<-c.s.exec
			c.inFlight.Add(-1)
			c.rpcs.Done()
		}()
		c.runRPC(v.(RPCFunc), id, req)
	}()
}

func (c *Conn) runRPC(fn RPCFunc, id uint32, req protocol.RPCRequest) {
	ctx, cancel := context.WithTimeout(c.ctx, c.s.opts.RPCTimeout)
	defer cancel()
	ctx, done := c.s.obs.StartRPC(ctx, req.Method)
	var replied atomic.Bool
	// Answer at the deadline even if the handler ignores its context.
	stop := context.AfterFunc(ctx, func() {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) && replied.CompareAndSwap(false, true) {
			done("timeout")
			c.replyError(id, req.CorrelationID, &Error{Code: protocol.CodeTimeout, Message: "RPC timeout: " + req.Method})
		}
	})
	params := req.Params
	if len(params) == 0 {
		params = json.RawMessage("null")
	}
	result, err := c.invoke(fn, &Context{Context: ctx, conn: c}, params, req.Method)
	stop()
	if !replied.CompareAndSwap(false, true) {
		return
	}
	if err != nil {
		done(outcomeOf(err))
		c.replyError(id, req.CorrelationID, c.s.publicError(err, req.Method, c.id))
		return
	}
	raw, err := marshalResult(result)
	if err != nil {
		c.s.log.Error("datasole: cannot encode RPC result", "method", req.Method, "err", err)
		done("error")
		c.replyError(id, req.CorrelationID, &Error{Code: protocol.CodeInternal, Message: "Internal error"})
		return
	}
	done("ok")
	c.reply(id, protocol.RPCResponse{CorrelationID: req.CorrelationID, Result: raw})
}

func outcomeOf(err error) string {
	switch {
	case err == errPanic:
		return "panic"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return "error"
}

func (c *Conn) invoke(fn RPCFunc, ctx *Context, params json.RawMessage, method string) (result any, err error) {
	defer func() {
		if p := recover(); p != nil {
			c.s.log.Error("datasole: RPC handler panicked", "method", method, "conn", c.id, "panic", p, "stack", string(debug.Stack()))
			err = errPanic
		}
	}()
	return fn(ctx, params)
}

var errPanic = errors.New("handler panicked")

// publicError turns a handler error into what the client may see.
func (s *Server) publicError(err error, method, connID string) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if errors.Is(err, ErrBackend) {
		s.logSampled("datasole: RPC failed on the backend", "method", method, "err", err)
		return &Error{Code: protocol.CodeUnavailable, Message: "Service unavailable, retry later", Data: map[string]int64{"retryAfter": 1000}}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &Error{Code: protocol.CodeTimeout, Message: "RPC timeout: " + method}
	}
	if err != errPanic {
		s.log.Error("datasole: RPC handler failed", "method", method, "conn", connID, "err", err)
	}
	if s.opts.ExposeErrors {
		return &Error{Code: protocol.CodeInternal, Message: err.Error()}
	}
	return &Error{Code: protocol.CodeInternal, Message: "Internal error"}
}

func (c *Conn) replyError(id uint32, bodyID json.RawMessage, e *Error) {
	re := &protocol.RPCError{Code: e.Code, Message: e.Message}
	if e.Data != nil {
		if raw, err := json.Marshal(e.Data); err == nil {
			re.Data = raw
		}
	}
	c.reply(id, protocol.RPCResponse{CorrelationID: bodyID, Error: re})
}

func (c *Conn) reply(id uint32, res protocol.RPCResponse) {
	payload, err := marshal(res)
	if err == nil {
		err = c.sendFrame(protocol.RPCRes, id, payload)
	}
	if err != nil { // result over 1 MiB: tell the caller instead of dropping the call
		c.s.log.Error("datasole: RPC reply too large", "conn", c.id, "err", err)
		payload, _ = marshal(protocol.RPCResponse{CorrelationID: res.CorrelationID, Error: &protocol.RPCError{Code: protocol.CodeInternal, Message: "Result too large"}})
		c.sendFrame(protocol.RPCRes, id, payload)
	}
}

func marshalResult(v any) (json.RawMessage, error) {
	switch r := v.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		if r == nil {
			return nil, nil
		}
		if !json.Valid(r) {
			return nil, fmt.Errorf("datasole: result is not valid JSON")
		}
		return r, nil
	}
	return json.Marshal(v)
}
