package session_test

import (
	"context"
	"fmt"

	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/datasole/datasole-go/datasole/session"
)

// A user's session outlives both the connection and the node that held it.
func Example() {
	ctx := context.Background()
	b := backend.NewMemory(backend.MemoryOptions{})
	defer b.Close()

	store, _ := session.NewStore(session.Options{Backend: b})
	store.OnChange(func(c session.Change) { fmt.Printf("changed %s.%s = %s\n", c.UserID, c.Key, c.Value) })

	// On connect.
	s, _ := store.Acquire(ctx, "alice")
	_ = s.Set("theme", "dark")
	// On disconnect: the session is written to the backend.
	_ = store.Release(ctx, "alice")
	_ = store.Close(ctx)

	// After a restart, the next connection finds it again.
	store, _ = session.NewStore(session.Options{Backend: b})
	defer store.Close(ctx)
	s, _ = store.Acquire(ctx, "alice")
	var theme string
	ok, _ := s.GetInto("theme", &theme)
	fmt.Println(theme, ok)
	// Output:
	// changed alice.theme = "dark"
	// dark true
}
