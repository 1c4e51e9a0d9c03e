package datasole_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/datasole/datasole-go/datasole/client"
	"github.com/gorilla/websocket"
)

func TestNewRejectsNonsenseOptions(t *testing.T) {
	cases := []struct {
		name  string
		opts  datasole.Options
		field string
	}{
		{"a path with a space", datasole.Options{Path: "/a b"}, "Options.Path"},
		{"a relative path", datasole.Options{Path: "ds"}, "Options.Path"},
		{"a path with a query", datasole.Options{Path: "/ds?x=1"}, "Options.Path"},
		{"a path with empty segments", datasole.Options{Path: "/a//b"}, "Options.Path"},
		{"an origin without a scheme", datasole.Options{AllowedOrigins: []string{"app.example.com"}}, "Options.AllowedOrigins[0]"},
		{"an origin with a path", datasole.Options{AllowedOrigins: []string{"https://app.example.com/x"}}, "Options.AllowedOrigins[0]"},
		{"an origin of another scheme", datasole.Options{AllowedOrigins: []string{"ftp://app.example.com"}}, "Options.AllowedOrigins[0]"},
		{"a wildcard in the middle", datasole.Options{AllowedOrigins: []string{"https://app.*.com"}}, "Options.AllowedOrigins[0]"},
		{"a negative auth timeout", datasole.Options{AuthTimeout: -time.Second}, "Options.AuthTimeout"},
		{"a negative RPC timeout", datasole.Options{RPCTimeout: -1}, "Options.RPCTimeout"},
		{"negative handlers", datasole.Options{MaxHandlers: -5}, "Options.MaxHandlers"},
		{"negative in-flight calls", datasole.Options{MaxInFlight: -1}, "Options.MaxInFlight"},
		{"a negative send queue", datasole.Options{SendQueueSize: -1}, "Options.SendQueueSize"},
		{"a negative write timeout", datasole.Options{WriteTimeout: -1}, "Options.WriteTimeout"},
		{"a negative message size", datasole.Options{MaxMessageSize: -1}, "Options.MaxMessageSize"},
		{"a message size too small for frames", datasole.Options{MaxMessageSize: 10}, "Options.MaxMessageSize"},
		{"connections below -1", datasole.Options{MaxConnections: -2}, "Options.MaxConnections"},
		{"per-IP caps below -1", datasole.Options{MaxConnectionsPerIP: -7}, "Options.MaxConnectionsPerIP"},
		{"a heartbeat below -1", datasole.Options{HeartbeatInterval: -2}, "Options.HeartbeatInterval"},
		{"an unknown slow-consumer policy", datasole.Options{SlowConsumer: 9}, "Options.SlowConsumer"},
		{"a rate rule without a window", datasole.Options{RateLimit: datasole.RateLimit{Default: datasole.Rule{Limit: 10}}}, "Options.RateLimit.Default.Window"},
		{"a rate rule with a negative limit", datasole.Options{RateLimit: datasole.RateLimit{RPC: map[string]datasole.Rule{"add": {Limit: -1, Window: time.Second}}}}, `Options.RateLimit.RPC["add"].Limit`},
		{"a rate rule whose cost exceeds its limit", datasole.Options{RateLimit: datasole.RateLimit{Events: map[string]datasole.Rule{"x": {Limit: 1, Window: time.Second, Cost: 2}}}}, `Options.RateLimit.Events["x"].Cost`},
		{"a session TTL below zero", datasole.Options{Session: datasole.SessionOptions{TTL: -1}}, "Options.Session.TTL"},
		{"CRDT keys below zero", datasole.Options{CRDT: datasole.CRDTOptions{MaxKeys: -1}}, "Options.CRDT.MaxKeys"},
	}
	for _, tc := range cases {
		t.Run(tc.name+" is refused naming "+tc.field, func(t *testing.T) {
			ds, err := datasole.New(quietOptions(tc.opts))
			if ds != nil || err == nil {
				t.Fatalf("New accepted it")
			}
			if !errors.Is(err, datasole.ErrInvalidOption) {
				t.Fatalf("error %v does not match ErrInvalidOption", err)
			}
			var oe *datasole.OptionError
			if !errors.As(err, &oe) || oe.Field != tc.field || oe.Fix == "" {
				t.Fatalf("error %v: want an *OptionError for %s with a fix", err, tc.field)
			}
		})
	}
	t.Run("every invalid field is reported at once", func(t *testing.T) {
		_, err := datasole.New(quietOptions(datasole.Options{Path: "/a b", MaxInFlight: -1, WriteTimeout: -1}))
		for _, f := range []string{"Options.Path", "Options.MaxInFlight", "Options.WriteTimeout"} {
			if !strings.Contains(err.Error(), f) {
				t.Errorf("%v does not name %s", err, f)
			}
		}
	})
	t.Run("sensible values pass, defaults fill the rest", func(t *testing.T) {
		ds, err := datasole.New(quietOptions(datasole.Options{Path: "/rt/", AllowedOrigins: []string{"*", "https://*.example.com", "http://localhost:5173"},
			MaxConnections: -1, HeartbeatInterval: -1}))
		if err != nil {
			t.Fatal(err)
		}
		defer ds.Close(context.Background()) // a server owns its in-memory backend until closed
		if o := ds.Options(); o.Path != "/rt" || o.RPCTimeout != 30*time.Second || o.MaxInFlight != 64 {
			t.Fatalf("effective options %+v", o)
		}
	})
}

