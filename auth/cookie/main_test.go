package dscookie

import (
	"testing"

	"go.uber.org/goleak"
)

// The Store's subscriptions and the servers in the tests leave nothing behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
