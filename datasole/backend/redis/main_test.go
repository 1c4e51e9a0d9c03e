package dsredis_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// Close must stop the receiving goroutines and every subscription. The test
// binary also serves as the child node of the presence test.
func TestMain(m *testing.M) {
	if os.Getenv("DATASOLE_PRESENCE_NODE") == "1" {
		runPresenceNode()
		return
	}
	goleak.VerifyTestMain(m)
}
