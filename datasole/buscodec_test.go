package datasole

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/datasole/datasole-go/datasole/protocol"
)

func sampleBus() []*busMsg {
	return []*busMsg{
		{kind: busFrame, origin: "N1", seq: 1, sentAt: 42, target: ToTag("room:1"), op: protocol.EventS2C, msg: []byte{4, 0, 0, 0, 0, 0, 0, 0, 2, '{', '}'}},
		{kind: busState, origin: "N1", seq: 2, target: ToUser("ada"), op: protocol.StatePatch, msg: []byte("frame"), key: "cart", version: 7, base: 5, value: []byte(`{"n":1}`)},
		{kind: busState, origin: "N2", target: ToAll(), op: protocol.StateSnapshot, key: "gone"}, // deleted: no value
		{kind: busClose, origin: "N2", target: ToUser("bob"), version: 4003, key: "revoked"},
	}
}

func TestBusCodecRoundTrips(t *testing.T) {
	for n := 1; n <= len(sampleBus()); n++ {
		in := sampleBus()[:n]
		out, err := decodeBus(encodeBus(in))
		if err != nil {
			t.Fatalf("%d messages: %v", n, err)
		}
		for i := range in {
			if in[i].value == nil && out[i].value != nil {
				t.Fatalf("message %d: a nil value came back as %q", i, out[i].value)
			}
			if !reflect.DeepEqual(norm(in[i]), norm(out[i])) {
				t.Fatalf("message %d: %+v became %+v", i, in[i], out[i])
			}
		}
	}
}

func norm(m *busMsg) busMsg {
	c := *m
	if len(c.msg) == 0 {
		c.msg = nil
	}
	return c
}

func TestBusCodecRefusesMalformedPayloads(t *testing.T) {
	good := encodeBus(sampleBus())
	for name, b := range map[string][]byte{
		"empty":             nil,
		"unknown format":    {9},
		"truncated":         good[:len(good)/2],
		"trailing bytes":    append(append([]byte(nil), good...), 0),
		"a count of zero":   {busFormatBatch, 0},
		"a huge count":      {busFormatBatch, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"an unknown kind":   append([]byte{busFormatOne, 99}, good[2:]...),
		"a length past end": {busFormatOne, byte(busFrame), 0xff, 0x01},
	} {
		if _, err := decodeBus(b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

// FuzzDecodeBus: the bus carries bytes from other nodes (and whoever else
// can write to the backend's channel); no input may crash a node, and what
// decodes re-encodes to the same messages.
func FuzzDecodeBus(f *testing.F) {
	f.Add(encodeBus(sampleBus()))
	f.Add(encodeBus(sampleBus()[:1]))
	f.Add([]byte{busFormatBatch, 1, 2, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		msgs, err := decodeBus(b)
		if err != nil {
			return
		}
		again, err := decodeBus(encodeBus(msgs))
		if err != nil || len(again) != len(msgs) {
			t.Fatalf("re-encoding %d messages: %v", len(msgs), err)
		}
		for i := range msgs {
			if !bytes.Equal(msgs[i].value, again[i].value) || msgs[i].key != again[i].key || msgs[i].kind != again[i].kind {
				t.Fatalf("message %d changed on re-encoding", i)
			}
		}
	})
}

func TestPeerSequencesDropDuplicatesAndNoticeLosses(t *testing.T) {
	var p peerSeqs
	steps := []struct {
		origin string
		seq    uint64
		want   seqVerdict
	}{
		{"A", 5, seqNext},      // the first message of a node: whatever its number
		{"A", 6, seqNext},      // the next one
		{"A", 6, seqDuplicate}, // published twice (a retried publication the backend had taken)
		{"A", 3, seqDuplicate}, // older
		{"B", 1, seqNext},      // another node counts on its own
		{"A", 9, seqGap},       // 7 and 8 were lost
		{"A", 0, seqNext},      // unsequenced (a gap announcement) always passes
		{"A", 10, seqNext},
	}
	for i, st := range steps {
		if got := p.check(st.origin, st.seq, int64(i)); got != st.want {
			t.Fatalf("step %d (%s #%d): %v, want %v", i, st.origin, st.seq, got, st.want)
		}
	}
}
