package protocol

import (
	"bytes"
	"compress/flate"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"runtime"
	"strings"
	"testing"
)

// zlibBomb returns a valid zlib stream that inflates to the 9-byte header
// head followed by mib MiB of zeros. It compresses 1 MiB of zeros once and
// repeats that block sequence, which decodes the same after any run of zeros,
// so a 300 MiB bomb costs milliseconds to build.
func zlibBomb(tb testing.TB, head []byte, mib int) []byte {
	tb.Helper()
	var body bytes.Buffer
	fw, err := flate.NewWriter(&body, flate.BestCompression)
	if err != nil {
		tb.Fatal(err)
	}
	zeros := make([]byte, 1<<20)
	fw.Write(head)
	fw.Write(zeros)
	fw.Flush() // byte-aligned end of non-final blocks
	first := body.Len()
	fw.Write(zeros)
	fw.Flush()
	block := bytes.Clone(body.Bytes()[first:])
	body.Truncate(first)

	msg := []byte{0x78, 0xda} // zlib header: 32 KiB window, best compression
	msg = append(msg, body.Bytes()...)
	for range mib - 1 {
		msg = append(msg, block...)
	}
	msg = append(msg, 0x03, 0x00) // empty final block with fixed codes
	// Adler-32 of head followed by zeros: each zero byte adds a to b.
	a, b := uint64(1), uint64(0)
	for _, c := range head {
		a = (a + uint64(c)) % 65521
		b = (b + a) % 65521
	}
	b = (b + a*uint64(mib)<<20) % 65521
	return binary.BigEndian.AppendUint32(msg, uint32(b<<16|a))
}

// allocated returns how many bytes fn allocated on the heap.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestZlibBombHelperBuildsAValidStream(t *testing.T) {
	head := []byte{byte(EventS2C), 0, 0, 0, 1, 0, 0x40, 0, 0}
	zr, err := zlib.NewReader(bytes.NewReader(zlibBomb(t, head, 3)))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("the helper's stream does not inflate: %v", err)
	}
	if want := append(head, make([]byte, 3<<20)...); !bytes.Equal(raw, want) {
		t.Fatalf("the stream inflates to %d bytes, want %d", len(raw), len(want))
	}
}

