package serverkit

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/datasole/datasole-go/bench/internal/load"
)

type recorder struct {
	mu   sync.Mutex
	msgs [][]byte
}

func (r *recorder) Publish(m []byte) { r.mu.Lock(); r.msgs = append(r.msgs, m); r.mu.Unlock() }
func (r *recorder) Conns() int       { return 3 }

func TestMessageCarriesSequenceAndTime(t *testing.T) {
	for _, size := range []int{0, 100, 1000} {
		m := Message(42, 1_700_000_000_000_000_000, size)
		if !json.Valid(m) {
			t.Fatalf("not JSON: %s", m)
		}
		if size > 60 && len(m) != size {
			t.Errorf("size %d: message is %d bytes", size, len(m))
		}
		if seq, ts, ok := load.PubFields(m); !ok || seq != 42 || ts != 1_700_000_000_000_000_000 {
			t.Errorf("PubFields(%s) = %d %d %v", m, seq, ts, ok)
		}
	}
}

func TestDebugEndpoint(t *testing.T) {
	rec := &recorder{}
	srv := httptest.NewServer(Handler(rec))
	defer srv.Close()

	resp, err := http.Post(srv.URL+"/publish?n=5&size=80", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var last struct{ Last int64 }
	json.NewDecoder(resp.Body).Decode(&last)
	resp.Body.Close()
	if last.Last != 5 || len(rec.msgs) != 5 {
		t.Fatalf("last %d, %d messages published; want 5 and 5", last.Last, len(rec.msgs))
	}
	if seq, _, _ := load.PubFields(rec.msgs[4]); seq != 5 {
		t.Fatalf("fifth message has seq %d", seq)
	}

	for _, bad := range []string{"n=0&size=10", "n=1&size=-1", "n=x&size=1", "n=1&size=2000000"} {
		resp, err := http.Post(srv.URL+"/publish?"+bad, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", bad, resp.StatusCode)
		}
	}

	resp, err = http.Get(srv.URL + "/mem")
	if err != nil {
		t.Fatal(err)
	}
	var m Mem
	json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	if m.HeapInuse == 0 || m.StackInuse == 0 || m.Goroutines == 0 || m.Conns != 3 {
		t.Fatalf("/mem = %+v", m)
	}
}
