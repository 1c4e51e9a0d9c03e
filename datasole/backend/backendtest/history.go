package backendtest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole/backend"
)

func asHistory(t *testing.T, b backend.Backend) backend.History {
	t.Helper()
	h, ok := b.(backend.History)
	if !ok {
		t.Fatalf("%T does not implement History", b)
	}
	return h
}

func appendN(t *testing.T, h backend.History, stream string, n int, o backend.StreamOptions) []backend.Position {
	t.Helper()
	var out []backend.Position
	for i := range n {
		p, err := h.AppendPublish(ctxFor(t), stream, "", []byte("m"+strconv.Itoa(i+1)), o)
		if err != nil {
			t.Fatalf("AppendPublish #%d: %v", i+1, err)
		}
		out = append(out, p)
	}
	return out
}

func read(t *testing.T, h backend.History, stream string, since backend.Position, limit int, o backend.StreamOptions) ([]backend.HistoryEntry, backend.Position) {
	t.Helper()
	entries, top, err := h.ReadHistory(ctxFor(t), stream, since, limit, o)
	if err != nil {
		t.Fatalf("ReadHistory(%q, %+v, %d): %v", stream, since, limit, err)
	}
	return entries, top
}

func wantUnrecoverable(t *testing.T, h backend.History, stream string, since backend.Position, o backend.StreamOptions) backend.Position {
	t.Helper()
	entries, top, err := h.ReadHistory(ctxFor(t), stream, since, 0, o)
	if !errors.Is(err, backend.ErrUnrecoverable) {
		t.Fatalf("ReadHistory(%q, %+v) = %d entries, %v; want ErrUnrecoverable", stream, since, len(entries), err)
	}
	if top.Epoch == "" {
		t.Fatalf("ReadHistory(%q, %+v) returned ErrUnrecoverable without the current top", stream, since)
	}
	return top
}

// wantOffsets checks that entries hold the offsets from..to and the data
// appendN wrote for them.
func wantOffsets(t *testing.T, entries []backend.HistoryEntry, from, to uint64) {
	t.Helper()
	var got []uint64
	for _, e := range entries {
		got = append(got, e.Offset)
	}
	var want []uint64
	for o := from; o <= to; o++ {
		want = append(want, o)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("offsets %v, want %v", got, want)
	}
	for _, e := range entries {
		if string(e.Data) != "m"+strconv.FormatUint(e.Offset, 10) {
			t.Fatalf("entry %d holds %q", e.Offset, e.Data)
		}
	}
}

