package datasole

import (
	"bufio"
	"net"
	"net/http"
	"sync"
)

// batchConn lets the writer coalesce the frames of one queue drain into a
// single write: between begin and flush, writes (data frames from the
// writer, control frames from elsewhere) are appended to a buffer in order
// and go out together.
type batchConn struct {
	net.Conn
	mu       sync.Mutex
	batching bool
	buf      []byte
}

// maxBatch bounds the coalescing buffer; a batch larger than this is
// flushed in pieces.
const maxBatch = 64 << 10

func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.batching {
		return b.Conn.Write(p)
	}
	if len(b.buf)+len(p) > maxBatch {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) > maxBatch {
			return b.Conn.Write(p)
		}
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *batchConn) begin() {
	b.mu.Lock()
	b.batching = true
	b.mu.Unlock()
}

// flush writes what was buffered and ends the batch. The buffer is dropped
// when it grew large, so an idle connection keeps none.
func (b *batchConn) flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.batching = false
	err := b.flushLocked()
	if cap(b.buf) > 4096 {
		b.buf = nil
	}
	return err
}

// tryFlush flushes unless a write is blocked in progress (a peer that does
// not read): closing must not wait for it.
func (b *batchConn) tryFlush() {
	if b.mu.TryLock() {
		b.batching = false
		b.flushLocked()
		b.mu.Unlock()
	}
}

func (b *batchConn) flushLocked() error {
	if len(b.buf) == 0 {
		return nil
	}
	_, err := b.Conn.Write(b.buf)
	b.buf = b.buf[:0]
	return err
}

// hijacker wraps the ResponseWriter handed to the upgrader so that the
// connection it hijacks is a batchConn.
type hijacker struct {
	http.ResponseWriter
	conn *batchConn
}

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.conn = &batchConn{Conn: c}
	return h.conn, rw, nil
}
