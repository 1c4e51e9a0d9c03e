package docsnippets

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// knownImports are the package names fragments may use without importing.
var knownImports = map[string]string{
	"context": "context", "errors": "errors", "fmt": "fmt", "io": "io", "log": "log",
	"slog": "log/slog", "json": "encoding/json", "http": "net/http", "netip": "net/netip",
	"tls": "crypto/tls", "x509": "crypto/x509", "time": "time", "os": "os", "strings": "strings",
	"signal": "os/signal", "syscall": "syscall", "embed": "embed",

	"datasole":   "github.com/datasole/datasole-go/datasole",
	"client":     "github.com/datasole/datasole-go/datasole/client",
	"crdt":       "github.com/datasole/datasole-go/datasole/crdt",
	"backend":    "github.com/datasole/datasole-go/datasole/backend",
	"protocol":   "github.com/datasole/datasole-go/datasole/protocol",
	"session":    "github.com/datasole/datasole-go/datasole/session",
	"web":        "github.com/datasole/datasole-go/datasole/web",
	"dsredis":    "github.com/datasole/datasole-go/datasole/backend/redis",
	"dspostgres": "github.com/datasole/datasole-go/datasole/backend/postgres",
	"dsgin":      "github.com/datasole/datasole-go/adapters/gin",
	"dsecho":     "github.com/datasole/datasole-go/adapters/echo",
	"dsfiber":    "github.com/datasole/datasole-go/adapters/fiber",
	"dshttp":     "github.com/datasole/datasole-go/adapters/stdlib",
	"dsjwt":      "github.com/datasole/datasole-go/auth/jwt",
	"dscookie":   "github.com/datasole/datasole-go/auth/cookie",
	"dsmtls":     "github.com/datasole/datasole-go/auth/mtls",
	"dsprom":     "github.com/datasole/datasole-go/metrics/prometheus",
	"dsotel":     "github.com/datasole/datasole-go/metrics/otel",

	"gin":        "github.com/gin-gonic/gin",
	"echo":       "github.com/labstack/echo/v4",
	"middleware": "github.com/labstack/echo/v4/middleware",
	"echojwt":    "github.com/labstack/echo-jwt/v4",
	"fiber":      "github.com/gofiber/fiber/v2",
	"jwtware":    "github.com/gofiber/contrib/jwt",
	"jwt":        "github.com/golang-jwt/jwt/v5",
	"redis":      "github.com/redis/go-redis/v9",
	"pgxpool":    "github.com/jackc/pgx/v5/pgxpool",
	"prometheus": "github.com/prometheus/client_golang/prometheus",
	"promhttp":   "github.com/prometheus/client_golang/prometheus/promhttp",
	"otel":       "go.opentelemetry.io/otel",
	"attribute":  "go.opentelemetry.io/otel/attribute",
}

// commonPrelude declares what every fragment may use as if declared before.
const commonPrelude = `var (
	ctx = context.Background()
	ds  *datasole.Server
	r   *gin.Engine
	e   *echo.Echo
	app *fiber.App
	mux *http.ServeMux
)
`

// A block is one ```go fence of a page.
type block struct {
	line   int // line of the block's first code line, 1-based
	code   string
	marker string // "", "main", "decls" or "skip"
}

// A page is what one Markdown file holds for the compiler.
type page struct {
	path     string // slash-separated, relative to the repository root
	file     string // absolute, for //line directives (errors name it)
	blocks   []block
	preludes []chunk
}

// A chunk is Go source starting at a line of a page.
type chunk struct {
	line int
	text string
}

var markerRE = regexp.MustCompile(`^<!--\s*go:(main|decls|skip)(:\s*(.*?))?\s*-->$`)

