package patch_test

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/datasole/datasole-go/datasole/patch"
)

func ExampleDiff() {
	old := json.RawMessage(`{"visitors":41,"online":true}`)
	new := json.RawMessage(`{"visitors":42,"online":true}`)
	patches, err := patch.Diff(old, new)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(patches))
	// Output: [{"op":"replace","path":"/visitors","value":42}]
}

func ExampleDiff_rootReplace() {
	// A primitive root (or a change between object and array) travels as one
	// replace of the whole value.
	patches, _ := patch.Diff(json.RawMessage(`5`), json.RawMessage(`"five"`))
	fmt.Println(string(patches))
	// Output: [{"op":"replace","path":"","value":"five"}]
}

func ExampleDiff_forbiddenKey() {
	_, err := patch.Diff(json.RawMessage(`{}`), json.RawMessage(`{"a":{"constructor":1}}`))
	fmt.Println(errors.Is(err, patch.ErrForbiddenKey))
	// Output: true
}

func ExampleApply() {
	// A client without a value yet starts from [] because the first path is /0.
	value, err := patch.Apply(nil, json.RawMessage(`[{"op":"add","path":"/0","value":"x"},{"op":"add","path":"/-","value":"y"}]`))
	if err != nil {
		panic(err)
	}
	fmt.Println(string(value))
	// Output: ["x","y"]
}

func ExampleApply_rejected() {
	base := json.RawMessage(`{"a":1}`)
	_, err := patch.Apply(base, json.RawMessage(`[{"op":"replace","path":"/a","value":2},{"op":"add","path":"/x/y","value":1}]`))
	fmt.Println(errors.Is(err, patch.ErrRejected), string(base))
	// Output: true {"a":1}
}
