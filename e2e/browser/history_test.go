package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/datasole/datasole-go/datasole/web"
	"github.com/gorilla/websocket"
)

// eventually polls cond until it holds, failing the test after 15 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// clusterNode returns the setup of a node on backend b (one of the memory
// backends of twoMemoryNodes) with observer obs (nil: none): connections are
// admitted as the user their token names, and node runs the test's own
// registrations.
func clusterNode(b *backend.Memory, obs datasole.Observer, node func(*datasole.Server) error) func(int) (*datasole.Server, error) {
	return func(int) (*datasole.Server, error) {
		ds, err := datasole.New(datasole.Options{
			Backend:  b,
			Observer: obs,
			Logger:   quiet,
			Auth: func(r *http.Request) (*datasole.Principal, error) {
				return &datasole.Principal{UserID: r.URL.Query().Get("token")}, nil
			},
		})
		if err != nil {
			return nil, err
		}
		if err := node(ds); err != nil {
			return nil, err
		}
		if err := ds.HandleRPC("echo", func(c *datasole.Context, params json.RawMessage) (any, error) { return params, nil }); err != nil {
			return nil, err
		}
		return ds, ds.Start(context.Background())
	}
}

// twoMemoryNodes returns the backends of two nodes that share one store and
// bus, as two processes share one Redis; each call makes a new store.
func twoMemoryNodes() (a, b *backend.Memory) {
	a = backend.NewMemory(backend.MemoryOptions{Logger: quiet})
	b = backend.NewMemory(backend.MemoryOptions{Logger: quiet, Peer: a})
	return a, b
}

// rpcDone signals every finished call of one RPC method.
type rpcDone struct {
	datasole.NopObserver
	method string
	done   chan struct{}
}

func (o *rpcDone) StartRPC(ctx context.Context, method string) (context.Context, func(string)) {
	if method != o.method {
		return ctx, func(string) {}
	}
	return ctx, func(string) {
		select {
		case o.done <- struct{}{}:
		default: // nobody waits for that many
		}
	}
}

// gate is the pages' origin in front of two nodes: it serves the harness and
// the client's scripts and passes WebSocket upgrades to the first node until
// hold is called; from then on upgrades wait until open is called and then go
// to the second node. A client cut from the first node thus stays down as
// long as the test wants and comes back on another node.
type gate struct {
	first, second *url.URL
	held          atomic.Bool
	release       chan struct{}
	releaseOnce   sync.Once
	upgrades      atomic.Int32 // passed on
	hs            *httptest.Server
}

func startGate(t *testing.T, first, second string) *gate {
	t.Helper()
	g := &gate{release: make(chan struct{})}
	var err error
	if g.first, err = url.Parse(first); err != nil {
		t.Fatal(err)
	}
	if g.second, err = url.Parse(second); err != nil {
		t.Fatal(err)
	}
	g.hs = httptest.NewServer(g)
	t.Cleanup(func() {
		g.open() // no upgrade may be left waiting when the server closes
		g.hs.Close()
	})
	return g
}

// hold makes upgrades wait from now on.
func (g *gate) hold() { g.held.Store(true) }

// open lets waiting and later upgrades through, to the second node.
func (g *gate) open() { g.releaseOnce.Do(func() { close(g.release) }) }

// target is where upgrades and probes go now.
func (g *gate) target() *url.URL {
	if g.held.Load() {
		return g.second
	}
	return g.first
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/harness.html":
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(harness)
	case strings.HasPrefix(r.URL.Path, "/__ds/"):
		a, ok := web.Lookup(strings.TrimPrefix(r.URL.Path, "/__ds/"))
		if !ok {
			http.NotFound(w, r)
			return
		}
		a.ServeHTTP(w, r)
	case r.URL.Path == "/__ds" && websocket.IsWebSocketUpgrade(r):
		if g.held.Load() {
			select {
			case <-g.release:
			case <-r.Context().Done():
				return
			}
		}
		g.upgrades.Add(1)
		httputil.NewSingleHostReverseProxy(g.target()).ServeHTTP(w, r)
	case r.URL.Path == "/__ds": // a probe after a failed upgrade
		httputil.NewSingleHostReverseProxy(g.target()).ServeHTTP(w, r)
	default:
		http.NotFound(w, r)
	}
}

