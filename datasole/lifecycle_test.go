package datasole_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/client"
	"github.com/datasole/datasole-go/datasole/protocol"
	"github.com/gorilla/websocket"
)

func TestClientReconnectsAfterServerRestart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	serve := func(ln net.Listener) (*datasole.Server, *http.Server) {
		ds, err := datasole.New(quietOptions(datasole.Options{}))
		if err != nil {
			t.Fatal(err)
		}
		if err := ds.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		addRPC.Handle(ds, func(c *datasole.Context, p addParams) (addResult, error) {
			return addResult{Sum: p.A + p.B}, nil
		})
		hs := &http.Server{Handler: ds.Handler()}
		go hs.Serve(ln)
		return ds, hs
	}
	ds, hs := serve(ln)

	var states []client.State
	stateCh := make(chan client.State, 16)
	c := dial(t, "http://"+addr, client.Options{ReconnectInterval: 20 * time.Millisecond,
		OnStateChange: func(s client.State) { stateCh <- s }})

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ds.Close(ctx)
	hs.Close()

	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("rebinding %s: %v", addr, err)
	}
	ds2, hs2 := serve(ln2)
	defer func() { ds2.Close(ctx); hs2.Close() }()

	eventually(t, "the client to reconnect", func() bool { return c.Connections() == 2 && c.State() == client.Connected })
	got, err := addRPC.Call(ctx, c, addParams{A: 20, B: 22})
	if err != nil || got.Sum != 42 {
		t.Fatalf("call after reconnect: %v %v", got, err)
	}
	for len(stateCh) > 0 {
		states = append(states, <-stateCh)
	}
	want := []client.State{client.Connected, client.Disconnected, client.Connecting, client.Connected}
	if len(states) != len(want) {
		t.Fatalf("state changes %v, want %v", states, want)
	}
	for i := range want {
		if states[i] != want[i] {
			t.Fatalf("state changes %v, want %v", states, want)
		}
	}
}

