package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/crdt"
)

// echoServer is a server with an echo RPC and the given options.
func echoServer(opts datasole.Options) func(int) (*datasole.Server, error) {
	return func(int) (*datasole.Server, error) {
		opts.Logger = quiet
		ds, err := datasole.New(opts)
		if err != nil {
			return nil, err
		}
		if err := ds.Start(context.Background()); err != nil {
			return nil, err
		}
		ds.HandleRPC("echo", func(c *datasole.Context, params json.RawMessage) (any, error) {
			return params, nil
		})
		ds.HandleRPC("whoami", func(c *datasole.Context, _ json.RawMessage) (any, error) {
			return c.UserID(), nil
		})
		return ds, nil
	}
}

func TestConnectingWithAndWithoutAToken(t *testing.T) {
	tokenAuth := func(r *http.Request) (*datasole.Principal, error) {
		if r.URL.Query().Get("token") != "let-me-in" {
			return nil, datasole.ErrUnauthorized
		}
		return &datasole.Principal{UserID: "ann"}, nil
	}
	for _, tc := range []struct {
		name    string
		auth    datasole.AuthHandler
		options string
		want    string
		user    string
	}{
		{"an open server admits a page without a token", datasole.Anonymous, `{}`, "connected", ""},
		{"a page with the right token is admitted as its user", tokenAuth, `{auth: {token: "let-me-in"}}`, "connected", "ann"},
		{"a page without a token is refused", tokenAuth, `{reconnect: false}`, "failed", ""},
		{"a page with a wrong token is refused", tokenAuth, `{auth: {token: "guess"}, reconnect: false}`, "failed", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startSite(t, nil, echoServer(datasole.Options{Auth: tc.auth}))
			tb := openTab(t, s.url("/harness.html"))
			got := eval[string](t, tb, `h.start(`+tc.options+`)`)
			if len(got) < len(tc.want) || got[:len(tc.want)] != tc.want {
				t.Fatalf("connect: %q, want %q", got, tc.want)
			}
			if tc.want != "connected" {
				if st := eval[string](t, tb, `h.client.getConnectionState()`); st != "disconnected" {
					t.Errorf("state after refusal = %q, want disconnected", st)
				}
				if n := s.ds.ConnectionCount(); n != 0 {
					t.Errorf("server has %d connections", n)
				}
				return
			}
			if got := eval[map[string]any](t, tb, `h.call("whoami")`); got["ok"] != true || (tc.user != "" && got["result"] != tc.user) {
				t.Errorf("whoami: %v, want user %q", got, tc.user)
			}
		})
	}
}

func TestWorkerAndMainThreadModes(t *testing.T) {
	for _, tc := range []struct {
		name        string
		options     string
		pageSockets int
		worker      string // the worker script the page must have asked for
	}{
		{"with useWorker the worker owns the socket", `{useWorker: true}`, 0, "/__ds/datasole-worker.iife.min.js"},
		{"without useWorker the page owns the socket", `{useWorker: false}`, 1, ""},
		{"a missing worker script falls back to the page thread", `{useWorker: true, workerUrl: "/no-such-worker.js", workerTimeout: 3000}`, 1, "/no-such-worker.js"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startSite(t, nil, echoServer(datasole.Options{}))
			tb := openTab(t, s.url("/harness.html"))
			if got := eval[string](t, tb, `h.start(`+tc.options+`)`); got != "connected" {
				t.Fatalf("connect: %s", got)
			}
			if got := eval[int](t, tb, `window.pageSockets`); got != tc.pageSockets {
				t.Errorf("sockets opened on the page thread = %d, want %d", got, tc.pageSockets)
			}
			if tc.worker != "" && s.requests(tc.worker) == 0 {
				t.Errorf("the page never asked for %s", tc.worker)
			}
			if tc.worker == "" && s.requests("/__ds/datasole-worker.iife.min.js") != 0 {
				t.Error("the page loaded the worker script")
			}
			// Small and compressed frames both ways.
			if got := string(eval[[]byte](t, tb, `h.call("echo", {n: 1})`)); got != `{"ok":true,"result":{"n":1}}` {
				t.Errorf("echo = %s", got)
			}
			if n := eval[int](t, tb, `h.call("echo", "y".repeat(100000)).then((r) => r.result.length)`); n != 100000 {
				t.Errorf("a 100,000-character echo came back with %d characters", n)
			}
		})
	}
}

