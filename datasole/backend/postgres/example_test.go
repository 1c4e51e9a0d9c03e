package dspostgres_test

import (
	"context"
	"log"

	dspostgres "github.com/datasole/datasole-go/datasole/backend/postgres"
	"github.com/jackc/pgx/v5/pgxpool"
)

// An application passes its own pool; the backend adds its tables and one
// listening connection.
func ExampleNew() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://app@db.internal/app?sslmode=disable")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	b, err := dspostgres.New(ctx, pool, dspostgres.Options{Prefix: "chat:", Table: "chat"})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	b.OnGap(func() { log.Print("bus messages may have been lost; resynchronizing") })
}
