package browser

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/evanw/esbuild/pkg/api"

	"github.com/datasole/datasole-go/datasole"
)

// Browser examples in the docs run in Chromium. The convention: a fenced
// html, js, jsx or ts block right after a comment
//
//	<!-- browser-test: EXPR -->
//
// is a runnable example. An html block is served as it is, as a page; a
// script block is bundled with esbuild ("@datasole/web" is the client's ES
// module, "./contract" the generated contract of cmd/datasole's testdata/app,
// react and vue the real packages) and loaded by an empty page. The example
// passes when the JavaScript expression EXPR becomes true and the page threw
// nothing. Every browser block of the checked pages must carry the marker.

// repoRoot is the repository's root directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// docSnippet is one marked example of a doc page.
type docSnippet struct {
	doc    string
	line   int // of the opening fence
	lang   string
	code   string
	expect string
}

func (s docSnippet) String() string { return fmt.Sprintf("%s:%d", s.doc, s.line) }

var browserLangs = map[string]bool{"html": true, "js": true, "jsx": true, "ts": true, "tsx": true}

// docSnippets returns the marked examples of docs/name and fails the test for
// browser blocks without a marker.
func docSnippets(t *testing.T, name string) []docSnippet {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(t), "docs", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		out    []docSnippet
		cur    *docSnippet
		expect string
		n      int
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		line := sc.Text()
		switch {
		case cur != nil && line == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.code += line + "\n"
		case strings.HasPrefix(line, "<!-- browser-test: ") && strings.HasSuffix(line, " -->"):
			expect = strings.TrimSuffix(strings.TrimPrefix(line, "<!-- browser-test: "), " -->")
		case strings.HasPrefix(line, "```") && len(line) > 3:
			lang := line[3:]
			if browserLangs[lang] {
				if expect == "" {
					t.Errorf("docs/%s:%d: a %s example without a <!-- browser-test: … --> marker", name, n, lang)
				}
				cur = &docSnippet{doc: "docs/" + name, line: n, lang: lang, expect: expect}
			} else if expect != "" {
				t.Errorf("docs/%s:%d: a browser-test marker before a %s block", name, n, lang)
			}
			expect = ""
		case line == "```":
			// The end of a block of a language we do not run.
		case strings.TrimSpace(line) != "":
			if expect != "" {
				t.Errorf("docs/%s:%d: text between a browser-test marker and its block", name, n)
			}
			expect = ""
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// pageErrors collects what a tab throws and logs as an error.
type pageErrors struct {
	mu   sync.Mutex
	errs []string
}

func (p *pageErrors) add(s string) {
	p.mu.Lock()
	p.errs = append(p.errs, s)
	p.mu.Unlock()
}

func (p *pageErrors) list() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.errs...)
}

// openWatchedTab opens url in a new tab that records uncaught exceptions and
// console errors from the first script on.
func openWatchedTab(t *testing.T, url string) (*tab, *pageErrors) {
	t.Helper()
	needBrowser(t)
	ctx, cancel := chromedp.NewContext(browserCtx)
	t.Cleanup(cancel)
	errs := &pageErrors{}
	messages := chromedp.Console(ctx) // subscribed before the page loads
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == chromedp.ConsoleError && m.Source == "" {
				errs.add(m.String())
			}
		}
	}()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("opening %s: %v", url, err)
	}
	return &tab{ctx}, errs
}

// runSnippet loads the example's page from base and waits for its expectation.
func runSnippet(t *testing.T, base string, s docSnippet) {
	t.Helper()
	tb, errs := openWatchedTab(t, base)
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	expr := "(() => { try { return !!(" + s.expect + "); } catch { return false; } })()"
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		text, _ := chromedp.Run(tb.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
		t.Fatalf("%s: %s never became true: %v\npage text: %q\npage errors: %q", s, s.expect, err, text, errs.list())
	}
	if e := errs.list(); len(e) > 0 {
		t.Errorf("%s: the page reported errors: %q", s, e)
	}
}

