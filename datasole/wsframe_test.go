package datasole

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// collector is a wsHandler that records what the parser delivers.
type collector struct {
	msgs  [][]byte
	texts []bool
	ctls  []byte
	ctlP  [][]byte
	stop  int // stop after this many messages (0: never)
}

func (h *collector) message(text bool, p []byte) bool {
	h.msgs = append(h.msgs, bytes.Clone(p))
	h.texts = append(h.texts, text)
	return h.stop == 0 || len(h.msgs)%h.stop != 0
}

func (h *collector) control(op byte, p []byte) {
	h.ctls = append(h.ctls, op)
	h.ctlP = append(h.ctlP, bytes.Clone(p))
}

// clientFrame encodes a masked client frame.
func clientFrame(op byte, fin bool, payload []byte, mask [4]byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	var out []byte
	switch n := len(payload); {
	case n <= 125:
		out = append(out, b0, 0x80|byte(n))
	case n <= 0xFFFF:
		out = append(out, b0, 0x80|126, byte(n>>8), byte(n))
	default:
		out = append(out, b0, 0x80|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	out = append(out, mask[:]...)
	for i, c := range payload {
		out = append(out, c^mask[i&3])
	}
	return out
}

// feedInChunks feeds data to r in chunks of the given sizes (cycled), keeping
// unconsumed bytes as the engine does when the handler stops.
func feedInChunks(t *testing.T, r *wsReader, h wsHandler, data []byte, sizes []int) error {
	t.Helper()
	var pending []byte
	for i := 0; len(data) > 0 || len(pending) > 0; i++ {
		n := min(sizes[i%len(sizes)], len(data))
		chunk := append(pending, data[:n]...)
		data = data[n:]
		k, err := r.feed(chunk, h)
		if err != nil {
			return err
		}
		pending = bytes.Clone(chunk[k:])
		if len(data) == 0 && k == 0 && len(pending) > 0 && len(chunk) == len(pending) {
			// The handler stopped at the start of the pending bytes; feed
			// again as the engine does after a resume.
			continue
		}
	}
	return nil
}

func TestWSReaderParsesWhatGorillaSends(t *testing.T) {
	// Text, binary, fragmented messages with a control frame between the
	// fragments, an empty message, a ping, a pong and a close, fed whole
	// and in chunks of many sizes.
	msgs := [][]byte{[]byte("hello"), bytes.Repeat([]byte("x"), 300), bytes.Repeat([]byte("y"), 70000), {}}
	var wire []byte
	mask := [4]byte{1, 2, 3, 4}
	wire = append(wire, clientFrame(wsBinary, true, msgs[0], mask)...)
	wire = append(wire, clientFrame(wsPing, true, []byte("p"), mask)...)
	// A fragmented message with a control frame in the middle.
	wire = append(wire, clientFrame(wsBinary, false, msgs[1][:100], mask)...)
	wire = append(wire, clientFrame(wsPong, true, nil, mask)...)
	wire = append(wire, clientFrame(wsContinuation, false, msgs[1][100:200], mask)...)
	wire = append(wire, clientFrame(wsContinuation, true, msgs[1][200:], mask)...)
	wire = append(wire, clientFrame(wsText, true, msgs[2], mask)...)
	wire = append(wire, clientFrame(wsBinary, true, msgs[3], mask)...)
	wire = append(wire, clientFrame(wsClose, true, []byte{0x03, 0xe8, 'b', 'y', 'e'}, mask)...)
	for _, sizes := range [][]int{{len(wire)}, {1}, {2, 3, 5, 7}, {4096}, {13, 1000}} {
		r := &wsReader{limit: 1 << 20}
		h := &collector{}
		if err := feedInChunks(t, r, h, bytes.Clone(wire), sizes); err != nil {
			t.Fatalf("chunks %v: %v", sizes, err)
		}
		if len(h.msgs) != 4 {
			t.Fatalf("chunks %v: %d messages", sizes, len(h.msgs))
		}
		for i, m := range msgs {
			if !bytes.Equal(h.msgs[i], m) {
				t.Fatalf("chunks %v: message %d differs (%d bytes, want %d)", sizes, i, len(h.msgs[i]), len(m))
			}
		}
		if !h.texts[2] || h.texts[0] {
			t.Fatalf("message types %v", h.texts)
		}
		if string(h.ctls) != string([]byte{wsPing, wsPong, wsClose}) || string(h.ctlP[0]) != "p" {
			t.Fatalf("control frames %v %q", h.ctls, h.ctlP)
		}
		if code, err := parseClose(h.ctlP[2]); code != 1000 || err != nil {
			t.Fatalf("close code %d %v", code, err)
		}
	}
}

func TestWSReaderStopsWhereTheHandlerAsks(t *testing.T) {
	mask := [4]byte{9, 8, 7, 6}
	var wire []byte
	for i := range 10 {
		wire = append(wire, clientFrame(wsBinary, true, []byte{byte(i)}, mask)...)
	}
	r := &wsReader{limit: 1 << 20}
	h := &collector{stop: 3}
	n, err := r.feed(bytes.Clone(wire), h)
	if err != nil || len(h.msgs) != 3 || n != 3*7 {
		t.Fatalf("consumed %d, %d messages, %v; want 21 bytes, 3 messages", n, len(h.msgs), err)
	}
	if err := feedInChunks(t, r, h, wire[n:], []int{len(wire)}); err != nil {
		t.Fatal(err)
	}
	for i, m := range h.msgs {
		if len(m) != 1 || m[0] != byte(i) {
			t.Fatalf("message %d = %v", i, m)
		}
	}
}

func TestWSReaderRefusesProtocolViolations(t *testing.T) {
	mask := [4]byte{1, 1, 1, 1}
	unmasked := clientFrame(wsBinary, true, []byte("x"), mask)
	unmasked[1] &^= 0x80
	unmasked = append(unmasked[:2], 'x')
	cases := []struct {
		name string
		wire []byte
		want *wsError
	}{
		{"an unmasked frame", unmasked, errWSUnmasked},
		{"reserved bits", append([]byte{0xC2}, clientFrame(wsBinary, true, nil, mask)[1:]...), errWSReserved},
		{"an unknown opcode", append([]byte{0x83}, clientFrame(wsBinary, true, nil, mask)[1:]...), errWSOpcode},
		{"a fragmented ping", clientFrame(wsPing, false, nil, mask), errWSControl},
		{"a ping over 125 bytes", clientFrame(wsPing, true, make([]byte, 126), mask), errWSControl},
		{"a continuation without a start", clientFrame(wsContinuation, true, []byte("x"), mask), errWSContinuation},
		{"a new message inside a fragmented one", append(clientFrame(wsBinary, false, []byte("a"), mask), clientFrame(wsText, true, []byte("b"), mask)...), errWSInterleaved},
		{"a message over the limit", clientFrame(wsBinary, true, make([]byte, 2000), mask), errWSTooBig},
		{"fragments over the limit", append(clientFrame(wsBinary, false, make([]byte, 600), mask), clientFrame(wsContinuation, true, make([]byte, 600), mask)...), errWSTooBig},
		{"a 64-bit length with the top bit set", []byte{0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0}, errWSLength},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := &wsReader{limit: 1024}
			_, err := r.feed(tc.wire, &collector{})
			var we *wsError
			if !errors.As(err, &we) || we != tc.want {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// FuzzWSReader feeds arbitrary bytes in arbitrary chunks: the parser never
// panics, never delivers more than the limit, and parses the same way
// whatever the chunking.
func FuzzWSReader(f *testing.F) {
	mask := [4]byte{0xA, 0xB, 0xC, 0xD}
	f.Add(clientFrame(wsBinary, true, []byte("hello"), mask), uint8(3))
	f.Add(append(clientFrame(wsBinary, false, []byte("he"), mask), clientFrame(wsContinuation, true, []byte("llo"), mask)...), uint8(1))
	f.Add(clientFrame(wsClose, true, []byte{3, 232}, mask), uint8(2))
	f.Add(clientFrame(wsBinary, true, make([]byte, 300), mask), uint8(7))
	f.Add([]byte{0x82, 0xFF, 0, 0, 0, 0, 0, 0, 1, 0, 1, 2, 3, 4}, uint8(5))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		parse := func(step int) ([][]byte, []byte, error) {
			r := &wsReader{limit: 4096}
			h := &collector{}
			buf := bytes.Clone(data)
			var err error
			for i := 0; i < len(buf) && err == nil; i += step {
				_, err = r.feed(buf[i:min(i+step, len(buf))], h)
			}
			for _, m := range h.msgs {
				if len(m) > 4096 {
					t.Fatalf("delivered %d bytes over the limit", len(m))
				}
			}
			return h.msgs, h.ctls, err
		}
		whole, ctlW, errW := parse(max(len(data), 1))
		parts, ctlP, errP := parse(int(chunk%16) + 1)
		if (errW == nil) != (errP == nil) || len(whole) != len(parts) || !bytes.Equal(ctlW, ctlP) {
			t.Fatalf("chunking changed the result: %d vs %d messages, %v vs %v", len(whole), len(parts), errW, errP)
		}
		for i := range whole {
			if !bytes.Equal(whole[i], parts[i]) {
				t.Fatalf("message %d differs by chunking", i)
			}
		}
	})
}

// BenchmarkReadPath compares reading 16-byte-payload client messages with
// the engine's parser (chunks from a buffer, as the poller hands them over)
// against gorilla's read path (NextReader + io.ReadAll over a net.Conn).
func BenchmarkReadPath(b *testing.B) {
	mask := [4]byte{1, 2, 3, 4}
	payload := bytes.Repeat([]byte("p"), 16)
	one := clientFrame(wsBinary, true, payload, mask)
	const perChunk = 64
	var chunk []byte
	for range perChunk {
		chunk = append(chunk, one...)
	}
	b.Run("engine", func(b *testing.B) {
		r := &wsReader{limit: 1 << 20}
		h := &countHandler{}
		buf := make([]byte, len(chunk))
		b.SetBytes(int64(len(one)))
		b.ReportAllocs()
		for i := 0; i < b.N; i += perChunk {
			copy(buf, chunk)
			if _, err := r.feed(buf, h); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("gorilla", func(b *testing.B) {
		ws := gorillaServerConn(b, &readConn{r: &repeatReader{chunk: chunk}})
		b.SetBytes(int64(len(one)))
		b.ReportAllocs()
		var sink []byte
		for i := 0; i < b.N; i++ {
			_, r, err := ws.NextReader()
			if err != nil {
				b.Fatal(err)
			}
			sink, _ = readAll(sink[:0], r)
		}
	})
}

type countHandler struct{ n int }

func (h *countHandler) message(bool, []byte) bool { h.n++; return true }
func (h *countHandler) control(byte, []byte)      {}

type repeatReader struct {
	chunk []byte
	off   int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := copy(p, r.chunk[r.off:])
	r.off = (r.off + n) % len(r.chunk)
	return n, nil
}

// readConn is a net.Conn reading from r, for gorilla's read path.
type readConn struct {
	net.Conn
	r io.Reader
}

func (c *readConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *readConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *readConn) SetDeadline(time.Time) error      { return nil }
func (c *readConn) SetReadDeadline(time.Time) error  { return nil }
func (c *readConn) SetWriteDeadline(time.Time) error { return nil }
func (c *readConn) Close() error                     { return nil }

// gorillaServerConn upgrades a fake request over conn, so that gorilla's
// server-side read path reads conn.
func gorillaServerConn(b *testing.B, conn net.Conn) *websocket.Conn {
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	w := &hijackRecorder{ResponseRecorder: httptest.NewRecorder(), conn: conn}
	up := websocket.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 4096}
	ws, err := up.Upgrade(w, req, nil)
	if err != nil {
		b.Fatal(err)
	}
	return ws
}

type hijackRecorder struct {
	*httptest.ResponseRecorder
	conn net.Conn
}

func (h *hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return h.conn, bufio.NewReadWriter(bufio.NewReader(h.conn), bufio.NewWriter(io.Discard)), nil
}

func TestOnlyControl(t *testing.T) {
	mask := [4]byte{1, 2, 3, 4}
	pong := clientFrame(wsPong, true, []byte("x"), mask)
	ping := clientFrame(wsPing, true, nil, mask)
	data := clientFrame(wsBinary, true, []byte("x"), mask)
	for _, tc := range []struct {
		b    []byte
		want bool
	}{
		{pong, true},
		{append(append([]byte(nil), pong...), ping...), true},
		{append(append([]byte(nil), pong...), data...), false},
		{pong[:3], false},                        // incomplete
		{append([]byte{0x8A, 0x01}, 'x'), false}, // unmasked
		{clientFrame(wsPing, true, make([]byte, 126), mask), false},
	} {
		if got := onlyControl(tc.b); got != tc.want {
			t.Errorf("onlyControl(% x) = %v, want %v", tc.b, got, tc.want)
		}
	}
}
