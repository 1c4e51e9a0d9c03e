// Package tsgen turns a Go contract package — package-level variables
// initialised with datasole.NewRPC, NewEvent and NewState — into a
// TypeScript module with the matching AppContract interface, the key enums
// and an interface for every Go type the contract reaches.
package tsgen

import (
	"errors"
	"fmt"
	"go/ast"
	"go/constant"
	"go/parser"
	"go/token"
	"go/types"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/tools/go/packages"
)

// CorePath is the import path of the package that declares the contract
// constructors.
const CorePath = "github.com/datasole/datasole-go/datasole"

// ErrNoContract is returned when a package declares no contract variables.
var ErrNoContract = errors.New("tsgen: no datasole.NewRPC, NewEvent or NewState declarations")

// ErrNoPackage is returned when the directory given to Load holds no Go
// package: it does not exist, is a file, or has no Go files.
var ErrNoPackage = errors.New("tsgen: no Go package")

// Kind says which part of a contract a declaration belongs to.
type Kind int

// The three kinds of contract declarations.
const (
	KindRPC   Kind = iota // datasole.NewRPC[P, R](name)
	KindEvent             // datasole.NewEvent[T](name)
	KindState             // datasole.NewState[T](key)
)

// Decl is one contract declaration found in a package.
type Decl struct {
	Kind   Kind
	GoName string       // the variable's name
	Name   string       // the method, event or key on the wire
	Types  []types.Type // [P, R] for an RPC, [T] otherwise
	Doc    string
}

// Contract is what a package declares.
type Contract struct {
	PkgPath string
	Decls   []Decl
	fset    *token.FileSet
	// docs maps the source position of a declared name to its doc
	// comment, per file; files of imported packages are parsed when a type
	// of theirs is declared.
	docs map[string]map[position]string
}

// position is a place in a file, comparable across file sets: types of
// imported packages come from export data, not from the parsed syntax.
// Column 0 stands for the first documented name on the line.
type position struct{ line, column int }

// doc returns the doc comment of the name declared at pos.
func (c *Contract) doc(pos token.Pos) string {
	p := c.fset.Position(pos)
	if !p.IsValid() {
		return ""
	}
	docs, ok := c.docs[p.Filename]
	if !ok {
		docs = map[position]string{}
		fset := token.NewFileSet()
		if f, err := parser.ParseFile(fset, p.Filename, nil, parser.ParseComments|parser.SkipObjectResolution); err == nil {
			docComments(fset, f, docs)
		}
		c.docs[p.Filename] = docs // a file that does not parse has no docs
	}
	if d, ok := docs[position{p.Line, p.Column}]; ok || p.Column > 1 {
		return d
	}
	// Export data records lines only (column 1); gofmt'd code declares
	// no name in column 1, so the first name on the line is the one.
	return docs[position{p.Line, 0}]
}

// Load type-checks the package in dir and collects its contract
// declarations. It needs the go command, as the go tool itself does to list
// packages.
func Load(dir string) (*Contract, error) {
	const hint = "give the directory of the Go package that declares the contract"
	switch fi, err := os.Stat(dir); {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%w in %s: the directory does not exist (%s)", ErrNoPackage, dir, hint)
	case err != nil:
		return nil, fmt.Errorf("tsgen: %w", err)
	case !fi.IsDir():
		return nil, fmt.Errorf("%w in %s: it is a file, not a directory (%s, e.g. %s)", ErrNoPackage, dir, hint, filepath.Dir(dir))
	}
	if _, err := exec.LookPath("go"); err != nil {
		return nil, fmt.Errorf("tsgen: the go command is needed to type-check the contract package and is not in PATH: %w", err)
	}
	cfg := &packages.Config{
		Mode: packages.NeedName | packages.NeedFiles | packages.NeedTypes | packages.NeedTypesInfo |
			packages.NeedSyntax,
		Dir: dir,
	}
	pkgs, err := packages.Load(cfg, ".")
	if err != nil {
		// The go command's own complaint (no go.mod, a bad go.mod, …) is the
		// useful part; the wrapper around it only says that go failed.
		msg := err.Error()
		if _, after, ok := strings.Cut(msg, "stderr: "); ok && strings.TrimSpace(after) != "" {
			msg = strings.TrimSpace(after)
		}
		return nil, fmt.Errorf("tsgen: loading the package in %s: %s", dir, msg)
	}
	if len(pkgs) != 1 {
		if out, err := goEnv(dir, "GOMOD"); err == nil && (out == "" || out == os.DevNull) {
			return nil, fmt.Errorf("%w in %s: it is not inside a Go module (no go.mod in it or above it)", ErrNoPackage, dir)
		}
		return nil, fmt.Errorf("tsgen: %s holds %d packages, want 1", dir, len(pkgs))
	}
	pkg := pkgs[0]
	if len(pkg.GoFiles) == 0 && len(pkg.CompiledGoFiles) == 0 {
		return nil, fmt.Errorf("%w in %s: it holds no Go files for this platform (%s)", ErrNoPackage, dir, hint)
	}
	// Type and syntax errors say what is wrong; the go command's summary of
	// the same failure only repeats them.
	var msgs, listed []string
	packages.Visit(pkgs, nil, func(p *packages.Package) {
		for _, e := range p.Errors {
			if e.Kind == packages.ListError {
				listed = append(listed, e.Error())
			} else {
				msgs = append(msgs, e.Error())
			}
		}
	})
	if len(msgs) == 0 {
		msgs = listed
	}
	if len(msgs) > 0 {
		return nil, fmt.Errorf("tsgen: %s does not compile: %s", dir, strings.Join(msgs, "; "))
	}
	return collect(pkg)
}

