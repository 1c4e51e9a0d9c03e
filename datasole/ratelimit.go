package datasole

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/datasole/datasole-go/datasole/backend"
)

// RateLimit configures the per-frame rate limiter. Every inbound message is
// checked against one rule, counted in one bucket. By default the rule is
// that of its RPC method or event name if one is set, else Default, and the
// bucket is the sender's (By) for that rule; Rule and Key replace these
// choices with the application's own, e.g. budgets by plan or buckets by
// tenant. A refused RPC gets an RPC_RES error (code -32029) and an ERROR
// frame {message, retryAfter} with its correlation id, so v1 and newer
// clients both fail fast; other refused frames get the ERROR frame. A peer
// refused many times in a row is closed with 1008.
type RateLimit struct {
	// Disabled turns the limiter off.
	Disabled bool
	// Default applies to frames without a rule of their own. Default 600
	// frames per minute (bursts of up to 600 are admitted).
	Default Rule
	// RPC holds rules per RPC method.
	RPC map[string]Rule
	// Events holds rules per client event name.
	Events map[string]Rule
	// Rule, when set, chooses the rule of every frame, e.g. from the plan
	// in the sender's principal metadata. Returning the zero Rule keeps
	// the default choice (f.DefaultRule(): RPC, Events, then Default).
	// Rules it returns are checked like the ones above; an invalid one is
	// logged (sampled) and the default choice applies. It runs in the
	// connection's read loop for every frame: keep it fast.
	Rule func(f RateFrame) Rule
	// By chooses whose bucket a frame is counted in when Key does not.
	// Default PerConnection.
	By KeyBy
	// Key, when set, names the bucket of every frame, e.g. "t:" + tenant
	// so that a tenant's users share one budget. Returning "" keeps the
	// default (f.DefaultKey(): By, then the frame's rule). Frames whose
	// keys are equal share a bucket; give one bucket one rule. Keys that
	// start with "c:" belong to one connection (the PerConnection keys
	// do) and stay in process even with a backend; the default Limiter
	// shares all other keys through Options.Backend. It runs in the
	// connection's read loop for every frame: keep it fast.
	Key func(f RateFrame) string
	// Limiter decides. Default: an in-process GCRA limiter; with
	// Options.Backend set, one that keeps keys starting with "c:" in
	// process and shares all other buckets through the backend, so all
	// nodes enforce one limit per user, IP or custom key. A Limiter that
	// holds resources may implement io.Closer (or Close()): the server
	// calls it once, from Close, after its connections have ended.
	Limiter Limiter
	// CloseAfter is how many refusals in a row close the connection with
	// 1008. Default 100.
	CloseAfter int

	// RawMessages and RawBytes limit what one connection may send before
	// anything is inflated or parsed: WebSocket messages, and their bytes
	// as received (compressed), per connection, in process. They bound the
	// work a flood can cause before the per-frame rules above apply.
	// Defaults: twice Default's frames per its window, and 64 MiB per
	// minute.
	RawMessages Rule
	RawBytes    Rule
}

// RateFrame is what RateLimit.Rule and RateLimit.Key see of one inbound
// frame: who sent it and what it is.
type RateFrame struct {
	// Conn is the sender: ID(), UserID(), RemoteAddr(), and Principal()
	// with its Roles and Metadata (tenant, plan, … as set by Auth).
	Conn *Conn
	// Kind is "rpc" for an RPC request, "event" for a client event, and
	// "frame" for any other frame (PING, CRDT_OP, a malformed message, …).
	Kind string
	// Name is the RPC method or event name; "" for other frames.
	Name string
}

// IP returns the address the sender connected from, without the port.
func (f RateFrame) IP() string { return hostOf(f.Conn.remoteAddr) }

// DefaultRule returns the rule the frame gets without RateLimit.Rule: its
// method's or event's rule from RateLimit.RPC or RateLimit.Events, else
// RateLimit.Default.
func (f RateFrame) DefaultRule() Rule {
	r, _ := f.Conn.s.opts.RateLimit.lookup(f.Kind, f.Name)
	return r
}

// DefaultKey returns the bucket the frame is counted in without
// RateLimit.Key: the sender's bucket under RateLimit.By ("c:<conn id>:",
// "u:<user id>:" or "ip:<address>:") for its rule ("*" for Default,
// "rpc:<method>", "evt:<event>").
func (f RateFrame) DefaultKey() string {
	_, bucket := f.Conn.s.opts.RateLimit.lookup(f.Kind, f.Name)
	return f.Conn.bucketKey(bucket)
}

