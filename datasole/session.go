package datasole

import (
	"context"
	"time"

	"github.com/datasole/datasole-go/datasole/session"
)

// SessionOptions configures per-user sessions. Sessions live in
// Options.Backend (so they survive restarts and follow users across nodes);
// with the default in-memory backend they last as long as the process.
// Anonymous connections get a session that lasts as long as the connection.
type SessionOptions struct {
	// Disabled turns sessions off: Context.Session returns nil.
	Disabled bool
	// FlushThreshold, FlushInterval, TTL and MaxIdleUsers are those of
	// session.Options (defaults 10 changes — 1 with a backend, so a user's
	// next connection on another node finds the change — 5s, 24h, 10,000
	// idle users).
	FlushThreshold int
	FlushInterval  time.Duration
	TTL            time.Duration
	MaxIdleUsers   int
}

func (o SessionOptions) check(c *optionChecker) {
	c.nonNegative("Options.Session.FlushThreshold", int64(o.FlushThreshold), o.FlushThreshold)
	c.offOrPositive("Options.Session.FlushInterval", int64(o.FlushInterval), o.FlushInterval)
	c.nonNegative("Options.Session.TTL", int64(o.TTL), o.TTL)
	c.nonNegative("Options.Session.MaxIdleUsers", int64(o.MaxIdleUsers), o.MaxIdleUsers)
}

func (s *Server) startSessions() error {
	o := s.opts.Session
	if o.Disabled {
		return nil
	}
	b := s.opts.Backend
	shared := s.ownBackend == nil
	threshold := o.FlushThreshold
	if shared && threshold == 0 {
		threshold = 1 // write through: a user's next connection may land on another node
	}
	st, err := session.NewStore(session.Options{
		Backend:        b,
		FlushThreshold: threshold,
		FlushInterval:  o.FlushInterval,
		TTL:            o.TTL,
		MaxIdleUsers:   o.MaxIdleUsers,
		Logger:         s.log,
	})
	if err != nil {
		return err
	}
	s.sessions = st
	if shared {
		// Other nodes holding the same user's session learn every local
		// change at once; the backend gets it with the next write.
		st.OnChange(func(c session.Change) {
			if !c.Remote {
				s.pub.enqueue(&busMsg{kind: busSession, target: ToUser(c.UserID), key: c.Key, value: c.Value})
			}
		})
	}
	return nil
}

// Sessions returns the server's session store (nil when disabled), for
// OnChange listeners and direct access by user id.
func (s *Server) Sessions() *session.Store { return s.sessions }

// Session returns the sender's session: a per-user key/value store restored
// when the user's first connection opens and written back on changes,
// periodically, on the user's last disconnect and on shutdown. It is nil when
// sessions are disabled.
func (c *Context) Session() *session.Session { return c.conn.Session() }

// Session returns the session of the connection's user.
func (c *Conn) Session() *session.Session {
	if c.s.sessions == nil {
		return nil
	}
	return c.s.sessions.Session(c.userID)
}

// acquireSession loads the user's session before the connection is
// attached. An anonymous connection is its own user: its session lives as
// long as the connection and is never stored.
func (s *Server) acquireSession(ctx context.Context, c *Conn) {
	if s.sessions == nil {
		return
	}
	var err error
	if c.anonymous() {
		_, err = s.sessions.AcquireEphemeral(c.userID)
	} else {
		_, err = s.sessions.Acquire(ctx, c.userID)
	}
	if err != nil {
		s.backendError("session-load", err)
	}
}

// closeSessions writes every session back.
func (s *Server) closeSessions(ctx context.Context) {
	if s.sessions == nil {
		return
	}
	if err := s.sessions.Close(ctx); err != nil {
		s.backendError("session-flush", err)
	}
}

func (s *Server) releaseSession(c *Conn) {
	if s.sessions == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), busTimeout)
	defer cancel()
	if err := s.sessions.Release(ctx, c.userID); err != nil {
		s.backendError("session-flush", err)
	}
}
