// Package duplicate declares one RPC name twice.
package duplicate

import "github.com/datasole/datasole-go/datasole"

// Two declarations of "add".
var (
	Add      = datasole.NewRPC[int, int]("add")
	AddAgain = datasole.NewRPC[int, int]("add")
)
