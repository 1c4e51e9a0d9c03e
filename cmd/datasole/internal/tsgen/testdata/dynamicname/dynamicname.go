// Package dynamicname names a state key at run time.
package dynamicname

import (
	"os"

	"github.com/datasole/datasole-go/datasole"
)

// Key's name is not known until the program runs.
var Key = datasole.NewState[int](os.Getenv("KEY"))
