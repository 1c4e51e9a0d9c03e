package datasole

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/datasole/datasole-go/datasole/protocol"
)

// PresenceOptions configures presence for the tags TrackPresence names (or
// for users, TrackUserPresence).
type PresenceOptions struct {
	// Info returns what an entry shows besides its connection and user id —
	// selected principal metadata, say (never secrets: every member of the
	// tag may list it). At most 4 KiB of JSON. Default: nothing.
	Info func(c *Conn) any
	// Events sends "$ds.join" and "$ds.leave" events (data {tag, conn,
	// user, info}) to the tag's connections when a connection joins or
	// leaves. Default false.
	Events bool
}

// PresenceEntry is one connection in a presence set.
type PresenceEntry struct {
	ConnID string          `json:"conn"`
	UserID string          `json:"user"`
	Info   json.RawMessage `json:"info,omitempty"`
}

// PresenceStats counts a presence set without listing it.
type PresenceStats struct {
	Connections int `json:"conns"`
	Users       int `json:"users"`
}

// ErrNoPresence is returned when the backend keeps no presence (it does not
// implement backend.Presence) or a tag is not tracked.
var ErrNoPresence = errors.New("datasole: no presence for this tag")

// presence tracks who is in the tracked tags, in the backend, so that every
// node can list them. Entries are written by one worker goroutine in order
// (a connection's join is never written after its leave), so that tagging a
// connection never waits on the backend. Liveness is kept per node: one
// KeepNodeAlive every third of the TTL refreshes all of this node's
// entries, and when a node dies its entries vanish within the TTL.
type presence struct {
	mu     sync.Mutex
	tags   []presenceRule
	users  *PresenceOptions
	ops    []presenceOp
	wake   chan struct{}
	stop   chan struct{}
	done   chan struct{}
	active bool // the worker runs
}

type presenceRule struct {
	tag    string // exact, or a prefix when prefix is set
	prefix bool
	opts   PresenceOptions
}

type presenceOp struct {
	set   string
	entry backend.PresenceEntry // add when ConnID is set with add
	add   bool
}

// maxPresenceOps bounds the operations waiting for the backend.
const maxPresenceOps = 100_000

// TrackPresence tracks who is in tag — a tag ending in "*" tracks every tag
// with that prefix ("room:*"): Presence and PresenceStats list it on any
// node, and with Events the tag's connections get join and leave events.
func (s *Server) TrackPresence(tag string, o PresenceOptions) error {
	if _, ok := s.opts.Backend.(backend.Presence); !ok {
		return s.registrationFailed(fmt.Errorf("%w: the backend (%T) does not implement backend.Presence", ErrNoPresence, s.opts.Backend))
	}
	if tag == "" {
		return s.registrationFailed(fmt.Errorf("%w: presence needs a tag", ErrInvalidRegistration))
	}
	p := &s.presence
	p.mu.Lock()
	defer p.mu.Unlock()
	prefix, isPrefix := strings.CutSuffix(tag, "*")
	p.tags = append(p.tags, presenceRule{tag: prefix, prefix: isPrefix, opts: o})
	return nil
}

// TrackUserPresence tracks every user's connections (their devices and
// tabs): UserPresence lists them on any node.
func (s *Server) TrackUserPresence(o PresenceOptions) error {
	if _, ok := s.opts.Backend.(backend.Presence); !ok {
		return s.registrationFailed(fmt.Errorf("%w: the backend (%T) does not implement backend.Presence", ErrNoPresence, s.opts.Backend))
	}
	s.presence.mu.Lock()
	s.presence.users = &o
	s.presence.mu.Unlock()
	return nil
}

// ruleOf returns the options of a tracked tag.
func (p *presence) ruleOf(tag string) (PresenceOptions, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.tags {
		if r.tag == tag || (r.prefix && strings.HasPrefix(tag, r.tag)) {
			return r.opts, true
		}
	}
	return PresenceOptions{}, false
}

func (p *presence) userRule() (PresenceOptions, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.users == nil {
		return PresenceOptions{}, false
	}
	return *p.users, true
}

func tagSet(tag string) string     { return "t:" + tag }
func userSet(userID string) string { return "u:" + userID }

// presenceEntryOf is c's presence entry under o.
func (s *Server) presenceEntryOf(c *Conn, o PresenceOptions) backend.PresenceEntry {
	e := backend.PresenceEntry{ConnID: c.id, UserID: c.userID, NodeID: s.nodeID}
	if o.Info != nil {
		if b, err := json.Marshal(o.Info(c)); err == nil && len(b) <= backend.MaxPresenceInfo && string(b) != "null" {
			e.Info = b
		}
	}
	return e
}