func TestAnErrorFrameRejectsTheCallItNames(t *testing.T) {
	needBrowser(t)
	s := startSite(t, nil, echoServer(datasole.Options{RateLimit: datasole.RateLimit{
		RPC:    map[string]datasole.Rule{"echo": {Limit: 1, Window: time.Minute}},
		Events: map[string]datasole.Rule{"noisy": {Limit: 1, Window: time.Minute}},
	}}))
	tb := openTab(t, s.url("/harness.html"))
	if got := eval[string](t, tb, `h.start({})`); got != "connected" {
		t.Fatalf("connect: %s", got)
	}
	if got := eval[map[string]any](t, tb, `h.call("echo", 1)`); got["ok"] != true {
		t.Fatalf("first call: %v", got)
	}
	t.Run("a refused call rejects at once with the frame's code and retry hint", func(t *testing.T) {
		start := time.Now()
		got := eval[map[string]any](t, tb, `h.call("echo", 2)`)
		if got["ok"] != false || got["isDatasoleError"] != true || got["code"] != "rate-limited" {
			t.Fatalf("second call: %v, want a DatasoleError with code rate-limited", got)
		}
		if ra, _ := got["retryAfter"].(float64); ra <= 0 || ra > 60000 {
			t.Errorf("retryAfter = %v ms, want (0, 60000]", got["retryAfter"])
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("the call took %v to fail", d)
		}
	})
	t.Run("a refused event reaches onError", func(t *testing.T) {
		eval[bool](t, tb, `(h.client.emit("noisy", 1), h.client.emit("noisy", 2), true)`)
		tb.waitFor(t, `h.errors.some((e) => e.code === "rate-limited")`)
	})
	t.Run("the connection stays usable", func(t *testing.T) {
		if got := eval[map[string]any](t, tb, `h.call("whoami")`); got["ok"] != true {
			t.Errorf("whoami after refusals: %v", got)
		}
	})
}

func TestReconnectAfterARestartResyncsState(t *testing.T) {
	needBrowser(t)
	s := startSite(t, nil, func(gen int) (*datasole.Server, error) {
		ds, err := datasole.New(datasole.Options{Logger: quiet})
		if err != nil {
			return nil, err
		}
		if err := ds.Start(context.Background()); err != nil {
			return nil, err
		}
		ds.HandleRPC("gen", func(c *datasole.Context, _ json.RawMessage) (any, error) { return gen, nil })
		ds.HandleRPC("set", func(c *datasole.Context, params json.RawMessage) (any, error) {
			return nil, ds.SetState(c, "board", params)
		})
		// Each generation starts from its own value, as after a deploy
		// with a fresh in-memory store.
		return ds, ds.SetState(context.Background(), "board", map[string]any{"gen": gen, "items": []string{fmt.Sprint("from ", gen)}})
	})
	for _, mode := range []struct{ name, options string }{
		{"in worker mode", `{useWorker: true}`},
		{"on the page thread", `{useWorker: false}`},
	} {
		t.Run(mode.name, func(t *testing.T) {
			tb := openTab(t, s.url("/harness.html"))
			if got := eval[string](t, tb, `h.start(`+mode.options+`)`); got != "connected" {
				t.Fatalf("connect: %s", got)
			}
			eval[bool](t, tb, `h.watch("board")`)
			gen := s.gen
			tb.waitFor(t, fmt.Sprintf(`h.states.board && h.states.board.gen === %d`, gen))
			// A patch moves the page past the version the next server starts at.
			for i := range 3 {
				eval[map[string]any](t, tb, fmt.Sprintf(`h.call("set", {gen: %d, items: ["a", "b", %d]})`, gen, i))
			}
			tb.waitFor(t, `h.states.board.items[2] === 2`)

			s.restart()
			tb.waitFor(t, `h.conn.includes("reconnecting") && h.client.getConnectionState() === "connected"`)
			tb.waitFor(t, fmt.Sprintf(`h.states.board.gen === %d && h.states.board.items[0] === "from %d"`, gen+1, gen+1))
			if got := eval[map[string]any](t, tb, `h.call("gen")`); got["result"] != float64(gen+1) {
				t.Errorf("after the restart gen = %v, want %d", got, gen+1)
			}
			// Changes on the new server keep flowing.
			eval[map[string]any](t, tb, fmt.Sprintf(`h.call("set", {gen: %d, items: ["fresh"]})`, gen+1))
			tb.waitFor(t, `h.states.board.items.length === 1 && h.states.board.items[0] === "fresh"`)
		})
	}
}

