package client_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/client"
)

// A refused dial says why: test it with errors.Is against the client's
// sentinels; the message names the likely fix.
func ExampleErrUnauthorized() {
	ds, _ := datasole.New(datasole.Options{
		Logger: slog.New(slog.DiscardHandler),
		Auth: func(r *http.Request) (*datasole.Principal, error) {
			if r.URL.Query().Get("token") != "secret" {
				return nil, datasole.ErrUnauthorized
			}
			return &datasole.Principal{UserID: "ann"}, nil
		},
	})
	ds.Start(context.Background())
	hs := httptest.NewServer(ds.Handler())
	defer hs.Close()
	defer ds.Close(context.Background())

	_, err := client.Dial(context.Background(), hs.URL, client.Options{NoReconnect: true})
	switch {
	case errors.Is(err, client.ErrUnauthorized):
		fmt.Println("sign in first:", err)
	case errors.Is(err, client.ErrUnreachable):
		fmt.Println("server down")
	}
	// Output:
	// sign in first: datasole client: upgrade refused with HTTP 401: the server refused the credential or none was sent; set Options.Token (or the header the server's auth reads in Options.Header)
}