// TestHistoryRecoveryAcrossNodesInTheBrowser runs the recovery scenario in
// Chromium, in worker mode and on the page thread: a page on the first node
// gets events to a kept tag; the server cuts its connection (CloseUser) and
// the page's reconnect is held while 1,000 events are published; it then
// reconnects — to the other node — and must show every event once, in order,
// then live ones. With a history window of 100 it must be told that it did
// not recover, and show only what came before the cut and after it.
func TestHistoryRecoveryAcrossNodesInTheBrowser(t *testing.T) {
	needBrowser(t)
	for _, mode := range []struct{ name, options string }{
		{"in worker mode", `{useWorker: true, auth: {token: "ann"}}`},
		{"on the page thread", `{useWorker: false, auth: {token: "ann"}}`},
	} {
		for _, tc := range []recoveryCase{
			{name: "all 1,000 missed events arrive once, in order, before live ones", size: 1000, recoverable: true},
			{name: "1,000 missed past a window of 100 report recovered false", size: 100, recoverable: false},
			{name: "a stream not visible at the reconnect keeps its position and recovers at its first gap", size: 2000, recoverable: true, joinLater: true},
		} {
			tc.options = mode.options
			tc.worker = strings.Contains(mode.options, "useWorker: true")
			t.Run(mode.name+"/"+tc.name, func(t *testing.T) { testBrowserRecovery(t, tc) })
		}
	}
}

type recoveryCase struct {
	name        string
	options     string // of the client
	worker      bool   // the options ask for worker mode
	size        int    // of the history
	recoverable bool
	// joinLater tags connections by an RPC, not on connect: at the
	// reconnect the page is not in the tag (the server answers the recovery
	// "not visible"), then joins, and the first live event shows the gap.
	joinLater bool
}

