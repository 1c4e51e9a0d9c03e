// Package contract is the demo contract as a package of its own: every RPC
// method, event and state key of the demo page (demos/web, the page every
// framework demo serves), for the browser tests that drive that page
// (e2e/browser) and for the page's generated TypeScript types
// (demos/web/contract.ts). The framework demos each carry a copy of it
// (contract.go), so that each one is a program that can be copied alone.
package contract

import "github.com/datasole/datasole-go/datasole"

// AddParams are the parameters of Add.
type AddParams struct {
	A float64 `json:"a"`
	B float64 `json:"b"`
}

// AddResult is the result of Add.
type AddResult struct {
	Sum float64 `json:"sum"`
}

// WhoAmIResult tells a client how the server sees it.
type WhoAmIResult struct {
	UserID       string   `json:"userId"`
	ConnectionID string   `json:"connectionId"`
	Roles        []string `json:"roles"`
}

// ChatSend is what a client emits to post a chat line.
type ChatSend struct {
	Text string `json:"text"`
}

// ChatMessage is a chat line the server broadcasts.
type ChatMessage struct {
	From string `json:"from"`
	Text string `json:"text"`
	At   int64  `json:"at"`
}

// Dashboard is the live dashboard every page shows.
type Dashboard struct {
	Connections int   `json:"connections"`
	Messages    int   `json:"messages"`
	StartedAt   int64 `json:"startedAt"`
}

// LikesKey is the pn-counter every page increments.
const LikesKey = "likes"

// The demo contract.
var (
	Add    = datasole.NewRPC[AddParams, AddResult]("add")
	WhoAmI = datasole.NewRPC[struct{}, WhoAmIResult]("whoami")

	ChatSendEvent    = datasole.NewEvent[ChatSend]("chat:send")
	ChatMessageEvent = datasole.NewEvent[ChatMessage]("chat:message")

	DashboardState = datasole.NewState[Dashboard]("dashboard")
)
