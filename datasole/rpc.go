package datasole

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"sync/atomic"
	"time"

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

// maxEchoedCorrelation caps the body correlationId echoed in a reply: the
// stock client sends a small number; anything longer is not echoed.
const maxEchoedCorrelation = 32

func (c *Conn) handleRPC(f protocol.Frame) {
	id := f.CorrelationID
	req, err := protocol.ParseRPCRequest(f.Payload)
	if len(req.CorrelationID) > maxEchoedCorrelation {
		req.CorrelationID = nil
	}
	if utf16Len(req.Method) > c.s.opts.MaxEventNameLength {
		// No method this long can be registered: answer without looking
		// it up, charging it to the default bucket, and never echo it.
		if ok, retry := c.allow("rpc", "", id); !ok {
			c.s.obs.RPCRefused("", "rate-limited")
			c.replyError(id, req.CorrelationID, rateLimited(retry))
			return
		}
		c.s.obs.RPCRefused("", "not-found")
		c.replyError(id, req.CorrelationID, &Error{Code: protocol.CodeMethodNotFound, Message: "Method not found"})
		return
	}
	if ok, retry := c.allow("rpc", req.Method, id); !ok {
		c.s.obs.RPCRefused(req.Method, "rate-limited")
		c.replyError(id, req.CorrelationID, rateLimited(retry))
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
		c.replyError(id, req.CorrelationID, &Error{Code: protocol.CodeMethodNotFound, Message: "Method not found"})
		return
	}
	call := &rpcCall{c: c, fn: v.(RPCFunc), id: id, method: req.Method, corr: req.CorrelationID, params: req.Params}
	c.inFlight.Add(1)
	if c.t.nonBlocking() {
		// A polled connection's read drain keeps its latest call and runs
		// it itself once it stops reading (see readDrain): the last call of
		// a burst, or a lone call, then costs no hand-off.
		if prev := c.pendingCall; prev != nil {
			c.s.eng.exec.submit(prev)
		}
		c.pendingCall = call
		return
	}
	c.s.eng.exec.submit(call)
}

func rateLimited(retry time.Duration) *Error {
	return &Error{Code: protocol.CodeRateLimited, Message: "Rate limit exceeded",
		Data: map[string]int64{"retryAfter": retry.Milliseconds()}}
}

// rpcCall is one RPC in flight: the request, the handler's context and
// its place in the server's deadline list, in one allocation.
type rpcCall struct {
	c      *Conn
	fn     RPCFunc
	id     uint32
	method string
	corr   json.RawMessage
	params json.RawMessage

	ctx     rpcCtx
	hctx    Context
	replied atomic.Bool
	obsDone func(outcome string)

	// The deadline list; guarded by the list's lock.
	prev, next *rpcCall
	deadline   int64
	linked     bool
}

// run runs the handler on an executor goroutine and replies, unless the
// deadline already did.
func (call *rpcCall) run() {
	c := call.c
	s := c.s
	defer c.callDone()
	call.ctx.parent = c.ctx
	call.ctx.deadline = time.Now().Add(s.opts.RPCTimeout)
	ctx, done := s.obs.StartRPC(&call.ctx, call.method)
	call.obsDone = done
	call.ctx.deadline = s.eng.deadlines.add(call)
	params := call.params
	if len(params) == 0 {
		params = json.RawMessage("null")
	}
	call.hctx = Context{Context: ctx, conn: c}
	result, err := c.invoke(call.fn, &call.hctx, params, call.method)
	s.eng.deadlines.remove(call)
	call.ctx.release()
	if !call.replied.CompareAndSwap(false, true) {
		return
	}
	if err != nil {
		done(outcomeOf(err))
		c.replyError(call.id, call.corr, s.publicError(err, call.method, c.id))
		return
	}
	raw, err := marshalResult(result)
	if err != nil {
		s.log.Error("datasole: cannot encode RPC result", "method", call.method, "err", err)
		done("error")
		c.replyError(call.id, call.corr, &Error{Code: protocol.CodeInternal, Message: "Internal error"})
		return
	}
	done("ok")
	c.reply(call.id, protocol.RPCResponse{CorrelationID: call.corr, Result: raw})
}

// expire answers a call at its deadline, whether or not its handler
// returns, and cancels the handler's context. It runs on the deadline
// goroutine.
func (call *rpcCall) expire() {
	call.ctx.cancel(context.DeadlineExceeded)
	if call.replied.CompareAndSwap(false, true) {
		call.obsDone("timeout")
		call.c.replyError(call.id, call.corr, &Error{Code: protocol.CodeTimeout, Message: "RPC timeout: " + call.method})
	}
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
	payload, err := res.AppendJSON(nil)
	if err == nil {
		var msg []byte
		if msg, err = protocol.Encode(protocol.RPCRes, id, payload); err == nil {
			// The last call of the connection to finish writes at once;
			// while others still run, the reply goes to the flushers, so
			// replies finishing together leave in one write.
			c.push(outMsg{data: msg, op: protocol.RPCRes}, c.inFlight.Load() <= 1)
		}
	}
	if err != nil { // result over 1 MiB: tell the caller instead of dropping the call
		c.s.log.Error("datasole: RPC reply too large", "conn", c.id, "err", err)
		tooLarge := protocol.RPCResponse{CorrelationID: res.CorrelationID, Error: &protocol.RPCError{Code: protocol.CodeInternal, Message: "Result too large"}}
		payload, _ = tooLarge.AppendJSON(nil)
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
