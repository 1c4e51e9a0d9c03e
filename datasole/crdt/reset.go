package crdt

// Reset replaces the map's content with that of s, as if the replica were
// new and had merged s; it keeps its node id and limits, and its version
// still grows. It serves an optimistic client that undoes local changes
// its server refused: reset to the server's state, then apply the changes
// still pending. A state Merge would refuse is refused, changing nothing.
func (m *LWWMap) Reset(s State) error {
	fresh, err := NewLWWMap(m.node, m.lim)
	if err == nil {
		err = fresh.Merge(s)
	}
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fields, m.size = fresh.fields, fresh.size
	m.version++
	m.enc.reset()
	return nil
}

// Reset replaces the register's content with that of s, as LWWMap.Reset
// does.
func (r *LWWRegister) Reset(s State) error {
	fresh, err := NewLWWRegister(r.node, r.lim)
	if err == nil {
		err = fresh.Merge(s)
	}
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cur = fresh.cur
	r.version++
	r.enc.reset()
	return nil
}

// Reset replaces the counter's content with that of s, as LWWMap.Reset
// does. Its own node's next op continues after the highest seq s holds for
// it.
func (c *PNCounter) Reset(s State) error {
	fresh, err := NewPNCounter(c.node, c.lim)
	if err == nil {
		err = fresh.Merge(s)
	}
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nodes, c.size = fresh.nodes, fresh.size
	c.version++
	c.enc.reset()
	return nil
}
