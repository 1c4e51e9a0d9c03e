package backend

import (
	"context"
	"time"
)

// memPresenceSet is one presence set of the memory backend, with the counts
// PresenceStats and the purge of dead nodes need.
type memPresenceSet struct {
	entries map[string]PresenceEntry // by ConnID
	users   map[string]int           // connections per user
	nodes   map[string]int           // connections per node
}

func (p *memPresenceSet) add(e PresenceEntry) {
	p.entries[e.ConnID] = e
	p.users[e.UserID]++
	p.nodes[e.NodeID]++
}

// remove drops the entry of connID and reports whether its node has no
// entry left in the set.
func (p *memPresenceSet) remove(connID string) (node string, nodeGone bool) {
	e, ok := p.entries[connID]
	if !ok {
		return "", false
	}
	delete(p.entries, connID)
	if p.users[e.UserID]--; p.users[e.UserID] == 0 {
		delete(p.users, e.UserID)
	}
	if p.nodes[e.NodeID]--; p.nodes[e.NodeID] == 0 {
		delete(p.nodes, e.NodeID)
		return e.NodeID, true
	}
	return e.NodeID, false
}

// memNode is a presence node of the memory backend, keyed in the store by
// its namespaced id.
type memNode struct {
	id      string              // as the caller gave it
	expires time.Time           // zero: never kept alive
	sets    map[string]struct{} // keys of the sets holding its entries
}

func (s *memStore) presenceNode(prefix, id string) *memNode {
	n := s.presenceNodes[prefix+id]
	if n == nil {
		n = &memNode{id: id, sets: map[string]struct{}{}}
		s.presenceNodes[prefix+id] = n
	}
	return n
}

func (s *memStore) nodeAlive(key string, now time.Time) bool {
	n := s.presenceNodes[key]
	return n != nil && n.expires.After(now)
}

// removePresence removes connID from the set under key. The store lock must
// be held.
func (s *memStore) removePresence(key, prefix, connID string) {
	p := s.presence[key]
	if p == nil {
		return
	}
	if node, gone := p.remove(connID); gone {
		if n := s.presenceNodes[prefix+node]; n != nil {
			delete(n.sets, key)
		}
	}
	if len(p.entries) == 0 {
		delete(s.presence, key)
	}
}

// purgeSet removes the entries of dead nodes from the set under key and
// returns the set, nil when it is empty. The store lock must be held.
func (s *memStore) purgeSet(key, prefix string, now time.Time) *memPresenceSet {
	p := s.presence[key]
	if p == nil {
		return nil
	}
	for node := range p.nodes {
		if !s.nodeAlive(prefix+node, now) {
			s.purgeNodeIn(key, prefix, node)
		}
	}
	return s.presence[key]
}

func (s *memStore) purgeNodeIn(key, prefix, node string) {
	if p := s.presence[key]; p != nil {
		for conn, e := range p.entries {
			if e.NodeID == node {
				s.removePresence(key, prefix, conn)
			}
		}
	}
}

// purgeNode removes every entry of the node under key (a namespaced id).
// The store lock must be held.
func (s *memStore) purgeNode(key string) {
	n := s.presenceNodes[key]
	if n == nil {
		return
	}
	prefix := key[:len(key)-len(n.id)]
	for set := range n.sets {
		s.purgeNodeIn(set, prefix, n.id)
	}
	delete(s.presenceNodes, key)
}

func (s *memStore) sweepNodes(now time.Time) {
	for key := range s.presenceNodes {
		if !s.nodeAlive(key, now) {
			s.purgeNode(key)
		}
	}
}

// AddPresence implements Presence.
func (m *Memory) AddPresence(ctx context.Context, set string, e PresenceEntry) error {
	if err := e.Validate(); err != nil {
		return err
	}
	if err := m.check(ctx); err != nil {
		return err
	}
	m.store.lock()
	defer m.store.mu.Unlock()
	key := m.prefix + set
	m.store.removePresence(key, m.prefix, e.ConnID)
	p := m.store.presence[key]
	if p == nil {
		p = &memPresenceSet{entries: map[string]PresenceEntry{}, users: map[string]int{}, nodes: map[string]int{}}
		m.store.presence[key] = p
	}
	e.Info = append([]byte(nil), e.Info...)
	p.add(e)
	m.store.presenceNode(m.prefix, e.NodeID).sets[key] = struct{}{}
	return nil
}

// RemovePresence implements Presence.
func (m *Memory) RemovePresence(ctx context.Context, set, connID string) error {
	if err := m.check(ctx); err != nil {
		return err
	}
	m.store.lock()
	defer m.store.mu.Unlock()
	m.store.removePresence(m.prefix+set, m.prefix, connID)
	return nil
}

// ListPresence implements Presence.
func (m *Memory) ListPresence(ctx context.Context, set string, limit int) ([]PresenceEntry, error) {
	if err := m.check(ctx); err != nil {
		return nil, err
	}
	now := m.store.lock()
	defer m.store.mu.Unlock()
	p := m.store.purgeSet(m.prefix+set, m.prefix, now)
	if p == nil {
		return nil, nil
	}
	limit = PresenceLimit(limit)
	out := make([]PresenceEntry, 0, min(limit, len(p.entries)))
	for _, e := range p.entries {
		if len(out) == limit {
			break
		}
		e.Info = append([]byte(nil), e.Info...)
		out = append(out, e)
	}
	return out, nil
}

// PresenceStats implements Presence.
func (m *Memory) PresenceStats(ctx context.Context, set string) (PresenceStats, error) {
	if err := m.check(ctx); err != nil {
		return PresenceStats{}, err
	}
	now := m.store.lock()
	defer m.store.mu.Unlock()
	p := m.store.purgeSet(m.prefix+set, m.prefix, now)
	if p == nil {
		return PresenceStats{}, nil
	}
	return PresenceStats{Connections: len(p.entries), Users: len(p.users)}, nil
}

// KeepNodeAlive implements Presence.
func (m *Memory) KeepNodeAlive(ctx context.Context, nodeID string, ttl time.Duration) (bool, error) {
	if err := m.check(ctx); err != nil {
		return false, err
	}
	now := m.store.lock()
	defer m.store.mu.Unlock()
	key := m.prefix + nodeID
	lapsed := !m.store.nodeAlive(key, now)
	if lapsed {
		// What the node left behind while dead goes before it lives again.
		m.store.purgeNode(key)
	}
	m.store.presenceNode(m.prefix, nodeID).expires = now.Add(ttl)
	return lapsed, nil
}
