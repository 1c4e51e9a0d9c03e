package dspostgres

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzDecodeNotification feeds arbitrary NOTIFY payloads, which any client of
// the database can send, to the decoder: it must return an error or a
// notification that survives re-encoding, never panic.
func FuzzDecodeNotification(f *testing.F) {
	for _, seed := range []string{`{"c":"Yw==","m":"aGk="}`, `{"r":42}`, `{}`, `not json`, `{"c":1}`, ``,
		`{"c" : "Yw==", "s" : "cm9vbQ==", "e" : "0123456789abcdef", "o" : 7}`, `{"e":"x","o":-1}`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		n, err := decodeNotification(payload)
		if err != nil {
			return
		}
		enc, err := json.Marshal(n)
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodeNotification(string(enc))
		if err != nil || again.Ref != n.Ref || !bytes.Equal(again.Channel, n.Channel) || !bytes.Equal(again.Msg, n.Msg) ||
			!bytes.Equal(again.Stream, n.Stream) || again.Epoch != n.Epoch || again.Offset != n.Offset {
			t.Fatalf("%+v re-decoded as %+v, %v", n, again, err)
		}
	})
}

func TestDecodeNotification(t *testing.T) {
	for _, tc := range []struct {
		name, payload string
		wantErr       bool
		ch, msg       string
		ref           int64
		stream, epoch string
		offset        int64
	}{
		{name: "an inline message carries channel and bytes", payload: `{"c":"Yw==","m":"aGk="}`, ch: "c", msg: "hi"},
		{name: "a reference carries the bus row id", payload: `{"r":42}`, ref: 42},
		{name: "a history reference carries stream, epoch and offset", payload: `{"c" : "Yw==", "s" : "cw==", "e" : "ep", "o" : 7}`,
			ch: "c", stream: "s", epoch: "ep", offset: 7},
		{name: "a payload that is not JSON is refused", payload: `LISTEN`, wantErr: true},
		{name: "a field of the wrong type is refused", payload: `{"r":"x"}`, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := decodeNotification(tc.payload)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error = %v, want error %v", err, tc.wantErr)
			}
			if err == nil && (string(n.Channel) != tc.ch || string(n.Msg) != tc.msg || n.Ref != tc.ref ||
				string(n.Stream) != tc.stream || n.Epoch != tc.epoch || n.Offset != tc.offset) {
				t.Fatalf("decoded %+v", n)
			}
		})
	}
}
