package protocol

import (
	"bytes"
	"errors"
	"testing"
)

// addVectorSeeds seeds f with the wire bytes of every golden vector.
func addVectorSeeds(f *testing.F, extra ...any) {
	f.Helper()
	for _, v := range loadVectors(f) {
		f.Add(append([]any{unhex(f, v.WireHex)}, extra...)...)
	}
}

// decodeSlowly is the plain definition of Decode: inflate the whole message
// within the frame limit, then parse it.
func decodeSlowly(msg []byte) (Frame, error) {
	if IsCompressed(msg) {
		raw, err := Inflate(msg, MaxFrame)
		if err != nil {
			return Frame{}, err
		}
		msg = raw
	}
	return ParseFrame(msg)
}

func FuzzDecode(f *testing.F) {
	addVectorSeeds(f)
	f.Fuzz(func(t *testing.T, msg []byte) {
		fr, err := Decode(msg)

		// Decode's streaming path agrees with the plain definition.
		want, wantErr := decodeSlowly(msg)
		var de, wantDe *DecodeError
		if (err == nil) != (wantErr == nil) ||
			err != nil && (!errors.As(err, &de) || !errors.As(wantErr, &wantDe) || de.Class != wantDe.Class) {
			t.Fatalf("Decode error %v, inflate-then-parse error %v", err, wantErr)
		}
		if err != nil {
			return
		}
		if fr.Opcode != want.Opcode || fr.CorrelationID != want.CorrelationID || !bytes.Equal(fr.Payload, want.Payload) {
			t.Fatalf("Decode = %+v, inflate-then-parse = %+v", fr, want)
		}

		if !fr.Opcode.Valid() || len(fr.Payload) > MaxPayload {
			t.Fatalf("Decode accepted %v with %d payload bytes", fr.Opcode, len(fr.Payload))
		}
		frame, err := AppendFrame(nil, fr.Opcode, fr.CorrelationID, fr.Payload)
		if err != nil {
			t.Fatalf("a decoded frame does not re-encode: %v", err)
		}
		for _, re := range [][]byte{frame, Compress(nil, frame)} {
			again, err := Decode(re)
			if err != nil {
				t.Fatalf("re-encoded frame %x does not decode: %v", re, err)
			}
			if again.Opcode != fr.Opcode || again.CorrelationID != fr.CorrelationID || !bytes.Equal(again.Payload, fr.Payload) {
				t.Fatalf("re-encoded frame decodes to %+v, want %+v", again, fr)
			}
		}
	})
}

func FuzzInflate(f *testing.F) {
	addVectorSeeds(f, uint32(MaxFrame))
	f.Add([]byte("\x78\x9c\x63\x67\x60\x60\x10\x05\x62\x96\xbc\xd2\x9c\x1c\x00\x05\x94\x01\xdc"), uint32(3))
	f.Fuzz(func(t *testing.T, msg []byte, limit uint32) {
		limit %= 2 * MaxFrame // larger limits test nothing new and cost memory
		out, err := Inflate(msg, int(limit))
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Inflate error %v is not a *DecodeError", err)
			}
			return
		}
		if len(out) > int(limit) {
			t.Fatalf("Inflate returned %d bytes over the limit %d", len(out), limit)
		}
		again, err := Inflate(Compress(nil, out), int(limit))
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("recompressed output inflates to %d bytes, %v; want %d bytes", len(again), err, len(out))
		}
	})
}
