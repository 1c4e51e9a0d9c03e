package protocol

import (
	"encoding/json"
	"fmt"
	"testing"
)

// rowsPayload is an RPC result of about 4 KB, typical of a list a handler
// returns.
func rowsPayload(tb testing.TB) []byte {
	tb.Helper()
	type row struct {
		ID    int    `json:"id"`
		Name  string `json:"name"`
		Email string `json:"email"`
		Score int    `json:"score"`
	}
	rows := make([]row, 0, 64)
	for i := range 54 {
		rows = append(rows, row{i, fmt.Sprintf("user-%d", i), fmt.Sprintf("user%d@example.com", i), i * 37 % 101})
	}
	b, err := json.Marshal(map[string]any{"correlationId": 7, "result": rows})
	if err != nil {
		tb.Fatal(err)
	}
	if len(b) < 3500 || len(b) > 4500 {
		tb.Fatalf("payload is %d bytes, want about 4 KB", len(b))
	}
	return b
}

var smallPayload = []byte(`{"correlationId":1,"result":{"sum":5}}`)

func TestHotPathsDoNotAllocate(t *testing.T) {
	big := rowsPayload(t)
	frame, _ := AppendFrame(nil, RPCRes, 7, smallPayload)
	buf := make([]byte, 0, 8<<10)
	var sink Frame

	cases := []struct {
		name   string
		pooled bool // sync.Pool drops items at random under the race detector
		fn     func()
	}{
		{"AppendFrame into a buffer with room", false, func() { buf, _ = AppendFrame(buf[:0], RPCRes, 1, smallPayload) }},
		{"ParseFrame", false, func() { sink, _ = ParseFrame(frame) }},
		{"Decode of an uncompressed frame", false, func() { sink, _ = Decode(frame) }},
		{"AppendEncode of a small frame into a buffer with room", false, func() { buf, _ = AppendEncode(buf[:0], RPCRes, 1, smallPayload) }},
		{"AppendEncode of a compressed frame into a buffer with room", true, func() { buf, _ = AppendEncode(buf[:0], RPCRes, 7, big) }},
		{"Compress into a buffer with room", true, func() { buf = Compress(buf[:0], big) }},
	}
	for _, c := range cases {
		t.Run(c.name+" allocates nothing", func(t *testing.T) {
			if c.pooled && raceEnabled {
				t.Skip("sync.Pool is deliberately lossy under the race detector")
			}
			if n := testing.AllocsPerRun(100, c.fn); n != 0 {
				t.Fatalf("%v allocations per run, want 0", n)
			}
		})
	}
	_ = sink

	t.Run("Encode of a compressed frame allocates only the message", func(t *testing.T) {
		if raceEnabled {
			t.Skip("sync.Pool is deliberately lossy under the race detector")
		}
		if n := testing.AllocsPerRun(100, func() { buf, _ = Encode(RPCRes, 7, big) }); n != 1 {
			t.Fatalf("%v allocations per run, want 1", n)
		}
	})

	t.Run("Decode of a compressed frame allocates only the frame", func(t *testing.T) {
		if raceEnabled {
			t.Skip("sync.Pool is deliberately lossy under the race detector")
		}
		msg, _ := Encode(RPCRes, 7, big)
		// The pooled reader keeps its checksum state: the frame is all.
		if n := testing.AllocsPerRun(100, func() { sink, _ = Decode(msg) }); n != 1 {
			t.Fatalf("%v allocations per run, want 1", n)
		}
	})
}

func BenchmarkAppendFrame(b *testing.B) {
	buf := make([]byte, 0, 256)
	b.SetBytes(int64(HeaderSize + len(smallPayload)))
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = AppendFrame(buf[:0], RPCRes, 1, smallPayload)
	}
}

func BenchmarkParseFrame(b *testing.B) {
	frame, _ := AppendFrame(nil, RPCRes, 1, smallPayload)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseFrame(frame); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeCompressed(b *testing.B) {
	payload := rowsPayload(b)
	b.Run("AppendEncode into a reused buffer", func(b *testing.B) {
		buf := make([]byte, 0, 8<<10)
		b.SetBytes(int64(HeaderSize + len(payload)))
		b.ReportAllocs()
		for b.Loop() {
			buf, _ = AppendEncode(buf[:0], RPCRes, 7, payload)
		}
	})
	b.Run("Encode", func(b *testing.B) {
		b.SetBytes(int64(HeaderSize + len(payload)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Encode(RPCRes, 7, payload); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDecodeCompressed(b *testing.B) {
	msg, _ := Encode(RPCRes, 7, rowsPayload(b))
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseRPCRequest compares ParseRPCRequest with json.Unmarshal on a
// request whose params are a list of about 4 KB.
func BenchmarkParseRPCRequest(b *testing.B) {
	var rows struct {
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(rowsPayload(b), &rows); err != nil {
		b.Fatal(err)
	}
	body, _ := json.Marshal(RPCRequest{Method: "list.save", Params: rows.Result, CorrelationID: json.RawMessage("7")})
	b.Run("ParseRPCRequest", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if req, err := ParseRPCRequest(body); err != nil || len(req.Params) == 0 {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Unmarshal", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			var req RPCRequest
			if err := json.Unmarshal(body, &req); err != nil || len(req.Params) == 0 {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkAppendRPCResponse compares RPCResponse.AppendJSON with
// json.Marshal, which scans and compacts the raw result again.
func BenchmarkAppendRPCResponse(b *testing.B) {
	var rows struct {
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(rowsPayload(b), &rows); err != nil {
		b.Fatal(err)
	}
	res := RPCResponse{CorrelationID: json.RawMessage("7"), Result: rows.Result}
	b.Run("AppendJSON", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 8<<10)
		for b.Loop() {
			buf, _ = res.AppendJSON(buf[:0])
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(res); err != nil {
				b.Fatal(err)
			}
		}
	})
}
