package datasole

import "time"

// runHeartbeat pings every connection each HeartbeatInterval; a peer silent
// for two intervals is closed by its read deadline.
func (s *Server) runHeartbeat() {
	defer s.heartbeat.Done()
	t := time.NewTicker(s.opts.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
			s.hub.each(func(c *Conn) { c.push(outMsg{kind: outPing}) })
		}
	}
}
