// Command stdlib is the demo app on net/http:
//
//	go run ./demos/stdlib -addr :3000
package main

import (
	"context"
	"flag"
	"log"
	"net/http"
	"os"
	"os/signal"
	"time"

	dshttp "github.com/datasole/datasole-go/adapters/stdlib"
	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/demos/app"
	"github.com/datasole/datasole-go/demos/web"
)

func main() {
	addr := flag.String("addr", ":3000", "listen address")
	flag.Parse()

	// Development only: everyone is admitted anonymously. See docs/auth.md.
	ds, err := datasole.New(datasole.Options{Auth: datasole.Anonymous})
	if err != nil {
		log.Fatal(err)
	}
	if err := app.Setup(ds); err != nil {
		log.Fatal(err)
	}
	if err := ds.Start(context.Background()); err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.Handle("/", http.FileServerFS(web.FS))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })

	srv := &http.Server{Addr: *addr, Handler: dshttp.Wrap(mux, ds), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ds.Close(shutdown) // 1001 to every client; they reconnect elsewhere
		srv.Shutdown(shutdown)
	}()
	log.Printf("demo listening on %s", *addr)
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
