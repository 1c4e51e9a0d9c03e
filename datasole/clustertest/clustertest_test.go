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

func TestHistoryOnMemoryBackends(t *testing.T) {
	t.Run("two nodes sharing one store", func(t *testing.T) { clustertest.RunHistory(t, clustertest.MemoryCluster, 2) })
	t.Run("one node", func(t *testing.T) { clustertest.RunHistory(t, clustertest.MemoryCluster, 1) })
}
