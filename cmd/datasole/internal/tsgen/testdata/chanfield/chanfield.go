// Package chanfield declares an event whose payload has no JSON encoding.
package chanfield

import "github.com/datasole/datasole-go/datasole"

// Bad holds a channel.
type Bad struct {
	C chan int `json:"c"`
}

// Broken cannot be encoded.
var Broken = datasole.NewEvent[Bad]("broken")
