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

// History configures the event history of a target. Every event sent to a
// kept target is stored in a bounded stream in the backend with a position
// (an epoch and an offset that grows by one, unique across the cluster);
// our clients remember the last position they saw and, after a reconnect —
// to any node — get exactly the events they missed, in order, before live
// ones, or learn that they cannot ("recovered: false") and reload.
type History struct {
	// Size is how many of the latest events are kept. Default 1,000; at
	// most 1,048,576.
	Size int
	// TTL is how long events are kept after the last one. Default 0: as
	// long as the backend keeps its data (within Size).
	TTL time.Duration
}

// historyRules maps targets to their history options: exact targets, and
// prefixes ("room:*") for users and tags.
type historyRules struct {
	mu     sync.RWMutex
	exact  map[Target]backend.StreamOptions
	prefix []historyPrefix
}

type historyPrefix struct {
	kind   targetKind
	prefix string
	opts   backend.StreamOptions
}

// ErrNoHistory is returned by KeepHistory when the backend keeps no history
// (it does not implement backend.History), and by History for a target
// that is not kept.
var ErrNoHistory = errors.New("datasole: no history for this target")

// KeepHistory keeps the events sent to t: ToAll(), ToUser(id) or
// ToTag(tag). An id or tag ending in "*" keeps every user or tag with that
// prefix ("room:*"). Events to a kept target reach local connections
// through the backend too, so that every node delivers them in the same
// order; positions travel to clients as the extension member "pos" of
// EVENT_S2C, which v1 clients ignore.
func (s *Server) KeepHistory(t Target, h History) error {
	if _, ok := s.opts.Backend.(backend.History); !ok {
		return s.registrationFailed(fmt.Errorf("%w: the backend (%T) does not implement backend.History", ErrNoHistory, s.opts.Backend))
	}
	if t.kind == targetConn {
		return s.registrationFailed(fmt.Errorf("%w: history is kept for ToAll, ToUser and ToTag, not one connection", ErrInvalidRegistration))
	}
	o, err := backend.StreamOptions{Size: h.Size, TTL: h.TTL}.Resolve()
	if err != nil {
		return s.registrationFailed(fmt.Errorf("%w: %w", ErrInvalidRegistration, err))
	}
	r := &s.kept
	r.mu.Lock()
	defer r.mu.Unlock()
	if prefix, ok := strings.CutSuffix(t.id, "*"); ok && t.kind != targetAll {
		r.prefix = append(r.prefix, historyPrefix{t.kind, prefix, o})
		return nil
	}
	if r.exact == nil {
		r.exact = make(map[Target]backend.StreamOptions)
	}
	r.exact[t] = o
	return nil
}

// historyOf returns the history options of t, if it is kept.
func (s *Server) historyOf(t Target) (backend.StreamOptions, bool) {
	r := &s.kept
	r.mu.RLock()
	defer r.mu.RUnlock()
	if o, ok := r.exact[t]; ok {
		return o, true
	}
	for _, p := range r.prefix {
		if p.kind == t.kind && strings.HasPrefix(t.id, p.prefix) {
			return p.opts, true
		}
	}
	return backend.StreamOptions{}, false
}

// streamOf names the history stream of a target; targetOf reverses it.
func streamOf(t Target) string {
	switch t.kind {
	case targetUser:
		return "u:" + t.id
	case targetTag:
		return "t:" + t.id
	}
	return "a"
}

func targetOf(stream string) (Target, bool) {
	switch {
	case stream == "a":
		return ToAll(), true
	case strings.HasPrefix(stream, "u:"):
		return ToUser(stream[2:]), true
	case strings.HasPrefix(stream, "t:"):
		return ToTag(stream[2:]), true
	}
	return Target{}, false
}

// historyKey is where a stream lives in the backend.
func historyKey(stream string) string { return "hist:" + stream }