// Rule admits Limit units per Window, a cost of Cost units per frame
// (default 1). Bursts of up to Limit units pass; after that frames are
// admitted at the steady rate.
type Rule struct {
	Limit  int
	Window time.Duration
	Cost   int
}

// KeyBy selects the bucket key of a frame.
type KeyBy int

// Bucket keys.
const (
	PerConnection KeyBy = iota // each connection has its own buckets
	PerUser                    // all connections of a user share them
	PerIP                      // all connections from one IP address share them
)

// Limiter decides whether cost units may pass for key under rule, and if
// not, when to retry. It must be safe for concurrent use and atomic: under
// any concurrency it admits no more than the rule allows.
type Limiter interface {
	Allow(ctx context.Context, key string, rule Rule) (ok bool, retryAfter time.Duration, err error)
}

func (rl RateLimit) check(c *optionChecker) {
	if rl.Default != (Rule{}) {
		rl.Default.check(c, "Options.RateLimit.Default")
	}
	for name, r := range rl.RPC {
		if name == "" {
			c.fail("Options.RateLimit.RPC", name, "a rule needs the method name as its key")
		}
		r.check(c, fmt.Sprintf("Options.RateLimit.RPC[%q]", name))
	}
	for name, r := range rl.Events {
		if name == "" {
			c.fail("Options.RateLimit.Events", name, "a rule needs the event name as its key")
		}
		r.check(c, fmt.Sprintf("Options.RateLimit.Events[%q]", name))
	}
	if rl.By < PerConnection || rl.By > PerIP {
		c.fail("Options.RateLimit.By", rl.By, "use PerConnection, PerUser or PerIP")
	}
	c.nonNegative("Options.RateLimit.CloseAfter", int64(rl.CloseAfter), rl.CloseAfter)
	if rl.RawMessages != (Rule{}) {
		rl.RawMessages.check(c, "Options.RateLimit.RawMessages")
	}
	if rl.RawBytes != (Rule{}) {
		rl.RawBytes.check(c, "Options.RateLimit.RawBytes")
	}
	if rl.Disabled { // options nothing would read
		if rl.Rule != nil {
			c.fail("Options.RateLimit.Rule", "func", "the limiter is Disabled: remove Rule, or Disabled")
		}
		if rl.Key != nil {
			c.fail("Options.RateLimit.Key", "func", "the limiter is Disabled: remove Key, or Disabled")
		}
		if rl.Limiter != nil {
			c.fail("Options.RateLimit.Limiter", rl.Limiter, "the limiter is Disabled: remove Limiter, or Disabled")
		}
	}
}

func (r Rule) check(c *optionChecker, field string) {
	if f, problem := r.problem(); problem != "" {
		c.fail(field+f, r.value(f), problem)
	}
}

// problem returns what is wrong with r, and the field at fault ("" for the
// rule as a whole), or "" when r is valid.
func (r Rule) problem() (field, problem string) {
	switch {
	case r.Limit <= 0:
		return ".Limit", "a rule admits at least 1 unit per window"
	case r.Window <= 0:
		return ".Window", "a rule needs a positive window, e.g. time.Minute"
	case r.Cost < 0:
		return ".Cost", "must not be negative; zero means 1"
	case r.Cost > r.Limit:
		return ".Cost", "a cost above the limit refuses every frame"
	case r.Window/time.Duration(r.Limit) == 0:
		return "", "the limit is too high for the window (below 1ns per unit)"
	}
	return "", ""
}

func (r Rule) value(field string) any {
	switch field {
	case ".Limit":
		return r.Limit
	case ".Window":
		return r.Window
	case ".Cost":
		return r.Cost
	}
	return r
}

func (rl RateLimit) withDefaults(b backend.Backend) RateLimit {
	if rl.Default.Limit <= 0 {
		rl.Default = Rule{Limit: 600, Window: time.Minute}
	}
	if rl.RawMessages.Limit == 0 {
		rl.RawMessages = Rule{Limit: 2 * rl.Default.Limit, Window: rl.Default.Window}
	}
	if rl.RawBytes.Limit == 0 {
		rl.RawBytes = Rule{Limit: 64 << 20, Window: time.Minute}
	}
	if rl.CloseAfter == 0 {
		rl.CloseAfter = 100
	}
	if rl.Limiter == nil {
		// A connection's buckets are its own: no other node shares them, so
		// they stay in process even with a backend.
		if b != nil {
			rl.Limiter = splitLimiter{local: NewMemoryLimiter(), shared: NewBackendLimiter(b)}
		} else {
			rl.Limiter = NewMemoryLimiter()
		}
	}
	return rl
}

