package protocol

import (
	"bytes"
	"compress/zlib"
	"io"
	"sync"
)

// Level is the zlib level used by Compress, as the reference sender uses.
const Level = 6

var writers = sync.Pool{New: func() any {
	w, _ := zlib.NewWriterLevel(nil, Level)
	return w
}}

type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

// Compress appends the zlib encoding (level 6, 32 KiB window, no dictionary)
// of frame to dst. The result always starts with 0x78.
func Compress(dst, frame []byte) []byte {
	sw := &sliceWriter{b: dst}
	zw := writers.Get().(*zlib.Writer)
	zw.Reset(sw)
	zw.Write(frame) // writes to a slice cannot fail
	zw.Close()
	zw.Reset(nil)
	writers.Put(zw)
	return sw.b
}

var readers sync.Pool // of io.ReadCloser implementing zlib.Resetter

// Inflate decompresses one zlib message, refusing input over MaxCompressed
// bytes and output over limit bytes. It stops reading as soon as the output
// passes limit, so it never allocates more than limit+1 bytes however much the
// input would expand. Bytes after the end of the zlib stream are ignored.
func Inflate(msg []byte, limit int) ([]byte, error) {
	if len(msg) > MaxCompressed {
		return nil, ErrCompressedTooLarge
	}
	src := bytes.NewReader(msg)
	var zr io.ReadCloser
	if r, ok := readers.Get().(io.ReadCloser); ok {
		if err := r.(zlib.Resetter).Reset(src, nil); err != nil {
			readers.Put(r)
			return nil, &DecodeError{Class: "bad-zlib", Err: err}
		}
		zr = r
	} else {
		r, err := zlib.NewReader(src)
		if err != nil {
			return nil, &DecodeError{Class: "bad-zlib", Err: err}
		}
		zr = r
	}
	defer readers.Put(zr)

	// Start small: most messages are far below the limit.
	out := make([]byte, 0, min(limit+1, max(4*len(msg), 512)))
	for {
		if len(out) == cap(out) {
			if len(out) > limit {
				return nil, ErrInflatedTooLarge
			}
			next := min(2*cap(out), limit+1)
			out = append(out, make([]byte, next-len(out))...)[:len(out)]
		}
		n, err := zr.Read(out[len(out):cap(out)])
		out = out[:len(out)+n]
		if len(out) > limit {
			return nil, ErrInflatedTooLarge
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, &DecodeError{Class: "bad-zlib", Err: err}
		}
	}
}
