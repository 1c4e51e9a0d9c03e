package protocol

import (
	"bytes"
	"errors"
	"testing"
)

func TestBatchRoundTrip(t *testing.T) {
	small, _ := Encode(Pong, 7, PongPayload)
	big, _ := Encode(EventS2C, 0, bytes.Repeat([]byte(`{"event":"x","data":"`+"aaaa"+`"}`), 40))
	msgs := [][]byte{small, big, small}
	b, err := AppendBatch(nil, msgs)
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != byte(Batch) || !IsBatch(b) {
		t.Fatalf("first byte %#x", b[0])
	}
	if n := int(b[1])<<24 | int(b[2])<<16 | int(b[3])<<8 | int(b[4]); n != 3 {
		t.Fatalf("correlationId %d, want the item count 3", n)
	}
	var got [][]byte
	if err := SplitBatch(b, func(item []byte) bool { got = append(got, item); return true }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || !bytes.Equal(got[0], small) || !bytes.Equal(got[1], big) || !bytes.Equal(got[2], small) {
		t.Fatalf("items differ: %d", len(got))
	}
	if _, err := Decode(b); !errors.Is(err, ErrUnknownOpcode) {
		t.Fatalf("v1 Decode of a BATCH: %v, want unknown-opcode (v1 receivers drop it)", err)
	}
}

// A malformed BATCH is refused as a whole: no item reaches the handler.
func TestBatchRefusedAsAWhole(t *testing.T) {
	ping, _ := Encode(Ping, 1, []byte("null"))
	good, _ := AppendBatch(nil, [][]byte{ping, ping})
	item := AppendBatchItem(nil, good) // a BATCH inside a BATCH
	nested := append(AppendBatchHeader(nil, 1, len(item)), item...)
	cases := map[string][]byte{
		"short header":             good[:5],
		"length larger than rest":  append(AppendBatchHeader(nil, 1, 100), AppendBatchItem(nil, ping)...),
		"length smaller than rest": append(AppendBatchHeader(nil, 1, 3), AppendBatchItem(nil, ping)...),
		"truncated item":           append(AppendBatchHeader(nil, 1, 5), 20, 7, 0, 0, 0),
		"empty item":               append(AppendBatchHeader(nil, 1, 1), 0),
		"empty batch":              AppendBatchHeader(nil, 0, 0),
		"nested batch":             nested,
		"item not a v1 message":    append(AppendBatchHeader(nil, 1, 3), 2, 0x42, 0),
		"bad varint":               append(AppendBatchHeader(nil, 1, 10), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
		"good item then garbage":   append(AppendBatchHeader(nil, 2, len(AppendBatchItem(nil, ping))+2), append(AppendBatchItem(nil, ping), 5, 1)...),
	}
	for name, msg := range cases {
		t.Run(name, func(t *testing.T) {
			called := 0
			err := SplitBatch(msg, func([]byte) bool { called++; return true })
			if !errors.Is(err, ErrBadBatch) || called != 0 {
				t.Fatalf("err %v, %d items delivered; want ErrBadBatch and none", err, called)
			}
		})
	}
}

func TestAppendBatchRefusesWhatCannotTravel(t *testing.T) {
	if _, err := AppendBatch(nil, [][]byte{{0x42}}); !errors.Is(err, ErrBadBatch) {
		t.Fatalf("a non-v1 item: %v", err)
	}
	big := append([]byte{byte(EventS2C)}, make([]byte, MaxPayload)...)
	if _, err := AppendBatch(nil, [][]byte{big}); !errors.Is(err, ErrPayloadTooLarge) {
		t.Fatalf("an item over the payload limit: %v", err)
	}
}

func FuzzSplitBatch(f *testing.F) {
	ping, _ := Encode(Ping, 1, []byte("null"))
	good, _ := AppendBatch(nil, [][]byte{ping, ping})
	f.Add(good)
	f.Add(AppendBatchHeader(nil, 0, 0))
	f.Add(append(AppendBatchHeader(nil, 1, 3), 2, 0x42, 0))
	f.Fuzz(func(t *testing.T, msg []byte) {
		var items [][]byte
		err := SplitBatch(msg, func(item []byte) bool { items = append(items, item); return true })
		if err != nil {
			if len(items) != 0 {
				t.Fatal("items delivered from a refused batch")
			}
			return
		}
		// A valid batch re-encodes to the same bytes, correlationId aside.
		again, err := AppendBatch(nil, items)
		if err != nil {
			t.Fatalf("re-encoding accepted items: %v", err)
		}
		if !bytes.Equal(again[5:], msg[5:]) || again[0] != msg[0] {
			t.Fatal("re-encoding differs")
		}
	})
}
