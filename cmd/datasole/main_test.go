package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const contractDir = "internal/tsgen/testdata/contract"

func TestGenTSWritesToStandardOutputOrToTheFileNamedByO(t *testing.T) {
	var stdout bytes.Buffer
	if err := run([]string{"gen", "ts", contractDir}, &stdout); err != nil {
		t.Fatal(err)
	}
	golden, err := os.ReadFile("internal/tsgen/testdata/contract.ts.golden")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stdout.Bytes(), golden) {
		t.Error("standard output differs from the golden file")
	}
	for _, args := range [][]string{
		{"gen", "ts", "-o", "OUT", contractDir},
		{"gen", "ts", contractDir, "-o", "OUT"},
	} {
		t.Run("with the flag at "+strings.Join(args[2:], " "), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "contract.ts")
			for i, a := range args {
				if a == "OUT" {
					args[i] = out
				}
			}
			var stdout bytes.Buffer
			if err := run(args, &stdout); err != nil {
				t.Fatal(err)
			}
			if stdout.Len() != 0 {
				t.Errorf("wrote %d bytes to standard output", stdout.Len())
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, golden) {
				t.Error("file differs from the golden file")
			}
		})
	}
}

func TestRunRejectsBadCommandLines(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"no arguments", nil},
		{"an unknown command", []string{"gen", "py", "."}},
		{"no package directory", []string{"gen", "ts"}},
		{"two package directories", []string{"gen", "ts", "a", "b"}},
		{"an unknown flag", []string{"gen", "ts", "-x", "."}},
		{"-o without a value", []string{"gen", "ts", ".", "-o"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := run(tc.args, new(bytes.Buffer)); !errors.Is(err, errUsage) {
				t.Errorf("err = %v, want a usage error", err)
			}
		})
	}
}

func TestRunReportsPackagesItCannotGenerate(t *testing.T) {
	err := run([]string{"gen", "ts", "internal/tsgen/testdata/nocontract"}, new(bytes.Buffer))
	if err == nil || errors.Is(err, errUsage) || !strings.Contains(err.Error(), "no datasole.NewRPC") {
		t.Fatalf("err = %v, want the loader's error", err)
	}
}

func TestRunNamesAMissingPackageDirectory(t *testing.T) {
	err := run([]string{"gen", "ts", "./nope"}, new(bytes.Buffer))
	if err == nil || !strings.Contains(err.Error(), "./nope: the directory does not exist") || strings.Contains(err.Error(), "fork/exec") {
		t.Fatalf("err = %v, want one saying ./nope does not exist", err)
	}
}
