package patch

import (
	"encoding/json"
	"fmt"
	"testing"
)

// dashboard builds a state value of roughly items*200 bytes: a few counters
// and a list of records, the typical shape of live state.
func dashboard(items, visitors int) map[string]any {
	list := make([]any, items)
	for i := range list {
		list[i] = map[string]any{
			"id":     i,
			"name":   fmt.Sprintf("item-%04d", i),
			"status": "active",
			"score":  float64(i) * 1.5,
			"tags":   []any{"alpha", "beta"},
			"owner":  map[string]any{"id": i % 7, "name": "owner name"},
		}
	}
	return map[string]any{
		"title":    "Dashboard",
		"visitors": visitors,
		"online":   true,
		"items":    list,
	}
}

func benchmarkDiff(b *testing.B, items int, edit func(map[string]any)) {
	oldV := dashboard(items, 1)
	newV := dashboard(items, 2)
	edit(newV)
	old, _ := json.Marshal(oldV)
	new, _ := json.Marshal(newV)
	b.SetBytes(int64(len(new)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := Diff(old, new); err != nil {
			b.Fatal(err)
		}
	}
}

func editFields(v map[string]any) {
	items := v["items"].([]any)
	items[len(items)/2].(map[string]any)["status"] = "idle"
	items[len(items)-1].(map[string]any)["score"] = 99.5
}

func insertFront(v map[string]any) {
	v["items"] = append([]any{map[string]any{"id": -1, "name": "new"}}, v["items"].([]any)...)
}

// BenchmarkDiff1KBFewFields measures the common case: a small value with a
// few changed fields.
func BenchmarkDiff1KBFewFields(b *testing.B) { benchmarkDiff(b, 8, editFields) }

// BenchmarkDiff100KBFewFields measures a large value with a few changed fields.
func BenchmarkDiff100KBFewFields(b *testing.B) { benchmarkDiff(b, 820, editFields) }

// BenchmarkDiff100KBInsertFront measures the worst case of a positional array
// diff: every element shifts.
func BenchmarkDiff100KBInsertFront(b *testing.B) { benchmarkDiff(b, 820, insertFront) }

// BenchmarkApply100KB measures a client applying a few-field patch list.
func BenchmarkApply100KB(b *testing.B) {
	oldV := dashboard(820, 1)
	newV := dashboard(820, 2)
	editFields(newV)
	old, _ := json.Marshal(oldV)
	new, _ := json.Marshal(newV)
	patches, err := Diff(old, new)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(old)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := Apply(old, patches); err != nil {
			b.Fatal(err)
		}
	}
}
