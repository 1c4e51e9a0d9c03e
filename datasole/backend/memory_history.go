package backend

import (
	"context"
	"time"
)

// memStream is one history stream of the memory backend: its latest
// entries in order, entries[0] having offset first.
type memStream struct {
	epoch         string
	top           uint64
	first         uint64
	entries       [][]byte
	entriesExpire time.Time // zero: never
	metaExpire    time.Time // zero: never
}

func expired(t, now time.Time) bool { return !t.IsZero() && !t.After(now) }

// stream returns the live stream under key, creating it with a fresh epoch
// when it is missing or its metadata expired, and dropping its entries when
// they expired. The store lock must be held.
func (s *memStore) stream(key string, o StreamOptions, now time.Time) *memStream {
	st := s.streams[key]
	if st == nil || expired(st.metaExpire, now) {
		st = &memStream{epoch: NewEpoch(), first: 1}
		if o.MetaTTL > 0 {
			st.metaExpire = now.Add(o.MetaTTL)
		}
		s.streams[key] = st
	}
	if expired(st.entriesExpire, now) {
		clear(st.entries)
		st.entries, st.first, st.entriesExpire = nil, st.top+1, time.Time{}
	}
	return st
}

func (s *memStore) sweepStreams(now time.Time) {
	for k, st := range s.streams {
		if expired(st.metaExpire, now) {
			delete(s.streams, k)
		}
	}
}

// AppendPublish implements History. The store lock orders appends and
// publications together, so every subscriber sees a stream's messages in
// offset order.
func (m *Memory) AppendPublish(ctx context.Context, stream, channel string, data []byte, o StreamOptions) (Position, error) {
	o, err := o.Resolve()
	if err != nil {
		return Position{}, err
	}
	if err := m.check(ctx); err != nil {
		return Position{}, err
	}
	now := m.store.lock()
	defer m.store.mu.Unlock()
	st := m.store.stream(m.prefix+stream, o, now)
	st.top++
	st.entries = append(st.entries, append([]byte(nil), data...))
	if over := len(st.entries) - o.Size; over > 0 {
		clear(st.entries[:over])
		st.entries = st.entries[over:]
		st.first += uint64(over)
	}
	if o.TTL > 0 {
		st.entriesExpire = now.Add(o.TTL)
		st.metaExpire = now.Add(o.MetaTTL)
	} else {
		st.entriesExpire, st.metaExpire = time.Time{}, time.Time{}
	}
	pos := Position{Epoch: st.epoch, Offset: st.top}
	if channel != "" {
		m.publishLocked(channel, EncodeStreamEnvelope(stream, pos, data))
	}
	return pos, nil
}

// ReadHistory implements History.
func (m *Memory) ReadHistory(ctx context.Context, stream string, since Position, limit int, o StreamOptions) ([]HistoryEntry, Position, error) {
	o, err := o.Resolve()
	if err != nil {
		return nil, Position{}, err
	}
	if err := m.check(ctx); err != nil {
		return nil, Position{}, err
	}
	now := m.store.lock()
	defer m.store.mu.Unlock()
	st := m.store.stream(m.prefix+stream, o, now)
	top := Position{Epoch: st.epoch, Offset: st.top}
	if since.Epoch == "" {
		return nil, top, nil
	}
	if since.Epoch != st.epoch || since.Offset > st.top || since.Offset+1 < st.first {
		return nil, top, ErrUnrecoverable
	}
	kept := st.entries[since.Offset+1-st.first:]
	if limit > 0 && len(kept) > limit {
		kept = kept[:limit]
	}
	out := make([]HistoryEntry, len(kept))
	for i, d := range kept {
		out[i] = HistoryEntry{Offset: since.Offset + 1 + uint64(i), Data: append([]byte(nil), d...)}
	}
	return out, top, nil
}
