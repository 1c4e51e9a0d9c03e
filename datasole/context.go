package datasole

import "context"

// Context is what RPC and event handlers receive: a context.Context that is
// cancelled when the connection ends (and, for RPCs, at the handler's
// deadline), plus the connection that sent the frame.
type Context struct {
	context.Context
	conn *Conn
}

// Conn returns the connection that sent the frame.
func (c *Context) Conn() *Conn { return c.conn }

// ConnID returns the id of the connection that sent the frame.
func (c *Context) ConnID() string { return c.conn.id }

// UserID returns the sender's user id ("$anon:" + the connection id when
// anonymous).
func (c *Context) UserID() string { return c.conn.userID }

// Principal returns the sender's principal.
func (c *Context) Principal() *Principal { return c.conn.principal }

// Server returns the server handling the connection.
func (c *Context) Server() *Server { return c.conn.s }