func TestDecodeLimits(t *testing.T) {
	ping := Compress(nil, []byte("\x07\x00\x00\x00\x15\x00\x00\x00\x04null"))

	t.Run("compressed input over 4 MiB is refused before inflating", func(t *testing.T) {
		// A valid stream followed by padding: inflating it would succeed, as
		// bytes after the stream are ignored, so only the size check refuses it.
		msg := append(bytes.Clone(ping), make([]byte, MaxCompressed+1-len(ping))...)
		var err error
		n := allocated(func() { _, err = Decode(msg) })
		if !errors.Is(err, ErrCompressedTooLarge) {
			t.Fatalf("Decode error = %v, want %v", err, ErrCompressedTooLarge)
		}
		if n > 16<<10 {
			t.Errorf("refusing allocated %d bytes; it should not start inflating", n)
		}
		if _, err := Inflate(msg, MaxFrame); !errors.Is(err, ErrCompressedTooLarge) {
			t.Fatalf("Inflate error = %v, want %v", err, ErrCompressedTooLarge)
		}
	})

	t.Run("compressed input of exactly 4 MiB is inflated", func(t *testing.T) {
		msg := append(bytes.Clone(ping), make([]byte, MaxCompressed-len(ping))...)
		f, err := Decode(msg)
		if err != nil || f.Opcode != Ping || f.CorrelationID != 21 || string(f.Payload) != "null" {
			t.Fatalf("Decode = %v id %d %q, %v; want PING id 21 \"null\"", f.Opcode, f.CorrelationID, f.Payload, err)
		}
	})

	bombs := []struct {
		name string
		head []byte
	}{
		{"a zlib bomb declaring a 1 MiB payload", []byte{byte(EventS2C), 0, 0, 0, 0, 0, 0x10, 0, 0}},
		{"a zlib bomb of zeros (invalid opcode)", make([]byte, HeaderSize)},
	}
	for _, b := range bombs {
		t.Run(b.name+" is refused while inflating, in bounded memory", func(t *testing.T) {
			msg := zlibBomb(t, b.head, 300)
			if len(msg) > 400<<10 {
				t.Fatalf("bomb is %d bytes; expected about 300 KB", len(msg))
			}
			var err error
			n := allocated(func() { _, err = Decode(msg) })
			if !errors.Is(err, ErrInflatedTooLarge) {
				t.Fatalf("Decode error = %v, want %v", err, ErrInflatedTooLarge)
			}
			if n > 3<<20 {
				t.Errorf("Decode allocated %d bytes for a 300 MiB bomb; want < 3 MiB", n)
			}
			n = allocated(func() { _, err = Inflate(msg, MaxFrame) })
			if !errors.Is(err, ErrInflatedTooLarge) {
				t.Fatalf("Inflate error = %v, want %v", err, ErrInflatedTooLarge)
			}
			if n > 3<<20 {
				t.Errorf("Inflate allocated %d bytes for a 300 MiB bomb; want < 3 MiB", n)
			}
		})
	}

	maxPayload := []byte(`"` + strings.Repeat("x", MaxPayload-2) + `"`)

	t.Run("a frame with a 1 MiB payload round-trips compressed and uncompressed", func(t *testing.T) {
		msg, err := Encode(StateSnapshot, 3, maxPayload)
		if err != nil {
			t.Fatal(err)
		}
		if !IsCompressed(msg) {
			t.Fatal("Encode did not compress a 1 MiB frame")
		}
		f, err := Decode(msg)
		if err != nil || f.Opcode != StateSnapshot || f.CorrelationID != 3 || !bytes.Equal(f.Payload, maxPayload) {
			t.Fatalf("Decode = %v id %d, %d payload bytes, %v", f.Opcode, f.CorrelationID, len(f.Payload), err)
		}
		frame, err := AppendFrame(nil, StateSnapshot, 3, maxPayload)
		if err != nil || len(frame) != MaxFrame {
			t.Fatalf("AppendFrame = %d bytes, %v; want %d bytes", len(frame), err, MaxFrame)
		}
		if f, err := ParseFrame(frame); err != nil || !bytes.Equal(f.Payload, maxPayload) {
			t.Fatalf("ParseFrame: %v", err)
		}
		if raw, err := Inflate(msg, MaxFrame); err != nil || !bytes.Equal(raw, frame) {
			t.Fatalf("Inflate at the limit: %d bytes, %v", len(raw), err)
		}
	})

	t.Run("a stream inflating to one byte past the largest frame is refused", func(t *testing.T) {
		frame, _ := AppendFrame(nil, StateSnapshot, 3, maxPayload)
		msg := Compress(nil, append(frame, ' '))
		if _, err := Decode(msg); !errors.Is(err, ErrInflatedTooLarge) {
			t.Fatalf("Decode error = %v, want %v", err, ErrInflatedTooLarge)
		}
		if _, err := Inflate(msg, MaxFrame); !errors.Is(err, ErrInflatedTooLarge) {
			t.Fatalf("Inflate error = %v, want %v", err, ErrInflatedTooLarge)
		}
	})

	t.Run("a payload over 1 MiB is refused by every encoder", func(t *testing.T) {
		big := append(bytes.Clone(maxPayload), ' ')
		dst := []byte("keep")
		if _, err := Encode(StateSnapshot, 0, big); !errors.Is(err, ErrPayloadTooLarge) {
			t.Errorf("Encode error = %v, want %v", err, ErrPayloadTooLarge)
		}
		if got, err := AppendFrame(dst, StateSnapshot, 0, big); !errors.Is(err, ErrPayloadTooLarge) || string(got) != "keep" {
			t.Errorf("AppendFrame = %q…, %v; want dst unchanged and %v", got[:min(len(got), 8)], err, ErrPayloadTooLarge)
		}
		if got, err := AppendEncode(dst, StateSnapshot, 0, big); !errors.Is(err, ErrPayloadTooLarge) || string(got) != "keep" {
			t.Errorf("AppendEncode = %q…, %v; want dst unchanged and %v", got[:min(len(got), 8)], err, ErrPayloadTooLarge)
		}
	})
}

