// Command datasole holds the project's developer tools.
//
//	datasole gen ts <pkgdir> [-o file]
//
// gen ts reads a Go contract package — package-level variables initialised
// with datasole.NewRPC[P, R]("name"), NewEvent[T]("name") and
// NewState[T]("key") — and writes a TypeScript module with the matching
// AppContract interface (the type argument of the browser client,
// DatasoleClient<AppContract>, which then checks every call), the RPC, Events
// and StateKeys enums and an interface for every Go type the contract
// reaches, so that Go and TypeScript share one source of truth. Without -o it writes to standard
// output. A typical use is a go:generate line in the contract package:
//
//	//go:generate go run github.com/datasole/datasole-go/cmd/datasole gen ts . -o ../web/contract.ts
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/datasole/datasole-go/cmd/datasole/internal/tsgen"
)

const usage = `usage: datasole gen ts <pkgdir> [-o file]

Writes the TypeScript types of the datasole contract declared in the Go
package in <pkgdir> (NewRPC, NewEvent and NewState variables).
`

// errUsage marks command lines that do not parse; they exit with status 2.
var errUsage = errors.New("usage")

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		if errors.Is(err, errUsage) {
			fmt.Fprint(os.Stderr, usage)
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "datasole:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	if len(args) < 2 || args[0] != "gen" || args[1] != "ts" {
		return errUsage
	}
	fs := flag.NewFlagSet("gen ts", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	out := fs.String("o", "", "output file (default: standard output)")
	// Accept the flag before or after the directory.
	var dirs []string
	rest := args[2:]
	for {
		if err := fs.Parse(rest); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		if fs.NArg() == 0 {
			break
		}
		dirs = append(dirs, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(dirs) != 1 {
		return errUsage
	}
	c, err := tsgen.Load(dirs[0])
	if err != nil {
		return err
	}
	src, err := tsgen.Generate(c)
	if err != nil {
		return err
	}
	if *out == "" {
		_, err = stdout.Write(src)
		return err
	}
	return os.WriteFile(*out, src, 0o644)
}
