package browser

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/datasole/datasole-go/datasole/protocol"
	"github.com/datasole/datasole-go/datasole/web"
	"github.com/gorilla/websocket"
)

// The batching extension (subprotocol datasole.batch.v1, opcode 0x0C): each
// item is uvarint(len) + one v1 message; the BATCH frame's correlation id is
// the item count. batchPeer implements the server side from that description
// with Go's encoding/binary and the protocol package, so the browser client's
// TypeScript codec meets an independent one.
const opBatch = 0x0c

func encodeBatch(t *testing.T, messages [][]byte) []byte {
	t.Helper()
	var payload []byte
	for _, m := range messages {
		payload = binary.AppendUvarint(payload, uint64(len(m)))
		payload = append(payload, m...)
	}
	out := []byte{opBatch}
	out = binary.BigEndian.AppendUint32(out, uint32(len(messages)))
	out = binary.BigEndian.AppendUint32(out, uint32(len(payload)))
	return append(out, payload...)
}

func decodeBatch(msg []byte) ([]protocol.Frame, error) {
	if len(msg) < 9 || msg[0] != opBatch || int(binary.BigEndian.Uint32(msg[5:9])) != len(msg)-9 {
		return nil, errors.New("bad batch header")
	}
	var frames []protocol.Frame
	for rest := msg[9:]; len(rest) > 0; {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n == 0 || n > uint64(len(rest)-k) {
			return nil, errors.New("bad batch item length")
		}
		f, err := protocol.Decode(rest[k : k+int(n)])
		if err != nil {
			return nil, err
		}
		frames = append(frames, f)
		rest = rest[k+int(n):]
	}
	if len(frames) != int(binary.BigEndian.Uint32(msg[1:5])) {
		return nil, errors.New("item count differs from the header")
	}
	return frames, nil
}

// inbound is one WebSocket message the peer received.
type inbound struct {
	batch   bool
	opcodes []protocol.Opcode
}

// batchPeer serves the harness and a protocol endpoint that selects one of
// selects (in its order) from what the client offers.
type batchPeer struct {
	t       *testing.T
	hs      *httptest.Server
	selects []string

	mu       sync.Mutex
	offered  [][]string
	queries  []string
	messages []inbound
}

func startBatchPeer(t *testing.T, selects ...string) *batchPeer {
	p := &batchPeer{t: t, selects: selects}
	mux := http.NewServeMux()
	mux.HandleFunc("/harness.html", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(harness)
	})
	mux.HandleFunc("/__ds/", func(w http.ResponseWriter, r *http.Request) {
		a, ok := web.Lookup(strings.TrimPrefix(r.URL.Path, "/__ds/"))
		if !ok {
			http.NotFound(w, r)
			return
		}
		a.ServeHTTP(w, r)
	})
	mux.HandleFunc("/__ds", p.serve)
	p.hs = httptest.NewServer(mux)
	t.Cleanup(p.hs.Close)
	return p
}

func (p *batchPeer) serve(w http.ResponseWriter, r *http.Request) {
	if !websocket.IsWebSocketUpgrade(r) { // a probe: this peer does not answer them
		http.Error(w, "expected a WebSocket upgrade", http.StatusUpgradeRequired)
		return
	}
	p.mu.Lock()
	p.offered = append(p.offered, websocket.Subprotocols(r))
	p.queries = append(p.queries, r.URL.RawQuery)
	p.mu.Unlock()
	up := websocket.Upgrader{Subprotocols: p.selects}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer ws.Close()
	batching := ws.Subprotocol() == "datasole.batch.v1"

	// On open: a snapshot and a large (compressed) event, in one BATCH when
	// batching was negotiated.
	snap, _ := protocol.Encode(protocol.StateSnapshot, 0, []byte(`{"key":"k","data":{"n":1},"version":1}`))
	big, _ := protocol.Encode(protocol.EventS2C, 0, []byte(`{"event":"big","data":"`+strings.Repeat("x", 1000)+`"}`))
	if batching {
		ws.WriteMessage(websocket.BinaryMessage, encodeBatch(p.t, [][]byte{snap, big}))
	} else {
		ws.WriteMessage(websocket.BinaryMessage, snap)
		ws.WriteMessage(websocket.BinaryMessage, big)
	}
	for {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			return
		}
		var frames []protocol.Frame
		if len(msg) > 0 && msg[0] == opBatch {
			if frames, err = decodeBatch(msg); err != nil {
				p.t.Errorf("the client sent a bad BATCH: %v", err)
				return
			}
		} else {
			f, err := protocol.Decode(msg)
			if err != nil {
				p.t.Errorf("the client sent an undecodable message: %v", err)
				return
			}
			frames = []protocol.Frame{f}
		}
		in := inbound{batch: msg[0] == opBatch}
		var replies [][]byte
		for _, f := range frames {
			in.opcodes = append(in.opcodes, f.Opcode)
			if f.Opcode != protocol.RPCReq {
				continue
			}
			var req struct{ Params json.RawMessage }
			json.Unmarshal(f.Payload, &req)
			res, _ := protocol.Encode(protocol.RPCRes, f.CorrelationID, []byte(`{"result":`+string(req.Params)+`}`))
			replies = append(replies, res)
		}
		p.mu.Lock()
		p.messages = append(p.messages, in)
		p.mu.Unlock()
		switch {
		case len(replies) > 1 && batching:
			ws.WriteMessage(websocket.BinaryMessage, encodeBatch(p.t, replies))
		default:
			for _, r := range replies {
				ws.WriteMessage(websocket.BinaryMessage, r)
			}
		}
	}
}

