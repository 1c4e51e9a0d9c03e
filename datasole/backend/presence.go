package backend

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// PresenceEntry is one connection in a presence set.
type PresenceEntry struct {
	// ConnID identifies the connection; a set holds one entry per ConnID.
	ConnID string
	// UserID is the connection's user; PresenceStats counts distinct ones.
	UserID string
	// NodeID is the node serving the connection. The entry is listed only
	// while that node is kept alive (see Presence.KeepNodeAlive). A node id
	// must be unique per process start: a restarted process uses a new one.
	NodeID string
	// Info is opaque data shown with the entry, such as selected principal
	// metadata; at most MaxPresenceInfo bytes.
	Info []byte
}

// PresenceStats counts the live entries of a presence set.
type PresenceStats struct {
	// Connections is the number of entries.
	Connections int
	// Users is the number of distinct user ids among them.
	Users int
}

// Limits of presence sets.
const (
	// MaxPresenceID bounds the length of ConnID, UserID and NodeID.
	MaxPresenceID = 256
	// MaxPresenceInfo bounds the length of PresenceEntry.Info.
	MaxPresenceInfo = 4096
	// MaxPresenceList is the most entries ListPresence returns.
	MaxPresenceList = 10000
)

// ErrPresenceTooLarge is returned by AddPresence for an entry whose ids or
// info exceed MaxPresenceID or MaxPresenceInfo.
var ErrPresenceTooLarge = errors.New("backend: presence entry too large")

// Validate checks e against the limits above and requires ConnID and
// NodeID.
func (e PresenceEntry) Validate() error {
	switch {
	case e.ConnID == "" || e.NodeID == "":
		return fmt.Errorf("backend: presence entry needs a ConnID and a NodeID")
	case len(e.ConnID) > MaxPresenceID || len(e.UserID) > MaxPresenceID || len(e.NodeID) > MaxPresenceID:
		return fmt.Errorf("%w: an id is longer than %d bytes", ErrPresenceTooLarge, MaxPresenceID)
	case len(e.Info) > MaxPresenceInfo:
		return fmt.Errorf("%w: info is %d bytes, at most %d", ErrPresenceTooLarge, len(e.Info), MaxPresenceInfo)
	}
	return nil
}

// Presence is implemented by backends that track which connections are in
// a set (a room, a tag, a user's devices) across nodes.
//
// Liveness is kept per node, not per connection: a node calls KeepNodeAlive
// periodically (every third of its ttl, say), and that one call keeps all of
// the node's entries in every set alive. When a node stops calling it — its
// process was killed — its entries are no longer listed or counted once the
// ttl has passed, and are removed from the store lazily (by the next listing
// of the set, or by another node's KeepNodeAlive). A set holds at most one
// entry per connection of a live node, so its size is bounded by the
// cluster's connections; ListPresence returns at most MaxPresenceList
// entries, and PresenceStats counts without returning entries.
type Presence interface {
	// AddPresence adds e to set, replacing the entry with the same ConnID.
	// The node must be kept alive before its first entry is added: the
	// first KeepNodeAlive of a node removes what it finds of it.
	AddPresence(ctx context.Context, set string, e PresenceEntry) error
	// RemovePresence removes the entry of connID from set; removing a
	// missing entry is not an error.
	RemovePresence(ctx context.Context, set, connID string) error
	// ListPresence returns the live entries of set in no particular order,
	// at most limit of them (limit <= 0 or above MaxPresenceList means
	// MaxPresenceList).
	ListPresence(ctx context.Context, set string, limit int) ([]PresenceEntry, error)
	// PresenceStats counts the live entries of set and their distinct
	// users.
	PresenceStats(ctx context.Context, set string) (PresenceStats, error)
	// KeepNodeAlive keeps every entry of nodeID alive for ttl from now. It
	// reports lapsed when the node was not alive before the call (its first
	// call, or its previous ttl ran out); the node's entries have then been
	// removed, and the caller adds them again.
	KeepNodeAlive(ctx context.Context, nodeID string, ttl time.Duration) (lapsed bool, err error)
}

// PresenceLimit is how many entries ListPresence returns at most for limit:
// limit itself, or MaxPresenceList when limit is not in (0,
// MaxPresenceList]. Backend implementations use it.
func PresenceLimit(limit int) int {
	if limit <= 0 || limit > MaxPresenceList {
		return MaxPresenceList
	}
	return limit
}