func TestRegistrationRefusesMistakes(t *testing.T) {
	ds, err := datasole.New(quietOptions(datasole.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	ok := func(*datasole.Context, json.RawMessage) (any, error) { return nil, nil }
	bad := map[string]error{
		"nil RPC handler":       ds.HandleRPC("x", nil),
		"empty RPC name":        ds.HandleRPC("", ok),
		"reserved RPC name":     ds.HandleRPC("$ds.resync", ok),
		"too long RPC name":     ds.HandleRPC(strings.Repeat("m", 300), ok),
		"nil event handler":     ds.On("e", nil),
		"empty event name":      ds.On("", func(*datasole.Context, json.RawMessage) {}),
		"reserved event name":   ds.On("$ds.x", func(*datasole.Context, json.RawMessage) {}),
		"nil typed RPC handler": datasole.NewRPC[int, int]("typed").Handle(ds, nil),
		"nil typed event":       datasole.NewEvent[int]("typedEvent").Handle(ds, nil),
	}
	if err := ds.HandleRPC("add", ok); err != nil {
		t.Fatalf("a first handler was refused: %v", err)
	}
	bad["duplicate RPC"] = ds.HandleRPC("add", ok)
	for name, err := range bad {
		if !errors.Is(err, datasole.ErrInvalidRegistration) {
			t.Errorf("%s: got %v, want ErrInvalidRegistration", name, err)
		}
	}
	if err := ds.On("e2", func(*datasole.Context, json.RawMessage) {}); err != nil {
		t.Fatal(err)
	}
	if err := ds.On("e2", func(*datasole.Context, json.RawMessage) {}); err != nil {
		t.Fatalf("a second handler of an event is allowed: %v", err)
	}
	err = ds.Start(context.Background())
	if !errors.Is(err, datasole.ErrInvalidRegistration) || !strings.Contains(err.Error(), "duplicate") && !strings.Contains(err.Error(), "already registered") {
		t.Fatalf("Start = %v, want the registration errors", err)
	}
	ds.Close(context.Background())
}

// refusingBus is a backend whose bus refuses subscriptions.
type refusingBus struct{ backend.Backend }

var errBusDown = errors.New("bus down")

func (refusingBus) Subscribe(context.Context, string, func([]byte)) (func(), error) {
	return nil, errBusDown
}

func TestStartFailsWhenTheBusRefusesSubscribe(t *testing.T) {
	mem := backend.NewMemory(backend.MemoryOptions{})
	defer mem.Close()
	ds, err := datasole.New(quietOptions(datasole.Options{Backend: refusingBus{mem}}))
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close(context.Background())
	if err := ds.Start(context.Background()); !errors.Is(err, errBusDown) {
		t.Fatalf("Start = %v, want the Subscribe error", err)
	}
	hs := httptest.NewServer(ds.Handler())
	defer hs.Close()
	_, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(hs.URL, "http")+"/__ds", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("an upgrade to a server that failed to start: %v %v, want 503", resp, err)
	}
}

func TestAServerNotStartedRefusesUpgrades(t *testing.T) {
	ds, err := datasole.New(quietOptions(datasole.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close(context.Background())
	hs := httptest.NewServer(ds.Handler())
	defer hs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = client.Dial(ctx, hs.URL, client.Options{Logger: discardLogger(), NoReconnect: true})
	var de *client.DialError
	if !errors.As(err, &de) || de.Status != http.StatusServiceUnavailable {
		t.Fatalf("dial = %v, want HTTP 503", err)
	}
	if got := ds.Snapshot().Rejections["not-started"]; got != 1 {
		t.Fatalf("not-started rejections = %d, want 1", got)
	}
}

func TestCloseUserAndExpiry(t *testing.T) {
	expires := time.Now().Add(300 * time.Millisecond)
	ts := startServer(t, datasole.Options{Auth: func(r *http.Request) (*datasole.Principal, error) {
		p := &datasole.Principal{UserID: r.URL.Query().Get("token")}
		if p.UserID == "short" {
			p.ExpiresAt = expires
		}
		return p, nil
	}}, nil)
	dialAs := func(user string) *rawConn {
		ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(ts.url, "http")+"/__ds?token="+user, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ws.Close() })
		return &rawConn{t: t, ws: ws}
	}
	t.Run("CloseUser closes every connection of that user and only those", func(t *testing.T) {
		a1, a2, b := dialAs("alice"), dialAs("alice"), dialAs("bob")
		eventually(t, "three connections", func() bool { return ts.ds.ConnectionCount() >= 3 })
		ts.ds.CloseUser("alice", datasole.CloseRevoked, "revoked")
		for _, c := range []*rawConn{a1, a2} {
			if code := c.closeCode(); code != datasole.CloseRevoked {
				t.Fatalf("alice's connection closed with %d, want %d", code, datasole.CloseRevoked)
			}
		}
		b.sendFrame(7, 1, "null") // PING: bob is still served
		b.next(8)
	})
	t.Run("a connection closes with 4001 when its principal expires", func(t *testing.T) {
		c := dialAs("short")
		if code := c.closeCode(); code != datasole.CloseSessionExpired {
			t.Fatalf("closed with %d, want %d", code, datasole.CloseSessionExpired)
		}
		if time.Now().Before(expires) {
			t.Fatal("closed before the principal expired")
		}
		eventually(t, "the close counted", func() bool { return ts.ds.Snapshot().Closes["expired"] == 1 })
	})
}
