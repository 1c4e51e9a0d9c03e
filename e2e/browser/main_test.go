package browser

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/datasole/datasole-go/datasole"
)

//go:embed testdata/harness.html
var harness []byte

// browserCtx is the one Chromium the tests share; every test opens its own
// tabs in it. browserErr says why there is none.
var (
	browserCtx context.Context
	browserErr error
)

func TestMain(m *testing.M) {
	var stop func()
	browserCtx, stop, browserErr = startChromium()
	code := m.Run()
	if stop != nil {
		stop()
	}
	os.Exit(code)
}

// chromiumPath is DATASOLE_CHROMIUM, else Debian's chromium.
func chromiumPath() string {
	if p := os.Getenv("DATASOLE_CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

func startChromium() (context.Context, func(), error) {
	path := chromiumPath()
	if _, err := exec.LookPath(path); err != nil {
		return nil, nil, fmt.Errorf("chromium not found at %s (run scripts/chromium.sh): %w", path, err)
	}
	dir, err := os.MkdirTemp("", "datasole-chromium-")
	if err != nil {
		return nil, nil, err
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests may run as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(dir),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
	)
	ctx, cancel := chromedp.NewContext(alloc)
	stop := func() {
		cancel()
		cancelAlloc()
		os.RemoveAll(dir)
	}
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		stop()
		return nil, nil, fmt.Errorf("starting chromium: %w", err)
	}
	return ctx, stop, nil
}

// needBrowser skips the test when Chromium is missing, or fails it when
// CI=true, where a skipped browser suite would hide a broken install.
func needBrowser(t *testing.T) {
	t.Helper()
	if browserErr == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(browserErr)
	}
	t.Skip(browserErr)
}

// tab is one browser tab showing a page.
type tab struct {
	ctx context.Context
}

// openTab opens url in a new tab, closed when the test ends.
func openTab(t *testing.T, url string) *tab {
	t.Helper()
	needBrowser(t)
	ctx, cancel := chromedp.NewContext(browserCtx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil { // no timeout here: it would close the tab
		t.Fatalf("opening %s: %v", url, err)
	}
	return &tab{ctx}
}

// eval runs a script in the page, awaiting a promise it returns.
func eval[T any](t *testing.T, tb *tab, js string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 15*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluating %s: %v", js, err)
	}
	return v
}

// waitFor polls a page expression until it is truthy.
func (tb *tab) waitFor(t *testing.T, js string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 15*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool]("!!("+js+")", chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		got, _ := chromedp.Run(tb.ctx, chromedp.Evaluate[string](`window.h ? JSON.stringify({conn: h.conn, states: h.states, crdts: h.crdts, events: h.events, errors: h.errors}) : document.body.innerText`))
		t.Fatalf("waiting for %s: %v\npage: %s", js, err, got)
	}
}

// do runs chromedp actions in the tab.
func (tb *tab) do(t *testing.T, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatal(err)
	}
}

// site is an in-process datasole server and the pages of its origin. It
// can be restarted on the same address.
type site struct {
	t     *testing.T
	addr  string
	setup func(gen int) (*datasole.Server, error)
	pages http.Handler // everything outside /__ds

	gen  int
	ds   *datasole.Server
	hs   *http.Server
	hits sync.Map // path -> *atomic.Int64, requests seen
}

// quiet is the logger of in-process servers: test output shows failures only.
var quiet = slog.New(slog.DiscardHandler)

// startSite starts a server built by setup (gen counts restarts from 1).
// pages serves everything outside /__ds; nil serves the harness at
// /harness.html.
func startSite(t *testing.T, pages http.Handler, setup func(gen int) (*datasole.Server, error)) *site {
	t.Helper()
	if pages == nil {
		mux := http.NewServeMux()
		mux.HandleFunc("/harness.html", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Write(harness)
		})
		pages = mux
	}
	s := &site{t: t, addr: "127.0.0.1:0", setup: setup, pages: pages}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *site) start() {
	s.t.Helper()
	s.gen++
	ds, err := s.setup(s.gen)
	if err != nil {
		s.t.Fatal(err)
	}
	var ln net.Listener
	// The old listener's port is free at once, but allow the kernel a moment.
	for i := 0; ; i++ {
		ln, err = net.Listen("tcp", s.addr)
		if err == nil || i == 50 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	mux := http.NewServeMux()
	mux.Handle("/", s.pages)
	mux.Handle("/__ds", ds.Handler())
	mux.Handle("/__ds/", ds.Handler())
	count := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := s.hits.LoadOrStore(r.URL.Path, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		mux.ServeHTTP(w, r)
	})
	s.ds = ds
	s.hs = &http.Server{Handler: count, ReadHeaderTimeout: 5 * time.Second}
	go s.hs.Serve(ln)
}

func (s *site) stop() {
	if s.hs == nil {
		return // stopped already
	}
	defer func() { s.hs = nil }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.ds.Close(ctx); err != nil {
		s.t.Errorf("closing the datasole server: %v", err)
	}
	// The sockets are closed; what is left are idle or speculative browser
	// connections, which Shutdown would wait for.
	if err := s.hs.Close(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.t.Errorf("closing the http server: %v", err)
	}
}

// restart stops the server and starts the next generation on the same
// address, as a deploy would.
func (s *site) restart() {
	s.t.Helper()
	s.stop()
	s.start()
}

// requests returns how often path was requested.
func (s *site) requests(path string) int64 {
	if n, ok := s.hits.Load(path); ok {
		return n.(*atomic.Int64).Load()
	}
	return 0
}

// url returns the address of a path on the site.
func (s *site) url(path string) string { return "http://" + s.addr + path }