// eventually polls cond until it holds, for time-based behaviour (expiry
// on the server's clock) that has no event to wait on.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	const within = 10 * time.Second
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen within %v", what, within)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (s *suite) history(t *testing.T) {
	if _, ok := s.fresh(t).(backend.History); !ok {
		t.Skip("backend does not implement History")
	}
	o := backend.StreamOptions{Size: 100, TTL: time.Minute}
	t.Run("a new stream reads as a fresh epoch at offset 0, which appends continue", func(t *testing.T) {
		prefix := NewPrefix()
		a, b := asHistory(t, s.node(t, prefix)), asHistory(t, s.node(t, prefix))
		entries, top := read(t, a, "s", backend.Position{}, 0, o)
		if len(entries) != 0 || top.Epoch == "" || top.Offset != 0 {
			t.Fatalf("first read = %d entries, top %+v; want none at a new epoch, offset 0", len(entries), top)
		}
		if _, again := read(t, b, "s", backend.Position{}, 0, o); again != top {
			t.Fatalf("a second read on another node gives top %+v, want %+v", again, top)
		}
		pos := appendN(t, b, "s", 1, o)[0]
		if pos != (backend.Position{Epoch: top.Epoch, Offset: 1}) {
			t.Fatalf("first append at %+v, want offset 1 of epoch %q", pos, top.Epoch)
		}
		entries, _ = read(t, a, "s", top, 0, o)
		wantOffsets(t, entries, 1, 1)
	})
	t.Run("appends get consecutive offsets and read back oldest first", func(t *testing.T) {
		h := asHistory(t, s.fresh(t))
		pos := appendN(t, h, "s", 5, o)
		for i, p := range pos {
			if p.Epoch != pos[0].Epoch || p.Offset != uint64(i+1) || p.Epoch == "" {
				t.Fatalf("append %d at %+v (first at %+v)", i+1, p, pos[0])
			}
		}
		e := pos[0].Epoch
		entries, top := read(t, h, "s", backend.Position{Epoch: e}, 0, o)
		wantOffsets(t, entries, 1, 5)
		if top != pos[4] {
			t.Fatalf("top %+v, want %+v", top, pos[4])
		}
		entries, _ = read(t, h, "s", pos[2], 0, o)
		wantOffsets(t, entries, 4, 5)
		entries, top = read(t, h, "s", pos[4], 0, o)
		wantOffsets(t, entries, 1, 0)
		if top != pos[4] {
			t.Fatalf("top %+v, want %+v", top, pos[4])
		}
	})
	t.Run("a limit returns the oldest entries and the real top", func(t *testing.T) {
		h := asHistory(t, s.fresh(t))
		pos := appendN(t, h, "s", 10, o)
		entries, top := read(t, h, "s", backend.Position{Epoch: pos[0].Epoch}, 3, o)
		wantOffsets(t, entries, 1, 3)
		if top != pos[9] {
			t.Fatalf("top %+v, want %+v", top, pos[9])
		}
	})
	t.Run("an empty epoch asks for the top only", func(t *testing.T) {
		h := asHistory(t, s.fresh(t))
		pos := appendN(t, h, "s", 3, o)
		entries, top := read(t, h, "s", backend.Position{}, 0, o)
		if len(entries) != 0 || top != pos[2] {
			t.Fatalf("read = %d entries, top %+v; want none, top %+v", len(entries), top, pos[2])
		}
	})
	t.Run("a foreign epoch or a position beyond the top is not recoverable", func(t *testing.T) {
		h := asHistory(t, s.fresh(t))
		pos := appendN(t, h, "s", 3, o)
		for _, since := range []backend.Position{
			{Epoch: "not-the-epoch", Offset: 1},
			{Epoch: pos[0].Epoch, Offset: 4},
		} {
			if top := wantUnrecoverable(t, h, "s", since, o); top != pos[2] {
				t.Fatalf("top %+v, want %+v", top, pos[2])
			}
		}
	})
	t.Run("a stream keeps at least its size and trims older entries", func(t *testing.T) {
		h := asHistory(t, s.fresh(t))
		small := backend.StreamOptions{Size: 10, TTL: time.Minute}
		const n = 400
		pos := appendN(t, h, "s", n, small)
		entries, top := read(t, h, "s", pos[n-11], 0, small)
		wantOffsets(t, entries, n-9, n)
		if top != pos[n-1] {
			t.Fatalf("top %+v, want %+v", top, pos[n-1])
		}
		// Approximate trimming may keep more than the size, never the
		// whole of 40 times the size.
		wantUnrecoverable(t, h, "s", backend.Position{Epoch: pos[0].Epoch}, small)
	})
	t.Run("entries expire after the TTL; the epoch and top outlive them", func(t *testing.T) {
		h := asHistory(t, s.fresh(t))
		short := backend.StreamOptions{Size: 10, TTL: 300 * time.Millisecond, MetaTTL: time.Minute}
		pos := appendN(t, h, "s", 3, short)
		eventually(t, "expiry of the entries", func() bool {
			_, _, err := h.ReadHistory(ctxFor(t), "s", backend.Position{Epoch: pos[0].Epoch}, 0, short)
			return errors.Is(err, backend.ErrUnrecoverable)
		})
		// A subscriber that had seen everything missed nothing.
		entries, top := read(t, h, "s", pos[2], 0, short)
		if len(entries) != 0 || top != pos[2] {
			t.Fatalf("read from the top = %d entries, top %+v; want none, %+v", len(entries), top, pos[2])
		}
		next, err := h.AppendPublish(ctxFor(t), "s", "", []byte("m4"), short)
		if err != nil || next != (backend.Position{Epoch: pos[0].Epoch, Offset: 4}) {
			t.Fatalf("append after expiry at %+v, %v; want offset 4 of the same epoch", next, err)
		}
		entries, _ = read(t, h, "s", pos[2], 0, short)
		wantOffsets(t, entries, 4, 4)
	})
	t.Run("the epoch changes when the stream's metadata expires", func(t *testing.T) {
		h := asHistory(t, s.fresh(t))
		short := backend.StreamOptions{Size: 10, TTL: 300 * time.Millisecond, MetaTTL: 300 * time.Millisecond}
		old := appendN(t, h, "s", 2, short)[1]
		var top backend.Position
		eventually(t, "a new epoch", func() bool {
			_, top = read(t, h, "s", backend.Position{}, 0, short)
			return top.Epoch != old.Epoch
		})
		if top.Offset != 0 {
			t.Fatalf("new epoch starts at %+v, want offset 0", top)
		}
		wantUnrecoverable(t, h, "s", old, short)
		if p, err := h.AppendPublish(ctxFor(t), "s", "", []byte("x"), short); err != nil || p != (backend.Position{Epoch: top.Epoch, Offset: 1}) {
			t.Fatalf("append in the new epoch at %+v, %v; want offset 1 of %q", p, err, top.Epoch)
		}
	})
	t.Run("streams and namespaces are apart", func(t *testing.T) {
		prefix := NewPrefix()
		h := asHistory(t, s.node(t, prefix))
		appendN(t, h, "a", 3, o)
		if p := appendN(t, h, "b", 1, o)[0]; p.Offset != 1 {
			t.Fatalf("first append to another stream at %+v", p)
		}
		other := asHistory(t, s.fresh(t))
		if _, top := read(t, other, "a", backend.Position{}, 0, o); top.Offset != 0 {
			t.Fatalf("another namespace sees top %+v", top)
		}
	})
	t.Run("entries are binary safe up to 1 MiB, live and from history", func(t *testing.T) {
		h := asHistory(t, s.fresh(t))
		b := h.(backend.Backend)
		got := collect(t, b, "live")
		datas := [][]byte{{}, {0, 1, 0xff}, bytes.Repeat([]byte("0123456789\x00"), 700), bytes.Repeat([]byte{0, 0xfe}, 512<<10)}
		stream := "s\x00ünï"
		var pos []backend.Position
		for _, d := range datas {
			p, err := h.AppendPublish(ctxFor(t), stream, "live", d, o)
			if err != nil {
				t.Fatalf("AppendPublish %d bytes: %v", len(d), err)
			}
			pos = append(pos, p)
		}
		for i, d := range datas {
			if m := got.next(t); !bytes.Equal(m, backend.EncodeStreamEnvelope(stream, pos[i], d)) {
				t.Fatalf("live message %d (%d bytes) is not the envelope of what was appended", i, len(m))
			}
		}
		entries, _ := read(t, h, stream, backend.Position{Epoch: pos[0].Epoch}, 0, o)
		if len(entries) != len(datas) {
			t.Fatalf("read %d entries, want %d", len(entries), len(datas))
		}
		for i, e := range entries {
			if !bytes.Equal(e.Data, datas[i]) || e.Offset != pos[i].Offset {
				t.Fatalf("entry %d: offset %d, %d bytes; want offset %d, %d bytes", i, e.Offset, len(e.Data), pos[i].Offset, len(datas[i]))
			}
		}
	})
	t.Run("an empty channel appends without publishing", func(t *testing.T) {
		h := asHistory(t, s.fresh(t))
		b := h.(backend.Backend)
		got := collect(t, b, "c")
		appendN(t, h, "s", 1, o)
		if err := b.Publish(ctxFor(t), "c", []byte("marker")); err != nil {
			t.Fatal(err)
		}
		got.want(t, "marker")
	})
	t.Run("subscribers on every node receive each stream's messages once, in order", func(t *testing.T) {
		prefix := NewPrefix()
		nodes := []backend.Backend{s.node(t, prefix), s.node(t, prefix)}
		o := backend.StreamOptions{Size: 1000, TTL: time.Minute}
		_, unordered := nodes[0].(backend.UnorderedHistory)
		inboxes := []*inbox{collect(t, nodes[0], "c"), collect(t, nodes[1], "c")}
		const writers, each = 4, 40
		var (
			mu      sync.Mutex
			offsets = map[uint64]bool{}
			wg      sync.WaitGroup
		)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h := asHistory(t, nodes[w%2])
				for i := range each {
					data := fmt.Sprintf("w%d:%d", w, i)
					p, err := h.AppendPublish(ctxFor(t), "s", "c", []byte(data), o)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					if offsets[p.Offset] {
						t.Errorf("offset %d given twice", p.Offset)
					}
					offsets[p.Offset] = true
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		const total = writers * each
		for off := uint64(1); off <= total; off++ {
			if !offsets[off] {
				t.Fatalf("no append got offset %d of 1..%d", off, total)
			}
		}
		_, top := read(t, asHistory(t, nodes[0]), "s", backend.Position{}, 0, o)
		stored, _ := read(t, asHistory(t, nodes[0]), "s", backend.Position{Epoch: top.Epoch}, 0, o)
		for j, in := range inboxes {
			seen := map[uint64]bool{}
			var last uint64
			for range total {
				m, err := backend.DecodeStreamEnvelope(in.next(t))
				if err != nil {
					t.Fatalf("subscriber %d: %v", j, err)
				}
				off := m.Position.Offset
				if m.Stream != "s" || m.Position.Epoch != top.Epoch || off < 1 || off > total || seen[off] {
					t.Fatalf("subscriber %d: unexpected message %q at %+v", j, m.Stream, m.Position)
				}
				if !unordered && off != last+1 {
					t.Fatalf("subscriber %d: offset %d after %d", j, off, last)
				}
				if !bytes.Equal(m.Data, stored[off-1].Data) {
					t.Fatalf("subscriber %d: offset %d carries %q, history holds %q", j, off, m.Data, stored[off-1].Data)
				}
				seen[off], last = true, off
			}
		}
	})
	t.Run("options out of range are refused", func(t *testing.T) {
		h := asHistory(t, s.fresh(t))
		for _, bad := range []backend.StreamOptions{{Size: -1}, {Size: backend.MaxStreamSize + 1}, {TTL: -time.Second}} {
			if _, err := h.AppendPublish(ctxFor(t), "s", "", []byte("x"), bad); err == nil {
				t.Errorf("AppendPublish with %+v succeeded", bad)
			}
			if _, _, err := h.ReadHistory(ctxFor(t), "s", backend.Position{}, 0, bad); err == nil {
				t.Errorf("ReadHistory with %+v succeeded", bad)
			}
		}
	})
	t.Run("a closed backend refuses", func(t *testing.T) {
		b := s.open(t, NewPrefix())
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		h := asHistory(t, b)
		if _, err := h.AppendPublish(ctxFor(t), "s", "c", nil, o); !errors.Is(err, backend.ErrClosed) {
			t.Errorf("AppendPublish after Close: %v, want ErrClosed", err)
		}
		if _, _, err := h.ReadHistory(ctxFor(t), "s", backend.Position{}, 0, o); !errors.Is(err, backend.ErrClosed) {
			t.Errorf("ReadHistory after Close: %v, want ErrClosed", err)
		}
	})
}
