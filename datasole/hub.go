package datasole

import "sync"

// hub indexes the local connections by id, user and tag.
type hub struct {
	mu    sync.RWMutex
	conns map[string]*Conn
	users map[string]map[*Conn]struct{}
	tags  map[string]map[*Conn]struct{}
}

func (h *hub) init() {
	h.conns = make(map[string]*Conn)
	h.users = make(map[string]map[*Conn]struct{})
	h.tags = make(map[string]map[*Conn]struct{})
}

func (h *hub) add(c *Conn) {
	h.mu.Lock()
	h.conns[c.id] = c
	addIndex(h.users, c.userID, c)
	h.mu.Unlock()
}

// remove takes c out of every index and returns the tags it had; ok is
// false when c was not in the hub.
func (h *hub) remove(c *Conn) (tags []string, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.conns[c.id]; !ok {
		return nil, false
	}
	delete(h.conns, c.id)
	removeIndex(h.users, c.userID, c)
	for t := range c.tags {
		removeIndex(h.tags, t, c)
		tags = append(tags, t)
	}
	c.tags = nil
	return tags, true
}

// tag adds c to tag t and reports whether it was not there yet.
func (h *hub) tag(c *Conn, t string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.conns[c.id]; !ok {
		return false
	}
	if _, ok := c.tags[t]; ok {
		return false
	}
	if c.tags == nil {
		c.tags = make(map[string]struct{}, 1)
	}
	c.tags[t] = struct{}{}
	addIndex(h.tags, t, c)
	return true
}

// untag removes c from tag t and reports whether it was there.
func (h *hub) untag(c *Conn, t string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := c.tags[t]; !ok {
		return false
	}
	delete(c.tags, t)
	removeIndex(h.tags, t, c)
	return true
}

func (h *hub) tagsOf(c *Conn) []string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]string, 0, len(c.tags))
	for t := range c.tags {
		out = append(out, t)
	}
	return out
}

// userConns returns the local connections of a user.
func (h *hub) userConns(userID string) []*Conn {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]*Conn, 0, len(h.users[userID]))
	for c := range h.users[userID] {
		out = append(out, c)
	}
	return out
}

func (h *hub) count() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.conns)
}

func (h *hub) all() []*Conn {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]*Conn, 0, len(h.conns))
	for _, c := range h.conns {
		out = append(out, c)
	}
	return out
}

func (h *hub) each(fn func(*Conn)) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, c := range h.conns {
		fn(c)
	}
}

// eachTarget calls fn for every local connection t selects and returns how
// many there were. fn must not block (enqueue does not).
func (h *hub) eachTarget(t Target, fn func(*Conn)) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	switch t.kind {
	case targetAll:
		for _, c := range h.conns {
			fn(c)
		}
		return len(h.conns)
	case targetConn:
		if c, ok := h.conns[t.id]; ok {
			fn(c)
			return 1
		}
		return 0
	case targetUser:
		for c := range h.users[t.id] {
			fn(c)
		}
		return len(h.users[t.id])
	case targetTag:
		for c := range h.tags[t.id] {
			fn(c)
		}
		return len(h.tags[t.id])
	}
	return 0
}

func addIndex(m map[string]map[*Conn]struct{}, k string, c *Conn) {
	set := m[k]
	if set == nil {
		set = make(map[*Conn]struct{}, 1)
		m[k] = set
	}
	set[c] = struct{}{}
}

func removeIndex(m map[string]map[*Conn]struct{}, k string, c *Conn) {
	set := m[k]
	delete(set, c)
	if len(set) == 0 {
		delete(m, k)
	}
}
