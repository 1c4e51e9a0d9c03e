package protocol

import (
	"bytes"
	stdzlib "compress/zlib"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	kpzlib "github.com/klauspost/compress/zlib"
)

// jsonFrame returns a deterministic JSON document of about size bytes shaped
// like what handlers send: an RPC result listing records with ids, names,
// addresses, timestamps, scores, tags and a line of prose, so that it
// compresses like real traffic rather than like a run of one repeated row.
func jsonFrame(tb testing.TB, size int) []byte {
	tb.Helper()
	type record struct {
		ID      int      `json:"id"`
		Name    string   `json:"name"`
		Email   string   `json:"email"`
		Created int64    `json:"createdAt"`
		Score   float64  `json:"score"`
		Active  bool     `json:"active"`
		Tags    []string `json:"tags"`
		Note    string   `json:"note"`
	}
	first := []string{"ada", "linus", "grace", "ken", "barbara", "edsger", "margaret", "dennis", "frances", "niklaus"}
	last := []string{"lovelace", "torvalds", "hopper", "thompson", "liskov", "dijkstra", "hamilton", "ritchie", "allen", "wirth"}
	words := []string{"order", "shipped", "pending", "refund", "invoice", "customer", "warehouse", "priority",
		"delayed", "express", "returned", "paid", "draft", "review", "approved", "archived", "region", "north", "south"}
	tags := []string{"vip", "new", "beta", "eu", "us", "apac", "trial", "churn-risk", "partner"}
	r := rand.New(rand.NewPCG(uint64(size), 12))

	out := []byte(`{"correlationId":42,"result":{"total":0,"rows":[`)
	for i := 0; ; i++ {
		f, l := first[r.IntN(len(first))], last[r.IntN(len(last))]
		rec := record{
			ID:      100000 + r.IntN(900000),
			Name:    f + " " + l,
			Email:   fmt.Sprintf("%s.%s%d@example.com", f, l, r.IntN(1000)),
			Created: 1_711_234_567_890 + r.Int64N(1e9),
			Score:   float64(r.IntN(100000)) / 100,
			Active:  r.IntN(3) > 0,
			Tags:    []string{tags[r.IntN(len(tags))], tags[r.IntN(len(tags))]},
		}
		for range 4 + r.IntN(8) {
			rec.Note += words[r.IntN(len(words))] + " "
		}
		b, err := json.Marshal(rec)
		if err != nil {
			tb.Fatal(err)
		}
		if i > 0 && len(out)+1+len(b)+3 > size {
			break
		}
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, b...)
	}
	out = append(out, "]}}"...)
	if !json.Valid(out) {
		tb.Fatal("generated document is not JSON")
	}
	return out
}

// zlibCodec is one zlib implementation behind the pooled, reset-and-reuse
// pattern zlib.go uses.
type zlibCodec struct {
	name      string
	newWriter func(w io.Writer) (zlibWriter, error)
	newReader func(r io.Reader) (io.ReadCloser, error)
	reset     func(zr io.ReadCloser, r io.Reader) error
}

type zlibWriter interface {
	io.WriteCloser
	Reset(w io.Writer)
}

var zlibCodecs = []zlibCodec{
	{
		name:      "stdlib",
		newWriter: func(w io.Writer) (zlibWriter, error) { return stdzlib.NewWriterLevel(w, Level) },
		newReader: stdzlib.NewReader,
		reset:     func(zr io.ReadCloser, r io.Reader) error { return zr.(stdzlib.Resetter).Reset(r, nil) },
	},
	{
		name:      "klauspost",
		newWriter: func(w io.Writer) (zlibWriter, error) { return kpzlib.NewWriterLevel(w, Level) },
		newReader: kpzlib.NewReader,
		reset:     func(zr io.ReadCloser, r io.Reader) error { return zr.(kpzlib.Resetter).Reset(r, nil) },
	},
}

var zlibSizes = []int{256, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20}

