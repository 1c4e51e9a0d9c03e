// Command dshttp serves the datasole application of the comparison through
// adapters/stdlib (dshttp.Wrap around a net/http server), at /__ds.
package main

import (
	"context"
	"errors"
	"net"
	"net/http"

	dshttp "github.com/datasole/datasole-go/adapters/stdlib"

	"github.com/datasole/datasole-go/bench/internal/dsapp"
	"github.com/datasole/datasole-go/bench/internal/serverkit"
)

func main() {
	serverkit.Main("dshttp", func(addr string) (serverkit.Server, func(context.Context) error, error) {
		ds, err := dsapp.New(context.Background())
		if err != nil {
			return nil, nil, err
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, nil, err
		}
		hs := &http.Server{Handler: dshttp.Wrap(http.NotFoundHandler(), ds)}
		go hs.Serve(ln)
		stop := func(ctx context.Context) error {
			return errors.Join(hs.Shutdown(ctx), ds.Close(ctx))
		}
		return dsapp.Server{DS: ds}, stop, nil
	})
}