func TestDecodeTolerance(t *testing.T) {
	frame := []byte("\x07\x00\x00\x00\x15\x00\x00\x00\x04null")
	check := func(t *testing.T, msg []byte) {
		t.Helper()
		f, err := Decode(msg)
		if err != nil || f.Opcode != Ping || f.CorrelationID != 21 || string(f.Payload) != "null" {
			t.Fatalf("Decode = %v id %d %q, %v; want PING id 21 \"null\"", f.Opcode, f.CorrelationID, f.Payload, err)
		}
	}

	t.Run("bytes after an uncompressed frame are ignored", func(t *testing.T) {
		check(t, append(bytes.Clone(frame), "trailing"...))
	})
	t.Run("bytes after the frame inside the zlib stream are ignored", func(t *testing.T) {
		check(t, Compress(nil, append(bytes.Clone(frame), "trailing"...)))
	})
	t.Run("bytes after the end of the zlib stream are ignored", func(t *testing.T) {
		msg := append(Compress(nil, frame), "trailing"...)
		check(t, msg)
		if raw, err := Inflate(msg, MaxFrame); err != nil || !bytes.Equal(raw, frame) {
			t.Fatalf("Inflate = %x, %v; want %x", raw, err, frame)
		}
	})
	t.Run("a frame with an empty payload decodes from a zlib stream", func(t *testing.T) {
		f, err := Decode(Compress(nil, frame[:HeaderSize-1]))
		if !errors.Is(err, ErrShort) {
			t.Fatalf("8 inflated bytes: Decode = %+v, %v; want %v", f, err, ErrShort)
		}
		empty := []byte("\x07\x00\x00\x00\x08\x00\x00\x00\x00")
		if f, err := Decode(Compress(nil, empty)); err != nil || f.CorrelationID != 8 || len(f.Payload) != 0 {
			t.Fatalf("Decode = %+v, %v; want PING id 8 with no payload", f, err)
		}
	})
}

func TestDecodeChecksum(t *testing.T) {
	corrupt := func(frame []byte) []byte {
		msg := Compress(nil, frame)
		msg[len(msg)-1] ^= 0x01 // last byte of the Adler-32 trailer
		return msg
	}
	cases := []struct {
		name  string
		frame []byte
	}{
		{"a valid frame", []byte("\x07\x00\x00\x00\x15\x00\x00\x00\x04null")},
		{"a frame with an unknown opcode", []byte("\x0c\x00\x00\x00\x15\x00\x00\x00\x04null")},
		{"a truncated frame", []byte("\x07\x00\x00\x00\x15\x00\x00\x00\x0anull")},
		{"a short frame", []byte("\x07\x00")},
	}
	for _, c := range cases {
		t.Run("a bad checksum on "+c.name+" is bad-zlib", func(t *testing.T) {
			msg := corrupt(c.frame)
			_, err := Decode(msg)
			if !errors.Is(err, ErrBadZlib) {
				t.Fatalf("Decode error = %v, want %v", err, ErrBadZlib)
			}
			if !errors.Is(err, zlib.ErrChecksum) {
				t.Errorf("Decode error = %v does not wrap %v", err, zlib.ErrChecksum)
			}
			if _, err := Inflate(msg, MaxFrame); !errors.Is(err, ErrBadZlib) {
				t.Fatalf("Inflate error = %v, want %v", err, ErrBadZlib)
			}
		})
	}
}

func TestInflateLimit(t *testing.T) {
	msg := Compress(nil, []byte("0123456789"))
	cases := []struct {
		name  string
		limit int
		err   error
	}{
		{"output within the limit is returned", 10, nil},
		{"output one byte over the limit is refused", 9, ErrInflatedTooLarge},
		{"a zero limit refuses any output", 0, ErrInflatedTooLarge},
		{"a negative limit counts as zero", -1, ErrInflatedTooLarge},
		{"the largest limit does not overflow", math.MaxInt, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := Inflate(msg, c.limit)
			if !errors.Is(err, c.err) || err == nil && string(out) != "0123456789" {
				t.Fatalf("Inflate(limit %d) = %q, %v; want error %v", c.limit, out, err, c.err)
			}
		})
	}
	t.Run("an empty stream inflates to nothing", func(t *testing.T) {
		out, err := Inflate(Compress(nil, nil), 0)
		if err != nil || len(out) != 0 {
			t.Fatalf("Inflate = %q, %v", out, err)
		}
	})
	t.Run("output that needs several buffer growths is complete", func(t *testing.T) {
		raw := bytes.Repeat([]byte("datasole "), 100_000)
		out, err := Inflate(Compress(nil, raw), len(raw))
		if err != nil || !bytes.Equal(out, raw) {
			t.Fatalf("Inflate = %d bytes, %v; want %d", len(out), err, len(raw))
		}
	})
}

func TestOpcodeString(t *testing.T) {
	cases := map[Opcode]string{RPCReq: "RPC_REQ", CRDTState: "CRDT_STATE", 0: "0x00", 0x0C: "0x0C", ZlibMagic: "0x78"}
	for op, want := range cases {
		if got := op.String(); got != want {
			t.Errorf("Opcode(%d).String() = %q, want %q", uint8(op), got, want)
		}
	}
}
