package datasole

import "time"

// runHeartbeat checks every connection each HeartbeatInterval: a peer
// silent for two intervals is closed ("heartbeat"), the others get a ping.
// The tick starts no goroutine per connection: pings of polled sockets are
// written by the flushers.
func (s *Server) runHeartbeat() {
	defer s.heartbeat.Done()
	iv := s.opts.HeartbeatInterval
	e := s.engine()
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
			now := e.deadlines.now()
			for _, c := range s.hub.all() {
				c.heartbeat(now, iv)
			}
		}
	}
}
