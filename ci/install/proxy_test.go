package install

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"
)

// file is one file of a module, as golang.org/x/mod/zip wants it.
type file struct {
	rel  string // path inside the module
	disk string
}

func (f file) Path() string                 { return f.rel }
func (f file) Lstat() (os.FileInfo, error)  { return os.Lstat(f.disk) }
func (f file) Open() (io.ReadCloser, error) { return os.Open(f.disk) }

// publish writes mods at version into dir laid out as a GOPROXY
// (<escaped path>/@v/{list,<v>.info,<v>.mod,<v>.zip}), each module zipped
// from the files git would commit in its directory: what tagging the
// current work tree would publish. Files of modules in subdirectories are
// left out by modzip.Create, as the go command leaves them out of a module
// fetched from version control.
func publish(t *testing.T, root, dir string, mods []repoModule, version string) {
	t.Helper()
	info, err := json.Marshal(struct {
		Version string
		Time    time.Time
	}{version, time.Now().UTC().Truncate(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mods {
		var files []modzip.File
		for _, f := range gitFiles(t, root, m.Dir) {
			files = append(files, file{rel: strings.TrimPrefix(f, m.Dir+"/"), disk: filepath.Join(root, f)})
		}
		var zip bytes.Buffer
		mv := module.Version{Path: m.Path, Version: version}
		if err := modzip.Create(&zip, mv, files); err != nil {
			t.Fatalf("zipping %s: %v", m.Dir, err)
		}
		goMod, err := os.ReadFile(filepath.Join(root, m.Dir, "go.mod"))
		if err != nil {
			t.Fatal(err)
		}
		escPath, err := module.EscapePath(m.Path)
		if err != nil {
			t.Fatal(err)
		}
		escVersion, err := module.EscapeVersion(version)
		if err != nil {
			t.Fatal(err)
		}
		at := filepath.Join(dir, filepath.FromSlash(escPath), "@v")
		if err := os.MkdirAll(at, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range map[string][]byte{
			"list":               []byte(version + "\n"),
			escVersion + ".info": info,
			escVersion + ".mod":  goMod,
			escVersion + ".zip":  zip.Bytes(),
		} {
			if err := os.WriteFile(filepath.Join(at, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
