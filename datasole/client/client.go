// Package client is the Go client of datasole: typed RPC, events both ways
// and, through the same descriptors as the server, one contract for both
// sides. It speaks protocol v1, so it works against this server and any
// other v1 server. It reconnects with capped, jittered backoff, fails pending
// calls at once when the link drops, and detects dead links with WebSocket
// pings.
package client

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/protocol"
	"github.com/gorilla/websocket"
)

// Options configures a Client. The zero value is usable.
type Options struct {
	// Path is appended to the URL given to Dial unless the URL already ends
	// with it. Default "/__ds".
	Path string
	// Token is sent as the query parameter token, as the v1 browser client
	// does, or as a subprotocol when TokenInProtocol is set.
	Token string
	// TokenInProtocol sends Token as the WebSocket subprotocol
	// "datasole.token.<token>" (offered last, never selected by a server)
	// instead of in the URL, where access logs would record it. The
	// server's auth handler must read it from Sec-WebSocket-Protocol.
	TokenInProtocol bool
	// NoBatching stops the client from offering the batching extension
	// ("datasole.batch.v1"): it then speaks plain protocol v1, one frame
	// per WebSocket message, even to a server that supports batching.
	NoBatching bool
	// Header is sent with the upgrade request (e.g. Authorization or Origin).
	Header http.Header

	// CallTimeout bounds calls whose context has no deadline. Default 30s.
	CallTimeout time.Duration
	// WriteTimeout bounds writing one frame. Default 10s.
	WriteTimeout time.Duration
	// PingInterval is how often a WebSocket ping is sent; a link silent for
	// two intervals is treated as dead. Default 25s; negative disables.
	PingInterval time.Duration

	// NoReconnect disables reconnecting after the link drops.
	NoReconnect bool
	// ReconnectInterval is the backoff base: the n-th retry waits
	// base × min(2^n, 64) plus up to one base of jitter. Default 1s.
	ReconnectInterval time.Duration
	// MaxReconnectAttempts stops reconnecting after that many failures in a
	// row. Default 0: never stop.
	MaxReconnectAttempts int

	// OnStateChange is called on every change of connection state.
	OnStateChange func(State)
	// OnError receives ERROR frames that match no pending call.
	OnError func(*ServerError)

	// Dialer dials the WebSocket. Default: a dialer with a 10s handshake
	// timeout.
	Dialer *websocket.Dialer
	// Logger receives connection logs. Default slog.Default().
	Logger *slog.Logger
}

// State is the connection state of a Client.
type State int

// Connection states.
const (
	Connecting State = iota
	Connected
	Disconnected // the link dropped; the client is reconnecting
	Closed       // Close was called or reconnecting gave up
)

func (s State) String() string {
	switch s {
	case Connecting:
		return "connecting"
	case Connected:
		return "connected"
	case Disconnected:
		return "disconnected"
	}
	return "closed"
}

// Errors returned by the client.
var (
	// ErrClosed: the client is closed, or the link dropped while a call was
	// pending. It is datasole.ErrClosed.
	ErrClosed = datasole.ErrClosed
	// ErrNotConnected: a frame could not be sent because the client is
	// reconnecting. It wraps ErrClosed.
	ErrNotConnected = fmt.Errorf("datasole client: not connected: %w", datasole.ErrClosed)
)

// ServerError is an ERROR frame from the server. A rate-limited call fails
// with a *ServerError that matches datasole.ErrRateLimited.
type ServerError struct {
	Message       string
	Code          string
	RetryAfter    time.Duration
	CorrelationID uint32
}

func (e *ServerError) Error() string { return "datasole: server refused frame: " + e.Message }

// Is makes a rate-limit refusal match datasole.ErrRateLimited.
func (e *ServerError) Is(target error) bool {
	return target == datasole.ErrRateLimited && (e.Code == "rate-limited" || e.Message == "Rate limit exceeded")
}

// Client is a connection to a datasole server that survives reconnects. It
// is safe for concurrent use.
type Client struct {
	url  string
	opts Options
	log  *slog.Logger

	mu       sync.Mutex // guards the fields below
	ws       *websocket.Conn
	batching bool // the server selected datasole.batch.v1 for ws
	state    State
	pending  map[uint32]chan response
	nextID   uint32
	closed   bool
	events   map[string][]*listener
	store    stateStore
	crdts    crdtStore
	hist     history
	onOpen   []func(ctx context.Context, reconnect bool)

	writeMu  sync.Mutex // one writer at a time on ws
	outMu    sync.Mutex // guards out and flushing
	out      [][]byte   // encoded frames waiting for the writer
	spare    [][]byte
	flushing bool // a sender is writing out
	done     chan struct{}
	wg       sync.WaitGroup
	conns    atomic.Uint64 // successful opens
}

