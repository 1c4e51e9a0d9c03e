package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/evanw/esbuild/pkg/api"
)

// webDir is datasole/web, where package.json, src/ and node_modules/ are.
func webDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// needNode skips the test when Node, npm or the npm packages are missing (check.sh runs
// npm ci), or fails it when CI=true, where a skip would hide a broken setup.
func needNode(t *testing.T) {
	t.Helper()
	var missing string
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = tool + " is not installed"
		}
	}
	if _, err := os.Stat(filepath.Join(webDir(t), "node_modules", "typescript")); missing == "" && err != nil {
		missing = "npm packages are missing: run npm ci in datasole/web (check.sh does)"
	}
	if missing == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(missing)
	}
	t.Skip(missing)
}

func command(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s in %s: %v\n%s", name, strings.Join(args, " "), dir, err, out.String())
	}
	return out.String()
}

// TestUnitTestsOfTheBrowserClient bundles test/unit/*.test.ts with esbuild and runs them
// with Node's test runner: the codecs and the error mapping, without a browser.
func TestUnitTestsOfTheBrowserClient(t *testing.T) {
	needNode(t)
	web := webDir(t)
	files, err := filepath.Glob(filepath.Join(web, "test", "unit", "*.test.ts"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no unit tests found under %s/test/unit (%v)", web, err)
	}
	out := t.TempDir()
	var bundles []string
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".ts") + ".mjs"
		res := api.Build(api.BuildOptions{
			AbsWorkingDir: web,
			EntryPoints:   []string{f},
			Outfile:       filepath.Join(out, name),
			Bundle:        true,
			Write:         true,
			Format:        api.FormatESModule,
			Platform:      api.PlatformNode,
			Target:        api.ES2020,
			LogLevel:      api.LogLevelSilent,
		})
		if len(res.Errors) > 0 {
			t.Fatalf("bundling %s: %s", f, strings.Join(api.FormatMessages(res.Errors, api.FormatMessagesOptions{Kind: api.ErrorMessage}), ""))
		}
		bundles = append(bundles, filepath.Join(out, name))
	}
	t.Log(command(t, out, "node", append([]string{"--test"}, bundles...)...))
}

// TestThePackedPackageInstallsAndBuildsAnApp packs the npm package, installs the tarball
// into a fresh app from the file (no registry), type-checks the app against the packed
// declarations and bundles it with esbuild through the package's exports map.
func TestThePackedPackageInstallsAndBuildsAnApp(t *testing.T) {
	needNode(t)
	web := webDir(t)
	tmp := t.TempDir()

	var packed []struct {
		Filename string `json:"filename"`
		Files    []struct {
			Path string `json:"path"`
		} `json:"files"`
	}
	if err := json.Unmarshal([]byte(command(t, web, "npm", "pack", "--json", "--pack-destination", tmp)), &packed); err != nil || len(packed) != 1 {
		t.Fatalf("npm pack --json: %v (%d packages)", err, len(packed))
	}
	var paths []string
	for _, f := range packed[0].Files {
		paths = append(paths, f.Path)
	}
	sort.Strings(paths)
	want := []string{"README.md", "dist/datasole-worker.iife.min.js", "dist/datasole.d.ts", "dist/datasole.iife.min.js", "dist/datasole.mjs", "package.json"}
	if strings.Join(paths, " ") != strings.Join(want, " ") {
		t.Errorf("the package holds %v, want %v", paths, want)
	}
	tarball := filepath.Join(tmp, packed[0].Filename)

	app := filepath.Join(tmp, "app")
	if err := os.MkdirAll(filepath.Join(app, "src"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(app, "package.json"), `{"name": "app", "private": true, "type": "module"}`)
	command(t, app, "npm", "install", "--offline", "--no-audit", "--no-fund", "--ignore-scripts", tarball)

	// The bundles in the package are the ones the Go server embeds and serves.
	for _, name := range []string{"datasole.mjs", "datasole.iife.min.js", "datasole-worker.iife.min.js", "datasole.d.ts"} {
		installed, err := os.ReadFile(filepath.Join(app, "node_modules", "@datasole", "web", "dist", name))
		if err != nil {
			t.Fatal(err)
		}
		embedded, err := os.ReadFile(filepath.Join(web, "dist", name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(installed, embedded) {
			t.Errorf("the packed %s differs from dist/%s", name, name)
		}
	}

	write(t, filepath.Join(app, "src", "main.ts"), `import { DatasoleClient, DatasoleError, type RpcResult } from "@datasole/web";

interface Contract {
  rpc: { add: { params: { a: number; b: number }; result: { sum: number } } };
  events: { "chat:message": { text: string } };
  state: { load: number };
}

const client = new DatasoleClient<Contract>({ url: "http://127.0.0.1:1", useWorker: false, reconnect: false });
export async function sum(): Promise<number> {
  const r: RpcResult<Contract, "add"> = await client.rpc("add", { a: 2, b: 3 });
  return r.sum;
}
export function chat(): void {
  // @ts-expect-error: the packed declarations check calls against the contract
  client.emit("chat:message", { text: 1 });
}
console.log(JSON.stringify({
  client: client instanceof DatasoleClient,
  state: client.getConnectionState(),
  error: new DatasoleError("x", { code: "unauthorized" }).code,
}));
`)
	write(t, filepath.Join(app, "tsconfig.json"), `{
  "compilerOptions": {
    "target": "es2020", "module": "esnext", "moduleResolution": "bundler",
    "lib": ["es2020", "dom"], "strict": true, "noEmit": true, "types": []
  },
  "include": ["src"]
}`)
	command(t, app, "node", filepath.Join(web, "node_modules", "typescript", "bin", "tsc"), "-p", ".")

	res := api.Build(api.BuildOptions{
		AbsWorkingDir: app,
		EntryPoints:   []string{"src/main.ts"},
		Outfile:       "out/app.mjs",
		Bundle:        true,
		Write:         true,
		Format:        api.FormatESModule,
		Platform:      api.PlatformBrowser,
		Target:        api.ES2020,
		LogLevel:      api.LogLevelSilent,
	})
	if len(res.Errors) > 0 {
		t.Fatalf("esbuild: %s", strings.Join(api.FormatMessages(res.Errors, api.FormatMessagesOptions{Kind: api.ErrorMessage}), ""))
	}
	// The app runs: the client came from the package (Node has no Worker, so it stays idle).
	got := strings.TrimSpace(command(t, app, "node", "out/app.mjs"))
	if got != `{"client":true,"state":"disconnected","error":"unauthorized"}` {
		t.Errorf("the app printed %s", got)
	}

	// The classic-script bundle and the worker are reachable through the exports map.
	write(t, filepath.Join(app, "src", "iife.ts"), `import "@datasole/web/iife";
import "@datasole/web/worker";
`)
	res = api.Build(api.BuildOptions{
		AbsWorkingDir: app,
		EntryPoints:   []string{"src/iife.ts"},
		Bundle:        true,
		Write:         false,
		Outdir:        "out",
		LogLevel:      api.LogLevelSilent,
	})
	if len(res.Errors) > 0 {
		t.Fatalf("esbuild of the iife entry points: %s", strings.Join(api.FormatMessages(res.Errors, api.FormatMessagesOptions{Kind: api.ErrorMessage}), ""))
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
