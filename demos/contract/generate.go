package contract

// The browser page's types come from this package; regenerate them after
// changing the contract.
//go:generate go run github.com/datasole/datasole-go/cmd/datasole gen ts . -o ../web/contract.ts