// sendKept hands an event for a kept target to the publisher, which
// appends it to the target's stream and publishes it; every node, this one
// included, delivers it when it comes back from the bus.
func (s *Server) sendKept(t Target, event string, data json.RawMessage, at int64) {
	s.pub.enqueue(&busMsg{kind: busHistory, target: t, key: event, value: data, version: uint64(at)})
}

// appendHistory appends one kept event to its stream and publishes it. A
// call that failed on an unavailable backend may have been applied anyway:
// before it is tried again, the stream's latest entries are searched for
// it, so that an event is never stored twice.
func (p *publisher) appendHistory(m *busMsg) error {
	h := p.s.opts.Backend.(backend.History) // KeepHistory checked it
	o, ok := p.s.historyOf(m.target)
	if !ok { // no longer kept: any options will do for this last one
		o, _ = backend.StreamOptions{}.Resolve()
	}
	stream := historyKey(streamOf(m.target))
	data := encodeBus([]*busMsg{m})
	if m.appendTried {
		ctx, cancel := context.WithTimeout(p.ctx(), busTimeout)
		found, err := p.s.findAppended(ctx, stream, m, o)
		cancel()
		if err != nil {
			return err
		}
		if found {
			return nil
		}
	}
	m.appendTried = true
	ctx, cancel := context.WithTimeout(p.ctx(), busTimeout)
	defer cancel()
	_, err := h.AppendPublish(ctx, stream, busChannel, data, o)
	if err == nil {
		p.s.obs.HistoryAppended()
	}
	return err
}

// findAppended reports whether m is among the latest entries of stream.
func (s *Server) findAppended(ctx context.Context, stream string, m *busMsg, o backend.StreamOptions) (bool, error) {
	h := s.opts.Backend.(backend.History)
	_, top, err := h.ReadHistory(ctx, stream, backend.Position{}, 0, o)
	if err != nil {
		return false, err
	}
	const window = 256 // messages queued after m cannot have been appended before it
	since := backend.Position{Epoch: top.Epoch, Offset: top.Offset - min(top.Offset, window)}
	entries, _, err := h.ReadHistory(ctx, stream, since, window, o)
	if err != nil && !errors.Is(err, backend.ErrUnrecoverable) {
		return false, err
	}
	for _, e := range entries {
		msgs, derr := decodeBus(e.Data)
		if derr == nil && len(msgs) == 1 && msgs[0].origin == m.origin && msgs[0].seq == m.seq {
			return true, nil
		}
	}
	return false, nil
}

// onHistory delivers a kept event that came back from the bus, with its
// position, to this node's connections.
func (s *Server) onHistory(sm backend.StreamMessage) {
	msgs, err := decodeBus(sm.Data)
	if err != nil || len(msgs) != 1 || msgs[0].kind != busHistory {
		s.backendError("decode", errBadBusMsg)
		return
	}
	m := msgs[0]
	if s.peers.seen(m.origin, m.seq) {
		return // a publication repeated by a retry
	}
	stream := strings.TrimPrefix(sm.Stream, historyKey(""))
	msg, err := keptEventFrame(m, protocol.StreamPos{Stream: stream, Epoch: sm.Position.Epoch, Offset: sm.Position.Offset})
	if err != nil {
		s.backendError("decode", err)
		return
	}
	s.deliver(m.target, protocol.EventS2C, msg)
}

// keptEventFrame encodes the EVENT_S2C of a kept event at pos.
func keptEventFrame(m *busMsg, pos protocol.StreamPos) ([]byte, error) {
	payload, err := marshal(protocol.Event{Event: m.key, Data: m.value, Timestamp: int64(m.version), Pos: &pos})
	if err != nil {
		return nil, err
	}
	return protocol.Encode(protocol.EventS2C, 0, payload)
}

