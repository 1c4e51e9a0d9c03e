package datasole_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every server and client test must leave no goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