type listener struct{ fn func(json.RawMessage) }

type response struct {
	res protocol.RPCResponse
	err error
}

// Dial connects to the server at rawURL (http, https, ws or wss; the path
// option is appended) and returns a client that keeps the link up. The first
// connection must succeed within ctx; later drops are retried in the
// background unless NoReconnect is set.
func Dial(ctx context.Context, rawURL string, opts Options) (*Client, error) {
	u, err := wsURL(rawURL, opts)
	if err != nil {
		return nil, err
	}
	c := newClient(u, opts)
	ws, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	c.start(ws, false)
	return c, nil
}

func newClient(u string, opts Options) *Client {
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 30 * time.Second
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 10 * time.Second
	}
	if opts.PingInterval == 0 {
		opts.PingInterval = 25 * time.Second
	}
	if opts.ReconnectInterval <= 0 {
		opts.ReconnectInterval = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Dialer == nil {
		opts.Dialer = &websocket.Dialer{HandshakeTimeout: 10 * time.Second, Proxy: http.ProxyFromEnvironment}
	}
	c := &Client{
		url:     u,
		opts:    opts,
		log:     opts.Logger,
		pending: make(map[uint32]chan response),
		events:  make(map[string][]*listener),
		done:    make(chan struct{}),
		state:   Connecting,
		crdts:   crdtStore{nodeID: newNodeID()},
	}
	c.onOpen = append(c.onOpen, c.resendOutbox, c.recoverStreams)
	return c
}

// wsURL derives the WebSocket URL as the v1 browser client does: http → ws,
// https → wss, one trailing slash dropped, path appended, then ?token=.
func wsURL(raw string, opts Options) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("datasole client: bad url: %w", err)
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	case "ws", "wss":
	default:
		return "", fmt.Errorf("datasole client: unsupported scheme %q", u.Scheme)
	}
	path := opts.Path
	if path == "" {
		path = "/__ds"
	}
	if !strings.HasSuffix(u.Path, path) {
		u.Path = strings.TrimSuffix(u.Path, "/") + path
	}
	if opts.Token != "" && !opts.TokenInProtocol {
		q := u.Query()
		q.Set("token", opts.Token)
		u.RawQuery = q.Encode()
	}
	return u.String(), nil
}

// subprotocols are what the client offers at the upgrade: datasole.v1
// first (servers that echo the first offer pick it), the batching
// extension unless turned off, and the token when it travels there.
func (c *Client) subprotocols() []string {
	offer := []string{protocol.SubprotocolV1}
	if !c.opts.NoBatching {
		offer = append(offer, protocol.SubprotocolBatch)
	}
	if c.opts.TokenInProtocol && c.opts.Token != "" {
		offer = append(offer, protocol.SubprotocolTokenPrefix+c.opts.Token)
	}
	return offer
}

func (c *Client) dial(ctx context.Context) (*websocket.Conn, error) {
	d := *c.opts.Dialer
	d.Subprotocols = c.subprotocols()
	ws, resp, err := d.DialContext(ctx, c.url, c.opts.Header)
	if err != nil {
		return nil, dialError(resp, err)
	}
	return ws, nil
}

// DialError is a failed connection attempt. Status is the HTTP status of a
// refused upgrade (401, 403, 503, …), 0 when no response came.
type DialError struct {
	Status int
	Err    error
}

func (e *DialError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("datasole client: upgrade refused with HTTP %d", e.Status)
	}
	return "datasole client: dial: " + e.Err.Error()
}

func (e *DialError) Unwrap() error { return e.Err }

func (c *Client) start(ws *websocket.Conn, reconnect bool) {
	c.mu.Lock()
	c.ws = ws
	c.batching = ws.Subprotocol() == protocol.SubprotocolBatch
	c.mu.Unlock()
	c.conns.Add(1)
	c.setState(Connected)
	c.wg.Add(1)
	go c.run(ws, reconnect)
}

