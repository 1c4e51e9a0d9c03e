package clustertest_test

import (
	"testing"

	"github.com/datasole/datasole-go/datasole/clustertest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestClusterOnMemoryBackends(t *testing.T) {
	clustertest.Run(t, clustertest.MemoryCluster)
}
