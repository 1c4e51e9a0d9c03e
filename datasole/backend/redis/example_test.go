package dsredis_test

import (
	"context"
	"log"

	dsredis "github.com/datasole/datasole-go/datasole/backend/redis"
	"github.com/redis/go-redis/v9"
)

// A Sentinel-managed Redis: the failover client follows the master, and the
// backend uses it like any other client.
func ExampleNew() {
	ctx := context.Background()
	client := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:    "mymaster",
		SentinelAddrs: []string{"sentinel-1:26379", "sentinel-2:26379"},
	})
	defer client.Close()
	b, err := dsredis.New(ctx, client, dsredis.Options{Prefix: "chat:"})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	b.OnGap(func() { log.Print("bus messages may have been lost; resynchronizing") })
}
