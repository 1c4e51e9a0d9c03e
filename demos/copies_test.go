// The framework demos are copy-paste programs, so each folder carries its
// own copy of everything but main.go. This test keeps the copies equal, and
// equal to the page the browser tests drive (demos/web).
package demos

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestDemoCopiesAreEqual(t *testing.T) {
	frameworks := []string{"gin", "echo", "fiber", "stdlib"}
	shared := map[string][]string{ // file → other folders holding the same file
		"app.go":       nil,
		"contract.go":  nil,
		"main_test.go": nil,
		"index.html":   {"web"},
		"app.js":       {"web"},
		"app.css":      {"web"},
	}
	for name, others := range shared {
		want, err := os.ReadFile(filepath.Join(frameworks[0], name))
		if err != nil {
			t.Fatal(err)
		}
		for _, dir := range append(frameworks[1:], others...) {
			got, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s/%s differs from %s/%s: change every copy", dir, name, frameworks[0], name)
			}
		}
	}
}
