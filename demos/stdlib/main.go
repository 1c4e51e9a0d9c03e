// Command stdlib is the datasole demo on net/http alone: a chat (events), a
// live dashboard (state), a shared like counter (CRDT) and an RPC panel, on
// the in-memory backend.
//
// It is a whole program: copy this folder into an empty module and run it.
//
//	go mod init example.com/demo
//	go get github.com/datasole/datasole-go/adapters/stdlib@latest
//	go mod tidy
//	go run . -addr :3000
//
// main.go is the net/http part; app.go, contract.go and the page are the
// same in every framework's demo.
package main

import (
	"context"
	"flag"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	dshttp "github.com/datasole/datasole-go/adapters/stdlib"
)

func main() {
	addr := flag.String("addr", ":3000", "listen address")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("demo listening on http://%s", ln.Addr())
	if err := run(ctx, ln, nil); err != nil {
		log.Fatal(err)
	}
}

// run serves the demo on ln until ctx ends, then shuts down gracefully.
func run(ctx context.Context, ln net.Listener, logger *slog.Logger) error {
	ds, err := newServer(ctx, logger)
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.Handle("/", http.FileServerFS(page))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })

	srv := &http.Server{Handler: dshttp.Wrap(mux, ds), ReadHeaderTimeout: 10 * time.Second}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ds.Close(shutdown) // 1001 to every client; they reconnect elsewhere
		srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	<-stopped
	return nil
}