// goEnv returns one variable of go env as seen from dir.
func goEnv(dir, name string) (string, error) {
	cmd := exec.Command("go", "env", name)
	cmd.Dir = dir
	out, err := cmd.Output()
	return strings.TrimSpace(string(out)), err
}

func collect(pkg *packages.Package) (*Contract, error) {
	c := &Contract{PkgPath: pkg.PkgPath, fset: pkg.Fset, docs: map[string]map[position]string{}}
	for _, f := range pkg.Syntax {
		docs := map[position]string{}
		docComments(pkg.Fset, f, docs)
		c.docs[pkg.Fset.Position(f.FileStart).Filename] = docs
	}
	seen := map[[2]string]string{}
	for _, init := range pkg.TypesInfo.InitOrder {
		for _, v := range init.Lhs {
			kind, args, ok := contractType(v.Type())
			if !ok || v.Parent() != pkg.Types.Scope() {
				continue
			}
			name, err := wireName(pkg.TypesInfo, init.Rhs)
			if err != nil {
				return nil, fmt.Errorf("tsgen: %s: %s: %w", pkg.Fset.Position(v.Pos()), v.Name(), err)
			}
			k := [2]string{kind.String(), name}
			if other, dup := seen[k]; dup {
				return nil, fmt.Errorf("tsgen: %s: %s declares %s %q again (first in %s)",
					pkg.Fset.Position(v.Pos()), v.Name(), kind, name, other)
			}
			seen[k] = v.Name()
			c.Decls = append(c.Decls, Decl{Kind: kind, GoName: v.Name(), Name: name, Types: args, Doc: c.doc(v.Pos())})
		}
	}
	if len(c.Decls) == 0 {
		return nil, fmt.Errorf("%w in %s", ErrNoContract, pkg.PkgPath)
	}
	sort.Slice(c.Decls, func(i, j int) bool {
		a, b := c.Decls[i], c.Decls[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.Name < b.Name
	})
	return c, nil
}

func (k Kind) String() string {
	switch k {
	case KindRPC:
		return "rpc"
	case KindEvent:
		return "event"
	}
	return "state"
}

// contractType reports whether t is datasole.RPC, Event or State and
// returns its type arguments.
func contractType(t types.Type) (Kind, []types.Type, bool) {
	named, ok := t.(*types.Named)
	if !ok || named.Obj().Pkg() == nil || named.Obj().Pkg().Path() != CorePath {
		return 0, nil, false
	}
	var kind Kind
	switch named.Obj().Name() {
	case "RPC":
		kind = KindRPC
	case "Event":
		kind = KindEvent
	case "State":
		kind = KindState
	default:
		return 0, nil, false
	}
	var args []types.Type
	for i := range named.TypeArgs().Len() {
		args = append(args, named.TypeArgs().At(i))
	}
	return kind, args, true
}

// wireName returns the constant string passed to the constructor call.
func wireName(info *types.Info, rhs ast.Expr) (string, error) {
	call, ok := ast.Unparen(rhs).(*ast.CallExpr)
	if !ok || len(call.Args) != 1 {
		return "", errors.New("not initialised by a constructor call with one argument")
	}
	tv, ok := info.Types[call.Args[0]]
	if !ok || tv.Value == nil || tv.Value.Kind() != constant.String {
		return "", errors.New("the name is not a constant string")
	}
	name := constant.StringVal(tv.Value)
	if name == "" {
		return "", errors.New("the name is empty")
	}
	return name, nil
}

// docComments records the doc comments of the names declared in f (types,
// fields, variables), or their line comments when they have no doc.
func docComments(fset *token.FileSet, f *ast.File, docs map[position]string) {
	set := func(pos token.Pos, groups ...*ast.CommentGroup) {
		for _, g := range groups {
			if s := strings.TrimSpace(g.Text()); s != "" {
				p := fset.Position(pos)
				docs[position{p.Line, p.Column}] = s
				if _, ok := docs[position{p.Line, 0}]; !ok {
					docs[position{p.Line, 0}] = s
				}
				return
			}
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.GenDecl:
			var outer *ast.CommentGroup
			if len(n.Specs) == 1 { // "// X is …" above "type X …" belongs to X
				outer = n.Doc
			}
			for _, spec := range n.Specs {
				switch s := spec.(type) {
				case *ast.TypeSpec:
					set(s.Name.Pos(), s.Doc, s.Comment, outer)
				case *ast.ValueSpec:
					for _, name := range s.Names {
						set(name.Pos(), s.Doc, s.Comment, outer)
					}
				}
			}
		case *ast.Field:
			for _, name := range n.Names {
				set(name.Pos(), n.Doc, n.Comment)
			}
			if len(n.Names) == 0 { // embedded: the type expression carries the position
				set(embeddedPos(n.Type), n.Doc, n.Comment)
			}
		}
		return true
	})
}

func embeddedPos(e ast.Expr) token.Pos {
	switch e := e.(type) {
	case *ast.StarExpr:
		return embeddedPos(e.X)
	case *ast.SelectorExpr:
		return e.Sel.Pos()
	case *ast.IndexExpr:
		return embeddedPos(e.X)
	case *ast.IndexListExpr:
		return embeddedPos(e.X)
	}
	return e.Pos()
}

// exportedName upper-cases the first letter of a Go identifier so that it
// reads as a TypeScript enum member.
func exportedName(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[n:]
}