// run serves one link, then reconnects.
func (c *Client) run(ws *websocket.Conn, reconnect bool) {
	defer c.wg.Done()
	for {
		stopPing := c.keepalive(ws)
		c.mu.Lock()
		hooks := c.onOpen
		c.mu.Unlock()
		for _, h := range hooks {
			go h(context.Background(), reconnect)
		}
		c.readLoop(ws)
		stopPing()
		ws.Close()
		c.failPending(fmt.Errorf("datasole client: connection lost: %w", ErrClosed))
		c.mu.Lock()
		c.ws = nil
		closed := c.closed
		c.mu.Unlock()
		c.outMu.Lock()
		c.out = nil // frames for the dropped link: their calls failed above
		c.outMu.Unlock()
		if closed || c.opts.NoReconnect {
			c.setState(Closed)
			return
		}
		c.setState(Disconnected)
		ws = c.reconnect()
		if ws == nil {
			c.setState(Closed)
			return
		}
		c.mu.Lock()
		c.ws = ws
		c.batching = ws.Subprotocol() == protocol.SubprotocolBatch
		c.mu.Unlock()
		c.conns.Add(1)
		c.setState(Connected)
		reconnect = true
	}
}

// reconnect retries with backoff until it connects, the client is closed or
// the attempts run out.
func (c *Client) reconnect() *websocket.Conn {
	base := c.opts.ReconnectInterval
	for attempt := 1; c.opts.MaxReconnectAttempts <= 0 || attempt <= c.opts.MaxReconnectAttempts; attempt++ {
		wait := base*time.Duration(min(1<<min(attempt, 6), 64)) + time.Duration(rand.Int64N(int64(base)))
		select {
		case <-c.done:
			return nil
		case <-time.After(wait):
		}
		c.setState(Connecting)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		go func() {
			select {
			case <-c.done:
				cancel()
			case <-ctx.Done():
			}
		}()
		ws, err := c.dial(ctx)
		cancel()
		if err == nil {
			c.mu.Lock()
			closed := c.closed
			c.mu.Unlock()
			if closed {
				ws.Close()
				return nil
			}
			return ws
		}
		c.log.Debug("datasole client: reconnect failed", "attempt", attempt, "err", err)
		c.setState(Disconnected)
	}
	return nil
}

func (c *Client) keepalive(ws *websocket.Conn) (stop func()) {
	iv := c.opts.PingInterval
	if iv < 0 {
		return func() {}
	}
	alive := func() { ws.SetReadDeadline(time.Now().Add(2 * iv)) }
	alive()
	ws.SetPongHandler(func(string) error { alive(); return nil })
	t := time.NewTicker(iv)
	quit := make(chan struct{})
	go func() {
		for {
			select {
			case <-t.C:
				if ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.opts.WriteTimeout)) != nil {
					return
				}
			case <-quit:
				return
			}
		}
	}()
	return func() { t.Stop(); close(quit) }
}

func (c *Client) readLoop(ws *websocket.Conn) {
	ws.SetReadLimit(protocol.MaxCompressed + 1024)
	for {
		mt, msg, err := ws.ReadMessage()
		if err != nil {
			return
		}
		if c.opts.PingInterval > 0 {
			ws.SetReadDeadline(time.Now().Add(2 * c.opts.PingInterval))
		}
		if mt != websocket.BinaryMessage {
			continue // v1: text messages are dropped
		}
		if protocol.IsBatch(msg) && ws.Subprotocol() == protocol.SubprotocolBatch {
			if err := protocol.SplitBatch(msg, func(item []byte) bool { c.decode(item); return true }); err != nil {
				c.log.Debug("datasole client: dropped malformed batch", "err", err)
			}
			continue
		}
		c.decode(msg)
	}
}

func (c *Client) decode(msg []byte) {
	f, err := protocol.Decode(msg)
	if err != nil {
		c.log.Debug("datasole client: dropped undecodable frame", "err", err)
		return
	}
	c.handle(f)
}

func (c *Client) handle(f protocol.Frame) {
	switch f.Opcode {
	case protocol.RPCRes:
		var res protocol.RPCResponse
		if err := json.Unmarshal(f.Payload, &res); err != nil {
			c.settle(f.CorrelationID, response{err: fmt.Errorf("datasole client: malformed reply: %w", err)})
			return
		}
		c.settle(f.CorrelationID, response{res: res})
	case protocol.EventS2C:
		var ev protocol.Event
		if json.Unmarshal(f.Payload, &ev) != nil {
			return
		}
		c.handleEvent(ev)
	case protocol.Pong:
		c.settle(f.CorrelationID, response{})
	case protocol.StatePatch, protocol.StateSnapshot:
		c.handleState(f)
	case protocol.CRDTState:
		c.handleCRDTState(f)
	case protocol.Error:
		var body protocol.ErrorBody
		if json.Unmarshal(f.Payload, &body) != nil {
			return
		}
		se := &ServerError{Message: body.Message, Code: body.Code, RetryAfter: time.Duration(body.RetryAfter) * time.Millisecond, CorrelationID: f.CorrelationID}
		if c.crdtRefused(se) {
			return
		}
		if f.CorrelationID == 0 || !c.settle(f.CorrelationID, response{err: se}) {
			if c.opts.OnError != nil {
				c.opts.OnError(se)
			}
		}
	}
}