func (p *batchPeer) received() []inbound {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.messages)
}

func TestBatchingWhenTheServerSelectsIt(t *testing.T) {
	for _, mode := range []struct{ name, options string }{
		{"in worker mode", `useWorker: true`},
		{"on the page thread", `useWorker: false`},
	} {
		t.Run(mode.name, func(t *testing.T) {
			p := startBatchPeer(t, "datasole.batch.v1")
			tb := openTab(t, p.hs.URL+"/harness.html")
			if got := eval[string](t, tb, `h.start({`+mode.options+`}).then((r) => (h.watch("k"), h.on("big"), r))`); got != "connected" {
				t.Fatalf("connect: %s", got)
			}
			// The BATCH sent on open: both items arrive, the second inflated.
			tb.waitFor(t, `h.states.k && h.states.k.n === 1 && h.events.length === 1`)
			if n := eval[int](t, tb, `h.events[0].data.length`); n != 1000 {
				t.Errorf("the compressed item's event carried %d characters, want 1000", n)
			}
			// Calls made in one task leave as one BATCH; the replies come back as one.
			got := eval[[]any](t, tb, `Promise.all([1, 2, "x".repeat(600)].map((v) => h.client.rpc("echo", v)))`)
			if len(got) != 3 || got[0] != float64(1) || got[1] != float64(2) || len(got[2].(string)) != 600 {
				t.Errorf("results: %v", got)
			}
			msgs := p.received()
			if len(msgs) != 1 || !msgs[0].batch || !slices.Equal(msgs[0].opcodes, []protocol.Opcode{1, 1, 1}) {
				t.Errorf("the server received %+v, want one BATCH of three RPC_REQs", msgs)
			}
			// A lone call goes out as a plain frame.
			eval[any](t, tb, `h.client.rpc("echo", 4)`)
			if msgs := p.received(); len(msgs) != 2 || msgs[1].batch {
				t.Errorf("the server received %+v, want a plain frame last", msgs)
			}
			p.mu.Lock()
			defer p.mu.Unlock()
			if o := p.offered; len(o) != 1 || !slices.Equal(o[0], []string{"datasole.v1", "datasole.batch.v1"}) {
				t.Errorf("offered subprotocols %v, want [datasole.v1 datasole.batch.v1]", o)
			}
		})
	}
}

func TestNoBatchingOnAPlainV1Connection(t *testing.T) {
	// A server that echoes the first offer, as the reference server does.
	p := startBatchPeer(t, "datasole.v1")
	tb := openTab(t, p.hs.URL+"/harness.html")
	if got := eval[string](t, tb, `h.start({useWorker: false}).then((r) => (h.watch("k"), r))`); got != "connected" {
		t.Fatalf("connect: %s", got)
	}
	tb.waitFor(t, `h.states.k && h.states.k.n === 1`)
	eval[any](t, tb, `Promise.all([1, 2, 3].map((v) => h.client.rpc("echo", v)))`)
	for _, m := range p.received() {
		if m.batch || len(m.opcodes) != 1 {
			t.Errorf("the client sent %+v on a v1 connection", m)
		}
	}
	if n := len(p.received()); n != 3 {
		t.Errorf("the server received %d messages, want 3", n)
	}
}

func TestATokenOfferedAsASubprotocolStaysOutOfTheURL(t *testing.T) {
	p := startBatchPeer(t, "datasole.batch.v1")
	tb := openTab(t, p.hs.URL+"/harness.html")
	if got := eval[string](t, tb, `h.start({useWorker: false, auth: {token: "s3cret.jwt-like_token", sendAs: "subprotocol"}})`); got != "connected" {
		t.Fatalf("connect: %s", got)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if want := []string{"datasole.v1", "datasole.batch.v1", "datasole.token.s3cret.jwt-like_token"}; len(p.offered) != 1 || !slices.Equal(p.offered[0], want) {
		t.Errorf("offered %v, want %v", p.offered, want)
	}
	if p.queries[0] != "" {
		t.Errorf("the URL carried a query: %q", p.queries[0])
	}
}

func TestAServerThatSelectsNoSubprotocolGetsPlainV1(t *testing.T) {
	// A v1 server that knows no subprotocol selects none: browsers fail that
	// handshake, so the client retries once offering nothing, and stays there.
	for _, mode := range []struct{ name, options string }{
		{"in worker mode", `useWorker: true`},
		{"on the page thread", `useWorker: false`},
	} {
		t.Run(mode.name, func(t *testing.T) {
			p := startBatchPeer(t)
			tb := openTab(t, p.hs.URL+"/harness.html")
			if got := eval[string](t, tb, `h.start({`+mode.options+`})`); got != "connected" {
				t.Fatalf("connect: %s", got)
			}
			eval[any](t, tb, `Promise.all([1, 2, 3].map((v) => h.client.rpc("echo", v)))`)
			eval[any](t, tb, `h.client.disconnect().then(() => h.client.connect())`) // a reconnect offers nothing again
			p.mu.Lock()
			defer p.mu.Unlock()
			want := [][]string{{"datasole.v1", "datasole.batch.v1"}, nil, nil}
			if !slices.EqualFunc(p.offered, want, func(a, b []string) bool { return slices.Equal(a, b) }) {
				t.Errorf("attempts offered %q, want %q", p.offered, want)
			}
			for _, m := range p.messages {
				if m.batch {
					t.Errorf("the client sent a BATCH on a plain v1 connection")
				}
			}
		})
	}
}
