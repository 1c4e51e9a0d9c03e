package minimal_test

import (
	"testing"

	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/datasole/datasole-go/datasole/backend/backendtest"
	"github.com/datasole/datasole-go/datasole/backend/minimal"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Every handle opened on one hub with the same prefix is a node of one
// application: the suite checks the whole contract across them.
func TestConformance(t *testing.T) {
	hub := minimal.NewHub()
	backendtest.Run(t, func(t *testing.T, prefix string) backend.Backend {
		return hub.Open(prefix)
	})
}
