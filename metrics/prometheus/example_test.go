package dsprom_test

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/datasole/datasole-go/datasole"
	dsprom "github.com/datasole/datasole-go/metrics/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The application owns the registry and the route.
func Example() {
	reg := prometheus.NewRegistry()
	col := dsprom.New(dsprom.Options{})
	reg.MustRegister(col)
	ds, err := datasole.New(datasole.Options{Observer: col})
	if err != nil {
		log.Fatal(err)
	}
	defer ds.Close(context.Background())

	mux := http.NewServeMux()
	if err := ds.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	mux.Handle("/__ds", ds.Handler())
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	hs := httptest.NewServer(mux)
	defer hs.Close()

	resp, err := http.Get(hs.URL + "/metrics")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "datasole_connections ") {
			fmt.Println(sc.Text())
		}
	}
	// Output: datasole_connections 0
}
