package load

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/gorilla/websocket"

	"github.com/datasole/datasole-go/datasole/protocol"
)

// Protocol is how the load client talks to one kind of server.
type Protocol interface {
	// Path is the WebSocket endpoint on the server.
	Path() string
	// Subprotocols are offered at the upgrade.
	Subprotocols() []string
	// Handshake runs after the upgrade, before the connection is used.
	Handshake(c *Conn) error
	// Subscribe makes the connection receive fan-out publications.
	Subscribe(c *Conn) error
	// MessageType is the WebSocket message type of requests.
	MessageType() int
	// AppendCall appends one echo RPC request with the given id and JSON
	// params to dst.
	AppendCall(dst []byte, id uint32, params []byte) []byte
	// Parse calls onReply for each RPC reply and onPush for each fan-out
	// publication (its bytes contain "seq" and "ts") in one received
	// message. It returns a message to send back (an application pong), or
	// nil.
	Parse(msg []byte, onReply func(id uint32, ok bool), onPush func(pub []byte)) (answer []byte, err error)
}

// ---- bare echo floors ------------------------------------------------------

// Echo is the protocol of the floors: a request is the byte 'R', a 4-byte
// big-endian id and the params, echoed as is; a publication is the bare
// message (a JSON object).
type Echo struct{}

func (Echo) Path() string           { return "/" }
func (Echo) Subprotocols() []string { return nil }
func (Echo) Handshake(*Conn) error  { return nil }
func (Echo) Subscribe(*Conn) error  { return nil }
func (Echo) MessageType() int       { return websocket.BinaryMessage }

func (Echo) AppendCall(dst []byte, id uint32, params []byte) []byte {
	dst = append(dst, 'R')
	return append(binary.BigEndian.AppendUint32(dst, id), params...)
}

func (Echo) Parse(msg []byte, onReply func(uint32, bool), onPush func([]byte)) ([]byte, error) {
	switch {
	case len(msg) >= 5 && msg[0] == 'R':
		onReply(binary.BigEndian.Uint32(msg[1:]), true)
	case len(msg) > 0 && msg[0] == '{':
		onPush(msg)
	}
	return nil, nil
}

// ---- datasole v1, optionally with the batching extension -------------------

// Subprotocol names of the datasole WebSocket endpoint.
const (
	SubprotocolV1    = "datasole.v1"
	SubprotocolBatch = "datasole.batch.v1"
	// OpBatch is the opcode of the batching extension's BATCH frame.
	OpBatch = 0x0C
)

// Datasole speaks protocol v1 frames (spec/PROTOCOL.md §2, §5, §6) on
// /__ds, compressing frames over 256 bytes as the reference client does. With
// Batch it offers the batching extension and, when the server selects it,
// reads BATCH frames; the RPC loop then packs the requests it has ready into
// one BATCH (see BatchWriter).
type Datasole struct{ Batch bool }

func (Datasole) Path() string { return "/__ds" }

func (d Datasole) Subprotocols() []string {
	if d.Batch {
		return []string{SubprotocolV1, SubprotocolBatch}
	}
	// A stock v1 client offers nothing.
	return nil
}

func (Datasole) Handshake(*Conn) error { return nil }
func (Datasole) Subscribe(*Conn) error { return nil } // v1 broadcasts reach every connection
func (Datasole) MessageType() int      { return websocket.BinaryMessage }

func (Datasole) AppendCall(dst []byte, id uint32, params []byte) []byte {
	// The frame is built in place after dst's end: header, then the stock
	// client's body (method, params, correlationId repeated).
	start := len(dst)
	dst = append(dst, byte(protocol.RPCReq))
	dst = binary.BigEndian.AppendUint32(dst, id)
	dst = append(dst, 0, 0, 0, 0) // payload length, set below
	dst = append(dst, `{"method":"echo","params":`...)
	dst = append(dst, params...)
	dst = append(dst, `,"correlationId":`...)
	dst = strconv.AppendUint(dst, uint64(id), 10)
	dst = append(dst, '}')
	frame := dst[start:]
	binary.BigEndian.PutUint32(frame[5:9], uint32(len(frame)-protocol.HeaderSize))
	if len(frame) <= protocol.CompressThreshold {
		return dst
	}
	// Over the threshold the message is the frame's zlib encoding.
	scratch := framePool.Get().(*[]byte)
	*scratch = append((*scratch)[:0], frame...)
	dst = protocol.Compress(dst[:start], *scratch)
	framePool.Put(scratch)
	return dst
}

var framePool = sync.Pool{New: func() any { return new([]byte) }}

var errorMember = []byte(`"error":{`)

func (Datasole) Parse(msg []byte, onReply func(uint32, bool), onPush func([]byte)) ([]byte, error) {
	if len(msg) > 0 && msg[0] == OpBatch {
		return nil, eachBatchItem(msg, func(item []byte) error {
			return parseFrame(item, onReply, onPush)
		})
	}
	return nil, parseFrame(msg, onReply, onPush)
}

func parseFrame(msg []byte, onReply func(uint32, bool), onPush func([]byte)) error {
	f, err := protocol.Decode(msg)
	if err != nil {
		return err
	}
	switch f.Opcode {
	case protocol.RPCRes:
		onReply(f.CorrelationID, !bytes.Contains(f.Payload, errorMember))
	case protocol.EventS2C:
		onPush(f.Payload)
	case protocol.Error:
		return fmt.Errorf("server sent ERROR: %s", f.Payload)
	}
	return nil
}

