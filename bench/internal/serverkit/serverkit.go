// Package serverkit is the part every compared server program shares: the
// command line (-addr, -debug), the file limit, the debug HTTP endpoint the
// harness reads memory and connection counts from and triggers fan-out
// through, and a clean stop on SIGTERM.
//
// Debug endpoint (on its own port, never on the measured one):
//
//	GET  /stats               {"conns":N}
//	GET  /mem                 runs the GC and returns heap in use, stacks in
//	                          use, goroutines and connections
//	POST /publish?n=K&size=B  publishes K messages of about B bytes to every
//	                          connection, each {"seq":S,"ts":UNIXNANO,"pad":…},
//	                          and answers {"last":S} once they are handed over
package serverkit

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/datasole/datasole-go/bench/internal/fdlimit"
)

// Server is what a compared server program provides to the kit.
type Server interface {
	// Publish delivers msg to every open connection. The kit never reuses
	// msg after the call.
	Publish(msg []byte)
	// Conns returns the number of open connections.
	Conns() int
}

// Starter starts the server's WebSocket endpoint on addr. It returns the
// server and a function that stops it.
type Starter func(addr string) (Server, func(context.Context) error, error)

// Mem is the answer of GET /mem.
type Mem struct {
	HeapInuse  uint64 `json:"heapInuse"`
	StackInuse uint64 `json:"stackInuse"`
	Goroutines int    `json:"goroutines"`
	Conns      int    `json:"conns"`
}

// Main runs a server program: it parses -addr and -debug, raises the file
// limit, starts the server and the debug endpoint, prints "ready" on stdout
// and serves until SIGTERM or SIGINT.
func Main(name string, start Starter) {
	addr := flag.String("addr", "127.0.0.1:8080", "WebSocket listen address")
	debugAddr := flag.String("debug", "127.0.0.1:8081", "debug HTTP listen address")
	flag.Parse()
	log.SetPrefix(name + ": ")
	log.SetFlags(0)
	if _, err := fdlimit.Raise(1 << 20); err != nil {
		log.Printf("raising the file limit: %v", err)
	}

	srv, stop, err := start(*addr)
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", *debugAddr)
	if err != nil {
		log.Fatal(err)
	}
	dbg := &http.Server{Handler: Handler(srv)}
	go dbg.Serve(ln)
	fmt.Println("ready")

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	dbg.Shutdown(ctx)
	if err := stop(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Printf("stop: %v", err)
	}
}

// Handler returns the debug endpoint for srv.
func Handler(srv Server) http.Handler {
	var seq atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]int{"conns": srv.Conns()})
	})
	mux.HandleFunc("GET /mem", func(w http.ResponseWriter, r *http.Request) {
		runtime.GC()
		debug.FreeOSMemory() // so that the harness's RSS reading sees live memory
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		writeJSON(w, Mem{HeapInuse: ms.HeapInuse, StackInuse: ms.StackInuse,
			Goroutines: runtime.NumGoroutine(), Conns: srv.Conns()})
	})
	mux.HandleFunc("POST /publish", func(w http.ResponseWriter, r *http.Request) {
		n, err1 := strconv.Atoi(r.FormValue("n"))
		size, err2 := strconv.Atoi(r.FormValue("size"))
		if err := errors.Join(err1, err2); err != nil || n < 1 || size < 0 || size > 1<<20 {
			http.Error(w, "want n ≥ 1 and 0 ≤ size ≤ 1 MiB", http.StatusBadRequest)
			return
		}
		var last int64
		for range n {
			last = seq.Add(1)
			srv.Publish(Message(last, time.Now().UnixNano(), size))
		}
		writeJSON(w, map[string]int64{"last": last})
	})
	return mux
}

// Message returns the fan-out message with sequence number seq and send time
// ts (Unix nanoseconds), padded to size bytes when it is shorter.
func Message(seq, ts int64, size int) []byte {
	b := make([]byte, 0, max(size, 64))
	b = fmt.Appendf(b, `{"seq":%d,"ts":%d,"pad":"`, seq, ts)
	for len(b) < size-2 {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
