package install

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestReleaseScript runs scripts/release.sh in a copy of the work tree
// (committed in a fresh repository with a remote) and checks what it
// leaves: one version everywhere, one tag per released module on the
// release commit, the changelog heading, nothing pushed. The install test
// it runs before committing is skipped here: TestInstall is that test.
func TestReleaseScript(t *testing.T) {
	root := repoRoot(t)
	tmp := t.TempDir()
	repo := filepath.Join(tmp, "repo")
	for _, f := range gitFiles(t, root, "") {
		data, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		info, err := os.Stat(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(repo, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, info.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	env := append(os.Environ(),
		"GIT_AUTHOR_NAME=Release Test", "GIT_AUTHOR_EMAIL=release@example.com",
		"GIT_COMMITTER_NAME=Release Test", "GIT_COMMITTER_EMAIL=release@example.com",
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"DATASOLE_RELEASE_SKIP_INSTALL_TEST=1",
	)
	sh := func(dir string, name string, args ...string) (string, error) {
		cmd := exec.Command(name, args...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	must := func(dir string, name string, args ...string) string {
		t.Helper()
		out, err := sh(dir, name, args...)
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(out)
	}
	origin := filepath.Join(tmp, "origin.git")
	must(tmp, "git", "init", "-q", "--bare", origin)
	must(repo, "git", "init", "-q", "-b", "main")
	must(repo, "git", "add", "-A")
	must(repo, "git", "commit", "-q", "-m", "snapshot")
	must(repo, "git", "remote", "add", "origin", origin)
	must(repo, "git", "push", "-q", "origin", "main")

	for _, bad := range []string{"v2.0.0", "1.2.3", "v0.1"} {
		if out, err := sh(repo, "bash", "scripts/release.sh", bad); err == nil {
			t.Errorf("release.sh %s succeeded:\n%s", bad, out)
		}
	}
	os.WriteFile(filepath.Join(repo, "stray.txt"), []byte("x"), 0o644)
	if out, err := sh(repo, "bash", "scripts/release.sh", "v0.99.0"); err == nil || !strings.Contains(out, "work tree has changes") {
		t.Errorf("release.sh in a dirty tree: %v\n%s", err, out)
	}
	os.Remove(filepath.Join(repo, "stray.txt"))

	must(repo, "bash", "scripts/release.sh", "v0.99.0")

	mods := readModules(t, repo)
	if v, err := commonVersion(mods); err != nil || v != "v0.99.0" {
		t.Errorf("after the release the siblings are required at %q (%v), want v0.99.0", v, err)
	}
	var want []string
	for _, m := range releasedModules(t, repo, mods) {
		want = append(want, m.Dir+"/v0.99.0")
	}
	slices.Sort(want)
	tags := strings.Fields(must(repo, "git", "tag", "-l"))
	slices.Sort(tags)
	if !slices.Equal(tags, want) {
		t.Errorf("tags %v, want %v", tags, want)
	}
	for _, dir := range []string{"datasole", "adapters/gin", "datasole/backend/redis", "cmd/datasole"} {
		if !slices.Contains(tags, dir+"/v0.99.0") {
			t.Errorf("no tag %s/v0.99.0", dir)
		}
	}
	head := must(repo, "git", "rev-parse", "HEAD")
	for _, tag := range tags {
		if c := must(repo, "git", "rev-list", "-n1", tag); c != head {
			t.Errorf("tag %s is on %s, want the release commit %s", tag, c, head)
		}
	}
	if s := must(repo, "git", "log", "-1", "--format=%s"); s != "Release v0.99.0" {
		t.Errorf("release commit subject %q", s)
	}
	if s := must(repo, "git", "status", "--porcelain"); s != "" {
		t.Errorf("work tree left dirty:\n%s", s)
	}
	changelog, _ := os.ReadFile(filepath.Join(repo, "CHANGELOG.md"))
	if !strings.Contains(string(changelog), "\n## v0.99.0 (") || strings.Contains(string(changelog), "## Unreleased") {
		t.Errorf("CHANGELOG.md does not name the release:\n%.300s", changelog)
	}
	if s := must(repo, "git", "ls-remote", "--tags", "origin"); s != "" {
		t.Errorf("tags reached the remote:\n%s", s)
	}
	if out, err := sh(repo, "bash", "scripts/release.sh", "v0.99.0"); err == nil || !strings.Contains(out, "exists already") {
		t.Errorf("releasing v0.99.0 twice: %v\n%s", err, out)
	}
}
