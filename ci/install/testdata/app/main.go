// Command app is a datasole server on gin with JWT auth and the Redis
// backend, built from modules fetched with go get. It prints the URL it
// listens on and serves until SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"example.com/app/contract"
	dsgin "github.com/datasole/datasole-go/adapters/gin"
	dsjwt "github.com/datasole/datasole-go/auth/jwt"
	"github.com/datasole/datasole-go/datasole"
	dsredis "github.com/datasole/datasole-go/datasole/backend/redis"
	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"
)

func main() {
	redisURL := flag.String("redis", "redis://127.0.0.1:6379/0", "Redis server URL")
	prefix := flag.String("prefix", "app:", "namespace of the app's keys and channels in Redis")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	opts, err := redis.ParseURL(*redisURL)
	if err != nil {
		log.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	bus, err := dsredis.New(ctx, rdb, dsredis.Options{Prefix: *prefix})
	if err != nil {
		log.Fatal(err)
	}
	defer bus.Close()

	auth, err := dsjwt.New(dsjwt.Options{Algorithms: []string{"HS256"}, Key: []byte(os.Getenv("APP_JWT_SECRET"))})
	if err != nil {
		log.Fatal(err)
	}
	ds, err := datasole.New(datasole.Options{Auth: auth, Backend: bus})
	if err != nil {
		log.Fatal(err)
	}
	err = contract.Add.Handle(ds, func(c *datasole.Context, p contract.AddParams) (contract.AddResult, error) {
		sum := p.A + p.B
		if err := contract.LastSum.Set(c, ds, sum); err != nil {
			return contract.AddResult{}, err
		}
		return contract.AddResult{Sum: sum, By: c.UserID()}, nil
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := ds.Start(ctx); err != nil {
		log.Fatal(err)
	}

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.Recovery(), dsgin.Mount(ds))
	r.GET("/healthz", func(c *gin.Context) { c.String(http.StatusOK, "ok") })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ds.Close(shutdown)
		srv.Shutdown(shutdown)
	}()
	fmt.Printf("listening on http://%s\n", ln.Addr())
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