// bundleSnippet bundles a script example into one ES module.
func bundleSnippet(t *testing.T, s docSnippet) []byte {
	t.Helper()
	root := repoRoot(t)
	web := filepath.Join(root, "datasole", "web")
	dir := t.TempDir()
	contract, err := os.ReadFile(filepath.Join(web, "test", "types", "contract.ts"))
	if err != nil {
		t.Fatal(err)
	}
	entry := filepath.Join(dir, "snippet."+s.lang)
	for path, body := range map[string][]byte{entry: []byte(s.code), filepath.Join(dir, "contract.ts"): contract} {
		if err := os.WriteFile(path, body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(web, "node_modules", "react")); err != nil {
		msg := "npm packages are missing: run npm ci in datasole/web (check.sh does)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	res := api.Build(api.BuildOptions{
		AbsWorkingDir: dir,
		EntryPoints:   []string{entry},
		Bundle:        true,
		Write:         false,
		Outfile:       filepath.Join(dir, "out.js"),
		Format:        api.FormatESModule,
		Platform:      api.PlatformBrowser,
		Target:        api.ES2022,
		JSX:           api.JSXAutomatic,
		Alias:         map[string]string{"@datasole/web": filepath.Join(web, "dist", "datasole.mjs")},
		NodePaths:     []string{filepath.Join(web, "node_modules")},
		Define: map[string]string{
			"process.env.NODE_ENV":                    `"production"`,
			"__VUE_OPTIONS_API__":                     "true",
			"__VUE_PROD_DEVTOOLS__":                   "false",
			"__VUE_PROD_HYDRATION_MISMATCH_DETAILS__": "false",
		},
		LogLevel: api.LogLevelSilent,
	})
	if len(res.Errors) > 0 {
		t.Fatalf("%s: esbuild: %s", s, strings.Join(api.FormatMessages(res.Errors, api.FormatMessagesOptions{Kind: api.ErrorMessage}), ""))
	}
	return res.OutputFiles[0].Contents
}

// typeCheckSnippet runs tsc on a TypeScript example against the published
// declarations and the generated contract.
func typeCheckSnippet(t *testing.T, s docSnippet) {
	t.Helper()
	web := filepath.Join(repoRoot(t), "datasole", "web")
	tsc := filepath.Join(web, "node_modules", "typescript", "bin", "tsc")
	dir := t.TempDir()
	contract, err := os.ReadFile(filepath.Join(web, "test", "types", "contract.ts"))
	if err != nil {
		t.Fatal(err)
	}
	tsconfig, _ := json.Marshal(map[string]any{
		"compilerOptions": map[string]any{
			"target": "es2022", "module": "esnext", "moduleResolution": "bundler", "lib": []string{"es2022", "dom"},
			"strict": true, "noEmit": true, "types": []string{},
			"paths": map[string][]string{"@datasole/web": {filepath.Join(web, "datasole.d.ts")}},
		},
		"files": []string{"snippet.ts", "contract.ts"},
	})
	for name, body := range map[string][]byte{"snippet.ts": []byte(s.code), "contract.ts": contract, "tsconfig.json": tsconfig} {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("node", tsc, "-p", dir).CombinedOutput(); err != nil {
		t.Errorf("%s: tsc: %v\n%s", s, err, out)
	}
}

// docsServer serves what the browser-client.md examples talk to: the add
// RPC, the chat events (kept in history), the dashboard state, the CRDT keys
// and the presence of the lobby tag they use.
func docsServer(int) (*datasole.Server, error) {
	ds, err := datasole.New(datasole.Options{Logger: quiet, Auth: datasole.Anonymous})
	if err != nil {
		return nil, err
	}
	type addParams struct{ A, B float64 }
	type message struct {
		From string `json:"from"`
		Text string `json:"text"`
	}
	for _, err := range []error{
		ds.HandleRPC("add", func(c *datasole.Context, raw json.RawMessage) (any, error) {
			var p addParams
			if err := json.Unmarshal(raw, &p); err != nil {
				return nil, err
			}
			return map[string]float64{"sum": p.A + p.B}, nil
		}),
		ds.On("chat:send", func(c *datasole.Context, raw json.RawMessage) {
			var m message
			if json.Unmarshal(raw, &m) == nil {
				m.From = c.UserID()
				ds.Send(datasole.ToAll(), "chat:message", m)
			}
		}),
		ds.KeepHistory(datasole.ToAll(), datasole.History{Size: 100}),
		ds.TrackPresence("lobby", datasole.PresenceOptions{
			Info:   func(c *datasole.Conn) any { return map[string]string{"name": "guest"} },
			Events: true,
		}),
		ds.Start(context.Background()),
		ds.SetState(context.Background(), "dashboard", map[string]int{"visitors": 0}),
	} {
		if err != nil {
			return nil, err
		}
	}
	ds.OnConnect(func(c *datasole.Conn) { c.Tag("lobby") })
	for key, typ := range map[string]string{"likes": "pn-counter", "title": "lww-register", "profile": "lww-map"} {
		if _, err := ds.RegisterCRDTType(key, datasole.Global(), typ); err != nil {
			return nil, err
		}
	}
	return ds, nil
}

func TestBrowserClientExamplesRun(t *testing.T) {
	snippets := docSnippets(t, "browser-client.md")
	if len(snippets) < 6 {
		t.Fatalf("found %d browser examples in docs/browser-client.md", len(snippets))
	}
	for _, s := range snippets {
		t.Run(fmt.Sprintf("line %d (%s)", s.line, s.lang), func(t *testing.T) {
			needBrowser(t)
			var page, script []byte
			if s.lang == "html" {
				page = []byte(s.code)
			} else {
				if s.lang == "ts" || s.lang == "tsx" {
					typeCheckSnippet(t, s)
				}
				script = bundleSnippet(t, s)
				page = []byte(`<!doctype html><meta charset="utf-8"><title>example</title><script type="module" src="/example.js"></script>`)
			}
			mux := http.NewServeMux()
			mux.HandleFunc("/example.html", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				w.Write(page)
			})
			mux.HandleFunc("/example.js", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
				w.Write(script)
			})
			site := startSite(t, mux, docsServer)
			runSnippet(t, site.url("/example.html"), s)
		})
	}
}

