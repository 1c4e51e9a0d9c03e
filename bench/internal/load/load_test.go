package load

import (
	"encoding/json"
	"testing"

	"github.com/datasole/datasole-go/datasole/protocol"
)

func TestParamsAreJSONOfAboutTheSize(t *testing.T) {
	for _, size := range []int{16, 2048, 16 << 10} {
		p := Params(size)
		if !json.Valid(p) {
			t.Fatalf("Params(%d) is not JSON: %s", size, p)
		}
		if len(p) > size || len(p) < size*9/10 {
			t.Errorf("Params(%d) is %d bytes", size, len(p))
		}
	}
}

func TestDatasoleCallsAndBatches(t *testing.T) {
	d := Datasole{Batch: true}
	var bw BatchWriter
	big := Params(2048)
	for id := uint32(1); id <= 3; id++ {
		params := []byte(`"x"`)
		if id == 2 {
			params = big // compressed item
		}
		bw.Add(d.AppendCall(nil, id, params))
	}
	msg := bw.Take()
	if msg[0] != OpBatch {
		t.Fatalf("BATCH starts with %#x", msg[0])
	}
	var ids []uint32
	err := eachBatchItem(msg, func(item []byte) error {
		f, err := protocol.Decode(item)
		if err != nil {
			return err
		}
		var req protocol.RPCRequest
		if err := json.Unmarshal(f.Payload, &req); err != nil || req.Method != "echo" || f.Opcode != protocol.RPCReq {
			t.Errorf("item %d: %v %s, %v", f.CorrelationID, f.Opcode, f.Payload, err)
		}
		ids = append(ids, f.CorrelationID)
		return nil
	})
	if err != nil || len(ids) != 3 || ids[0] != 1 || ids[2] != 3 {
		t.Fatalf("items %v, %v", ids, err)
	}

	// Replies, alone and batched, reach onReply with their ids.
	res1, _ := protocol.Encode(protocol.RPCRes, 7, []byte(`{"correlationId":7,"result":"x"}`))
	res2, _ := protocol.Encode(protocol.RPCRes, 8, []byte(`{"correlationId":8,"error":{"code":-32601,"message":"no"}}`))
	bw.Add(res1)
	bw.Add(res2)
	got := map[uint32]bool{}
	if _, err := d.Parse(bw.Take(), func(id uint32, ok bool) { got[id] = ok }, nil); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[7] || got[8] {
		t.Fatalf("replies %v, want 7 ok and 8 failed", got)
	}
	if err := eachBatchItem([]byte{OpBatch, 0, 0, 0, 1, 0, 0, 0, 3, 5, 1, 2}, func([]byte) error { return nil }); err == nil {
		t.Fatal("an item longer than the BATCH was accepted")
	}
}

func TestCentrifugeParse(t *testing.T) {
	msg := []byte("{\"id\":12,\"rpc\":{\"data\":\"x\"}}\n{}\n{\"push\":{\"channel\":\"bench\",\"pub\":{\"data\":{\"seq\":5,\"ts\":99,\"pad\":\"\"}}}}\n{\"id\":13,\"error\":{\"code\":100}}")
	replies := map[uint32]bool{}
	var pushes [][]byte
	answer, err := Centrifuge{}.Parse(msg, func(id uint32, ok bool) { replies[id] = ok }, func(p []byte) { pushes = append(pushes, p) })
	if err != nil || string(answer) != "{}" {
		t.Fatalf("answer %q, %v; want the pong {}", answer, err)
	}
	if len(replies) != 2 || !replies[12] || replies[13] {
		t.Fatalf("replies %v", replies)
	}
	if len(pushes) != 1 {
		t.Fatalf("%d pushes", len(pushes))
	}
	if seq, ts, ok := PubFields(pushes[0]); !ok || seq != 5 || ts != 99 {
		t.Fatalf("PubFields = %d %d %v", seq, ts, ok)
	}
	if got := string(Centrifuge{}.AppendCall(nil, 4, []byte(`"p"`))); got != `{"id":4,"rpc":{"method":"echo","data":"p"}}` {
		t.Fatalf("call %s", got)
	}
}

func TestEchoParse(t *testing.T) {
	var id uint32
	var pub []byte
	Echo{}.Parse(Echo{}.AppendCall(nil, 0x7B000001, []byte(`"p"`)), func(i uint32, _ bool) { id = i }, nil)
	Echo{}.Parse([]byte(`{"seq":1,"ts":2}`), nil, func(p []byte) { pub = p })
	if id != 0x7B000001 || string(pub) != `{"seq":1,"ts":2}` {
		t.Fatalf("id %#x pub %s", id, pub)
	}
}

func TestDatasoleCallAllocatesNothingIntoARoomyBuffer(t *testing.T) {
	buf := make([]byte, 0, 8<<10)
	small, big := Params(16), Params(2048)
	for _, params := range [][]byte{small, big} {
		d := Datasole{}
		if n := testing.AllocsPerRun(50, func() { buf = d.AppendCall(buf[:0], 123456, params) }); n != 0 && !raceEnabled {
			t.Errorf("%d-byte params: %v allocations per call", len(params), n)
		}
		f, err := protocol.Decode(buf)
		if err != nil || f.Opcode != protocol.RPCReq || f.CorrelationID != 123456 {
			t.Fatalf("%d-byte params: %v id %d, %v", len(params), f.Opcode, f.CorrelationID, err)
		}
		var req protocol.RPCRequest
		if err := json.Unmarshal(f.Payload, &req); err != nil || req.Method != "echo" || string(req.Params) != string(params) ||
			string(req.CorrelationID) != "123456" {
			t.Fatalf("%d-byte params: body %s, %v", len(params), f.Payload, err)
		}
		if compressed := protocol.IsCompressed(buf); compressed != (len(params) > 200) {
			t.Errorf("%d-byte params: compressed = %v", len(params), compressed)
		}
	}
}