// presenceJoined and presenceLeft run when c gets or loses tag.
func (s *Server) presenceJoined(c *Conn, tag string) {
	o, ok := s.presence.ruleOf(tag)
	if !ok {
		return
	}
	e := s.presenceEntryOf(c, o)
	s.queuePresence(presenceOp{set: tagSet(tag), entry: e, add: true})
	if o.Events {
		s.presenceEvent("$ds.join", tag, e)
	}
}

func (s *Server) presenceLeft(c *Conn, tag string) {
	o, ok := s.presence.ruleOf(tag)
	if !ok {
		return
	}
	e := backend.PresenceEntry{ConnID: c.id, UserID: c.userID}
	s.queuePresence(presenceOp{set: tagSet(tag), entry: e})
	if o.Events {
		s.presenceEvent("$ds.leave", tag, e)
	}
}

// presenceOpened and presenceClosed track a connection's user.
func (s *Server) presenceOpened(c *Conn) {
	if o, ok := s.presence.userRule(); ok {
		s.queuePresence(presenceOp{set: userSet(c.userID), entry: s.presenceEntryOf(c, o), add: true})
	}
}

func (s *Server) presenceClosed(c *Conn, tags []string) {
	for _, t := range tags {
		s.presenceLeft(c, t)
	}
	if _, ok := s.presence.userRule(); ok {
		s.queuePresence(presenceOp{set: userSet(c.userID), entry: backend.PresenceEntry{ConnID: c.id}})
	}
}

// presenceEvent sends a join or leave event to the tag's connections (never
// kept in history: presence is its own record).
func (s *Server) presenceEvent(name, tag string, e backend.PresenceEntry) {
	data, _ := json.Marshal(struct {
		Tag  string          `json:"tag"`
		Conn string          `json:"conn"`
		User string          `json:"user"`
		Info json.RawMessage `json:"info,omitempty"`
	}{tag, e.ConnID, e.UserID, e.Info})
	payload, _ := marshal(protocol.Event{Event: name, Data: data, Timestamp: time.Now().UnixMilli()})
	msg, err := protocol.Encode(protocol.EventS2C, 0, payload)
	if err != nil {
		return
	}
	t := ToTag(tag)
	s.deliver(t, protocol.EventS2C, msg)
	s.pub.enqueue(&busMsg{kind: busFrame, target: t, op: protocol.EventS2C, msg: msg})
}

