package dsredis_test

import (
	"testing"

	"github.com/datasole/datasole-go/datasole/clustertest"
)

// Server events over real Redis: emitted on one node, handled once on
// every node, each publisher's events in order.
func TestServerEventsOverRedis(t *testing.T) {
	clustertest.RunServerEvents(t, redisCluster)
}