func sizeName(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%dMiB", n>>20)
	}
	if n >= 1<<10 {
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// TestZlibImplementationsInterwork checks that both implementations write the
// stream §6 of the protocol requires (first byte 0x78, 32 KiB window, no
// dictionary) and read each other's output.
func TestZlibImplementationsInterwork(t *testing.T) {
	for _, size := range zlibSizes {
		doc := jsonFrame(t, size)
		for _, w := range zlibCodecs {
			var buf bytes.Buffer
			zw, err := w.newWriter(&buf)
			if err != nil {
				t.Fatal(err)
			}
			zw.Write(doc)
			zw.Close()
			msg := buf.Bytes()
			if msg[0] != ZlibMagic || msg[1]&0x20 != 0 || (uint16(msg[0])<<8|uint16(msg[1]))%31 != 0 {
				t.Fatalf("%s: header %x is not zlib, 32 KiB window, no dictionary", w.name, msg[:2])
			}
			for _, r := range zlibCodecs {
				zr, err := r.newReader(bytes.NewReader(msg))
				if err != nil {
					t.Fatalf("%s reading %s: %v", r.name, w.name, err)
				}
				got, err := io.ReadAll(zr)
				if err != nil || !bytes.Equal(got, doc) {
					t.Fatalf("%s reading %s at %s: %d bytes, %v; want %d", r.name, w.name, sizeName(size), len(got), err, len(doc))
				}
			}
		}
	}
}

// BenchmarkZlib compares the standard library's zlib with klauspost/compress
// on JSON frames from 256 B to 1 MiB, each used the way zlib.go uses its
// codec: a pooled writer reset onto an appending buffer, a pooled reader reset
// onto the message. "ratio" is compressed size / input size; "cpu-ns/op" is
// the CPU time of the benchmark's thread per operation (Linux), steadier than
// ns/op when other processes compete for the CPU.
func BenchmarkZlib(b *testing.B) {
	for _, size := range zlibSizes {
		doc := jsonFrame(b, size)
		for _, c := range zlibCodecs {
			var out sliceWriter
			zw, err := c.newWriter(&out)
			if err != nil {
				b.Fatal(err)
			}
			out.b = make([]byte, 0, 2*len(doc)+64)
			compress := func() {
				out.b = out.b[:0]
				zw.Reset(&out)
				zw.Write(doc)
				zw.Close()
			}
			compress()
			msg := bytes.Clone(out.b)
			ratio := float64(len(msg)) / float64(len(doc))

			b.Run("compress/"+sizeName(size)+"/"+c.name, func(b *testing.B) {
				b.SetBytes(int64(len(doc)))
				b.ReportAllocs()
				cpu := startThreadCPU()
				for b.Loop() {
					compress()
				}
				cpu.report(b)
				b.ReportMetric(ratio, "ratio")
			})

			var src bytes.Reader
			src.Reset(msg)
			zr, err := c.newReader(&src)
			if err != nil {
				b.Fatal(err)
			}
			dst := make([]byte, len(doc)+1)
			b.Run("inflate/"+sizeName(size)+"/"+c.name, func(b *testing.B) {
				b.SetBytes(int64(len(doc)))
				b.ReportAllocs()
				cpu := startThreadCPU()
				for b.Loop() {
					src.Reset(msg)
					if err := c.reset(zr, &src); err != nil {
						b.Fatal(err)
					}
					n, err := io.ReadFull(zr, dst)
					if n != len(doc) || err != io.ErrUnexpectedEOF {
						b.Fatalf("inflated %d bytes, %v; want %d", n, err, len(doc))
					}
				}
				cpu.report(b)
				b.ReportMetric(ratio, "ratio")
			})
		}
	}
}

// threadCPUMeter measures the CPU time of the benchmark's goroutine, locked
// to its thread for the measurement.
type threadCPUMeter struct {
	start time.Duration
	ok    bool
}

func startThreadCPU() *threadCPUMeter {
	runtime.LockOSThread()
	t, ok := threadCPU()
	return &threadCPUMeter{start: t, ok: ok}
}

func (m *threadCPUMeter) report(b *testing.B) {
	t, ok := threadCPU()
	runtime.UnlockOSThread()
	if m.ok && ok && b.N > 0 {
		b.ReportMetric(float64((t-m.start).Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}
