package client

import (
	"context"
	"encoding/json"
	"slices"
	"sync"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/protocol"
)

// Events to targets the server keeps history of (datasole.KeepHistory)
// carry a position: a stream, an epoch and an offset that grows by one. The
// client delivers them exactly once and in order: it drops an offset it has
// delivered, holds back one that skips ahead and asks the server for what
// it missed ($ds.recover), and after every reconnect — to any node — asks
// again for every stream it has seen. When the missed events are no longer
// kept (the window passed, the history was lost), OnRecover reports
// recovered false: the app reloads what it shows.

// history tracks the position of every stream the client has seen.
type history struct {
	mu        sync.Mutex
	streams   map[string]*stream
	onRecover []func(stream string, recovered bool)
}

type stream struct {
	epoch      string
	offset     uint64           // of the last event delivered
	held       []protocol.Event // ahead of offset, by offset
	recovering bool
}

// arrive takes an event with a position and returns the events to deliver
// now, in order, and whether a recovery of its stream must start.
func (h *history) arrive(ev protocol.Event) (deliver []protocol.Event, recover bool) {
	p := ev.Pos
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.streams == nil {
		h.streams = make(map[string]*stream)
	}
	st := h.streams[p.Stream]
	if st == nil { // the first event seen of a stream: start there
		h.streams[p.Stream] = &stream{epoch: p.Epoch, offset: p.Offset}
		return []protocol.Event{ev}, false
	}
	if p.Epoch == st.epoch && p.Offset <= st.offset {
		return nil, false // delivered already
	}
	if p.Epoch == st.epoch && p.Offset == st.offset+1 {
		st.offset = p.Offset
		return append([]protocol.Event{ev}, st.drain()...), false
	}
	st.hold(ev) // a gap, or another epoch: hold it and recover
	if st.recovering {
		return nil, false
	}
	st.recovering = true
	return nil, true
}

func (st *stream) hold(ev protocol.Event) {
	i, found := slices.BinarySearchFunc(st.held, ev.Pos.Offset, func(e protocol.Event, o uint64) int {
		switch {
		case e.Pos.Offset < o:
			return -1
		case e.Pos.Offset > o:
			return 1
		}
		return 0
	})
	if !found && len(st.held) < maxHeld {
		st.held = slices.Insert(st.held, i, ev)
	}
}

// maxHeld bounds the events held back per stream while a recovery runs.
const maxHeld = 10_000

// drain returns the held events that now follow offset.
func (st *stream) drain() []protocol.Event {
	var out []protocol.Event
	for len(st.held) > 0 {
		e := st.held[0]
		if e.Pos.Epoch != st.epoch || e.Pos.Offset > st.offset+1 {
			break
		}
		st.held = st.held[1:]
		if e.Pos.Offset == st.offset+1 {
			st.offset++
			out = append(out, e)
		}
	}
	return out
}

// positions returns the stream positions to recover (names nil: all).
func (h *history) positions(names []string) map[string]map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]map[string]any)
	for name, st := range h.streams {
		if names != nil && !slices.Contains(names, name) {
			continue
		}
		st.recovering = true
		out[name] = map[string]any{"e": st.epoch, "o": st.offset}
	}
	return out
}

type recoverAnswer struct {
	Recovered bool   `json:"recovered"`
	Visible   *bool  `json:"visible"`
	Epoch     string `json:"e"`
	Offset    uint64 `json:"o"`
}

// settle applies the server's answer for one stream; the replayed events
// arrived before it. It returns what can be delivered now and whether the
// stream still has a gap to recover.
func (h *history) settle(name string, a recoverAnswer) (deliver []protocol.Event, again bool, report *bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.streams[name]
	if st == nil {
		return nil, false, nil
	}
	st.recovering = false
	switch {
	case a.Visible != nil && !*a.Visible:
		return nil, false, nil // not in the stream's target (yet): the next live event retries
	case !a.Recovered: // start again from the server's top, what is held beyond it still counts
		st.epoch, st.offset = a.Epoch, a.Offset
		st.held = slices.DeleteFunc(st.held, func(e protocol.Event) bool { return e.Pos.Epoch != st.epoch || e.Pos.Offset <= st.offset })
		no := false
		report = &no
	default:
		yes := true
		report = &yes
	}
	deliver = st.drain()
	if len(st.held) > 0 { // still a gap: more was lost after the answer's top
		st.recovering = true
		return deliver, true, report
	}
	return deliver, false, report
}

// deliverEvent hands an event to the listeners of its name.
func (c *Client) deliverEvent(ev protocol.Event) {
	data := ev.Data
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	c.mu.Lock()
	ls := c.events[ev.Event]
	c.mu.Unlock()
	for _, l := range ls {
		l.fn(data)
	}
}

