package dsredis_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/datasole/datasole-go/datasole/backend/backendtest"
	dsredis "github.com/datasole/datasole-go/datasole/backend/redis"
	"github.com/redis/go-redis/v9"
)

// Presence leaves no keys behind: a node that joined and left 100 sets
// holds no set keys and no list of its sets afterwards, and a dead node's
// keys go with another node's keep-alive.
func TestPresenceKeysAreBounded(t *testing.T) {
	opts, err := redis.ParseURL(serverURL(t))
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opts)
	defer client.Close()
	ctx := context.Background()
	prefix := backendtest.NewPrefix()
	b, err := dsredis.New(ctx, client, dsredis.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	internal := "\xff" + prefix
	countKeys := func() int {
		var n int
		it := client.Scan(ctx, 0, "\xff"+prefix+"*", 1000).Iterator()
		for it.Next(ctx) {
			if it.Val() != internal+"nodes" {
				n++
			}
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		return n
	}

	if _, err := b.KeepNodeAlive(ctx, "n1", time.Minute); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		set := "user:" + strconv.Itoa(i)
		if err := b.AddPresence(ctx, set, backend.PresenceEntry{ConnID: "c" + strconv.Itoa(i), UserID: "u", NodeID: "n1"}); err != nil {
			t.Fatal(err)
		}
		if err := b.RemovePresence(ctx, set, "c"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := countKeys(); n != 0 {
		t.Fatalf("%d presence keys left after every entry was removed", n)
	}

	if _, err := b.KeepNodeAlive(ctx, "dies", 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := b.AddPresence(ctx, "room:"+strconv.Itoa(i), backend.PresenceEntry{ConnID: "d" + strconv.Itoa(i), NodeID: "dies"}); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := b.KeepNodeAlive(ctx, "n1", time.Minute); err != nil {
			t.Fatal(err)
		}
		if countKeys() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d presence keys of a dead node left after its ttl", countKeys())
		}
	}
	if n, err := client.ZCard(ctx, internal+"nodes").Result(); err != nil || n != 1 {
		t.Fatalf("liveness holds %d nodes (%v), want the live one", n, err)
	}
}
