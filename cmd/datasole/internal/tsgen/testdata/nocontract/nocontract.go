// Package nocontract declares no contract.
package nocontract

// Thing is not part of any contract.
type Thing struct{ A int }