// TestTheGettingStartedPagePastedVerbatimWorks builds a server from the
// getting-started page's own Go blocks — the contract file as it is, the
// server code as the body of main, the net/http mount line — serves the
// page's browser example as it is, and runs it in Chromium.
func TestTheGettingStartedPagePastedVerbatimWorks(t *testing.T) {
	needBrowser(t)
	root := repoRoot(t)
	doc, err := os.ReadFile(filepath.Join(root, "docs", "getting-started.md"))
	if err != nil {
		t.Fatal(err)
	}
	snippets := docSnippets(t, "getting-started.md")
	if len(snippets) != 1 || snippets[0].lang != "html" {
		t.Fatalf("want one html example in docs/getting-started.md, found %v", snippets)
	}
	contract := goBlock(t, string(doc), "package contract")
	server := goBlock(t, string(doc), "datasole.New(")
	var mount string
	for _, line := range strings.Split(goBlock(t, string(doc), "dshttp.Wrap("), "\n") {
		if strings.Contains(line, "dshttp.Wrap(") {
			mount = line
		}
	}

	// A module of its own that takes datasole and the net/http adapter from
	// this checkout (with their checksums), as a user's module would from a
	// release.
	dir := t.TempDir()
	gomod := "module gettingstarted\n\ngo 1.26.0\n\nrequire (\n" +
		"\tgithub.com/datasole/datasole-go/adapters/stdlib v0.0.0\n" +
		"\tgithub.com/datasole/datasole-go/datasole v0.0.0\n)\n"
	var gosum strings.Builder
	for _, m := range []string{"datasole", "adapters/stdlib"} {
		path := filepath.Join(root, filepath.FromSlash(m))
		if _, err := os.Stat(filepath.Join(path, "go.mod")); err != nil {
			continue // a module that later layouts may drop
		}
		gomod += "replace github.com/datasole/datasole-go/" + m + " => " + path + "\n"
		sum, _ := os.ReadFile(filepath.Join(path, "go.sum"))
		gosum.Write(sum)
	}
	files := map[string]string{
		"go.mod":               gomod,
		"go.sum":               gosum.String(),
		"contract/contract.go": contract,
		"page.html":            snippets[0].code,
		"main.go": `package main

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"

	dshttp "github.com/datasole/datasole-go/adapters/stdlib"
	"github.com/datasole/datasole-go/datasole"

	"gettingstarted/contract"
)

func main() {
	ctx := context.Background()
	myAuth := datasole.Anonymous
	page, err := os.ReadFile(os.Args[1])
	if err != nil {
		log.Fatal(err)
	}

	// docs/getting-started.md, "2. Write the server":
` + server + `
	appMux := http.NewServeMux()
	appMux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page)
	})
	// "3. Mount it":
` + mount + `

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ln.Addr())
	log.Fatal(http.Serve(ln, mux))
}
`,
	}
	for name, body := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	build := exec.Command("go", "build", "-o", "server", ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("the getting-started Go code does not build: %v\n%s\nmain.go:\n%s", err, out, files["main.go"])
	}

	cmd := exec.Command(filepath.Join(dir, "server"), filepath.Join(dir, "page.html"))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("the server printed no address: %v\n%s", err, stderr.String())
	}
	runSnippet(t, "http://"+strings.TrimSpace(addr)+"/", snippets[0])
}

// goBlock returns the first go block of a doc page that contains marker.
func goBlock(t *testing.T, doc, marker string) string {
	t.Helper()
	for _, block := range strings.Split(doc, "```go\n")[1:] {
		code, _, _ := strings.Cut(block, "```")
		if strings.Contains(code, marker) {
			return code
		}
	}
	t.Fatalf("docs/getting-started.md has no go block with %q", marker)
	return ""
}