// queuePresence queues an entry change for the worker, starting it.
func (s *Server) queuePresence(op presenceOp) {
	p := &s.presence
	p.mu.Lock()
	if len(p.ops) >= maxPresenceOps {
		p.mu.Unlock()
		s.backendError("presence-overflow", errors.New("presence queue full"))
		return
	}
	p.ops = append(p.ops, op)
	start := !p.active && p.stop != nil
	if start {
		p.active = true
	}
	p.mu.Unlock()
	if start {
		s.bg.Add(1)
		go s.runPresence()
	}
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// startPresence prepares the worker (Start); it runs from the first entry.
func (s *Server) startPresence() {
	p := &s.presence
	p.mu.Lock()
	p.wake = make(chan struct{}, 1)
	p.stop = make(chan struct{})
	p.done = make(chan struct{})
	p.mu.Unlock()
}

// runPresence writes queued entry changes in order and keeps this node's
// entries alive; when the node's liveness had lapsed (the backend lost it,
// or this node could not reach it for a TTL), it adds its entries again.
func (s *Server) runPresence() {
	defer s.bg.Done()
	p := &s.presence
	p.mu.Lock()
	stop := p.stop
	p.mu.Unlock()
	if stop == nil {
		return
	}
	b := s.opts.Backend.(backend.Presence)
	ttl := s.opts.PresenceTTL
	keepalive := time.NewTicker(ttl / 3)
	defer keepalive.Stop()
	alive := func() {
		ctx, cancel := context.WithTimeout(s.ctx, busTimeout)
		defer cancel()
		lapsed, err := b.KeepNodeAlive(ctx, s.nodeID, ttl)
		if err != nil {
			s.backendError("presence", err)
			return
		}
		if lapsed {
			s.readdPresence()
		}
	}
	alive()
	for {
		select {
		case <-p.wake:
		case <-keepalive.C:
			alive()
			continue
		case <-stop:
			return
		}
		for {
			p.mu.Lock()
			if len(p.ops) == 0 {
				p.mu.Unlock()
				break
			}
			op := p.ops[0]
			p.mu.Unlock()
			ctx, cancel := context.WithTimeout(s.ctx, busTimeout)
			var err error
			if op.add {
				err = b.AddPresence(ctx, op.set, op.entry)
			} else {
				err = b.RemovePresence(ctx, op.set, op.entry.ConnID)
			}
			cancel()
			if err != nil && s.ctx.Err() == nil {
				s.backendError("presence", err)
				select { // the backend is down: try again in a while
				case <-time.After(time.Second):
					continue
				case <-stop:
					return
				}
			}
			p.mu.Lock()
			p.ops = p.ops[1:]
			p.mu.Unlock()
			if op.add {
				s.obs.PresenceChanged(+1)
			} else {
				s.obs.PresenceChanged(-1)
			}
		}
	}
}

// readdPresence queues this node's entries again after its liveness lapsed.
func (s *Server) readdPresence() {
	for _, c := range s.hub.all() {
		for _, t := range c.Tags() {
			if o, ok := s.presence.ruleOf(t); ok {
				s.queuePresence(presenceOp{set: tagSet(t), entry: s.presenceEntryOf(c, o), add: true})
			}
		}
		if o, ok := s.presence.userRule(); ok {
			s.queuePresence(presenceOp{set: userSet(c.userID), entry: s.presenceEntryOf(c, o), add: true})
		}
	}
}

// closePresence stops the worker; entries of this node expire within the
// TTL (its connections were closed with leave events already).
func (s *Server) closePresence() {
	p := &s.presence
	p.mu.Lock()
	if p.stop != nil {
		close(p.stop)
		p.stop = nil
	}
	p.mu.Unlock()
}

// Presence lists the connections in tag, across the cluster.
func (s *Server) Presence(ctx context.Context, tag string) ([]PresenceEntry, error) {
	if _, ok := s.presence.ruleOf(tag); !ok {
		return nil, ErrNoPresence
	}
	return s.listPresence(ctx, tagSet(tag))
}

// UserPresence lists a user's connections, across the cluster
// (TrackUserPresence).
func (s *Server) UserPresence(ctx context.Context, userID string) ([]PresenceEntry, error) {
	if _, ok := s.presence.userRule(); !ok {
		return nil, ErrNoPresence
	}
	return s.listPresence(ctx, userSet(userID))
}

func (s *Server) listPresence(ctx context.Context, set string) ([]PresenceEntry, error) {
	es, err := s.opts.Backend.(backend.Presence).ListPresence(ctx, set, 0)
	if err != nil {
		return nil, s.storeFailed("presence", set, err)
	}
	out := make([]PresenceEntry, len(es))
	for i, e := range es {
		out[i] = PresenceEntry{ConnID: e.ConnID, UserID: e.UserID, Info: e.Info}
	}
	return out, nil
}

// PresenceStats counts the connections and distinct users in tag without
// listing them — for big rooms.
func (s *Server) PresenceStats(ctx context.Context, tag string) (PresenceStats, error) {
	if _, ok := s.presence.ruleOf(tag); !ok {
		return PresenceStats{}, ErrNoPresence
	}
	st, err := s.opts.Backend.(backend.Presence).PresenceStats(ctx, tagSet(tag))
	if err != nil {
		return PresenceStats{}, s.storeFailed("presence", tag, err)
	}
	return PresenceStats{Connections: st.Connections, Users: st.Users}, nil
}

// PresenceMethod and PresenceStatsMethod are the extension RPCs our clients
// call: params {"tag": t}; answered only for a connection carrying the tag.
const (
	PresenceMethod      = "$ds.presence"
	PresenceStatsMethod = "$ds.presence.stats"
)

// CodeNotMember answers a presence call for a tag the caller is not in.
const CodeNotMember = -32004

func (s *Server) registerPresence() {
	member := func(c *Context, params json.RawMessage) (string, error) {
		var p struct {
			Tag string `json:"tag"`
		}
		if err := decodeParams(params, &p); err != nil || p.Tag == "" {
			return "", &Error{Code: protocol.CodeInvalidParams, Message: "Invalid params: {tag}"}
		}
		if !c.conn.canSee(ForTag(p.Tag)) {
			return "", &Error{Code: CodeNotMember, Message: "Not a member of the tag"}
		}
		return p.Tag, nil
	}
	s.rpcs.Store(PresenceMethod, RPCFunc(func(c *Context, params json.RawMessage) (any, error) {
		tag, err := member(c, params)
		if err != nil {
			return nil, err
		}
		entries, err := s.Presence(c, tag)
		if errors.Is(err, ErrNoPresence) {
			return nil, &Error{Code: protocol.CodeInvalidParams, Message: "Presence is not tracked for this tag"}
		}
		if err != nil {
			return nil, err
		}
		return map[string]any{"entries": entries}, nil
	}))
	s.rpcs.Store(PresenceStatsMethod, RPCFunc(func(c *Context, params json.RawMessage) (any, error) {
		tag, err := member(c, params)
		if err != nil {
			return nil, err
		}
		st, err := s.PresenceStats(c, tag)
		if errors.Is(err, ErrNoPresence) {
			return nil, &Error{Code: protocol.CodeInvalidParams, Message: "Presence is not tracked for this tag"}
		}
		return st, err
	}))
}
