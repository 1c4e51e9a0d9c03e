package backend_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/datasole/datasole-go/datasole/backend"
)

func TestStreamEnvelope(t *testing.T) {
	t.Run("the layout is magic, stream, epoch, offset, data", func(t *testing.T) {
		got := backend.EncodeStreamEnvelope("ab", backend.Position{Epoch: "e1", Offset: 258}, []byte("hi"))
		want := []byte("dsh\x01\x00\x00\x00\x02ab\x02e1\x00\x00\x00\x00\x00\x00\x01\x02hi")
		if !bytes.Equal(got, want) {
			t.Fatalf("envelope %q, want %q", got, want)
		}
	})
	t.Run("decoding reverses encoding", func(t *testing.T) {
		for _, m := range []backend.StreamMessage{
			{Stream: "room:1", Position: backend.Position{Epoch: backend.NewEpoch(), Offset: 1}, Data: []byte{}},
			{Stream: "", Position: backend.Position{Epoch: "x", Offset: 1<<64 - 1}, Data: []byte{0, 1, 2}},
			{Stream: "s\x00ü", Position: backend.Position{Epoch: "e", Offset: 7}, Data: bytes.Repeat([]byte("d"), 70000)},
		} {
			got, err := backend.DecodeStreamEnvelope(backend.EncodeStreamEnvelope(m.Stream, m.Position, m.Data))
			if err != nil || got.Stream != m.Stream || got.Position != m.Position || !bytes.Equal(got.Data, m.Data) {
				t.Fatalf("round trip of %q %+v gave %q %+v, %v", m.Stream, m.Position, got.Stream, got.Position, err)
			}
		}
	})
	t.Run("malformed envelopes are refused", func(t *testing.T) {
		valid := backend.EncodeStreamEnvelope("s", backend.Position{Epoch: "e", Offset: 1}, []byte("d"))
		for name, msg := range map[string][]byte{
			"empty":                 {},
			"a plain message":       []byte("hello"),
			"another version":       append([]byte("dsh\x02"), valid[4:]...),
			"truncated stream":      valid[:8],
			"stream beyond the end": []byte("dsh\x01\xff\xff\xff\xff"),
			"no epoch":              []byte("dsh\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"),
			"truncated offset":      valid[:len(valid)-3],
			"offset 0":              backend.EncodeStreamEnvelope("s", backend.Position{Epoch: "e"}, nil),
		} {
			if _, err := backend.DecodeStreamEnvelope(msg); !errors.Is(err, backend.ErrBadEnvelope) {
				t.Errorf("%s: error %v, want ErrBadEnvelope", name, err)
			}
		}
	})
}

// FuzzDecodeStreamEnvelope feeds arbitrary bus messages to the decoder,
// which subscribers of history channels run on everything they receive: it
// returns an error or a message that encodes back to the same bytes.
func FuzzDecodeStreamEnvelope(f *testing.F) {
	f.Add(backend.EncodeStreamEnvelope("room:1", backend.Position{Epoch: "0123456789abcdef", Offset: 42}, []byte("hi")))
	f.Add(backend.EncodeStreamEnvelope("", backend.Position{Epoch: "e", Offset: 1}, nil))
	f.Add([]byte("dsh\x01\xff\xff\xff\xff"))
	f.Add([]byte("dsh\x01\x00\x00\x00\x01s\xff"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, msg []byte) {
		m, err := backend.DecodeStreamEnvelope(msg)
		if err != nil {
			if !errors.Is(err, backend.ErrBadEnvelope) {
				t.Fatalf("error %v does not match ErrBadEnvelope", err)
			}
			return
		}
		if again := backend.EncodeStreamEnvelope(m.Stream, m.Position, m.Data); !bytes.Equal(again, msg) {
			t.Fatalf("%q decoded as %+v, which encodes as %q", msg, m, again)
		}
	})
}

func TestStreamOptionsResolve(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   backend.StreamOptions
		want backend.StreamOptions
	}{
		{"the zero value keeps the default size forever", backend.StreamOptions{},
			backend.StreamOptions{Size: backend.DefaultStreamSize}},
		{"a TTL without MetaTTL keeps the metadata a day", backend.StreamOptions{Size: 5, TTL: time.Minute},
			backend.StreamOptions{Size: 5, TTL: time.Minute, MetaTTL: backend.DefaultStreamMetaTTL}},
		{"the metadata outlives the entries", backend.StreamOptions{Size: 5, TTL: time.Hour, MetaTTL: time.Minute},
			backend.StreamOptions{Size: 5, TTL: time.Hour, MetaTTL: time.Hour}},
		{"a TTL of zero keeps the metadata too", backend.StreamOptions{Size: 5, MetaTTL: time.Minute},
			backend.StreamOptions{Size: 5}},
		{"a TTL under a millisecond is a millisecond", backend.StreamOptions{Size: 5, TTL: time.Microsecond, MetaTTL: time.Microsecond},
			backend.StreamOptions{Size: 5, TTL: time.Millisecond, MetaTTL: time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.in.Resolve()
			if err != nil || got != tc.want {
				t.Fatalf("Resolve(%+v) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
		})
	}
	for _, bad := range []backend.StreamOptions{{Size: -1}, {Size: backend.MaxStreamSize + 1}, {TTL: -1}, {MetaTTL: -1}} {
		if _, err := bad.Resolve(); err == nil {
			t.Errorf("Resolve(%+v) succeeded", bad)
		}
	}
}
