package adaptertest

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/client"
)

// The server side of the scenarios.
const (
	serverToken = "server-token" // the token the server's own auth handler admits
	serverUser  = "server-user"
	assetName   = "datasole.iife.min.js"
)

type addParams struct{ A, B float64 }

type whoami struct {
	UserID string   `json:"userId"`
	Roles  []string `json:"roles"`
}

type chatMessage struct {
	From string `json:"from"`
	Text string `json:"text"`
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// newServer is the datasole server every scenario runs against. Its auth
// handler admits serverToken and refuses everything else, so a principal
// that reaches a handler without it came from the framework's middleware.
func newServer(tb testing.TB, o datasole.Options) *datasole.Server {
	tb.Helper()
	o.Logger = quiet
	o.Auth = func(r *http.Request) (*datasole.Principal, error) {
		if r.URL.Query().Get("token") == serverToken {
			return &datasole.Principal{UserID: serverUser, Roles: []string{"member"}}, nil
		}
		return nil, datasole.ErrNoCredentials
	}
	ds, err := datasole.New(o)
	if err != nil {
		tb.Fatal(err)
	}
	err = errors.Join(
		ds.HandleRPC("echo", func(_ *datasole.Context, p json.RawMessage) (any, error) { return p, nil }),
		ds.HandleRPC("add", func(_ *datasole.Context, raw json.RawMessage) (any, error) {
			var p addParams
			if err := json.Unmarshal(raw, &p); err != nil {
				return nil, err
			}
			return p.A + p.B, nil
		}),
		ds.HandleRPC("whoami", func(c *datasole.Context, _ json.RawMessage) (any, error) {
			return whoami{UserID: c.Principal().UserID, Roles: c.Principal().Roles}, nil
		}),
		ds.On("chat:send", func(c *datasole.Context, data json.RawMessage) {
			var text string
			if json.Unmarshal(data, &text) == nil {
				ds.Broadcast("chat:message", chatMessage{From: c.UserID(), Text: text})
			}
		}),
		ds.Start(context.Background()),
	)
	if err != nil {
		tb.Fatal(err)
	}
	return ds
}

func start(t testing.TB, h Harness, s Setup, o datasole.Options) (*datasole.Server, string) {
	t.Helper()
	ds := newServer(t, o)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ds.Close(ctx)
	})
	return ds, h.Serve(t, ds, s)
}

func dial(t testing.TB, url string, o client.Options) (*client.Client, error) {
	t.Helper()
	o.Logger = quiet
	o.NoReconnect = true
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, url, o)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

func mustDial(t testing.TB, url string, o client.Options) *client.Client {
	t.Helper()
	c, err := dial(t, url, o)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	return c
}

