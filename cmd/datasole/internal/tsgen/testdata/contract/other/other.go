// Package other declares a type whose name clashes with the contract's.
package other

// User is a user of another package.
type User struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}
