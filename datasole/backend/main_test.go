package backend_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every subscription goroutine and gap notifier must end with Close.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
