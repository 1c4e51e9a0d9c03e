package tsgen

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/datasole/datasole-go/datasole"
)

var update = flag.Bool("update", false, "rewrite testdata/contract.ts.golden")

func TestCorePathNamesThePackageOfTheConstructors(t *testing.T) {
	for _, v := range []any{datasole.NewRPC[int, int]("a"), datasole.NewEvent[int]("b"), datasole.NewState[int]("c")} {
		if got := reflect.TypeOf(v).PkgPath(); got != CorePath {
			t.Errorf("%T lives in %q, the generator looks for %q", v, got, CorePath)
		}
	}
}

func generate(t *testing.T, dir string) []byte {
	t.Helper()
	c, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	src, err := Generate(c)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func TestGenerateMatchesTheGoldenFile(t *testing.T) {
	got := generate(t, "testdata/contract")
	golden := filepath.Join("testdata", "contract.ts.golden")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (rerun with -update after checking the change):\n%s", golden, got)
	}
}

func TestGenerateIsDeterministic(t *testing.T) {
	if !bytes.Equal(generate(t, "testdata/contract"), generate(t, "testdata/contract")) {
		t.Fatal("two runs on the same package produced different output")
	}
}

func TestGenerateMapsGoTypesAsEncodingJSONWritesThem(t *testing.T) {
	src := string(generate(t, "testdata/contract"))
	for _, tc := range []struct{ name, want string }{
		{"an RPC entry carries params and result", `"tickets.get": { params: GetTicketParams; result: Ticket };`},
		{"a pointer result may be null", `me: { params: Empty; result: User | null };`},
		{"an empty struct admits no members", `ping: { params: Record<string, never>; result: Empty };`},
		{"a constant state key is resolved", `load: number;`},
		{"a map of slices becomes a Record of arrays", `board: Record<string, Ticket[]>;`},
		{"the enum member is the Go name", `GetTicket = "tickets.get",`},
		{"embedded struct members are promoted", "  createdAt: string;\n"},
		{"an omitempty pointer is optional, not null", "  updatedAt?: string;\n"},
		{"the string option quotes numbers", "  id: string;\n"},
		{"string constants form a union", `export type Status = "open" | "closed";`},
		{"iota constants form a union", `export type Priority = 0 | 1;`},
		{"a clashing name from another package gets its package prefix", "export interface OtherUser {"},
		{"a pointer field without omitempty may be null", "  owner: OtherUser | null;\n"},
		{"a slice of pointers parenthesises the union", "  watchers?: (OtherUser | null)[];\n"},
		{"any becomes unknown", "  fields: Record<string, unknown>;\n"},
		{"integer map keys become strings", "  counts: Record<string, number>;\n"},
		{"json.RawMessage becomes unknown", "  raw: unknown;\n"},
		{"[]byte is base64 text", "  blob: string;\n"},
		{"arrays nest", "  grid: number[][];\n"},
		{"a TextMarshaler is a string", "  addr: string;\n"},
		{"a generic type keeps its parameter", "export interface Page<T> {\n  items: T[];"},
		{"a generic instance passes its argument", "  page: Page<OtherUser>;\n"},
		{"omitzero makes a member optional", "  tags?: Record<string, Label>;\n"},
		{"names that are not identifiers are quoted", `  "weird-name": string;`},
		{"the tag \"-,\" names a member \"-\"", `  "-": string;`},
		{"an untagged field keeps its Go name", "  NoTag: boolean;\n"},
		{"a doc comment becomes JSDoc", "/** Ticket covers fields of every kind. */\nexport interface Ticket {"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(src, tc.want) {
				t.Errorf("output lacks %q", tc.want)
			}
		})
	}
	for _, tc := range []struct{ name, unwanted string }{
		{"json:\"-\" fields are left out", "Skipped"},
		{"unexported fields are left out", "secret"},
		{"a shadowed embedded member is left out", "Rev is shadowed"},
		{"function-local declarations are not contract", `"local"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if strings.Contains(src, tc.unwanted) {
				t.Errorf("output contains %q", tc.unwanted)
			}
		})
	}
}

func TestLoadRejectsWhatCannotBeGenerated(t *testing.T) {
	for _, tc := range []struct {
		name, dir, want string
		is              error
	}{
		{"a package without declarations", "testdata/nocontract", "no datasole.NewRPC", ErrNoContract},
		{"a name given twice", "testdata/duplicate", `declares rpc "add" again`, nil},
		{"a name known only at run time", "testdata/dynamicname", "not a constant string", nil},
		{"a directory that does not exist", "testdata/missing", "testdata/missing: the directory does not exist", ErrNoPackage},
		{"a file instead of a directory", "testdata/contract/contract.go", "it is a file, not a directory", ErrNoPackage},
		{"a directory without Go files", "testdata", "holds no Go files", ErrNoPackage},
		{"a directory outside any module", "TEMP/nomod", "not inside a Go module", ErrNoPackage},
		{"a package that does not compile", "TEMP/bad", `bad.go:3:13: cannot use "s"`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if rest, ok := strings.CutPrefix(tc.dir, "TEMP/"); ok {
				tc.dir = filepath.Join(outsideModule(t), rest)
			}
			c, err := Load(tc.dir)
			if err != nil && strings.Contains(err.Error(), "fork/exec") {
				t.Errorf("err = %v names the go command's plumbing, not the problem", err)
			}
			if err == nil {
				_, err = Generate(c)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("err = %v, want it to wrap %v", err, tc.is)
			}
		})
	}
}

// outsideModule returns a temporary directory outside any Go module holding
// nomod/ (a package without go.mod) and bad/ (a module that does not compile).
func outsideModule(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{
		"nomod/x.go": "package x\n",
		"bad/go.mod": "module bad\n\ngo 1.26\n",
		"bad/bad.go": "package bad\n\nvar x int = \"s\"\n",
	} {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("GOWORK", "off")
	t.Setenv("GOFLAGS", "-mod=mod")
	return dir
}

func TestGenerateRejectsTypesWithoutJSONEncoding(t *testing.T) {
	c, err := Load("testdata/chanfield")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Generate(c)
	if err == nil || !strings.Contains(err.Error(), "chanfield.Bad.C") {
		t.Fatalf("err = %v, want one naming the field chanfield.Bad.C", err)
	}
}

// usageTS uses the generated module the way an application would; the
// @ts-expect-error lines fail the check if a type is looser than the Go one.
const usageTS = `import type { AppContract, Ticket, Status, Page, OtherUser } from "./contract";
import { RPC, Events, StateKeys } from "./contract";
import type { DatasoleClient } from "./datasole";

declare const client: DatasoleClient<AppContract>;
export const ticket: Promise<Ticket> = client.rpc(RPC.GetTicket, { id: 7 });
client.on(Events.Changed, (e) => e.data.labels.join());
// @ts-expect-error: the browser client checks calls against the contract
client.rpc(RPC.GetTicket, { id: "7" });

type Params<M extends keyof AppContract["rpc"]> = AppContract["rpc"][M]["params"];
type Result<M extends keyof AppContract["rpc"]> = AppContract["rpc"][M]["result"];

export const params: Params<RPC.GetTicket> = { id: 7 };
export const me: Result<"me"> = null;
export const event: AppContract["events"][Events.Changed]["status"] = "open";
export const load: AppContract["state"][StateKeys.Load] = 0.5;
export const names: string[] = [RPC.Ping, Events.Typing, StateKeys.Board];
export const quoted: Ticket["id"] = "12";
export const open: Status = "open";
export const page: Page<OtherUser> = { items: [{ id: "u1", name: "Ann" }] };
export const partial: Pick<Ticket, "title" | "watchers" | "updatedAt"> = { title: "t" };

// @ts-expect-error: the id travels as a quoted string
export const unquoted: Ticket["id"] = 12;
// @ts-expect-error: not one of the Status constants
export const pending: Status = "pending";
// @ts-expect-error: title is required
export const untitled: Pick<Ticket, "title"> = {};
// @ts-expect-error: no such RPC
export const nothing: Params<"nope"> = {};
// @ts-expect-error: an empty struct admits no members
export const empty: Params<RPC.Ping> = { x: 1 };
`

const tsconfig = `{
  "compilerOptions": {
    "target": "es2020",
    "module": "esnext",
    "moduleResolution": "bundler",
    "strict": true,
    "noEmit": true,
    "isolatedModules": true,
    "skipLibCheck": true
  },
  "files": ["contract.ts", "usage.ts", "datasole.d.ts"]
}
`

func TestGeneratedModuleTypeChecks(t *testing.T) {
	ci := os.Getenv("CI") == "true"
	node, err := exec.LookPath("node")
	if err != nil {
		if ci {
			t.Fatal("node is required when CI=true")
		}
		t.Skip("node is not installed")
	}
	tsc, err := filepath.Abs("../../../../datasole/web/node_modules/typescript/bin/tsc")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tsc); err != nil {
		if ci {
			t.Fatalf("typescript is not installed (npm ci in datasole/web): %v", err)
		}
		t.Skipf("typescript is not installed (npm ci in datasole/web): %v", err)
	}
	dts, err := os.ReadFile("../../../../datasole/web/datasole.d.ts")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, body := range map[string][]byte{
		"datasole.d.ts": dts,
		"contract.ts":   generate(t, "testdata/contract"),
		"usage.ts":      []byte(usageTS),
		"tsconfig.json": []byte(tsconfig),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(node, tsc, "-p", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tsc: %v\n%s", err, out)
	}
}
