package docsnippets

import (
	"strings"
	"testing"
)

func TestConventions(t *testing.T) {
	page := "# T\n" +
		"<!-- go:prelude\nvar key string\n-->\n" +
		"```go\nsum, err := strconv.Atoi(key)\nfunc helper() {}\n```\n" +
		"<!-- go:skip: shows output -->\n```go\nnot go\n```\n"
	p, err := parsePage("t.md", "/abs/t.md", page)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.blocks) != 2 || p.blocks[1].marker != "skip" || p.blocks[0].line != 6 {
		t.Fatalf("blocks = %+v", p.blocks)
	}
	src, err := program(p, p.blocks[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"; _, _ = sum, err",           // unused locals are fine
		"//line /abs/t.md:6",          // errors point at the page
		"//line /abs/t.md:3\nvar key", // the prelude is compiled with the block
		"func helper() {}\nfunc main() {",
	} {
		if !strings.Contains(src, want) {
			t.Errorf("program lacks %q:\n%s", want, src)
		}
	}
	if strings.Contains(src, "\"strconv\"") {
		t.Errorf("strconv is not a known import, yet it was imported:\n%s", src)
	}

	for name, bad := range map[string]string{
		"a skip without a reason": "<!-- go:skip -->\n```go\nx\n```\n",
		"an unknown marker":       "<!-- go:wrap -->\n```go\nx\n```\n",
		"an unclosed block":       "```go\nx\n",
	} {
		if _, err := parsePage("t.md", "/t.md", bad); err == nil {
			t.Errorf("%s was accepted", name)
		}
	}
}