func testBrowserRecovery(t *testing.T, tc recoveryCase) {
	const before, missed, after = 10, 1000, 10
	rootA, rootB := twoMemoryNodes()
	setup := func(ds *datasole.Server) error {
		if tc.joinLater {
			if err := ds.HandleRPC("join", func(c *datasole.Context, _ json.RawMessage) (any, error) {
				c.Conn().Tag("room")
				return true, nil
			}); err != nil {
				return err
			}
		} else {
			ds.OnConnect(func(c *datasole.Conn) { c.Tag("room") })
		}
		return ds.KeepHistory(datasole.ToTag("room"), datasole.History{Size: tc.size})
	}
	recovered := &rpcDone{method: "$ds.recover", done: make(chan struct{}, 16)}
	first := startSite(t, nil, clusterNode(rootA, nil, setup))
	second := startSite(t, nil, clusterNode(rootB, recovered, setup))
	g := startGate(t, first.url(""), second.url(""))

	tb := openTab(t, g.hs.URL+"/harness.html")
	if got := eval[string](t, tb, `h.start(`+tc.options+`)`); got != "connected" {
		t.Fatalf("connect: %s", got)
	}
	eval[bool](t, tb, `h.on("msg")`)
	join := func() {
		t.Helper()
		if got := eval[map[string]any](t, tb, `h.call("join")`); got["ok"] != true {
			t.Fatalf("join: %v", got)
		}
	}
	if tc.joinLater {
		join()
	}
	eventually(t, "the page in the room on the first node", func() bool { return first.ds.ConnectionCount() == 1 })

	seq := 0
	send := func(s *site, n int) {
		t.Helper()
		for range n {
			if err := s.ds.Send(datasole.ToTag("room"), "msg", seq); err != nil {
				t.Fatal(err)
			}
			seq++
		}
	}
	send(first, before)
	tb.waitFor(t, fmt.Sprintf(`h.data("msg").length === %d`, before))

	g.hold()
	first.ds.CloseUser("ann", datasole.CloseGoingAway, "cut")
	eventually(t, "the cut connection gone from the first node", func() bool { return first.ds.ConnectionCount() == 0 })
	tb.waitFor(t, `h.client.getConnectionState() !== "connected"`)
	base := first.ds.Snapshot().HistoryAppends
	send(first, missed)
	eventually(t, "the missed events stored", func() bool { return first.ds.Snapshot().HistoryAppends-base == missed })
	if got := eval[int](t, tb, `h.data("msg").length`); got != before {
		t.Fatalf("the page got %d events while its connection was down, want %d", got, before)
	}

	g.open() // the page reconnects, to the second node
	if tc.joinLater {
		select {
		case <-recovered.done: // answered "not visible": the page is in no tag yet
		case <-time.After(15 * time.Second):
			t.Fatal("the page never asked to recover")
		}
		// The page joins; its first live event shows the gap. (Were the
		// "not visible" answer to arrive after live events, they would be
		// held and a later one would start the recovery.)
		join()
		if got := eval[[]map[string]any](t, tb, `h.recoveries`); len(got) != 0 {
			t.Fatalf("recoveries = %v before the gap, want none for a stream not visible", got)
		}
		send(second, after) // the first live event shows the gap
	}
	tb.waitFor(t, `h.recoveries.length > 0`)
	if got := eval[[]map[string]any](t, tb, `h.recoveries`); len(got) != 1 || got[0]["stream"] != "t:room" || got[0]["recovered"] != tc.recoverable {
		t.Fatalf("recoveries = %v, want one for t:room with recovered %v", got, tc.recoverable)
	}
	eventually(t, "the page on the second node", func() bool { return second.ds.ConnectionCount() == 1 })
	if !tc.joinLater {
		send(second, after)
	}

	var want []int
	for i := range before + missed + after {
		if tc.recoverable || i < before || i >= before+missed {
			want = append(want, i)
		}
	}
	tb.waitFor(t, fmt.Sprintf(`h.data("msg").length >= %d`, len(want)))
	// Frames to one connection keep their order: once a call made now is
	// answered, a duplicate queued before its answer would have arrived.
	if got := eval[map[string]any](t, tb, `h.call("echo", 1)`); got["ok"] != true {
		t.Fatalf("echo after the events: %v", got)
	}
	got := eval[[]int](t, tb, `h.data("msg")`)
	if len(got) != len(want) {
		t.Fatalf("the page got %d events, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("event %d is %d, want %d: out of order, lost or twice", i, got[i], want[i])
		}
	}
	if n := g.upgrades.Load(); n < 2 {
		t.Fatalf("%d upgrades through the gate: the page never reconnected", n)
	}
	if n := first.ds.ConnectionCount(); n != 0 {
		t.Fatalf("the page is back on the first node (%d connections)", n)
	}
	if n := eval[int](t, tb, `window.pageSockets`); tc.worker && n != 0 {
		t.Errorf("%d sockets opened on the page thread in worker mode", n)
	} else if !tc.worker && n < 2 {
		t.Errorf("%d sockets opened on the page thread, want both connections there", n)
	}
	if n := eval[int](t, tb, `h.errors.length`); n != 0 {
		t.Errorf("%d ERROR frames: %s", n, eval[[]byte](t, tb, `JSON.stringify(h.errors)`))
	}
	s := second.ds.Snapshot()
	if tc.recoverable && s.Recoveries != 1 || !tc.recoverable && s.RecoveriesFailed != 1 {
		t.Errorf("the second node counted %d recoveries and %d failed ones", s.Recoveries, s.RecoveriesFailed)
	}
}

