package backendtest

import (
	"bytes"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole/backend"
)

func asPresence(t *testing.T, b backend.Backend) backend.Presence {
	t.Helper()
	p, ok := b.(backend.Presence)
	if !ok {
		t.Fatalf("%T does not implement Presence", b)
	}
	return p
}

func keepAlive(t *testing.T, p backend.Presence, node string, ttl time.Duration) bool {
	t.Helper()
	lapsed, err := p.KeepNodeAlive(ctxFor(t), node, ttl)
	if err != nil {
		t.Fatalf("KeepNodeAlive(%q): %v", node, err)
	}
	return lapsed
}

func add(t *testing.T, p backend.Presence, set string, e backend.PresenceEntry) {
	t.Helper()
	if err := p.AddPresence(ctxFor(t), set, e); err != nil {
		t.Fatalf("AddPresence(%q, %+v): %v", set, e, err)
	}
}

func list(t *testing.T, p backend.Presence, set string, limit int) []backend.PresenceEntry {
	t.Helper()
	got, err := p.ListPresence(ctxFor(t), set, limit)
	if err != nil {
		t.Fatalf("ListPresence(%q): %v", set, err)
	}
	slices.SortFunc(got, func(a, b backend.PresenceEntry) int { return strings.Compare(a.ConnID, b.ConnID) })
	return got
}

func stats(t *testing.T, p backend.Presence, set string) backend.PresenceStats {
	t.Helper()
	st, err := p.PresenceStats(ctxFor(t), set)
	if err != nil {
		t.Fatalf("PresenceStats(%q): %v", set, err)
	}
	return st
}

func wantEntries(t *testing.T, got []backend.PresenceEntry, want ...backend.PresenceEntry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("listed %d entries %+v, want %d %+v", len(got), got, len(want), want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.ConnID != w.ConnID || g.UserID != w.UserID || g.NodeID != w.NodeID || !bytes.Equal(g.Info, w.Info) {
			t.Fatalf("entry %d = %+v, want %+v", i, g, w)
		}
	}
}

func connIDs(entries []backend.PresenceEntry) []string {
	var ids []string
	for _, e := range entries {
		ids = append(ids, e.ConnID)
	}
	return ids
}

