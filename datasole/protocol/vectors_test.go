package protocol

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"testing"
)

// vector is one case of testdata/frames.json (a copy of the golden vectors of
// protocol v1; see spec/vectors/README.md).
type vector struct {
	Name          string          `json:"name"`
	Kind          string          `json:"kind"`
	Opcode        uint8           `json:"opcode"`
	CorrelationID uint32          `json:"correlationId"`
	Payload       json.RawMessage `json:"payload"` // nil when the case has no payload member
	PayloadJSON   string          `json:"payload_json"`
	PayloadLen    int             `json:"payload_len"`
	FrameLen      int             `json:"frame_len"`
	FrameHex      string          `json:"frame_hex"`
	Compressed    bool            `json:"compressed"`
	WireHex       string          `json:"wire_hex"`
	Error         string          `json:"error"`
}

func loadVectors(tb testing.TB) []vector {
	tb.Helper()
	b, err := os.ReadFile("testdata/frames.json")
	if err != nil {
		tb.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(b, &vs); err != nil {
		tb.Fatal(err)
	}
	if len(vs) == 0 {
		tb.Fatal("no vectors in testdata/frames.json")
	}
	return vs
}

func unhex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// errorClasses maps the vector error names to the exported sentinels.
var errorClasses = map[string]error{
	"short":                ErrShort,
	"unknown-opcode":       ErrUnknownOpcode,
	"oversize":             ErrOversize,
	"truncated":            ErrTruncated,
	"bad-zlib":             ErrBadZlib,
	"compressed-too-large": ErrCompressedTooLarge,
	"inflated-too-large":   ErrInflatedTooLarge,
}

// checkDecoded asserts that decoding the vector's wire bytes gave its opcode,
// correlation id and exact payload text, and that the text parses to the
// vector's payload value.
func checkDecoded(t *testing.T, v vector, f Frame) {
	t.Helper()
	if f.Opcode != Opcode(v.Opcode) || f.CorrelationID != v.CorrelationID {
		t.Fatalf("decoded %v id %d, want %v id %d", f.Opcode, f.CorrelationID, Opcode(v.Opcode), v.CorrelationID)
	}
	if string(f.Payload) != v.PayloadJSON {
		t.Fatalf("payload = %q, want %q", f.Payload, v.PayloadJSON)
	}
	if len(f.Payload) != v.PayloadLen {
		t.Fatalf("payload length = %d, want %d", len(f.Payload), v.PayloadLen)
	}
	if v.Payload == nil {
		if len(f.Payload) != 0 {
			t.Fatalf("vector has no payload value but the payload is %q", f.Payload)
		}
		return
	}
	var got, want any
	if err := json.Unmarshal(f.Payload, &got); err != nil {
		t.Fatalf("payload does not parse: %v", err)
	}
	if err := json.Unmarshal(v.Payload, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("payload parses to %#v, want %#v", got, want)
	}
}

func TestEncodeVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		if v.Kind != "encode" {
			continue
		}
		t.Run(v.Name, func(t *testing.T) {
			frame := unhex(t, v.FrameHex)
			if len(frame) != v.FrameLen {
				t.Fatalf("vector frame is %d bytes, frame_len says %d", len(frame), v.FrameLen)
			}
			payload := []byte(v.PayloadJSON)
			op := Opcode(v.Opcode)

			t.Run("AppendFrame writes the reference bytes", func(t *testing.T) {
				got, err := AppendFrame(nil, op, v.CorrelationID, payload)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, frame) {
					t.Fatalf("frame = %x\nwant    %x", got, frame)
				}
			})

			t.Run("Encode compresses exactly when the frame is longer than 256 bytes", func(t *testing.T) {
				if want := v.FrameLen > CompressThreshold; v.Compressed != want {
					t.Fatalf("vector says compressed=%v for a %d-byte frame", v.Compressed, v.FrameLen)
				}
				msg, err := Encode(op, v.CorrelationID, payload)
				if err != nil {
					t.Fatal(err)
				}
				if got := len(msg) > 0 && msg[0] == ZlibMagic; got != v.Compressed {
					t.Fatalf("Encode compressed=%v, want %v (message %x…)", got, v.Compressed, msg[:min(len(msg), 16)])
				}
				if !v.Compressed && !bytes.Equal(msg, frame) {
					t.Fatalf("uncompressed message = %x, want the frame %x", msg, frame)
				}
				if v.Compressed {
					raw, err := Inflate(msg, MaxFrame)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(raw, frame) {
						t.Fatalf("message inflates to %x, want %x", raw, frame)
					}
				}
				f, err := Decode(msg)
				if err != nil {
					t.Fatal(err)
				}
				checkDecoded(t, v, f)
			})

			t.Run("AppendEncode into a used buffer appends what Encode returns", func(t *testing.T) {
				msg, _ := Encode(op, v.CorrelationID, payload)
				prefix := []byte("prefix")
				got, err := AppendEncode(append(make([]byte, 0, 64), prefix...), op, v.CorrelationID, payload)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.HasPrefix(got, prefix) || !bytes.Equal(got[len(prefix):], msg) {
					t.Fatalf("AppendEncode = %x, want %x%x", got, prefix, msg)
				}
			})

			t.Run("Decode of the reference message yields the frame", func(t *testing.T) {
				wire := unhex(t, v.WireHex)
				if IsCompressed(wire) != v.Compressed {
					t.Fatalf("IsCompressed = %v, want %v", IsCompressed(wire), v.Compressed)
				}
				f, err := Decode(wire)
				if err != nil {
					t.Fatal(err)
				}
				checkDecoded(t, v, f)
			})
		})
	}
}

func TestDecodeVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		if v.Kind != "decode" {
			continue
		}
		t.Run(v.Name, func(t *testing.T) {
			wire := unhex(t, v.WireHex)
			if IsCompressed(wire) != v.Compressed {
				t.Fatalf("IsCompressed = %v, want %v", IsCompressed(wire), v.Compressed)
			}
			f, err := Decode(wire)
			if err != nil {
				t.Fatal(err)
			}
			checkDecoded(t, v, f)
		})
	}
}

func TestErrorVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		if v.Kind != "error" {
			continue
		}
		t.Run(v.Name, func(t *testing.T) {
			want, ok := errorClasses[v.Error]
			if !ok {
				t.Fatalf("unknown error class %q", v.Error)
			}
			f, err := Decode(unhex(t, v.WireHex))
			if err == nil {
				t.Fatalf("Decode succeeded with %v id %d %q, want %s", f.Opcode, f.CorrelationID, f.Payload, v.Error)
			}
			if !errors.Is(err, want) {
				t.Fatalf("Decode error = %v, want class %s", err, v.Error)
			}
			var de *DecodeError
			if !errors.As(err, &de) || de.Class != v.Error {
				t.Fatalf("Decode error = %#v, want a *DecodeError of class %s", err, v.Error)
			}
			for class, other := range errorClasses {
				if class != v.Error && errors.Is(err, other) {
					t.Fatalf("error %v also matches class %s", err, class)
				}
			}
		})
	}
}

func TestVectorsCoverEveryOpcodeAndClass(t *testing.T) {
	ops := map[Opcode]bool{}
	classes := map[string]bool{}
	for _, v := range loadVectors(t) {
		switch v.Kind {
		case "encode":
			ops[Opcode(v.Opcode)] = true
		case "error":
			classes[v.Error] = true
		}
	}
	for op := RPCReq; op <= CRDTState; op++ {
		if !ops[op] {
			t.Errorf("no encode vector for %v", op)
		}
	}
	for _, c := range []string{"short", "unknown-opcode", "oversize", "truncated", "bad-zlib"} {
		if !classes[c] {
			t.Errorf("no error vector of class %s", c)
		}
	}
}
