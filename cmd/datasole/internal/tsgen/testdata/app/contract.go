// Package app is a small application contract. Its generated TypeScript is
// committed as datasole/web/test/types/contract.ts, where the browser
// client's type tests check calls against it.
package app

import "github.com/datasole/datasole-go/datasole"

// AddParams are the operands of Add.
type AddParams struct {
	A float64 `json:"a"`
	B float64 `json:"b"`
}

// AddResult is the sum.
type AddResult struct {
	Sum float64 `json:"sum"`
}

// ChatMessage is one chat line.
type ChatMessage struct {
	From string `json:"from"`
	Text string `json:"text"`
}

// Dashboard is the live dashboard.
type Dashboard struct {
	Visitors int      `json:"visitors"`
	Online   []string `json:"online"`
}

// Filter narrows a search; every member may be left out.
type Filter struct {
	Query string `json:"query,omitempty"`
	Limit int    `json:"limit,omitempty"`
}

// The contract.
var (
	// Add adds two numbers.
	Add    = datasole.NewRPC[AddParams, AddResult]("add")
	Ping   = datasole.NewRPC[struct{}, string]("ping")
	Search = datasole.NewRPC[Filter, []string]("search")

	ChatSend   = datasole.NewEvent[ChatMessage]("chat:send")
	ChatPosted = datasole.NewEvent[ChatMessage]("chat:message")
	Typing     = datasole.NewEvent[*string]("typing")

	DashboardKey = datasole.NewState[Dashboard]("dashboard")
	Load         = datasole.NewState[float64]("load")
)
