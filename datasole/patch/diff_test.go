package patch

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestDiff(t *testing.T) {
	var items []string
	for i := range 20 {
		items = append(items, fmt.Sprintf(`{"id":%d,"name":"item %d"}`, i, i))
	}
	long := `[` + strings.Join(items, ",") + `]`
	tests := []struct {
		name     string
		old, new string
		want     string
	}{
		{"an unchanged value gives the empty list", `{"a":[1]}`, `{"a":[1]}`, `[]`},
		{"member order alone is no change", `{"a":1,"b":2}`, `{"b":2,"a":1}`, `[]`},
		{"a first value is sent whole", ``, `{"a":1}`, `[{"op":"replace","path":"","value":{"a":1}}]`},
		{"a deleted value becomes null", `{"a":1}`, ``, `[{"op":"replace","path":"","value":null}]`},
		{"numbers keep their text", `{"n":1}`, `{"n":12345678901234567890}`, `[{"op":"replace","path":"/n","value":12345678901234567890}]`},
		{"HTML characters are not escaped", `{"s":""}`, `{"s":"<&>"}`, `[{"op":"replace","path":"/s","value":"<&>"}]`},
		{"an insert at the front of an array becomes one replace of the array",
			`{"l":` + long + `,"k":1}`, `{"l":[0,` + long[1:] + `,"k":1}`,
			`[{"op":"replace","path":"/l","value":[0,` + long[1:] + `}]`},
		{"a removed member named like a prototype property is never a path",
			`{"constructor":1,"a":1}`, `{"a":2}`, `[{"op":"replace","path":"","value":{"a":2}}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Diff(json.RawMessage(tt.old), json.RawMessage(tt.new))
			if err != nil {
				t.Fatalf("Diff: %v", err)
			}
			if string(got) != tt.want {
				t.Fatalf("Diff = %s\nwant   %s", got, tt.want)
			}
		})
	}
}

func TestDiffRejectsInvalidJSON(t *testing.T) {
	for _, in := range [][2]string{{`{`, `{}`}, {`{}`, `{"a":}`}, {`{}`, `{} {}`}} {
		if got, err := Diff(json.RawMessage(in[0]), json.RawMessage(in[1])); err == nil {
			t.Errorf("Diff(%s, %s) = %s, want an error", in[0], in[1], got)
		}
	}
}

func TestCheckValue(t *testing.T) {
	tests := []struct {
		value string
		want  error
	}{
		{`{"a":[{"b":1}],"constructorX":1,"x":"constructor"}`, nil},
		{`{"__proto__":1}`, ErrForbiddenKey},
		{`[1,{"a":{"prototype":{}}}]`, ErrForbiddenKey},
		{`{"\u0063onstructor":1}`, ErrForbiddenKey},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			if err := CheckValue(json.RawMessage(tt.value)); !errors.Is(err, tt.want) {
				t.Fatalf("CheckValue = %v, want %v", err, tt.want)
			}
		})
	}
}
