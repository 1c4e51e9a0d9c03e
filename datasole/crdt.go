package datasole

// crdtSnapshots queues the CRDT states of a scope on c.
func (s *Server) crdtSnapshots(c *Conn, sc Scope) {}
