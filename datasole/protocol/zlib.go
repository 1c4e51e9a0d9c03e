package protocol

import (
	"bytes"
	"io"
	"sync"

	"github.com/klauspost/compress/zlib"
)

// The codec is klauspost/compress's zlib rather than the standard library's:
// same stream format (RFC 1950, 32 KiB window, no dictionary, so every
// message starts with 0x78), but on JSON frames from 256 B to 1 MiB it
// compresses 2.5-5x and inflates 1.1-2.4x faster, without allocating once
// pooled (BenchmarkZlib; figures in docs/performance.md). Its checksum error
// is the standard library's zlib.ErrChecksum.

// Level is the zlib level used by Compress, as the reference sender uses.
const Level = 6

// deflater is a pooled zlib writer together with the buffer it appends to, so
// that compressing into a caller's buffer allocates nothing once warm.
type deflater struct {
	out sliceWriter
	zw  *zlib.Writer
	hdr [HeaderSize]byte
	buf []byte // scratch output of compressFrameCopy
}

// maxPooledBuf bounds the scratch buffer a pooled deflater keeps.
const maxPooledBuf = 64 << 10

type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

var deflaters = sync.Pool{New: func() any {
	d := new(deflater)
	d.zw, _ = zlib.NewWriterLevel(&d.out, Level) // Level is valid: no error
	return d
}}

// compress appends the zlib encoding of head followed by body to dst.
func (d *deflater) compress(dst, head, body []byte) []byte {
	d.out.b = dst
	d.zw.Reset(&d.out)
	d.zw.Write(head) // writes to a slice cannot fail
	d.zw.Write(body)
	d.zw.Close()
	out := d.out.b
	d.out.b = nil // do not keep the caller's buffer alive in the pool
	return out
}

// Compress appends the zlib encoding (level 6, 32 KiB window, no dictionary)
// of frame to dst. The result always starts with 0x78. It allocates only when
// dst lacks capacity.
func Compress(dst, frame []byte) []byte {
	d := deflaters.Get().(*deflater)
	dst = d.compress(dst, nil, frame)
	deflaters.Put(d)
	return dst
}

// compressFrame appends the zlib encoding of the frame (op, id, payload)
// without first assembling the frame in memory.
func compressFrame(dst []byte, op Opcode, correlationID uint32, payload []byte) []byte {
	d := deflaters.Get().(*deflater)
	putHeader(d.hdr[:], op, correlationID, len(payload))
	dst = d.compress(dst, d.hdr[:], payload)
	deflaters.Put(d)
	return dst
}

// compressFrameCopy returns the zlib encoding of the frame (op, id, payload)
// in a new slice of exactly its size: it compresses into pooled scratch space
// first, because the size is unknown until the end.
func compressFrameCopy(op Opcode, correlationID uint32, payload []byte) []byte {
	d := deflaters.Get().(*deflater)
	putHeader(d.hdr[:], op, correlationID, len(payload))
	d.buf = d.compress(d.buf[:0], d.hdr[:], payload)
	msg := bytes.Clone(d.buf)
	if cap(d.buf) > maxPooledBuf {
		d.buf = nil
	}
	deflaters.Put(d)
	return msg
}

// inflater is a pooled zlib reader together with the bytes.Reader it reads
// from and buffers that would otherwise escape through the reader interface.
type inflater struct {
	src     bytes.Reader
	zr      io.ReadCloser // implements zlib.Resetter; nil until a header was valid
	hdr     [HeaderSize]byte
	scratch [512]byte
}

var inflaters = sync.Pool{New: func() any { return new(inflater) }}

// openInflater returns a pooled reader positioned after the zlib header of
// msg. The caller must release it.
func openInflater(msg []byte) (*inflater, error) {
	if len(msg) > MaxCompressed {
		return nil, ErrCompressedTooLarge
	}
	f := inflaters.Get().(*inflater)
	f.src.Reset(msg)
	var err error
	if f.zr == nil {
		f.zr, err = zlib.NewReader(&f.src)
	} else {
		err = f.zr.(zlib.Resetter).Reset(&f.src, nil)
	}
	if err != nil {
		f.release()
		return nil, &DecodeError{Class: "bad-zlib", Err: err}
	}
	return f, nil
}

func (f *inflater) release() {
	f.src.Reset(nil) // do not keep the message alive in the pool
	inflaters.Put(f)
}

// read fills b from the stream. It returns io.EOF only when the stream ended
// cleanly (checksum verified) before b was full; any other error is a
// bad-zlib DecodeError.
func (f *inflater) read(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := f.zr.Read(b[n:])
		n += m
		switch {
		case err == io.EOF && n < len(b):
			return n, io.EOF
		case err == io.EOF:
			// b is full: report it so; the next read returns the EOF again.
			return n, nil
		case err != nil:
			return n, &DecodeError{Class: "bad-zlib", Err: err}
		}
	}
	return n, nil
}

// drain reads the rest of the stream, which verifies its checksum. It fails
// with ErrInflatedTooLarge as soon as more than budget bytes come out.
func (f *inflater) drain(budget int) error {
	for {
		n, err := f.read(f.scratch[:min(len(f.scratch), budget+1)])
		budget -= n
		if budget < 0 {
			return ErrInflatedTooLarge
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// Inflate decompresses one zlib message, refusing input over MaxCompressed
// bytes and output over limit bytes (a negative limit counts as 0). It stops
// reading as soon as the output passes limit, so it never holds more than
// limit+1 bytes of output however much the input would expand. Bytes after
// the end of the zlib stream are ignored.
func Inflate(msg []byte, limit int) ([]byte, error) {
	limit = max(limit, 0)
	f, err := openInflater(msg)
	if err != nil {
		return nil, err
	}
	defer f.release()

	// Start small: most messages are far below the limit. The +1 leaves room
	// to notice output past the limit; min keeps it from overflowing.
	out := make([]byte, 0, min(limit, max(4*len(msg), 512))+1)
	for {
		n, err := f.read(out[len(out):cap(out)])
		out = out[:len(out)+n]
		if len(out) > limit {
			return nil, ErrInflatedTooLarge
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		// out is full but within the limit: double it, up to limit+1.
		grown := make([]byte, len(out), cap(out)+min(cap(out), limit-cap(out)+1))
		copy(grown, out)
		out = grown
	}
}

// decodeCompressed inflates msg and parses the frame in it. It reads the
// header first so that a well-formed frame costs exactly one allocation of
// its own size, and it reads the stream to its end (bounded by MaxFrame) so
// that a corrupt checksum is always reported as bad-zlib.
func decodeCompressed(msg []byte) (Frame, error) {
	f, err := openInflater(msg)
	if err != nil {
		return Frame{}, err
	}
	defer f.release()

	hdr := f.hdr[:]
	if _, err := f.read(hdr); err == io.EOF {
		return Frame{}, ErrShort
	} else if err != nil {
		return Frame{}, err
	}
	n, err := header(hdr)
	if err != nil {
		// An invalid header is reported only once the stream checked out.
		if derr := f.drain(MaxFrame - HeaderSize); derr != nil {
			return Frame{}, derr
		}
		return Frame{}, err
	}
	frame := make([]byte, HeaderSize+n)
	copy(frame, hdr)
	if _, err := f.read(frame[HeaderSize:]); err == io.EOF {
		return Frame{}, ErrTruncated
	} else if err != nil {
		return Frame{}, err
	}
	// Bytes after the frame inside the stream are ignored, within the limit.
	if err := f.drain(MaxFrame - len(frame)); err != nil {
		return Frame{}, err
	}
	return ParseFrame(frame)
}
