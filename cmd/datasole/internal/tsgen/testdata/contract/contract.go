// Package contract exercises every mapping of the TypeScript generator.
package contract

import (
	"encoding/json"
	"net/netip"
	"time"

	"github.com/datasole/datasole-go/cmd/datasole/internal/tsgen/testdata/contract/other"
	"github.com/datasole/datasole-go/datasole"
)

// Status is where a ticket stands.
type Status string

// The statuses a ticket goes through.
const (
	StatusOpen   Status = "open"
	StatusClosed Status = "closed"
)

// Priority orders tickets.
type Priority int

// Priorities.
const (
	Low Priority = iota
	High
)

// Label is a plain named string without constants.
type Label string

// Audit is embedded: its members appear at the top level.
type Audit struct {
	CreatedAt time.Time  `json:"createdAt"`
	UpdatedAt *time.Time `json:"updatedAt,omitempty"`
	// Rev is shadowed by Ticket.Rev.
	Rev int `json:"rev"`
}

// Ticket covers fields of every kind.
type Ticket struct {
	Audit
	ID       int64            `json:"id,string"` // sent quoted
	Title    string           `json:"title"`
	Status   Status           `json:"status"`
	Priority Priority         `json:"priority"`
	Labels   []Label          `json:"labels"`
	Owner    *other.User      `json:"owner"`
	Watchers []*other.User    `json:"watchers,omitempty"`
	Fields   map[string]any   `json:"fields"`
	Counts   map[int]uint16   `json:"counts"`
	Raw      json.RawMessage  `json:"raw"`
	Blob     []byte           `json:"blob"`
	Grid     [2][2]float32    `json:"grid"`
	Timeout  time.Duration    `json:"timeout"`
	Addr     netip.Addr       `json:"addr"`
	Children []Ticket         `json:"children"`
	Meta     struct{ N int }  `json:"meta"`
	Page     Page[other.User] `json:"page"`
	Rev      int              `json:"rev"`
	Tags     map[Label]Label  `json:"tags,omitzero"`
	Weird    string           `json:"weird-name"`
	Skipped  string           `json:"-"`
	Dash     string           `json:"-,"`
	NoTag    bool
	secret   string
}

// Page is a generic page of items.
type Page[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next,omitempty"`
}

// User clashes with other.User.
type User struct {
	Nick string `json:"nick"`
}

// Empty has no members.
type Empty struct{}

// The contract.
var (
	// GetTicket fetches one ticket.
	GetTicket = datasole.NewRPC[GetTicketParams, Ticket]("tickets.get")
	Ping      = datasole.NewRPC[struct{}, Empty]("ping")
	Me        = datasole.NewRPC[Empty, *User]("me")

	// Changed fires when a ticket changes.
	Changed = datasole.NewEvent[Ticket]("ticket:changed")
	Typing  = datasole.NewEvent[[]string]("typing")

	Board = datasole.NewState[map[string][]Ticket]("board")
	Load  = datasole.NewState[float64](loadKey)
)

const loadKey = "load"

// GetTicketParams are the parameters of GetTicket.
type GetTicketParams struct {
	ID int64 `json:"id"`
}

// local is not a contract declaration: it lives in a function.
func local() datasole.RPC[int, int] { return datasole.NewRPC[int, int]("local") }

var _ = local
