package datasole_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/datasole/datasole-go/datasole/client"
)

// sessionServer runs a server on b whose RPCs read and write the caller's
// session; users are named by the token.
func sessionServer(t *testing.T, b backend.Backend) (*datasole.Server, *httptest.Server) {
	ds, err := datasole.New(quietOptions(datasole.Options{
		Backend: b,
		Auth: func(r *http.Request) (*datasole.Principal, error) {
			return &datasole.Principal{UserID: r.URL.Query().Get("token")}, nil
		},
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := ds.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ds.HandleRPC("put", func(c *datasole.Context, p json.RawMessage) (any, error) {
		s := c.Session()
		if s == nil {
			return nil, datasole.Errorf("no session")
		}
		if err := s.Set("cart", p); err != nil {
			return nil, datasole.Errorf("%v", err)
		}
		return nil, nil
	})
	ds.HandleRPC("get", func(c *datasole.Context, _ json.RawMessage) (any, error) {
		v, _ := c.Session().Get("cart")
		return v, nil
	})
	return ds, httptest.NewServer(ds.Handler())
}

func TestSessionsSurviveReconnectsAndRestarts(t *testing.T) {
	b := backend.NewMemory(backend.MemoryOptions{})
	defer b.Close()
	ctx := context.Background()
	get := func(url, user string) string {
		c := dial(t, url, client.Options{Token: user})
		defer c.Close()
		raw, err := c.CallRaw(ctx, "get", nil)
		if err != nil {
			t.Fatal(err)
		}
		return string(raw)
	}

	ds, hs := sessionServer(t, b)
	alice := dial(t, hs.URL, client.Options{Token: "alice"})
	if _, err := alice.CallRaw(ctx, "put", []string{"tea"}); err != nil {
		t.Fatal(err)
	}
	if got := get(hs.URL, "alice"); got != `["tea"]` {
		t.Fatalf("a second connection of alice sees %s", got)
	}
	if got := get(hs.URL, "bob"); got != "" {
		t.Fatalf("bob sees alice's session: %s", got)
	}
	alice.Close()
	ds.Close(ctx)
	hs.Close()

	ds2, hs2 := sessionServer(t, b) // a restarted server on the same store
	defer hs2.Close()
	defer ds2.Close(ctx)
	if got := get(hs2.URL, "alice"); got != `["tea"]` {
		t.Fatalf("after a restart alice's session is %q", got)
	}
}