// settle completes the pending call with id and reports whether there was one.
func (c *Client) settle(id uint32, r response) bool {
	c.mu.Lock()
	ch, ok := c.pending[id]
	delete(c.pending, id)
	c.mu.Unlock()
	if ok {
		ch <- r
	}
	return ok
}

func (c *Client) failPending(err error) {
	c.mu.Lock()
	pending := c.pending
	c.pending = make(map[uint32]chan response)
	c.mu.Unlock()
	for _, ch := range pending {
		ch <- response{err: err}
	}
}

func (c *Client) setState(s State) {
	c.mu.Lock()
	if c.state == s || (c.state == Closed) {
		c.mu.Unlock()
		return
	}
	c.state = s
	c.mu.Unlock()
	if c.opts.OnStateChange != nil {
		c.opts.OnStateChange(s)
	}
}

// State returns the current connection state.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// send queues one frame, compressed per the v1 rule, and writes it. The
// writes of concurrent senders combine: while one sender writes, frames
// others queue leave in its next write — on a link that negotiated
// batching as one BATCH message, otherwise one WebSocket message per frame
// as v1 requires. A frame another sender wrote for this one reports no
// write error here; a failed write drops the link, which fails the calls.
func (c *Client) send(op protocol.Opcode, id uint32, payload []byte) error {
	msg, err := protocol.Encode(op, id, payload)
	if err != nil {
		return err
	}
	c.mu.Lock()
	ws, batching := c.ws, c.batching
	c.mu.Unlock()
	if ws == nil {
		return ErrNotConnected
	}
	c.outMu.Lock()
	c.out = append(c.out, msg)
	if c.flushing {
		c.outMu.Unlock()
		return nil
	}
	c.flushing = true
	c.outMu.Unlock()
	return c.flushOut(ws, batching)
}

// flushOut writes queued frames until none is left.
func (c *Client) flushOut(ws *websocket.Conn, batching bool) error {
	var buf []byte
	for {
		c.outMu.Lock()
		batch := c.out
		if len(batch) == 0 {
			c.flushing = false
			c.outMu.Unlock()
			return nil
		}
		c.out, c.spare = c.spare[:0], nil
		c.outMu.Unlock()

		all := batch
		var err error
		c.writeMu.Lock()
		ws.SetWriteDeadline(time.Now().Add(c.opts.WriteTimeout))
		for len(batch) > 0 && err == nil {
			n := 1
			if batching {
				n = batchRun(batch)
			}
			if n == 1 {
				err = ws.WriteMessage(websocket.BinaryMessage, batch[0])
			} else {
				buf, _ = protocol.AppendBatch(buf[:0], batch[:n])
				err = ws.WriteMessage(websocket.BinaryMessage, buf)
			}
			batch = batch[n:]
		}
		c.writeMu.Unlock()
		if err != nil {
			ws.Close() // the reader notices and reconnects
			c.outMu.Lock()
			c.out, c.flushing = nil, false
			c.outMu.Unlock()
			return fmt.Errorf("datasole client: write: %w: %w", ErrNotConnected, err)
		}
		clear(all)
		c.outMu.Lock()
		if c.spare == nil && cap(all) <= 1024 {
			c.spare = all[:0]
		}
		c.outMu.Unlock()
	}
}

// batchRun counts the frames at the start of msgs that fit one BATCH.
func batchRun(msgs [][]byte) int {
	size := 0
	for i, m := range msgs {
		size += protocol.BatchItemSize(len(m))
		if size > protocol.MaxPayload {
			return max(i, 1)
		}
	}
	return len(msgs)
}