// parsePage extracts the Go blocks, their markers and the prelude of a page.
func parsePage(name, file, text string) (page, error) {
	p := page{path: name, file: file}
	lines := strings.Split(text, "\n")
	prev := ""
	for i := 0; i < len(lines); i++ {
		trimmed := strings.TrimSpace(lines[i])
		switch {
		case strings.HasPrefix(trimmed, "<!-- go:prelude"):
			start := i + 1
			for i < len(lines) && !strings.HasSuffix(strings.TrimSpace(lines[i]), "-->") {
				i++
			}
			if i == len(lines) {
				return p, fmt.Errorf("%s:%d: go:prelude comment not closed", name, start)
			}
			body := lines[start:i]
			if start-1 == i { // "<!-- go:prelude … -->" on one line
				body = []string{strings.TrimSuffix(strings.TrimPrefix(trimmed, "<!-- go:prelude"), "-->")}
				start = i
			}
			p.preludes = append(p.preludes, chunk{line: start + 1, text: strings.Join(body, "\n")})
			prev = ""
			continue
		case trimmed == "```go":
			indent := lines[i][:len(lines[i])-len(strings.TrimLeft(lines[i], " \t"))]
			b := block{line: i + 2}
			if m := markerRE.FindStringSubmatch(prev); m != nil {
				b.marker = m[1]
				if b.marker == "skip" && strings.TrimSpace(m[3]) == "" {
					return p, fmt.Errorf("%s:%d: go:skip needs a reason (<!-- go:skip: why -->)", name, i)
				}
			} else if strings.HasPrefix(prev, "<!-- go:") {
				return p, fmt.Errorf("%s:%d: unknown marker %s", name, i, prev)
			}
			var code []string
			for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
				code = append(code, strings.TrimPrefix(lines[i], indent))
			}
			if i == len(lines) {
				return p, fmt.Errorf("%s:%d: code block not closed", name, b.line-1)
			}
			b.code = strings.Join(code, "\n") + "\n"
			p.blocks = append(p.blocks, b)
		}
		if trimmed != "" {
			prev = trimmed
		}
	}
	return p, nil
}

// importName is the name a package is used by when imported without one.
func importName(p string) string {
	base := path.Base(p)
	if ok, _ := regexp.MatchString(`^v[0-9]+$`, base); ok {
		base = path.Base(path.Dir(p))
	}
	return strings.TrimSuffix(strings.TrimPrefix(base, "go-"), ".go")
}

// splitImports separates leading import declarations from the rest of
// src, returning them as name → path (blank and dot imports under their
// spec text) and the rest with the number of lines removed.
func splitImports(src string) (imports map[string]string, rest string, skipped int, err error) {
	imports = map[string]string{}
	lines := strings.Split(src, "\n")
	n := 0
	for n < len(lines) {
		l := strings.TrimSpace(lines[n])
		switch {
		case l == "" || strings.HasPrefix(l, "//"):
			n++
			continue
		case strings.HasPrefix(l, "import ("):
			end := n
			for end < len(lines) && strings.TrimSpace(lines[end]) != ")" {
				end++
			}
			n = end + 1
			continue
		case strings.HasPrefix(l, "import "):
			n++
			continue
		}
		break
	}
	head := strings.Join(lines[:n], "\n")
	f, err := parser.ParseFile(token.NewFileSet(), "", "package p\n"+head, parser.ImportsOnly)
	if err != nil {
		return nil, "", 0, err
	}
	for _, spec := range f.Imports {
		p, _ := strconv.Unquote(spec.Path.Value)
		name := importName(p)
		if spec.Name != nil {
			name = spec.Name.Name
		}
		if name == "_" || name == "." {
			name = name + " " + p
		}
		imports[name] = p
	}
	return imports, strings.Join(lines[n:], "\n"), n, nil
}

// program turns a fragment into a main package. pkgs are the packages the
// page's whole-file blocks define (name → import path).
func program(p page, b block, pkgs map[string]string) (string, error) {
	imports, rest, skipped, err := splitImports(b.code)
	if err != nil {
		return "", fmt.Errorf("%s:%d: %v", p.path, b.line, err)
	}
	preludeImports := map[string]string{}
	var preludeRest string
	for _, c := range p.preludes {
		imports, rest, skipped, err := splitImports(c.text)
		if err != nil {
			return "", fmt.Errorf("%s:%d: go:prelude: %v", p.path, c.line, err)
		}
		for name, path := range imports {
			preludeImports[name] = path
		}
		preludeRest += fmt.Sprintf("//line %s:%d\n%s\n", p.file, c.line+skipped, rest)
	}
	firstLine := b.line + skipped

	mode := b.marker
	if mode == "" {
		if _, err := parser.ParseFile(token.NewFileSet(), "", "package main\n"+rest, 0); err == nil {
			mode = "decls"
		} else {
			mode = "main"
		}
	}

	var src strings.Builder
	src.WriteString("package main\n\n//IMPORTS\n")
	src.WriteString(commonPreludeFor(preludeRest))
	src.WriteString(preludeRest + "\n")
	if mode == "decls" {
		fmt.Fprintf(&src, "//line %s:%d\n%s\n", p.file, firstLine, rest)
		if !definesMain(rest) {
			src.WriteString("func main() {}\n")
		}
	} else {
		body, funcs := hoistFuncs(rest, firstLine)
		for _, fn := range funcs {
			fmt.Fprintf(&src, "//line %s:%d\n%s\n", p.file, fn.line, fn.text)
		}
		fmt.Fprintf(&src, "func main() {\n//line %s:%d\n%s\n}\n", p.file, firstLine, body)
	}
	text, err := useLocals(src.String())
	if err != nil {
		return "", fmt.Errorf("%s:%d: %v", p.path, b.line, err)
	}

	// Import what the program uses.
	used, err := packagesUsed(text)
	if err != nil {
		return "", fmt.Errorf("%s:%d: %v", p.path, b.line, err)
	}
	var specs []string
	for name, path := range imports {
		if strings.HasPrefix(name, "_ ") || strings.HasPrefix(name, ". ") {
			specs = append(specs, fmt.Sprintf("%s %q", name[:1], path))
		}
	}
	for _, name := range used {
		for _, table := range []map[string]string{imports, preludeImports, pkgs, knownImports} {
			if path, ok := table[name]; ok {
				specs = append(specs, fmt.Sprintf("%s %q", name, path))
				break
			}
		}
	}
	sort.Strings(specs)
	return strings.Replace(text, "//IMPORTS", "import (\n\t"+strings.Join(specs, "\n\t")+"\n)", 1), nil
}