// splitLimiter keeps the buckets of one connection (keys starting with
// "c:") in process and shares every other bucket through the backend.
type splitLimiter struct {
	local  *MemoryLimiter
	shared *BackendLimiter
}

func (l splitLimiter) Allow(ctx context.Context, key string, r Rule) (bool, time.Duration, error) {
	if strings.HasPrefix(key, connKeyPrefix) {
		return l.local.Allow(ctx, key, r)
	}
	return l.shared.Allow(ctx, key, r)
}

// connKeyPrefix starts the bucket keys of one connection.
const connKeyPrefix = "c:"

// closeLimiter releases a configured Limiter that holds resources. Close
// calls it once, after the connections have ended: nothing checks frames
// any more.
func (s *Server) closeLimiter() {
	var err error
	switch l := s.opts.RateLimit.Limiter.(type) {
	case io.Closer:
		err = l.Close()
	case interface{ Close() }:
		l.Close()
	}
	if err != nil {
		s.log.Warn("datasole: closing the rate limiter failed", "err", err)
	}
}

func (r Rule) cost() int {
	if r.Cost <= 0 {
		return 1
	}
	return r.Cost
}

// gcra computes the generic cell rate algorithm: tat is the theoretical
// arrival time (unix nanoseconds) of the bucket. It returns the new tat and
// whether the frame passes, or how long to wait.
func gcra(tat, now int64, r Rule) (newTAT int64, ok bool, retryAfter time.Duration) {
	interval := int64(r.Window) / int64(r.Limit) // time one unit takes to refill
	inc := interval * int64(r.cost())
	if tat < now {
		tat = now
	}
	next := tat + inc
	allowAt := next - int64(r.Window)
	if now < allowAt {
		return tat, false, time.Duration(allowAt - now)
	}
	return next, true, 0
}

// MemoryLimiter is the in-process GCRA limiter. Buckets are forgotten once
// they are full again, so memory stays bounded by the active keys.
type MemoryLimiter struct {
	mu    sync.Mutex
	tats  map[string]int64
	calls int
	now   func() time.Time
}

// NewMemoryLimiter returns an in-process limiter.
func NewMemoryLimiter() *MemoryLimiter {
	return &MemoryLimiter{tats: make(map[string]int64), now: time.Now}
}

// Allow implements Limiter.
func (m *MemoryLimiter) Allow(_ context.Context, key string, r Rule) (bool, time.Duration, error) {
	now := m.now().UnixNano()
	m.mu.Lock()
	defer m.mu.Unlock()
	tat, ok, retry := gcra(m.tats[key], now, r)
	if ok {
		m.tats[key] = tat
	}
	if m.calls++; m.calls >= 4096 || len(m.tats) > 65536 {
		m.calls = 0
		for k, t := range m.tats {
			if t <= now { // full again: nothing to remember
				delete(m.tats, k)
			}
		}
	}
	return ok, retry, nil
}

// Len returns how many buckets the limiter remembers.
func (m *MemoryLimiter) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.tats)
}

// gcraScripter is implemented by backends that run GCRA in one round trip
// (the Redis backend does, with a Lua script).
type gcraScripter interface {
	GCRA(ctx context.Context, key string, limit int, window time.Duration, cost int) (ok bool, retryAfter time.Duration, err error)
}

// BackendLimiter shares buckets through a backend, so several nodes enforce
// one limit. It uses the backend's one-round-trip GCRA when it has one, and
// compare-and-set otherwise; buckets expire with their window.
type BackendLimiter struct {
	b backend.Backend
}

// NewBackendLimiter returns a limiter on b.
func NewBackendLimiter(b backend.Backend) *BackendLimiter { return &BackendLimiter{b: b} }