// CallRaw calls method with params (marshalled as JSON) and returns the raw
// result. A failed call returns *datasole.Error with the server's code and
// message; a refused frame *ServerError; a dropped link ErrClosed.
func (c *Client) CallRaw(ctx context.Context, method string, params any) (json.RawMessage, error) {
	var raw json.RawMessage
	if params != nil {
		b, err := json.Marshal(params)
		if err != nil {
			return nil, fmt.Errorf("datasole client: encoding params of %s: %w", method, err)
		}
		raw = b
	} else {
		raw = json.RawMessage("null")
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.CallTimeout)
		defer cancel()
	}
	ch := make(chan response, 1)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	id := c.allocID()
	c.pending[id] = ch
	c.mu.Unlock()

	idJSON := json.RawMessage(fmt.Sprint(id))
	payload, err := json.Marshal(protocol.RPCRequest{Method: method, Params: raw, CorrelationID: idJSON})
	if err == nil {
		err = c.send(protocol.RPCReq, id, payload)
	}
	if err != nil {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		return nil, err
	}
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, r.err
		}
		if e := r.res.Error; e != nil {
			var data any
			if len(e.Data) > 0 {
				data = e.Data
			}
			return nil, &datasole.Error{Code: e.Code, Message: e.Message, Data: data}
		}
		return r.res.Result, nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		return nil, fmt.Errorf("datasole client: call %s: %w", method, ctx.Err())
	}
}

// allocID returns the next correlation id not in use; c.mu is held.
func (c *Client) allocID() uint32 {
	for {
		c.nextID = (c.nextID + 1) % crdtIDBit // ids from crdtIDBit up are CRDT ops'
		if c.nextID == 0 {
			continue
		}
		if _, busy := c.pending[c.nextID]; !busy {
			return c.nextID
		}
	}
}

// Call calls method and decodes the result into result (which may be nil).
func (c *Client) Call(ctx context.Context, method string, params, result any) error {
	raw, err := c.CallRaw(ctx, method, params)
	if err != nil || result == nil || len(raw) == 0 {
		return err
	}
	return json.Unmarshal(raw, result)
}

// EmitRaw sends a client event. Events are fire-and-forget.
func (c *Client) EmitRaw(ctx context.Context, event string, data any) error {
	var raw json.RawMessage
	if data != nil {
		b, err := json.Marshal(data)
		if err != nil {
			return fmt.Errorf("datasole client: encoding event %s: %w", event, err)
		}
		raw = b
	}
	payload, err := json.Marshal(protocol.Event{Event: event, Data: raw})
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return c.send(protocol.EventC2S, 0, payload)
}

// Emit is EmitRaw under its everyday name.
func (c *Client) Emit(ctx context.Context, event string, data any) error {
	return c.EmitRaw(ctx, event, data)
}

// OnRaw calls fn with the data of every server event named event and
// returns a function that removes it. fn runs on the client's read
// goroutine: it must not block.
func (c *Client) OnRaw(event string, fn func(data json.RawMessage)) (off func()) {
	l := &listener{fn: fn}
	c.mu.Lock()
	c.events[event] = append(append([]*listener(nil), c.events[event]...), l)
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		var next []*listener
		for _, x := range c.events[event] {
			if x != l {
				next = append(next, x)
			}
		}
		if len(next) == 0 {
			delete(c.events, event)
		} else {
			c.events[event] = next
		}
	}
}

// On is OnRaw under its everyday name.
func (c *Client) On(event string, fn func(data json.RawMessage)) (off func()) {
	return c.OnRaw(event, fn)
}

// Ping sends an application PING and waits for the PONG, returning the
// round-trip time.
func (c *Client) Ping(ctx context.Context) (time.Duration, error) {
	ch := make(chan response, 1)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, ErrClosed
	}
	id := c.allocID()
	c.pending[id] = ch
	c.mu.Unlock()
	start := time.Now()
	if err := c.send(protocol.Ping, id, []byte("null")); err != nil {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		return 0, err
	}
	select {
	case r := <-ch:
		return time.Since(start), r.err
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		return 0, ctx.Err()
	}
}

// Close closes the link and stops reconnecting. Pending calls fail with
// ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	ws := c.ws
	c.mu.Unlock()
	close(c.done)
	if ws != nil {
		c.writeMu.Lock()
		ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		c.writeMu.Unlock()
		ws.Close()
	}
	c.wg.Wait()
	c.failPending(ErrClosed)
	c.setState(Closed)
	return nil
}

// Batching reports whether the current link negotiated the batching
// extension (several frames per WebSocket message).
func (c *Client) Batching() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ws != nil && c.batching
}

// Connections returns how many times the client has connected (1 + the
// number of successful reconnects).
func (c *Client) Connections() uint64 { return c.conns.Load() }
