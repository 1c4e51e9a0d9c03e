// Package contract is what the server and its Go client share.
package contract

import "github.com/datasole/datasole-go/datasole"

// AddParams are the parameters of Add.
type AddParams struct {
	A float64 `json:"a"`
	B float64 `json:"b"`
}

// AddResult is the result of Add: the sum and who asked.
type AddResult struct {
	Sum float64 `json:"sum"`
	By  string  `json:"by"`
}

var (
	// Add adds two numbers.
	Add = datasole.NewRPC[AddParams, AddResult]("add")
	// LastSum is the last sum any client asked for, kept in the backend.
	LastSum = datasole.NewState[float64]("last-sum")
)