func TestTheStockClientSeesOnlyV1Frames(t *testing.T) {
	needBrowser(t)
	s := startSite(t, nil, func(int) (*datasole.Server, error) {
		ds, err := datasole.New(datasole.Options{Logger: quiet})
		if err != nil {
			return nil, err
		}
		if err := ds.Start(context.Background()); err != nil {
			return nil, err
		}
		ds.HandleRPC("shout", func(c *datasole.Context, params json.RawMessage) (any, error) {
			if err := ds.Broadcast("news", params); err != nil {
				return nil, err
			}
			return "ok", ds.SetState(c, "dash", map[string]any{"n": 2, "big": string(make([]byte, 600))})
		})
		if _, err := ds.RegisterCRDTType("votes", datasole.Global(), crdt.TypePNCounter); err != nil {
			return nil, err
		}
		return ds, ds.SetState(context.Background(), "dash", map[string]any{"n": 1})
	})
	tb := openTab(t, s.url("/harness.html"))
	// What the v1 client sends: RPC_REQ (with the body's correlationId),
	// EVENT_C2S, a PING and an RPC_REQ for a missing method.
	type frame struct {
		Op         int    `json:"op"`
		ID         uint32 `json:"id"`
		Exact      bool   `json:"exact"`
		JSON       bool   `json:"json"`
		Compressed bool   `json:"compressed"`
		Payload    string `json:"payload"`
	}
	frames := eval[[]frame](t, tb, `h.raw([
		[1, 1, {method: "shout", params: {hello: "x".repeat(400)}, correlationId: 1}],
		[3, 0, {event: "anything", data: 1, timestamp: Date.now()}],
		[7, 0],
		[1, 2, {method: "missing", correlationId: 2}],
	], 500)`)
	seen := map[int]int{}
	for _, f := range frames {
		seen[f.Op]++
		switch f.Op {
		case 0x02, 0x04, 0x05, 0x06, 0x08, 0x09, 0x0B:
		default:
			t.Errorf("opcode 0x%02x is not a v1 server-to-client opcode: %+v", f.Op, f)
		}
		if !f.Exact {
			t.Errorf("opcode 0x%02x: payload length does not match the message", f.Op)
		}
		if !f.JSON || (f.Payload == "" && f.Op != 0x08) {
			t.Errorf("opcode 0x%02x: payload %q is not JSON", f.Op, f.Payload)
		}
		if f.Op == 0x09 {
			t.Errorf("an ERROR frame for a well-behaved v1 client: %s", f.Payload)
		}
	}
	for op, what := range map[int]string{0x02: "RPC_RES", 0x04: "EVENT_S2C", 0x05: "STATE_PATCH", 0x06: "STATE_SNAPSHOT", 0x08: "PONG", 0x0B: "CRDT_STATE"} {
		if seen[op] == 0 {
			t.Errorf("no %s frame arrived; got %v", what, seen)
		}
	}
	compressed := false
	for _, f := range frames {
		compressed = compressed || f.Compressed
	}
	if !compressed {
		t.Error("no frame over 256 bytes arrived compressed")
	}
	var replies []uint32
	for _, f := range frames {
		if f.Op == 0x02 {
			replies = append(replies, f.ID)
		}
	}
	slices.Sort(replies) // handlers run concurrently: replies may come in any order
	if fmt.Sprint(replies) != "[1 2]" {
		t.Errorf("RPC_RES correlation ids = %v, want [1 2]", replies)
	}
}