// History returns the events kept for t after since (an epoch and offset a
// client reported; the zero Position returns none, only the current top),
// oldest first, at most limit (0: all kept). It returns
// backend.ErrUnrecoverable, with the top, when they cannot all be returned.
func (s *Server) History(ctx context.Context, t Target, since backend.Position, limit int) ([]HistoryEvent, backend.Position, error) {
	o, ok := s.historyOf(t)
	if !ok {
		return nil, backend.Position{}, ErrNoHistory
	}
	entries, top, err := s.opts.Backend.(backend.History).ReadHistory(ctx, historyKey(streamOf(t)), since, limit, o)
	out := make([]HistoryEvent, 0, len(entries))
	for _, e := range entries {
		msgs, derr := decodeBus(e.Data)
		if derr != nil || len(msgs) != 1 {
			continue
		}
		m := msgs[0]
		out = append(out, HistoryEvent{Event: m.key, Data: m.value, Timestamp: int64(m.version),
			Position: backend.Position{Epoch: top.Epoch, Offset: e.Offset}})
	}
	return out, top, err
}

// HistoryEvent is one event of a target's history.
type HistoryEvent struct {
	Event     string
	Data      json.RawMessage
	Timestamp int64 // server milliseconds
	Position  backend.Position
}

// RecoverMethod is the extension RPC our clients call after a reconnect or
// an offset gap: params {"streams": {"<stream>": {"e": epoch, "o": offset}}};
// the server queues the missed EVENT_S2C frames (with their positions, in
// order) before its answer {"streams": {"<stream>": {"recovered": bool,
// "e": epoch, "o": top offset}}}. v1 clients never call it.
const RecoverMethod = "$ds.recover"

// maxRecoverStreams bounds the streams of one recovery call.
const maxRecoverStreams = 64

type recoverResult struct {
	Recovered bool   `json:"recovered"`
	Visible   *bool  `json:"visible,omitempty"`
	Epoch     string `json:"e,omitempty"`
	Offset    uint64 `json:"o"`
}

func (s *Server) registerRecover() {
	s.rpcs.Store(RecoverMethod, RPCFunc(func(c *Context, params json.RawMessage) (any, error) {
		var p struct {
			Streams map[string]struct {
				Epoch  string `json:"e"`
				Offset uint64 `json:"o"`
			} `json:"streams"`
		}
		if err := decodeParams(params, &p); err != nil || len(p.Streams) > maxRecoverStreams {
			return nil, &Error{Code: protocol.CodeInvalidParams, Message: fmt.Sprintf("Invalid params: at most %d streams of {e, o}", maxRecoverStreams)}
		}
		out := make(map[string]recoverResult, len(p.Streams))
		for stream, pos := range p.Streams {
			res, err := s.recoverStream(c, stream, backend.Position{Epoch: pos.Epoch, Offset: pos.Offset})
			if err != nil {
				return nil, err
			}
			out[stream] = res
		}
		return map[string]any{"streams": out}, nil
	}))
}

// recoverStream queues on c the kept events of stream after since.
func (s *Server) recoverStream(c *Context, stream string, since backend.Position) (recoverResult, error) {
	t, ok := targetOf(stream)
	_, kept := s.historyOf(t)
	if !ok || !kept || !c.conn.canSee(Scope(t)) {
		no := false
		return recoverResult{Visible: &no}, nil
	}
	events, top, err := s.History(c, t, since, 0)
	switch {
	case errors.Is(err, backend.ErrUnrecoverable):
		s.obs.Recovered(false)
		return recoverResult{Epoch: top.Epoch, Offset: top.Offset}, nil
	case err != nil:
		return recoverResult{}, s.storeFailed("history", stream, err)
	}
	for _, e := range events {
		m := &busMsg{key: e.Event, value: e.Data, version: uint64(e.Timestamp)}
		msg, err := keptEventFrame(m, protocol.StreamPos{Stream: stream, Epoch: e.Position.Epoch, Offset: e.Position.Offset})
		if err == nil {
			c.conn.enqueue(protocol.EventS2C, msg)
		}
	}
	s.obs.Recovered(true)
	return recoverResult{Recovered: true, Epoch: top.Epoch, Offset: top.Offset}, nil
}
