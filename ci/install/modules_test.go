package install

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
)

// prefix is the module path every module of the repository starts with.
const prefix = "github.com/datasole/datasole-go"

// repoModule is one go.mod of the repository.
type repoModule struct {
	Dir  string // relative to the repository root, slash-separated
	Path string
	File *modfile.File
}

// repoRoot is the directory holding go.work above the working directory.
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

// gitFiles lists the files git would commit under dir (relative to root):
// tracked ones still present and untracked ones not ignored.
func gitFiles(t *testing.T, root, dir string) []string {
	t.Helper()
	args := []string{"-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--"}
	if dir != "" {
		args = append(args, dir+"/")
	}
	out, err := exec.Command("git", args...).Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	var files []string
	seen := map[string]bool{}
	for f := range strings.SplitSeq(strings.TrimSuffix(string(out), "\x00"), "\x00") {
		if f == "" || seen[f] {
			continue
		}
		seen[f] = true
		if fi, err := os.Lstat(filepath.Join(root, f)); err != nil || !fi.Mode().IsRegular() {
			continue // deleted in the work tree, or a symlink
		}
		files = append(files, f)
	}
	return files
}

// readModules parses every go.mod of the repository.
func readModules(t *testing.T, root string) []repoModule {
	t.Helper()
	var mods []repoModule
	for _, f := range gitFiles(t, root, "") {
		if f != "go.mod" && !strings.HasSuffix(f, "/go.mod") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		mf, err := modfile.Parse(f, data, nil)
		if err != nil {
			t.Fatal(err)
		}
		mods = append(mods, repoModule{Dir: strings.TrimSuffix(strings.TrimSuffix(f, "go.mod"), "/"), Path: mf.Module.Mod.Path, File: mf})
	}
	sort.Slice(mods, func(i, j int) bool { return mods[i].Dir < mods[j].Dir })
	return mods
}

// commonVersion returns the one version at which the repository's go.mod
// files require each other. A requirement at v0.0.0, or versions that
// disagree, is an error naming every offending line: a module proxy cannot
// serve v0.0.0, and consumers do not see the relative replace lines that
// make it build here.
func commonVersion(mods []repoModule) (string, error) {
	byVersion := map[string][]string{}
	var zero []string
	for _, m := range mods {
		for _, r := range m.File.Require {
			if !strings.HasPrefix(r.Mod.Path, prefix+"/") {
				continue
			}
			where := fmt.Sprintf("%s/go.mod requires %s %s", m.Dir, r.Mod.Path, r.Mod.Version)
			if r.Mod.Version == "v0.0.0" {
				zero = append(zero, where)
			}
			byVersion[r.Mod.Version] = append(byVersion[r.Mod.Version], where)
		}
	}
	if len(zero) > 0 {
		return "", fmt.Errorf("sibling modules required at v0.0.0, which no module proxy serves; require the version being released (scripts/release.sh sets it):\n\t%s", strings.Join(zero, "\n\t"))
	}
	switch len(byVersion) {
	case 0:
		return "", errors.New("no go.mod requires a sibling module")
	case 1:
		for v := range byVersion {
			return v, nil
		}
	}
	var b strings.Builder
	for v, where := range byVersion {
		fmt.Fprintf(&b, "\n%s:\n\t%s", v, strings.Join(where, "\n\t"))
	}
	return "", fmt.Errorf("sibling modules are required at different versions; every module is released at one version:%s", b.String())
}

// releasedModules are the modules scripts/release.sh tags.
func releasedModules(t *testing.T, root string, mods []repoModule) []repoModule {
	t.Helper()
	cmd := exec.Command("bash", "scripts/release.sh", "-list")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/release.sh -list: %v\n%s", err, stderr.Bytes())
	}
	byDir := map[string]repoModule{}
	for _, m := range mods {
		byDir[m.Dir] = m
	}
	var rel []repoModule
	for _, dir := range strings.Fields(string(out)) {
		m, ok := byDir[dir]
		if !ok {
			t.Fatalf("scripts/release.sh -list names %s, which has no go.mod", dir)
		}
		rel = append(rel, m)
	}
	return rel
}

func TestSiblingRequirements(t *testing.T) {
	mods := readModules(t, repoRoot(t))
	v, err := commonVersion(mods)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d modules require each other at %s", len(mods), v)
	// fake is a module requiring the core at version.
	fake := func(dir, version string) repoModule {
		return repoModule{Dir: dir, File: &modfile.File{Require: []*modfile.Require{{Mod: module.Version{Path: prefix + "/datasole", Version: version}}}}}
	}
	t.Run("a requirement at v0.0.0 is caught", func(t *testing.T) {
		_, err := commonVersion([]repoModule{fake("a", v), fake("b", "v0.0.0")})
		if err == nil || !strings.Contains(err.Error(), "b/go.mod requires "+prefix+"/datasole v0.0.0") {
			t.Fatalf("commonVersion = %v, want the v0.0.0 line named", err)
		}
	})
	t.Run("disagreeing versions are caught", func(t *testing.T) {
		_, err := commonVersion([]repoModule{fake("a", v), fake("b", v+"-other")})
		if err == nil || !strings.Contains(err.Error(), "different versions") {
			t.Fatalf("commonVersion = %v, want the disagreement reported", err)
		}
	})
}
