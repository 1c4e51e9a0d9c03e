package backend

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Compose returns a Backend that keeps data in store and exchanges messages
// over bus, for example state in Postgres and the bus on Redis:
//
//   - Get, Set, CompareAndSet, Delete, Incr, Keys and GetMany go to store
//     (GetMany falls back to one Get per key when store has no BatchGetter);
//   - Publish, Subscribe and OnGap go to bus (OnGap registers nothing when
//     bus has no GapNotifier);
//   - Presence is store's, when store implements it;
//   - History, when store implements it, appends to store's stream and then
//     publishes the envelope on bus. These are two steps, so appends to one
//     stream from several nodes may reach subscribers out of offset order;
//     the result implements UnorderedHistory to say so. Subscribers that see
//     an offset jump recover the missing entries with ReadHistory and drop
//     offsets they have seen. If publishing fails after the append, the
//     entry stays in the history and AppendPublish returns its position
//     with the error.
//
// Close closes both backends (once, if they are the same). Both must use
// the same namespace prefix on every node.
func Compose(store, bus Backend) Backend {
	c := &composite{store: store, bus: bus}
	h, hasHistory := store.(History)
	p, hasPresence := store.(Presence)
	switch {
	case hasHistory && hasPresence:
		return &composedAll{c, composedHistory{h, bus}, p}
	case hasHistory:
		return &composedWithHistory{c, composedHistory{h, bus}}
	case hasPresence:
		return &composedWithPresence{c, p}
	}
	return c
}

// composite is the part of every Compose result.
type composite struct {
	store, bus Backend
}

var (
	_ BatchGetter      = (*composite)(nil)
	_ GapNotifier      = (*composite)(nil)
	_ UnorderedHistory = (*composedWithHistory)(nil)
	_ Presence         = (*composedWithPresence)(nil)
	_ UnorderedHistory = (*composedAll)(nil)
	_ Presence         = (*composedAll)(nil)
)

type composedWithHistory struct {
	*composite
	composedHistory
}

type composedWithPresence struct {
	*composite
	Presence
}

type composedAll struct {
	*composite
	composedHistory
	Presence
}

func (c *composite) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	return c.store.Get(ctx, key)
}

func (c *composite) Set(ctx context.Context, key string, value []byte, ttl time.Duration) (uint64, error) {
	return c.store.Set(ctx, key, value, ttl)
}

func (c *composite) CompareAndSet(ctx context.Context, key string, value []byte, expect uint64, ttl time.Duration) (uint64, error) {
	return c.store.CompareAndSet(ctx, key, value, expect, ttl)
}

func (c *composite) Delete(ctx context.Context, key string) error {
	return c.store.Delete(ctx, key)
}

func (c *composite) Incr(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	return c.store.Incr(ctx, key, delta, ttl)
}

func (c *composite) Keys(ctx context.Context, prefix string) ([]string, error) {
	return c.store.Keys(ctx, prefix)
}

func (c *composite) GetMany(ctx context.Context, keys []string) ([]Versioned, error) {
	return GetMany(ctx, c.store, keys)
}

func (c *composite) Publish(ctx context.Context, channel string, msg []byte) error {
	return c.bus.Publish(ctx, channel, msg)
}

func (c *composite) Subscribe(ctx context.Context, channel string, handler func(msg []byte)) (func(), error) {
	return c.bus.Subscribe(ctx, channel, handler)
}

func (c *composite) OnGap(fn func()) {
	if g, ok := c.bus.(GapNotifier); ok {
		g.OnGap(fn)
	}
}

func (c *composite) Close() error {
	err := c.store.Close()
	if c.bus != c.store {
		err = errors.Join(err, c.bus.Close())
	}
	return err
}

// composedHistory appends to the store's stream without publishing there,
// then publishes on the bus.
type composedHistory struct {
	store History
	bus   Backend
}

func (h composedHistory) AppendPublish(ctx context.Context, stream, channel string, data []byte, o StreamOptions) (Position, error) {
	pos, err := h.store.AppendPublish(ctx, stream, "", data, o)
	if err != nil || channel == "" {
		return pos, err
	}
	if err := h.bus.Publish(ctx, channel, EncodeStreamEnvelope(stream, pos, data)); err != nil {
		return pos, fmt.Errorf("backend: appended at offset %d but not published: %w", pos.Offset, err)
	}
	return pos, nil
}

func (h composedHistory) ReadHistory(ctx context.Context, stream string, since Position, limit int, o StreamOptions) ([]HistoryEntry, Position, error) {
	return h.store.ReadHistory(ctx, stream, since, limit, o)
}

func (composedHistory) UnorderedHistory() {}