// TestPresenceInTheBrowser runs presence across two nodes: a page on each
// (one in worker mode, one on the page thread) in a tracked tag; either lists
// both with their info, counts them, and sees the other join and leave. A
// page outside the tag is refused the list.
func TestPresenceInTheBrowser(t *testing.T) {
	needBrowser(t)
	rootA, rootB := twoMemoryNodes()
	setup := func(ds *datasole.Server) error {
		ds.OnConnect(func(c *datasole.Conn) {
			if c.UserID() != "carol" {
				c.Tag("room")
			}
		})
		return ds.TrackPresence("room", datasole.PresenceOptions{
			Info:   func(c *datasole.Conn) any { return map[string]string{"name": strings.ToUpper(c.UserID())} },
			Events: true,
		})
	}
	one := startSite(t, nil, clusterNode(rootA, nil, setup))
	two := startSite(t, nil, clusterNode(rootB, nil, setup))

	ann := openTab(t, one.url("/harness.html"))
	eval[bool](t, ann, `(h.start({useWorker: true, auth: {token: "ann"}}).then((s) => s === "connected" && h.track("room")))`)
	bob := openTab(t, two.url("/harness.html"))
	eval[bool](t, bob, `(h.start({useWorker: false, auth: {token: "bob"}}).then((s) => s === "connected" && h.track("room")))`)

	t.Run("a page sees another join on another node, with its info", func(t *testing.T) {
		ann.waitFor(t, `h.joins.some((c) => c.user === "bob")`)
		got := eval[map[string]any](t, ann, `h.joins.find((c) => c.user === "bob")`)
		if got["tag"] != "room" || got["conn"] == "" || fmt.Sprint(got["info"]) != "map[name:BOB]" {
			t.Errorf("bob's join: %v", got)
		}
	})

	ctx := context.Background()
	eventually(t, "both entries in the backend", func() bool {
		es, err := one.ds.Presence(ctx, "room")
		return err == nil && len(es) == 2
	})

	t.Run("presence on either node lists both pages", func(t *testing.T) {
		for _, tb := range []*tab{ann, bob} {
			var res struct {
				OK     bool `json:"ok"`
				Result []struct {
					Conn string            `json:"conn"`
					User string            `json:"user"`
					Info map[string]string `json:"info"`
				} `json:"result"`
			}
			raw := eval[[]byte](t, tb, `h.presence("room")`)
			if err := json.Unmarshal(raw, &res); err != nil || !res.OK {
				t.Fatalf("presence: %s (%v)", raw, err)
			}
			users := map[string]string{}
			for _, e := range res.Result {
				if e.Conn == "" {
					t.Errorf("an entry without a connection id: %s", raw)
				}
				users[e.User] = e.Info["name"]
			}
			if len(res.Result) != 2 || users["ann"] != "ANN" || users["bob"] != "BOB" {
				t.Errorf("presence lists %s, want ann and bob with their names", raw)
			}
			if got := string(eval[[]byte](t, tb, `h.presenceStats("room")`)); got != `{"ok":true,"result":{"conns":2,"users":2}}` {
				t.Errorf("presenceStats = %s", got)
			}
		}
	})

	t.Run("a page outside the tag is refused the list", func(t *testing.T) {
		carol := openTab(t, one.url("/harness.html"))
		if got := eval[string](t, carol, `h.start({auth: {token: "carol"}})`); got != "connected" {
			t.Fatalf("connect: %s", got)
		}
		got := eval[map[string]any](t, carol, `h.presence("room")`)
		if got["ok"] != false || got["code"] != float64(datasole.CodeNotMember) || got["isDatasoleError"] != true {
			t.Errorf("presence for a non-member: %v, want a DatasoleError with code %d", got, datasole.CodeNotMember)
		}
	})

	t.Run("a page that leaves is seen leaving", func(t *testing.T) {
		bobConn := eval[string](t, ann, `h.joins.find((c) => c.user === "bob").conn`)
		eval[bool](t, bob, `h.client.disconnect().then(() => true)`)
		ann.waitFor(t, `h.leaves.some((c) => c.user === "bob")`)
		got := eval[map[string]any](t, ann, `h.leaves.find((c) => c.user === "bob")`)
		if got["tag"] != "room" || got["conn"] != bobConn {
			t.Errorf("bob's leave: %v, want tag room and connection %s", got, bobConn)
		}
		if n := eval[int](t, ann, `h.leaves.filter((c) => c.user === "ann").length`); n != 0 {
			t.Errorf("ann saw herself leave %d times", n)
		}
		eventually(t, "bob's entry gone", func() bool {
			es, err := two.ds.Presence(ctx, "room")
			return err == nil && len(es) == 1
		})
		var res struct {
			Result []struct {
				User string `json:"user"`
			} `json:"result"`
		}
		json.Unmarshal(eval[[]byte](t, ann, `h.presence("room")`), &res)
		if len(res.Result) != 1 || res.Result[0].User != "ann" {
			t.Errorf("after bob left presence lists %+v, want ann alone", res.Result)
		}
	})
}
