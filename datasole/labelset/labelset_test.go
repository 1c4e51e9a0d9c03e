package labelset_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/datasole/datasole-go/datasole/labelset"
)

func TestSetAdmitsAtMostMaxValues(t *testing.T) {
	var mu sync.Mutex
	made := map[string]int{}
	s := labelset.New(3, func(v string) string {
		mu.Lock()
		made[v]++
		mu.Unlock()
		return v
	})
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Add(1)
		go func() { defer wg.Done(); s.Get(fmt.Sprint(i%10), true) }()
	}
	wg.Wait()
	if len(made) != 4 || made[labelset.Other] != 1 {
		t.Fatalf("series made: %v, want 3 values and other, each once", made)
	}
	for v, n := range made {
		if n != 1 {
			t.Fatalf("series %q made %d times", v, n)
		}
	}
	if got := s.Get("new", false); got != labelset.Other {
		t.Fatalf("an unadmitted value got %q", got)
	}
	if got := s.Get("\xff", true); got != labelset.Other {
		t.Fatalf("invalid UTF-8 got %q", got)
	}
}
