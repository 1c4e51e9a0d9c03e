// Command build bundles the datasole browser client with esbuild's Go API.
//
// It writes four files into the output directory: the client IIFE (global Datasole), the
// transport worker IIFE, an ES module, and the hand-maintained type declarations. The same
// sources always produce the same bytes, so CI can rebuild and compare with the committed copy.
//
// Usage (from package web, via go generate):
//
//	go run -C build . -src .. -out ../dist
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/evanw/esbuild/pkg/api"
)

// bundle is one esbuild output.
type bundle struct {
	entry  string
	out    string
	format api.Format
	minify bool
}

var bundles = []bundle{
	{entry: "src/index.ts", out: "datasole.iife.min.js", format: api.FormatIIFE, minify: true},
	{entry: "src/worker.ts", out: "datasole-worker.iife.min.js", format: api.FormatIIFE, minify: true},
	{entry: "src/index.ts", out: "datasole.mjs", format: api.FormatESModule},
}

// declarations is copied verbatim; tsc checks it against the sources (see src/api-check.ts).
const declarations = "datasole.d.ts"

func main() {
	src := flag.String("src", ".", "directory holding package.json, src/ and node_modules/")
	out := flag.String("out", "dist", "directory to write the bundles to")
	flag.Parse()
	if err := run(*src, *out); err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.Exit(1)
	}
}

func run(src, out string) error {
	src, err := filepath.Abs(src)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(src, "node_modules")); err != nil {
		return fmt.Errorf("npm packages are missing, run npm ci in %s first: %w", src, err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	for _, b := range bundles {
		code, err := build(src, b)
		if err != nil {
			return fmt.Errorf("%s: %w", b.out, err)
		}
		if err := os.WriteFile(filepath.Join(out, b.out), code, 0o644); err != nil {
			return err
		}
	}
	dts, err := os.ReadFile(filepath.Join(src, declarations))
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, declarations), dts, 0o644)
}

func build(src string, b bundle) ([]byte, error) {
	opts := api.BuildOptions{
		AbsWorkingDir:     src,
		EntryPoints:       []string{b.entry},
		Outfile:           b.out,
		Bundle:            true,
		Write:             false,
		Format:            b.format,
		Platform:          api.PlatformBrowser,
		Target:            api.ES2020,
		MinifyWhitespace:  b.minify,
		MinifyIdentifiers: b.minify,
		MinifySyntax:      b.minify,
		LegalComments:     api.LegalCommentsEndOfFile,
		Charset:           api.CharsetUTF8,
		TreeShaking:       api.TreeShakingTrue,
		LogLevel:          api.LogLevelSilent,
	}
	if b.format == api.FormatIIFE {
		if b.entry == "src/index.ts" {
			opts.GlobalName = "Datasole"
		}
	}
	res := api.Build(opts)
	if len(res.Errors) > 0 {
		msgs := api.FormatMessages(res.Errors, api.FormatMessagesOptions{Kind: api.ErrorMessage})
		return nil, errors.New(strings.Join(msgs, ""))
	}
	if len(res.OutputFiles) != 1 {
		return nil, fmt.Errorf("esbuild produced %d files, want 1", len(res.OutputFiles))
	}
	return res.OutputFiles[0].Contents, nil
}