// commonPreludeFor is commonPrelude less the names the page's prelude
// declares itself.
func commonPreludeFor(pagePrelude string) string {
	f, err := parser.ParseFile(token.NewFileSet(), "", "package p\n"+pagePrelude, parser.SkipObjectResolution)
	if err != nil {
		return commonPrelude
	}
	declared := map[string]bool{}
	for _, d := range f.Decls {
		if g, ok := d.(*ast.GenDecl); ok {
			for _, s := range g.Specs {
				switch s := s.(type) {
				case *ast.ValueSpec:
					for _, n := range s.Names {
						declared[n.Name] = true
					}
				case *ast.TypeSpec:
					declared[s.Name.Name] = true
				}
			}
		} else if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv == nil {
			declared[fn.Name.Name] = true
		}
	}
	var out []string
	for _, l := range strings.Split(commonPrelude, "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && declared[f[0]] {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

func definesMain(decls string) bool {
	f, err := parser.ParseFile(token.NewFileSet(), "", "package main\n"+decls, parser.SkipObjectResolution)
	if err != nil {
		return false
	}
	for _, d := range f.Decls {
		if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv == nil && fn.Name.Name == "main" {
			return true
		}
	}
	return false
}

type hoisted struct {
	line int
	text string
}

// hoistFuncs moves top-level func and type declarations out of a statement
// block to package level (a line "func …" or "type …" at column 0 up to
// the line closing it at column 0), leaving blank lines so that the
// remaining statements keep their line numbers.
func hoistFuncs(src string, firstLine int) (string, []hoisted) {
	lines := strings.Split(src, "\n")
	var funcs []hoisted
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if !strings.HasPrefix(l, "func ") && !strings.HasPrefix(l, "type ") {
			continue
		}
		end := i
		switch {
		case strings.HasSuffix(l, "{"):
			for end < len(lines) && lines[end] != "}" {
				end++
			}
		case strings.HasSuffix(l, "("):
			for end < len(lines) && lines[end] != ")" {
				end++
			}
		}
		if end == len(lines) {
			break
		}
		funcs = append(funcs, hoisted{line: firstLine + i, text: strings.Join(lines[i:end+1], "\n")})
		for j := i; j <= end; j++ {
			lines[j] = ""
		}
		i = end
	}
	return strings.Join(lines, "\n"), funcs
}

// useLocals adds "; _ = x" after each top-level statement of func main
// that declares x, so that a fragment may declare what it does not use.
func useLocals(src string) (string, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "", src, parser.SkipObjectResolution)
	if err != nil {
		return "", err
	}
	type insert struct {
		off  int
		text string
	}
	var inserts []insert
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || fn.Name.Name != "main" || fn.Recv != nil {
			continue
		}
		for _, st := range fn.Body.List {
			var names []string
			switch st := st.(type) {
			case *ast.AssignStmt:
				if st.Tok == token.DEFINE {
					for _, l := range st.Lhs {
						if id, ok := l.(*ast.Ident); ok && id.Name != "_" {
							names = append(names, id.Name)
						}
					}
				}
			case *ast.DeclStmt:
				if g, ok := st.Decl.(*ast.GenDecl); ok && g.Tok == token.VAR {
					for _, s := range g.Specs {
						for _, id := range s.(*ast.ValueSpec).Names {
							if id.Name != "_" {
								names = append(names, id.Name)
							}
						}
					}
				}
			}
			if len(names) > 0 {
				blanks := strings.TrimSuffix(strings.Repeat("_, ", len(names)), ", ")
				inserts = append(inserts, insert{fset.Position(st.End()).Offset, "; " + blanks + " = " + strings.Join(names, ", ")})
			}
		}
	}
	for i := len(inserts) - 1; i >= 0; i-- {
		in := inserts[i]
		src = src[:in.off] + in.text + src[in.off:]
	}
	return src, nil
}