func (s *suite) presence(t *testing.T) {
	if _, ok := s.fresh(t).(backend.Presence); !ok {
		t.Skip("backend does not implement Presence")
	}
	t.Run("entries of live nodes are listed and counted on every node", func(t *testing.T) {
		prefix := NewPrefix()
		a, b := asPresence(t, s.node(t, prefix)), asPresence(t, s.node(t, prefix))
		keepAlive(t, a, "n1", time.Minute)
		keepAlive(t, b, "n2", time.Minute)
		e1 := backend.PresenceEntry{ConnID: "c1", UserID: "u1", NodeID: "n1", Info: []byte(`{"name":"Ann"}`)}
		e2 := backend.PresenceEntry{ConnID: "c2", UserID: "u1", NodeID: "n1", Info: []byte{0, 0xff}}
		e3 := backend.PresenceEntry{ConnID: "c3", UserID: "u2", NodeID: "n2"}
		add(t, a, "room", e1)
		add(t, a, "room", e2)
		add(t, b, "room", e3)
		for _, p := range []backend.Presence{a, b} {
			wantEntries(t, list(t, p, "room", 0), e1, e2, e3)
			if st := stats(t, p, "room"); st != (backend.PresenceStats{Connections: 3, Users: 2}) {
				t.Fatalf("stats %+v, want 3 connections of 2 users", st)
			}
		}
	})
	t.Run("adding a connection again replaces its entry", func(t *testing.T) {
		p := asPresence(t, s.fresh(t))
		keepAlive(t, p, "n", time.Minute)
		add(t, p, "room", backend.PresenceEntry{ConnID: "c", UserID: "u1", NodeID: "n", Info: []byte("old")})
		e := backend.PresenceEntry{ConnID: "c", UserID: "u2", NodeID: "n", Info: []byte("new")}
		add(t, p, "room", e)
		wantEntries(t, list(t, p, "room", 0), e)
		if st := stats(t, p, "room"); st != (backend.PresenceStats{Connections: 1, Users: 1}) {
			t.Fatalf("stats %+v, want 1 connection of 1 user", st)
		}
	})
	t.Run("removed entries are gone and removing twice is harmless", func(t *testing.T) {
		p := asPresence(t, s.fresh(t))
		keepAlive(t, p, "n", time.Minute)
		e := backend.PresenceEntry{ConnID: "c2", UserID: "u2", NodeID: "n"}
		add(t, p, "room", backend.PresenceEntry{ConnID: "c1", UserID: "u1", NodeID: "n"})
		add(t, p, "room", e)
		for range 2 {
			if err := p.RemovePresence(ctxFor(t), "room", "c1"); err != nil {
				t.Fatal(err)
			}
		}
		wantEntries(t, list(t, p, "room", 0), e)
		if st := stats(t, p, "room"); st != (backend.PresenceStats{Connections: 1, Users: 1}) {
			t.Fatalf("stats %+v", st)
		}
		if err := p.RemovePresence(ctxFor(t), "room", "c2"); err != nil {
			t.Fatal(err)
		}
		if got := list(t, p, "room", 0); len(got) != 0 {
			t.Fatalf("listed %+v in an emptied set", got)
		}
		if st := stats(t, p, "room"); st != (backend.PresenceStats{}) {
			t.Fatalf("stats of an emptied set %+v", st)
		}
	})
	t.Run("one call keeps all of a node's entries alive", func(t *testing.T) {
		p := asPresence(t, s.fresh(t))
		if !keepAlive(t, p, "n", time.Minute) {
			t.Fatal("the first KeepNodeAlive did not report lapsed")
		}
		if keepAlive(t, p, "n", time.Minute) {
			t.Fatal("KeepNodeAlive of a live node reported lapsed")
		}
		for i := range 30 {
			add(t, p, "set"+strconv.Itoa(i%3), backend.PresenceEntry{ConnID: "c" + strconv.Itoa(i), UserID: "u" + strconv.Itoa(i), NodeID: "n"})
		}
		keepAlive(t, p, "n", time.Minute)
		for i := range 3 {
			if st := stats(t, p, "set"+strconv.Itoa(i)); st != (backend.PresenceStats{Connections: 10, Users: 10}) {
				t.Fatalf("set%d: stats %+v, want 10 connections", i, st)
			}
		}
	})
	t.Run("a node that is not kept alive drops out within its ttl", func(t *testing.T) {
		prefix := NewPrefix()
		a, b := asPresence(t, s.node(t, prefix)), asPresence(t, s.node(t, prefix))
		keepAlive(t, a, "stays", time.Minute)
		// Long enough for the adds and the first count on a busy machine.
		keepAlive(t, b, "dies", 2*time.Second)
		stay := backend.PresenceEntry{ConnID: "c1", UserID: "u1", NodeID: "stays"}
		add(t, a, "room", stay)
		add(t, a, "lobby", backend.PresenceEntry{ConnID: "c2", UserID: "u2", NodeID: "dies"})
		add(t, b, "room", backend.PresenceEntry{ConnID: "c3", UserID: "u3", NodeID: "dies"})
		add(t, b, "room", backend.PresenceEntry{ConnID: "c4", UserID: "u1", NodeID: "dies"})
		if st := stats(t, a, "room"); st.Connections != 3 {
			t.Fatalf("before expiry: stats %+v, want 3 connections", st)
		}
		eventually(t, "the dead node's entries leaving the list", func() bool {
			return slices.Equal(connIDs(list(t, a, "room", 0)), []string{"c1"})
		})
		if st := stats(t, b, "room"); st != (backend.PresenceStats{Connections: 1, Users: 1}) {
			t.Fatalf("after expiry: stats %+v, want the live node's 1 connection", st)
		}
		if st := stats(t, b, "lobby"); st != (backend.PresenceStats{}) {
			t.Fatalf("after expiry: lobby stats %+v, want none", st)
		}
		if !keepAlive(t, b, "dies", time.Minute) {
			t.Fatal("KeepNodeAlive after the ttl ran out did not report lapsed")
		}
		wantEntries(t, list(t, a, "room", 0), stay)
		wantEntries(t, list(t, a, "lobby", 0))
	})
	t.Run("a node's first keep-alive removes what it left before", func(t *testing.T) {
		p := asPresence(t, s.fresh(t))
		add(t, p, "room", backend.PresenceEntry{ConnID: "c", UserID: "u", NodeID: "n"})
		if !keepAlive(t, p, "n", time.Minute) {
			t.Fatal("the first KeepNodeAlive did not report lapsed")
		}
		wantEntries(t, list(t, p, "room", 0))
	})
	t.Run("sets and namespaces are apart", func(t *testing.T) {
		p := asPresence(t, s.fresh(t))
		keepAlive(t, p, "n", time.Minute)
		e := backend.PresenceEntry{ConnID: "c", UserID: "u", NodeID: "n"}
		add(t, p, "a", e)
		wantEntries(t, list(t, p, "b", 0))
		other := asPresence(t, s.fresh(t))
		keepAlive(t, other, "n", time.Minute)
		wantEntries(t, list(t, other, "a", 0))
		if st := stats(t, other, "a"); st != (backend.PresenceStats{}) {
			t.Fatalf("another namespace counts %+v", st)
		}
		wantEntries(t, list(t, p, "a", 0), e)
	})
	t.Run("a limit bounds the list", func(t *testing.T) {
		p := asPresence(t, s.fresh(t))
		keepAlive(t, p, "n", time.Minute)
		for i := range 5 {
			add(t, p, "room", backend.PresenceEntry{ConnID: "c" + strconv.Itoa(i), NodeID: "n"})
		}
		if got := list(t, p, "room", 2); len(got) != 2 {
			t.Fatalf("listed %d entries with limit 2", len(got))
		}
		if got := list(t, p, "room", 0); len(got) != 5 {
			t.Fatalf("listed %d entries without a limit, want 5", len(got))
		}
	})
	t.Run("oversized and incomplete entries are refused", func(t *testing.T) {
		p := asPresence(t, s.fresh(t))
		keepAlive(t, p, "n", time.Minute)
		big := backend.PresenceEntry{ConnID: "c", NodeID: "n", Info: make([]byte, backend.MaxPresenceInfo+1)}
		if err := p.AddPresence(ctxFor(t), "room", big); !errors.Is(err, backend.ErrPresenceTooLarge) {
			t.Errorf("AddPresence with %d bytes of info: %v, want ErrPresenceTooLarge", len(big.Info), err)
		}
		long := backend.PresenceEntry{ConnID: strings.Repeat("c", backend.MaxPresenceID+1), NodeID: "n"}
		if err := p.AddPresence(ctxFor(t), "room", long); !errors.Is(err, backend.ErrPresenceTooLarge) {
			t.Errorf("AddPresence with a long id: %v, want ErrPresenceTooLarge", err)
		}
		if err := p.AddPresence(ctxFor(t), "room", backend.PresenceEntry{ConnID: "c"}); err == nil {
			t.Error("AddPresence without a node id succeeded")
		}
		wantEntries(t, list(t, p, "room", 0))
	})
	t.Run("a closed backend refuses", func(t *testing.T) {
		b := s.open(t, NewPrefix())
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		p := asPresence(t, b)
		ctx := ctxFor(t)
		_, errList := p.ListPresence(ctx, "s", 0)
		_, errStats := p.PresenceStats(ctx, "s")
		_, errKeep := p.KeepNodeAlive(ctx, "n", time.Minute)
		for name, err := range map[string]error{
			"AddPresence":    p.AddPresence(ctx, "s", backend.PresenceEntry{ConnID: "c", NodeID: "n"}),
			"RemovePresence": p.RemovePresence(ctx, "s", "c"),
			"ListPresence":   errList, "PresenceStats": errStats, "KeepNodeAlive": errKeep,
		} {
			if !errors.Is(err, backend.ErrClosed) {
				t.Errorf("%s after Close: %v, want ErrClosed", name, err)
			}
		}
	})
}