// eachBatchItem calls fn with each item of a BATCH message: the 9-byte
// header (opcode 0x0C, item count, payload length) then items, each a
// uvarint length and that many bytes.
func eachBatchItem(msg []byte, fn func(item []byte) error) error {
	if len(msg) < protocol.HeaderSize {
		return errors.New("short BATCH")
	}
	n := binary.BigEndian.Uint32(msg[5:9])
	p := msg[protocol.HeaderSize:]
	if uint64(len(p)) < uint64(n) {
		return errors.New("truncated BATCH")
	}
	p = p[:n]
	for len(p) > 0 {
		l, k := binary.Uvarint(p)
		if k <= 0 || l > uint64(len(p)-k) {
			return errors.New("malformed BATCH item")
		}
		if err := fn(p[k : k+int(l)]); err != nil {
			return err
		}
		p = p[k+int(l):]
	}
	return nil
}

// BatchWriter packs messages into one BATCH frame.
type BatchWriter struct {
	buf   []byte
	items int
}

// Add appends one v1 message (a frame or a compressed frame) as an item.
func (b *BatchWriter) Add(msg []byte) {
	if b.items == 0 {
		b.buf = append(b.buf[:0], make([]byte, protocol.HeaderSize)...)
	}
	b.buf = binary.AppendUvarint(b.buf, uint64(len(msg)))
	b.buf = append(b.buf, msg...)
	b.items++
}

// Len returns the number of items added since the last Take.
func (b *BatchWriter) Len() int { return b.items }

// Take returns the BATCH frame of the items added so far and starts a new
// one. The result is valid until the next Add.
func (b *BatchWriter) Take() []byte {
	b.buf[0] = OpBatch
	binary.BigEndian.PutUint32(b.buf[1:5], uint32(b.items))
	binary.BigEndian.PutUint32(b.buf[5:9], uint32(len(b.buf)-protocol.HeaderSize))
	b.items = 0
	return b.buf
}

// ---- centrifuge JSON protocol ----------------------------------------------

// Centrifuge speaks centrifuge's client protocol v2 in JSON: commands
// {"id":N,"connect":{}}, {"id":N,"subscribe":{"channel":"bench"}},
// {"id":N,"rpc":{"method":"echo","data":…}}; replies carry the id; pushes
// are {"push":{"channel":…,"pub":{"data":…}}}; the server's ping is {} and
// is answered with {}. One WebSocket message may hold several replies and
// pushes separated by newlines.
type Centrifuge struct{}

func (Centrifuge) Path() string           { return "/connection/websocket" }
func (Centrifuge) Subprotocols() []string { return nil }
func (Centrifuge) MessageType() int       { return websocket.TextMessage }

func (Centrifuge) Handshake(c *Conn) error {
	return centrifugeCommand(c, 1<<31, `"connect":{}`)
}

func (Centrifuge) Subscribe(c *Conn) error {
	return centrifugeCommand(c, 1<<31+1, `"subscribe":{"channel":"bench"}`)
}

// centrifugeCommand sends one command and waits for its reply.
func centrifugeCommand(c *Conn, id uint32, body string) error {
	cmd := fmt.Sprintf(`{"id":%d,%s}`, id, body)
	if err := c.WS.WriteMessage(websocket.TextMessage, []byte(cmd)); err != nil {
		return err
	}
	if err := c.Flush(); err != nil {
		return err
	}
	for {
		_, msg, err := c.WS.ReadMessage()
		if err != nil {
			return err
		}
		for line := range bytes.SplitSeq(msg, []byte{'\n'}) {
			if rid, ok := centrifugeID(line); ok && rid == id {
				if bytes.Contains(line, errorMember) {
					return fmt.Errorf("centrifuge refused %s: %s", body, line)
				}
				return nil
			}
		}
	}
}

func centrifugeID(line []byte) (uint32, bool) {
	rest, ok := bytes.CutPrefix(line, []byte(`{"id":`))
	if !ok {
		return 0, false
	}
	var id uint64
	i := 0
	for ; i < len(rest) && rest[i] >= '0' && rest[i] <= '9'; i++ {
		id = id*10 + uint64(rest[i]-'0')
	}
	return uint32(id), i > 0
}

func (Centrifuge) AppendCall(dst []byte, id uint32, params []byte) []byte {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendUint(dst, uint64(id), 10)
	dst = append(dst, `,"rpc":{"method":"echo","data":`...)
	dst = append(dst, params...)
	return append(dst, "}}"...)
}

var centrifugePong = []byte("{}")

func (Centrifuge) Parse(msg []byte, onReply func(uint32, bool), onPush func([]byte)) ([]byte, error) {
	var answer []byte
	for line := range bytes.SplitSeq(msg, []byte{'\n'}) {
		switch {
		case len(line) == 0:
		case string(line) == "{}":
			answer = centrifugePong
		case bytes.HasPrefix(line, []byte(`{"push":`)):
			onPush(line)
		default:
			if id, ok := centrifugeID(line); ok {
				onReply(id, !bytes.Contains(line, errorMember))
			}
		}
	}
	return answer, nil
}

// ---- publications -----------------------------------------------------------

// PubFields extracts "seq" and "ts" from a publication's bytes.
func PubFields(pub []byte) (seq, ts int64, ok bool) {
	seq, ok1 := intAfter(pub, []byte(`"seq":`))
	ts, ok2 := intAfter(pub, []byte(`"ts":`))
	return seq, ts, ok1 && ok2
}

func intAfter(b, key []byte) (int64, bool) {
	i := bytes.Index(b, key)
	if i < 0 {
		return 0, false
	}
	b = b[i+len(key):]
	var v int64
	j := 0
	for ; j < len(b) && b[j] >= '0' && b[j] <= '9'; j++ {
		v = v*10 + int64(b[j]-'0')
	}
	return v, j > 0
}