// packagesUsed lists the undeclared names a program uses as X in X.Sel:
// the packages it needs imported.
func packagesUsed(src string) ([]string, error) {
	f, err := parser.ParseFile(token.NewFileSet(), "", src, 0)
	if err != nil {
		return nil, err
	}
	unresolved := map[*ast.Ident]bool{}
	for _, id := range f.Unresolved {
		unresolved[id] = true
	}
	seen := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			if id, ok := sel.X.(*ast.Ident); ok && unresolved[id] {
				seen[id.Name] = true
			}
		}
		return true
	})
	var names []string
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// pages reads README.md and every Markdown file under docs/.
func pages(t *testing.T, root string) []page {
	t.Helper()
	files := []string{"README.md"}
	err := filepath.WalkDir(filepath.Join(root, "docs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".md") {
			rel, _ := filepath.Rel(root, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []page
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		p, err := parsePage(f, filepath.Join(root, f), string(data))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.work above the working directory")
		}
		dir = parent
	}
}

// TestGoSnippets writes every Go block of the documentation as a package of
// a module in a workspace with all the repository's modules, and vets them.
func TestGoSnippets(t *testing.T) {
	root := repoRoot(t)
	tmp := t.TempDir()
	mod := filepath.Join(tmp, "snippets")
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(mod, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/snippets\n\ngo 1.26\n")

	slug := regexp.MustCompile(`[^a-z0-9]+`)
	dirOf := func(p page) string {
		return strings.Trim(slug.ReplaceAllString(strings.ToLower(strings.TrimSuffix(p.path, ".md")), "_"), "_")
	}
	all := pages(t, root)
	// Whole-file blocks of a package other than main are packages every
	// page can use by name (getting-started.md's contract, say).
	pkgs := map[string]string{}
	for _, p := range all {
		for _, b := range p.blocks {
			if name, ok := packageClause(b.code); ok && name != "main" && b.marker != "skip" {
				if _, dup := pkgs[name]; dup {
					t.Errorf("%s:%d: a package %s is defined by another block already", p.path, b.line, name)
				}
				pkgs[name] = "example.com/snippets/" + dirOf(p) + "/" + name
				write(dirOf(p)+"/"+name+"/"+name+".go", fmt.Sprintf("//line %s:%d\n%s", p.file, b.line, b.code))
			}
		}
	}
	total, skipped := 0, 0
	for _, p := range all {
		dir := dirOf(p)
		for _, b := range p.blocks {
			total++
			name, isFile := packageClause(b.code)
			switch {
			case b.marker == "skip":
				skipped++
			case isFile && name != "main":
				// written above
			case isFile:
				write(fmt.Sprintf("%s/l%d/main.go", dir, b.line), fmt.Sprintf("//line %s:%d\n%s", p.file, b.line, b.code))
			default:
				src, err := program(p, b, pkgs)
				if err != nil {
					t.Error(err)
					continue
				}
				write(fmt.Sprintf("%s/l%d/main.go", dir, b.line), src)
			}
		}
	}
	if total == 0 {
		t.Fatal("no Go blocks found in the documentation")
	}

	var work strings.Builder
	work.WriteString("go 1.26.0\n\nuse (\n\t./snippets\n")
	out, err := exec.Command("go", "-C", root, "work", "edit", "-json").Output()
	if err != nil {
		t.Fatalf("go work edit -json: %v", err)
	}
	for _, m := range regexp.MustCompile(`"DiskPath": "([^"]+)"`).FindAllStringSubmatch(string(out), -1) {
		fmt.Fprintf(&work, "\t%s\n", filepath.Join(root, m[1]))
	}
	work.WriteString(")\n")
	if err := os.WriteFile(filepath.Join(tmp, "go.work"), []byte(work.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if sum, err := os.ReadFile(filepath.Join(root, "go.work.sum")); err == nil {
		os.WriteFile(filepath.Join(tmp, "go.work.sum"), sum, 0o644)
	}

	cmd := exec.Command("go", "vet", "./...")
	cmd.Dir = mod
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "GOWORK=") || strings.HasPrefix(kv, "GOFLAGS=")
	}), "GOWORK="+filepath.Join(tmp, "go.work"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("Go blocks of the documentation that do not compile or vet (see ci/docsnippets/doc.go for the conventions):\n%s", out)
	}
	t.Logf("%d Go blocks compiled and vetted, %d skipped", total-skipped, skipped)
}

// packageClause reports whether src starts (after comments) with a package
// clause, and its name.
func packageClause(src string) (string, bool) {
	f, err := parser.ParseFile(token.NewFileSet(), "", src, parser.PackageClauseOnly)
	if err != nil {
		return "", false
	}
	return f.Name.Name, true
}