func ctx5s(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Run runs the adapter scenarios against h, first with the adapter alone,
// then behind the framework's common middleware.
func Run(t *testing.T, h Harness) {
	for _, s := range []struct {
		name  string
		setup Setup
	}{
		{"mounted alone", Setup{}},
		{"behind the framework's common middleware", Setup{Middleware: true}},
	} {
		t.Run(h.Name+" "+s.name, func(t *testing.T) {
			_, url := start(t, h, s.setup, datasole.Options{})
			for _, sc := range scenarios {
				t.Run(sc.name, func(t *testing.T) { sc.run(t, url) })
			}
		})
	}
	t.Run(h.Name+" admits origins the server allows", func(t *testing.T) {
		_, url := start(t, h, Setup{}, datasole.Options{AllowedOrigins: []string{"https://app.example"}})
		c := mustDial(t, url, client.Options{Token: serverToken, Header: http.Header{"Origin": {"https://app.example"}}})
		var sum float64
		if err := c.Call(ctx5s(t), "add", addParams{1, 2}, &sum); err != nil || sum != 3 {
			t.Fatalf("add = %v, %v", sum, err)
		}
	})
}

// scenarios run against one server; each opens its own clients.
var scenarios = []struct {
	name string
	run  func(t *testing.T, url string)
}{
	{"an RPC call returns the handler's result", func(t *testing.T, url string) {
		c := mustDial(t, url, client.Options{Token: serverToken})
		var sum float64
		if err := c.Call(ctx5s(t), "add", addParams{2, 40}, &sum); err != nil || sum != 42 {
			t.Fatalf("add = %v, %v; want 42", sum, err)
		}
	}},
	{"a client event reaches the server and its broadcast reaches every client", func(t *testing.T, url string) {
		sender := mustDial(t, url, client.Options{Token: serverToken})
		other := mustDial(t, url, client.Options{Header: http.Header{UserHeader: {"bob"}}})
		got := make(chan chatMessage, 2)
		for _, c := range []*client.Client{sender, other} {
			c.On("chat:message", func(data json.RawMessage) {
				var m chatMessage
				json.Unmarshal(data, &m)
				got <- m
			})
		}
		// A round trip on each client makes sure both are attached before the broadcast.
		for _, c := range []*client.Client{sender, other} {
			if _, err := c.CallRaw(ctx5s(t), "echo", 1); err != nil {
				t.Fatal(err)
			}
		}
		if err := sender.Emit(ctx5s(t), "chat:send", "hi all"); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			select {
			case m := <-got:
				if m != (chatMessage{From: serverUser, Text: "hi all"}) {
					t.Fatalf("chat:message = %+v", m)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("a client did not get the broadcast")
			}
		}
	}},
	{"the runtime asset is served by the core with an ETag and revalidates to 304", func(t *testing.T, url string) {
		want, ok := datasole.Asset(assetName)
		if !ok {
			t.Fatalf("the core has no asset %s", assetName)
		}
		resp, body := get(t, url+"/__ds/"+assetName, http.Header{"Accept-Encoding": {"gzip"}})
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, want.Body) {
			t.Fatalf("GET asset: %d, %d bytes (want 200, %d bytes)", resp.StatusCode, len(body), len(want.Body))
		}
		if got := resp.Header.Get("ETag"); got != want.ETag {
			t.Fatalf("ETag = %q, want %q", got, want.ETag)
		}
		resp, body = get(t, url+"/__ds/"+assetName, http.Header{"If-None-Match": {want.ETag}, "Accept-Encoding": {"gzip"}})
		if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
			t.Fatalf("revalidation: %d with %d bytes, want 304 and no body", resp.StatusCode, len(body))
		}
	}},
	{"an unknown asset gets the core's 404, not the app's", func(t *testing.T, url string) {
		resp, body := get(t, url+"/__ds/no-such-asset.js", nil)
		if resp.StatusCode != http.StatusNotFound || strings.Contains(string(body), NotFoundBody) {
			t.Fatalf("got %d %q; want the core's 404", resp.StatusCode, body)
		}
	}},
	{"a plain GET on the upgrade path is told to upgrade", func(t *testing.T, url string) {
		resp, _ := get(t, url+"/__ds", nil)
		if resp.StatusCode != http.StatusUpgradeRequired {
			t.Fatalf("got %d, want 426", resp.StatusCode)
		}
	}},
	{"the app's routes beside the mount still work", func(t *testing.T, url string) {
		resp, body := get(t, url+AppRoute, nil)
		if resp.StatusCode != http.StatusOK || string(body) != AppBody {
			t.Fatalf("GET %s: %d %q", AppRoute, resp.StatusCode, body)
		}
		resp, body = get(t, url+"/__dsx", nil)
		if resp.StatusCode != http.StatusNotFound || string(body) != NotFoundBody {
			t.Fatalf("a path that only starts like the mount: %d %q, want the app's 404", resp.StatusCode, body)
		}
	}},
	{"the identity from the framework's auth middleware reaches the RPC context", func(t *testing.T, url string) {
		c := mustDial(t, url, client.Options{Header: http.Header{UserHeader: {"alice"}, RolesHeader: {"admin,ops"}}})
		var who whoami
		if err := c.Call(ctx5s(t), "whoami", nil, &who); err != nil {
			t.Fatal(err)
		}
		if who.UserID != "alice" || !slices.Equal(who.Roles, []string{"admin", "ops"}) {
			t.Fatalf("whoami = %+v, want alice with roles admin,ops", who)
		}
	}},
	{"without it the server's auth handler decides", func(t *testing.T, url string) {
		c := mustDial(t, url, client.Options{Token: serverToken})
		var who whoami
		if err := c.Call(ctx5s(t), "whoami", nil, &who); err != nil || who.UserID != serverUser {
			t.Fatalf("whoami = %+v, %v; want %s", who, err, serverUser)
		}
		_, err := dial(t, url, client.Options{})
		wantStatus(t, err, http.StatusUnauthorized)
	}},
	{"a foreign Origin is refused with 403", func(t *testing.T, url string) {
		_, err := dial(t, url, client.Options{Token: serverToken, Header: http.Header{"Origin": {"http://evil.example"}}})
		wantStatus(t, err, http.StatusForbidden)
	}},
	{"the page's own origin is admitted", func(t *testing.T, url string) {
		c := mustDial(t, url, client.Options{Token: serverToken, Header: http.Header{"Origin": {url}}})
		if _, err := c.CallRaw(ctx5s(t), "echo", 1); err != nil {
			t.Fatal(err)
		}
	}},
	{"a request the skip option matches goes to the app", func(t *testing.T, url string) {
		resp, body := get(t, url+"/__ds/"+assetName, http.Header{SkipHeader: {"1"}})
		if resp.StatusCode != http.StatusNotFound || string(body) != NotFoundBody {
			t.Fatalf("skipped asset request: %d %q, want the app's 404", resp.StatusCode, body)
		}
		_, err := dial(t, url, client.Options{Token: serverToken, Header: http.Header{SkipHeader: {"1"}}})
		var de *client.DialError
		if !errors.As(err, &de) || de.Status != http.StatusNotFound {
			t.Fatalf("skipped upgrade: %v, want the app's 404", err)
		}
	}},
}

// get fetches url and returns the response with its body read (and
// decompressed, when a compression middleware encoded it).
func get(t *testing.T, url string, h http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx5s(t), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r io.Reader = resp.Body
	switch resp.Header.Get("Content-Encoding") {
	case "gzip":
		if resp.StatusCode == http.StatusNotModified || resp.ContentLength == 0 {
			break
		}
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatalf("gzip body: %v", err)
		}
		r = zr
	case "deflate":
		r = flate.NewReader(resp.Body)
	}
	body, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading %s: %v", url, err)
	}
	return resp, body
}

func wantStatus(t *testing.T, err error, status int) {
	t.Helper()
	var de *client.DialError
	if !errors.As(err, &de) || de.Status != status {
		t.Fatalf("dial error = %v, want the upgrade refused with %d", err, status)
	}
}

// BenchRPC measures an RPC round trip (echo of a small object) through h.
// Run it with Core for the baseline an adapter's overhead is measured
// against.
func BenchRPC(b *testing.B, h Harness) {
	ds := newServer(b, datasole.Options{HeartbeatInterval: -1, RateLimit: datasole.RateLimit{Disabled: true}})
	b.Cleanup(func() { ds.Close(context.Background()) })
	url := h.Serve(b, ds, Setup{})
	c := mustDial(b, url, client.Options{Token: serverToken})
	ctx := context.Background()
	params := map[string]any{"n": 1, "text": "hello"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.CallRaw(ctx, "echo", params); err != nil {
			b.Fatal(err)
		}
	}
}
