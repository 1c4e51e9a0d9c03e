package browser

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// startFixture builds demos/fixture and runs it on a free loopback port, a
// real process as external checkers run it. It returns its base URL.
func startFixture(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "fixture")
	build := exec.Command("go", "build", "-o", bin, "github.com/datasole/datasole-go/demos/fixture")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the fixture: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "-addr", addr)
	var logs bytes.Buffer // shown only when the test fails
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Error("the fixture did not stop within 10 s of SIGTERM")
		}
		if t.Failed() {
			t.Logf("fixture log:\n%s", logs.String())
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(base + "/stats")
		if err == nil {
			resp.Body.Close()
			return base
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fixture did not answer within 10 s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestFixtureInterop runs the browser client, loaded from the fixture, against
// the fixture. The page comes from a proxy in front of it, so page, scripts and
// socket share one origin as they do behind a real front end.
func TestFixtureInterop(t *testing.T) {
	needBrowser(t)
	fixture, err := url.Parse(startFixture(t))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/harness.html", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(harness)
	})
	mux.Handle("/", httputil.NewSingleHostReverseProxy(fixture))
	front := httptest.NewServer(mux)
	t.Cleanup(front.Close)
	page := front.URL + "/harness.html"

	a := openTab(t, page)
	b := openTab(t, page)

	t.Run("the page loads the served bundle and connects", func(t *testing.T) {
		if got := eval[string](t, a, `typeof Datasole.DatasoleClient`); got != "function" {
			t.Fatalf("typeof Datasole.DatasoleClient = %q", got)
		}
		for _, tb := range []*tab{a, b} {
			if got := eval[string](t, tb, `h.start({})`); got != "connected" {
				t.Fatalf("connect: %s", got)
			}
		}
	})

	t.Run("the worker script is served where the stock client loads it from", func(t *testing.T) {
		got := eval[map[string]any](t, a, `(async () => {
			const r = await fetch("/__ds/datasole-worker.iife.min.js");
			const loaded = await new Promise((resolve) => {
				const w = new Worker("/__ds/datasole-worker.iife.min.js");
				w.onerror = () => resolve(false);
				setTimeout(() => { w.terminate(); resolve(true); }, 300);
			});
			return { status: r.status, type: r.headers.get("content-type"), loaded };
		})()`)
		if got["status"] != float64(200) || got["type"] != "application/javascript; charset=utf-8" || got["loaded"] != true {
			t.Errorf("worker script: %v", got)
		}
	})

	t.Run("RPCs resolve with the handler's result", func(t *testing.T) {
		for _, tc := range []struct{ call, want string }{
			{`h.call("add", {a: 2, b: 3})`, `{"ok":true,"result":{"sum":5}}`},
			{`h.call("echo", {list: [1, "two", null], nested: {x: true}})`, `{"ok":true,"result":{"list":[1,"two",null],"nested":{"x":true}}}`},
		} {
			if got := string(eval[[]byte](t, a, tc.call)); got != tc.want {
				t.Errorf("%s = %s, want %s", tc.call, got, tc.want)
			}
		}
		// Past 256 bytes both directions are zlib-compressed.
		if n := eval[int](t, a, `h.call("echo", {big: "x".repeat(5000)}).then((r) => r.result.big.length)`); n != 5000 {
			t.Errorf("a 5,000-character echo came back with %d characters", n)
		}
	})

	t.Run("an RPC error rejects with the server's code and message", func(t *testing.T) {
		for _, tc := range []struct {
			call    string
			code    float64
			message string
		}{
			{`h.call("fail")`, -32000, "boom"},
			{`h.call("no-such-method")`, -32601, ""},
		} {
			got := eval[map[string]any](t, a, tc.call)
			if got["ok"] != false || got["isDatasoleError"] != true || got["code"] != tc.code {
				t.Errorf("%s: %v, want a DatasoleError with code %v", tc.call, got, tc.code)
			}
			if tc.message != "" && got["message"] != tc.message {
				t.Errorf("%s: message %q, want %q", tc.call, got["message"], tc.message)
			}
		}
	})

	t.Run("events travel from page to server and back to every tab", func(t *testing.T) {
		eval[bool](t, a, `h.on("pong")`)
		eval[bool](t, b, `h.on("pong")`)
		eval[bool](t, a, `(h.client.emit("ping", {from: "a", n: 1}), true)`)
		for _, tb := range []*tab{a, b} {
			tb.waitFor(t, `h.events.some((e) => e.event === "pong" && e.data.from === "a" && e.data.n === 1)`)
		}
	})

	t.Run("live state follows changes and reaches a late-joining tab", func(t *testing.T) {
		eval[bool](t, a, `h.watch("dash")`)
		a.waitFor(t, `h.states.dash && h.states.dash.n === 0`)
		for want := 1; want <= 3; want++ {
			if got := eval[map[string]any](t, a, `h.call("bump")`); got["result"] != float64(want) {
				t.Fatalf("bump %d: %v", want, got)
			}
			a.waitFor(t, fmt.Sprintf(`h.states.dash.n === %d`, want))
		}
		late := openTab(t, page)
		if got := eval[string](t, late, `h.start({useWorker: false})`); got != "connected" {
			t.Fatalf("late tab: %s", got)
		}
		eval[bool](t, late, `h.watch("dash")`)
		late.waitFor(t, `h.states.dash && h.states.dash.n === 3`)
	})

	t.Run("a CRDT counter converges across two tabs", func(t *testing.T) {
		eval[bool](t, a, `h.counter("votes")`)
		eval[bool](t, b, `h.counter("votes")`)
		eval[bool](t, a, `(h.counters.votes.increment(), h.counters.votes.increment(), h.counters.votes.increment(), true)`)
		eval[bool](t, b, `(h.counters.votes.increment(), h.counters.votes.increment(), h.counters.votes.decrement(), true)`)
		for _, tb := range []*tab{a, b} {
			tb.waitFor(t, `h.crdts.votes === 4`)
		}
	})

	t.Run("no ERROR frame reached a page", func(t *testing.T) {
		for _, tb := range []*tab{a, b} {
			if n := eval[int](t, tb, `h.errors.length`); n != 0 {
				t.Errorf("%d errors: %s", n, eval[[]byte](t, tb, `JSON.stringify(h.errors)`))
			}
		}
	})
}
