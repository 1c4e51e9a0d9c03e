package backend_test

import (
	"testing"

	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/datasole/datasole-go/datasole/backend/backendtest"
)

func TestMemoryConformance(t *testing.T) {
	root := backend.NewMemory(backend.MemoryOptions{})
	t.Cleanup(func() { _ = root.Close() })
	backendtest.Run(t, func(t *testing.T, prefix string) backend.Backend {
		return backend.NewMemory(backend.MemoryOptions{Prefix: prefix, Peer: root})
	})
}