func TestPendingCallsFailAtOnceWhenTheLinkDrops(t *testing.T) {
	ts := startServer(t, datasole.Options{}, func(ds *datasole.Server) {
		ds.HandleRPC("hang", func(c *datasole.Context, _ json.RawMessage) (any, error) {
			c.Conn().Close(datasole.CloseNormal, "bye")
			<-c.Done()
			return nil, nil
		})
	})
	c := dial(t, ts.url, client.Options{NoReconnect: true})
	start := time.Now()
	_, err := c.CallRaw(context.Background(), "hang", nil)
	if !errors.Is(err, client.ErrClosed) {
		t.Fatalf("got %v, want ErrClosed", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("the pending call waited for its timeout instead of failing at once")
	}
}

func TestSlowConsumerIsClosedWhileHealthyOnesKeepReceiving(t *testing.T) {
	// The write timeout is long so that the queue, not the deadline, catches
	// the slow consumer even on a loaded machine.
	ts := startServer(t, datasole.Options{SendQueueSize: 64, WriteTimeout: time.Minute}, nil)
	healthy := dial(t, ts.url, client.Options{})
	var received atomic.Int64
	healthy.On("tick", func(json.RawMessage) { received.Add(1) })

	// A peer that never reads, with a small receive buffer: the server's
	// socket buffer fills, then its queue.
	d := websocket.Dialer{NetDial: func(network, addr string) (net.Conn, error) {
		conn, err := net.Dial(network, addr)
		if err == nil {
			conn.(*net.TCPConn).SetReadBuffer(8 << 10)
		}
		return conn, err
	}}
	slowWS, _, err := d.Dial("ws"+ts.url[4:]+"/__ds", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slowWS.Close()
	eventually(t, "both connected", func() bool { return ts.ds.ConnectionCount() == 2 })

	// Random hex compresses only to half: 1,000 frames of 32 KB are far more
	// than loopback socket buffers hold.
	buf := make([]byte, 16<<10)
	rand.Read(buf)
	payload := hex.EncodeToString(buf)
	const n = 500
	for i := 0; i < n; i++ {
		ts.ds.Broadcast("tick", payload)
		if i%16 == 0 {
			time.Sleep(time.Millisecond) // let the healthy client keep up
		}
	}
	eventually(t, "the slow consumer to be closed", func() bool { return ts.ds.Snapshot().SlowConsumerCloses == 1 })
	eventually(t, "the healthy client to get every frame", func() bool { return received.Load() == n })
	// The server let go of it: its memory and goroutines are released. (Its
	// close frame may never arrive: it is stuck behind data the peer never read.)
	eventually(t, "the slow consumer to be gone from the server", func() bool { return ts.ds.ConnectionCount() == 1 })
}

func TestGracefulClose(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	ts := startServer(t, datasole.Options{}, func(ds *datasole.Server) {
		ds.HandleRPC("work", func(c *datasole.Context, _ json.RawMessage) (any, error) {
			close(started)
			<-release
			return "finished", nil
		})
	})
	c := dial(t, ts.url, client.Options{NoReconnect: true})
	raw := dialRaw(t, ts.url, nil)
	raw.sendFrame(protocol.Ping, 1, "null") // a round trip: the server has attached it
	raw.next(protocol.Pong)
	res := make(chan string, 1)
	go func() {
		var s string
		err := c.Call(context.Background(), "work", nil, &s)
		if err != nil {
			s = err.Error()
		}
		res <- s
	}()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- ts.ds.Close(ctx) }()
	// New upgrades are refused as soon as Close has begun.
	eventually(t, "upgrades to be refused", func() bool {
		ws, resp, err := websocket.DefaultDialer.Dial("ws"+ts.url[4:]+"/__ds", nil)
		if err == nil {
			ws.Close()
		}
		return resp != nil && resp.StatusCode == http.StatusServiceUnavailable
	})
	close(release) // the call in flight finishes during the graceful close
	if err := <-closed; err != nil {
		t.Fatalf("close: %v", err)
	}
	if got := <-res; got != "finished" {
		t.Fatalf("in-flight call got %q, want it to finish", got)
	}
	if code := raw.closeCode(); code != datasole.CloseGoingAway {
		t.Fatalf("close code %d, want 1001", code)
	}
	if ts.ds.ConnectionCount() != 0 {
		t.Fatal("connections left after Close")
	}
}

// A peer that answers no ping is closed after two intervals; one that
// answers stays through many intervals. The test waits on pings, not on
// the clock.
func TestHeartbeatClosesDeadPeers(t *testing.T) {
	gone := closeWatcher{ch: make(chan string, 4)} // reports closes once counted
	ts := startServer(t, datasole.Options{HeartbeatInterval: 20 * time.Millisecond, Observer: gone}, nil)
	r := dialRaw(t, ts.url, nil)
	// Answer no pings (gorilla answers them only while reading, and its
	// default handler is replaced).
	r.ws.SetPingHandler(func(string) error { return nil })
	go func() {
		for {
			if _, _, err := r.ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	select {
	case <-gone.ch:
	case <-time.After(5 * time.Second):
		t.Fatal("the silent peer was not closed")
	}
	if n := ts.ds.Snapshot().Closes["heartbeat"]; n != 1 {
		t.Fatalf("closes by heartbeat: %d, want 1 (%v)", n, ts.ds.Snapshot().Closes)
	}

	// A live peer answers pings and stays: count 10 pings, five times the
	// two intervals after which a silent peer is closed.
	live := dialRaw(t, ts.url, nil)
	pings := make(chan struct{}, 16)
	live.ws.SetPingHandler(func(data string) error {
		pings <- struct{}{}
		return live.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	readErr := make(chan error, 1)
	go func() {
		for {
			if _, _, err := live.ws.ReadMessage(); err != nil {
				readErr <- err
				return
			}
		}
	}()
	for i := 0; i < 10; i++ {
		select {
		case <-pings:
		case err := <-readErr:
			t.Fatalf("a live peer was closed after %d pings: %v", i, err)
		case <-time.After(5 * time.Second):
			t.Fatal("no ping")
		}
	}
	select {
	case reason := <-gone.ch:
		t.Fatalf("a live peer was closed (%s)", reason)
	default:
	}
}

func TestUpgradeRefusals(t *testing.T) {
	authErr := errors.New("ldap down")
	gone := make(chan struct{}, 16)
	ts := startServer(t, datasole.Options{
		MaxConnections: 2,
		AllowedOrigins: []string{"https://app.example.com", "https://*.trusted.dev"},
		AuthTimeout:    100 * time.Millisecond,
		Auth: func(r *http.Request) (*datasole.Principal, error) {
			switch r.URL.Query().Get("token") {
			case "good":
				return &datasole.Principal{UserID: "u"}, nil
			case "broken":
				return nil, authErr
			case "slow":
				time.Sleep(300 * time.Millisecond)
				return &datasole.Principal{}, nil
			case "":
				return nil, datasole.ErrNoCredentials
			}
			return nil, datasole.ErrUnauthorized
		},
	}, func(ds *datasole.Server) {
		ds.OnDisconnect(func(*datasole.Conn) { gone <- struct{}{} })
	})
	// waitGone waits until the server has retired n connections (and given
	// their slots back).
	waitGone := func(n int) {
		t.Helper()
		for range n {
			select {
			case <-gone:
			case <-time.After(5 * time.Second):
				t.Fatal("a closed connection was not retired")
			}
		}
	}
	status := func(query string, hdr http.Header) int {
		ws, resp, err := websocket.DefaultDialer.Dial("ws"+ts.url[4:]+"/__ds"+query, hdr)
		if err == nil {
			ws.Close()
			waitGone(1)
			return 101
		}
		if resp == nil {
			t.Fatalf("no response: %v", err)
		}
		return resp.StatusCode
	}
	origin := func(o string) http.Header { return http.Header{"Origin": {o}} }
	cases := []struct {
		name  string
		query string
		hdr   http.Header
		want  int
	}{
		{"a valid token is admitted", "?token=good", nil, 101},
		{"a wrong token is refused with 401", "?token=bad", nil, 401},
		{"no token is refused with 401", "", nil, 401},
		{"a failing auth handler gives 500", "?token=broken", nil, 500},
		{"a slow auth handler gives 408", "?token=slow", nil, 408},
		{"a foreign origin is refused with 403", "?token=good", origin("https://evil.example"), 403},
		{"the same origin is admitted", "?token=good", origin(ts.url), 101},
		{"an allow-listed origin is admitted", "?token=good", origin("https://app.example.com"), 101},
		{"a wildcard subdomain is admitted", "?token=good", origin("https://x.trusted.dev"), 101},
		{"a look-alike domain is refused", "?token=good", origin("https://eviltrusted.dev"), 403},
		{"the null origin is refused", "?token=good", origin("null"), 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := status(tc.query, tc.hdr); got != tc.want {
				t.Fatalf("status %d, want %d", got, tc.want)
			}
		})
	}
	t.Run("over the connection limit is refused with 503 before upgrading", func(t *testing.T) {
		open := func() *client.Client {
			c, err := client.Dial(context.Background(), ts.url, client.Options{Token: "good", Logger: discardLogger(), NoReconnect: true})
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		a, b := open(), open()
		if got := status("?token=good", nil); got != 503 {
			t.Fatalf("status %d, want 503", got)
		}
		a.Close()
		b.Close()
		waitGone(2)
		if got := status("?token=good", nil); got != 101 {
			t.Fatalf("status %d after the slots were freed, want 101", got)
		}
	})
	t.Run("a plain GET on the path asks for an upgrade", func(t *testing.T) {
		resp, err := http.Get(ts.url + "/__ds")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUpgradeRequired {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
	if r := ts.ds.Snapshot().Rejections; r["unauthorized"] < 2 || r["origin"] < 3 || r["max-connections"] < 1 {
		t.Fatalf("rejections not counted by reason: %v", r)
	}
}

func TestOtherPathsAreNotServed(t *testing.T) {
	ts := startServer(t, datasole.Options{}, nil)
	resp, err := http.Get(ts.url + "/elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

var _ = httptest.NewServer

func TestBrowserRuntimeIsServedBelowThePath(t *testing.T) {
	ts := startServer(t, datasole.Options{}, nil)
	for name, corp := range map[string]string{"datasole.iife.min.js": "same-origin", "datasole-worker.iife.min.js": "cross-origin"} {
		resp, err := http.Get(ts.url + "/__ds/" + name)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		etag := resp.Header.Get("ETag")
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/javascript; charset=utf-8" ||
			etag == "" || resp.Header.Get("Cross-Origin-Resource-Policy") != corp {
			t.Fatalf("%s: %d %v", name, resp.StatusCode, resp.Header)
		}
		req, _ := http.NewRequest("GET", ts.url+"/__ds/"+name, nil)
		req.Header.Set("If-None-Match", etag)
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotModified {
			t.Fatalf("%s with If-None-Match: %d", name, resp.StatusCode)
		}
	}
	resp, err := http.Get(ts.url + "/__ds/nope.js")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("unknown asset: %d", resp.StatusCode)
	}
}