// handleEvent delivers an EVENT_S2C, through the history rules when it
// carries a position.
func (c *Client) handleEvent(ev protocol.Event) {
	if ev.Pos == nil {
		c.deliverEvent(ev)
		return
	}
	now, recover := c.hist.arrive(ev)
	for _, e := range now {
		c.deliverEvent(e)
	}
	if recover {
		go c.recover(context.Background(), []string{ev.Pos.Stream})
	}
}

// recoverStreams runs after a reconnect: every stream seen is recovered.
func (c *Client) recoverStreams(ctx context.Context, reconnect bool) {
	if reconnect {
		c.recover(ctx, nil)
	}
}

// recover asks the server for the events missed on the named streams (nil:
// every stream seen), which it replays before answering.
func (c *Client) recover(ctx context.Context, names []string) {
	all := c.hist.positions(names)
	// The server takes at most 64 streams per call.
	for len(all) > 0 {
		pos := make(map[string]map[string]any, min(len(all), maxRecoverStreams))
		for name, p := range all {
			if len(pos) == maxRecoverStreams {
				break
			}
			pos[name] = p
			delete(all, name)
		}
		c.recoverSome(ctx, pos)
	}
}

// maxRecoverStreams is the most streams one $ds.recover call may name.
const maxRecoverStreams = 64

func (c *Client) recoverSome(ctx context.Context, pos map[string]map[string]any) {
	var res struct {
		Streams map[string]recoverAnswer `json:"streams"`
	}
	err := c.Call(ctx, datasole.RecoverMethod, map[string]any{"streams": pos}, &res)
	if err != nil {
		c.log.Debug("datasole client: recovery failed; the next reconnect or gap retries", "err", err)
		c.hist.mu.Lock()
		for name := range pos {
			if st := c.hist.streams[name]; st != nil {
				st.recovering = false
			}
		}
		c.hist.mu.Unlock()
		return
	}
	var again []string
	for name := range pos {
		now, more, report := c.hist.settle(name, res.Streams[name])
		for _, e := range now {
			c.deliverEvent(e)
		}
		if more {
			again = append(again, name)
		}
		if report != nil {
			c.hist.mu.Lock()
			fns := slices.Clone(c.hist.onRecover)
			c.hist.mu.Unlock()
			for _, fn := range fns {
				fn(name, *report)
			}
		}
	}
	if len(again) > 0 {
		go c.recover(context.Background(), again)
	}
}

// OnRecover calls fn after every recovery of a stream (after a reconnect
// or a gap), with whether every missed event was delivered. recovered false
// means events were lost for good (the server's window passed, or its
// history was lost): reload what depends on the stream. Streams are named
// "a" (events to everyone), "u:<user>" and "t:<tag>".
func (c *Client) OnRecover(fn func(stream string, recovered bool)) {
	c.hist.mu.Lock()
	c.hist.onRecover = append(c.hist.onRecover, fn)
	c.hist.mu.Unlock()
}

// Presence lists the connections in tag across the server's nodes; the
// client must be in the tag, and the server must track it
// (datasole.TrackPresence).
func (c *Client) Presence(ctx context.Context, tag string) ([]datasole.PresenceEntry, error) {
	var res struct {
		Entries []datasole.PresenceEntry `json:"entries"`
	}
	err := c.Call(ctx, datasole.PresenceMethod, map[string]string{"tag": tag}, &res)
	return res.Entries, err
}

// PresenceStats counts the connections and users in tag without listing
// them.
func (c *Client) PresenceStats(ctx context.Context, tag string) (datasole.PresenceStats, error) {
	var st datasole.PresenceStats
	err := c.Call(ctx, datasole.PresenceStatsMethod, map[string]string{"tag": tag}, &st)
	return st, err
}

// PresenceChange is a join or a leave in a tracked tag.
type PresenceChange struct {
	Tag    string          `json:"tag"`
	ConnID string          `json:"conn"`
	UserID string          `json:"user"`
	Info   json.RawMessage `json:"info,omitempty"`
}

// OnJoin calls fn when a connection joins tag (the server must track it
// with events on).
func (c *Client) OnJoin(tag string, fn func(PresenceChange)) (off func()) {
	return c.onPresence("$ds.join", tag, fn)
}

// OnLeave calls fn when a connection leaves tag.
func (c *Client) OnLeave(tag string, fn func(PresenceChange)) (off func()) {
	return c.onPresence("$ds.leave", tag, fn)
}

func (c *Client) onPresence(event, tag string, fn func(PresenceChange)) (off func()) {
	return c.OnRaw(event, func(data json.RawMessage) {
		var pc PresenceChange
		if json.Unmarshal(data, &pc) == nil && pc.Tag == tag {
			fn(pc)
		}
	})
}
