package dsredis_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Close must stop the receiving goroutines and every subscription.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