// Allow implements Limiter.
func (l *BackendLimiter) Allow(ctx context.Context, key string, r Rule) (bool, time.Duration, error) {
	key = "rl:" + key
	if g, ok := l.b.(gcraScripter); ok {
		return g.GCRA(ctx, key, r.Limit, r.Window, r.cost())
	}
	for range 64 {
		raw, ver, err := l.b.Get(ctx, key)
		if err != nil && !errors.Is(err, backend.ErrNotFound) {
			return false, 0, err
		}
		var tat int64
		if err == nil {
			tat, _ = strconv.ParseInt(string(raw), 10, 64)
		}
		now := time.Now().UnixNano()
		next, ok, retry := gcra(tat, now, r)
		if !ok {
			return false, retry, nil
		}
		ttl := time.Duration(next-now) + time.Second
		_, err = l.b.CompareAndSet(ctx, key, strconv.AppendInt(nil, next, 10), ver, ttl)
		if err == nil {
			return true, 0, nil
		}
		if !errors.Is(err, backend.ErrConflict) {
			return false, 0, err
		}
	}
	return false, r.Window / time.Duration(r.Limit), nil // heavy contention: refuse, retry soon
}

// bucketKey names the bucket a frame of c is counted in.
func (c *Conn) bucketKey(rule string) string {
	if rule == "*" {
		return c.defaultBucket // most frames: no string built per frame
	}
	return c.defaultBucket[:len(c.defaultBucket)-1] + rule
}

// bucketPrefix is the start of c's bucket keys under the configured KeyBy.
func bucketPrefix(by KeyBy, c *Conn) string {
	switch by {
	case PerUser:
		return "u:" + c.userID + ":"
	case PerIP:
		return "ip:" + c.ip + ":"
	}
	return connKeyPrefix + c.id + ":"
}

// lookup returns the rule a frame of kind and name gets from the Default,
// RPC and Events options, and the name of its bucket.
func (rl *RateLimit) lookup(kind, name string) (Rule, string) {
	switch kind {
	case "rpc":
		if r, ok := rl.RPC[name]; ok {
			return r, "rpc:" + name
		}
	case "event":
		if r, ok := rl.Events[name]; ok {
			return r, "evt:" + name
		}
	}
	return rl.Default, "*"
}

// allow checks one frame against the rule named (e.g. "rpc:add") or the
// default. It reports whether the frame may pass; when it may not, it has
// already answered ERROR, and the caller answers the RPC if it is one.
func (c *Conn) allow(kind, name string, correlationID uint32) (bool, time.Duration) {
	rl := &c.s.opts.RateLimit
	if rl.Disabled {
		return true, 0
	}
	rule, bucket := rl.lookup(kind, name)
	var key string
	if rl.Rule != nil || rl.Key != nil {
		rule, key = c.chooseRate(rl, RateFrame{Conn: c, Kind: kind, Name: name}, rule)
	}
	if key == "" {
		key = c.bucketKey(bucket)
	}
	ok, retry, err := rl.Limiter.Allow(c.ctx, key, rule)
	if err != nil { // the limiter's store is down: fail open, but say so
		c.s.backendError("ratelimit", err)
		return true, 0
	}
	if ok {
		c.refusedInARow = 0
		return true, 0
	}
	c.s.obs.FrameRefused("rate-limited")
	ms := int64(math.Ceil(float64(retry) / float64(time.Millisecond)))
	c.sendErrorBody(correlationID, "Rate limit exceeded", "rate-limited", ms)
	if c.refusedInARow++; c.refusedInARow >= rl.CloseAfter {
		c.setCloseReason("abuse")
		c.closeNow(ClosePolicyViolation, "rate limit exceeded")
	}
	return false, retry
}

// chooseRate runs the application's Rule and Key functions for f. A rule
// it cannot use, or a function that panics, leaves the default choice in
// place (and is logged sampled): a bug there must neither take the
// connection down nor turn the limiter off.
func (c *Conn) chooseRate(rl *RateLimit, f RateFrame, def Rule) (rule Rule, key string) {
	rule = def
	defer func() {
		if p := recover(); p != nil {
			c.s.logSampled("datasole: RateLimit.Rule or RateLimit.Key panicked; the default applies", "kind", f.Kind, "name", f.Name, "panic", p)
			rule, key = def, ""
		}
	}()
	if rl.Rule != nil {
		if r := rl.Rule(f); r != (Rule{}) {
			if field, problem := r.problem(); problem != "" {
				c.s.logSampled("datasole: RateLimit.Rule returned an invalid rule; the default applies", "kind", f.Kind, "name", f.Name, "field", "Rule"+field, "value", r.value(field), "problem", problem)
			} else {
				rule = r
			}
		}
	}
	if rl.Key != nil {
		key = rl.Key(f)
	}
	return rule, key
}
