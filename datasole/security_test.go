package datasole_test

// Regression tests for the attack review (issue "Safe by default"), one per
// finding handled in the core, each driving the real server over a socket
// the way the attack did. docs/security.md lists them by finding.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/client"
	"github.com/datasole/datasole-go/datasole/crdt"
	"github.com/datasole/datasole-go/datasole/protocol"
	"github.com/gorilla/websocket"
)

func byToken(r *http.Request) (*datasole.Principal, error) {
	return &datasole.Principal{UserID: r.URL.Query().Get("token")}, nil
}

// randomText is incompressible-ish text of n bytes.
func randomText(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(rand.IntN(26))
	}
	return string(b)
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// Finding 1: 40 lww-map sets of 900 KB values grew the heap by 91 MiB, and
// two 600 KB sets poisoned the key for everyone.
func TestFinding1CRDTSizeBlowUpIsRefused(t *testing.T) {
	ts := crdtServer(t, datasole.Options{RateLimit: datasole.RateLimit{Disabled: true}})
	attacker := dialRaw(t, ts.url, nil)
	before := heapInUse()
	big := randomText(900 << 10)
	for i := range 40 {
		attacker.sendFrame(protocol.CRDTOp, uint32(i+1), fmt.Sprintf(`{"key":"m","op":{"type":"lww-map","nodeId":"x","timestamp":%d,"op":"set","key":"f%d","value":%q}}`, i+1, i, big))
		f := attacker.next(protocol.Error)
		if body := decodeJSON[protocol.ErrorBody](t, f.Payload); body.Code != "crdt-too-large" {
			t.Fatalf("set %d: %s, want crdt-too-large", i, f.Payload)
		}
	}
	if grown := int64(heapInUse()) - int64(before); grown > 16<<20 {
		t.Fatalf("the heap grew by %d MiB", grown>>20)
	}
	if st := stateOf(t, ts.ds, "m"); string(st.Value) != "{}" {
		t.Fatalf("refused ops changed the map: %s", st.Value)
	}
	// The key is not poisoned: an honest op applies and a newcomer gets a
	// snapshot of the state.
	honest := dialRaw(t, ts.url, nil)
	honest.sendFrame(protocol.CRDTOp, 99, `{"key":"m","op":{"type":"lww-map","nodeId":"h","timestamp":5,"op":"set","key":"color","value":"blue"}}`)
	eventually(t, "the honest op", func() bool { return strings.Contains(string(stateOf(t, ts.ds, "m").Value), "blue") })
	newcomer := dialRaw(t, ts.url, nil)
	for {
		f := newcomer.next(protocol.CRDTState)
		var body protocol.CRDTStateBody
		json.Unmarshal(f.Payload, &body)
		if body.Key == "m" {
			if !bytes.Contains(body.State, []byte("blue")) {
				t.Fatalf("a newcomer's snapshot %s lacks the honest value", body.State)
			}
			break
		}
	}
}

// Finding 1 (counters): 8,000 client-chosen node ids blew up a counter.
func TestFinding1CounterNodeFloodIsRefused(t *testing.T) {
	ts := crdtServer(t, datasole.Options{RateLimit: datasole.RateLimit{Disabled: true}})
	r := dialRaw(t, ts.url, nil)
	refused := 0
	for i := range 2000 {
		r.sendFrame(protocol.CRDTOp, uint32(i+1), fmt.Sprintf(`{"key":"votes","op":{"type":"pn-counter","nodeId":"n%d","timestamp":1,"op":"increment","seq":1}}`, i))
	}
	r.sendFrame(protocol.Ping, 1<<30, "null")
	for {
		_, msg, err := r.ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		f, _ := protocol.Decode(msg)
		if f.Opcode == protocol.Pong {
			break
		}
		if f.Opcode == protocol.Error && strings.Contains(string(f.Payload), "crdt-too-large") {
			refused++
		}
	}
	st := stateOf(t, ts.ds, "votes")
	var v struct {
		Metadata struct {
			Vector struct{ Increments map[string]any }
		}
	}
	json.Unmarshal(mustJSON(t, st), &v)
	if n := len(v.Metadata.Vector.Increments); n > 1024 || refused == 0 {
		t.Fatalf("the counter holds %d writers, %d ops refused: want at most 1,024 writers", n, refused)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Finding 3: an op naming a victim's node id with seq 2^53 made every later
// increment of the victim a silent duplicate.
func TestFinding3CounterNodeIDsBelongToTheirWriter(t *testing.T) {
	ts := crdtServer(t, datasole.Options{Auth: byToken})
	ctx := context.Background()
	victim := dial(t, ts.url, client.Options{Token: "victim"})
	k, err := victim.Counter("votes")
	if err != nil {
		t.Fatal(err)
	}
	k.Increment(ctx, 1)
	eventually(t, "the victim's first increment", func() bool { return victim.Pending() == 0 && string(stateOf(t, ts.ds, "votes").Value) == "1" })
	// The attacker reads the victim's node id from CRDT_STATE and writes
	// under it.
	var st struct {
		Metadata struct {
			Vector struct{ Increments map[string]json.RawMessage }
		}
	}
	json.Unmarshal(mustJSON(t, stateOf(t, ts.ds, "votes")), &st)
	var victimNode string
	for node := range st.Metadata.Vector.Increments {
		if !strings.HasPrefix(node, "server-") {
			victimNode = node
		}
	}
	mallory := dialRawPath(t, ts.url, "/__ds?token=mallory")
	mallory.sendFrame(protocol.CRDTOp, 7, fmt.Sprintf(`{"key":"votes","op":{"type":"pn-counter","nodeId":%q,"timestamp":1,"op":"increment","seq":9007199254740992}}`, victimNode))
	if body := decodeJSON[protocol.ErrorBody](t, mallory.next(protocol.Error).Payload); body.Code != "crdt-node-owned" && body.Code != "crdt-invalid" {
		t.Fatalf("the impersonating op got %+v", body)
	}
	k.Increment(ctx, 1)
	k.Increment(ctx, 1)
	eventually(t, "the victim's later increments counted", func() bool { return string(stateOf(t, ts.ds, "votes").Value) == "3" })
}

// Finding 5: the documented v1 pattern (CRDT ops sent as events, applied
// with ApplyCRDT) let mallory write into alice's scoped key.
func TestFinding5ApplyCRDTKeepsTheSendersRights(t *testing.T) {
	var applied = make(chan error, 4)
	ts := startServer(t, datasole.Options{Auth: byToken}, func(ds *datasole.Server) {
		if _, err := ds.RegisterCRDTType("cart:alice", datasole.ForUser("alice"), crdt.TypeLWWMap); err != nil {
			t.Fatal(err)
		}
		ds.On("crdt:op", func(c *datasole.Context, data json.RawMessage) {
			var m struct {
				Key string  `json:"key"`
				Op  crdt.Op `json:"op"`
			}
			json.Unmarshal(data, &m)
			applied <- ds.ApplyCRDT(c, m.Key, m.Op) // as docs/crdt.md shows it
		})
	})
	ctx := context.Background()
	op := map[string]any{"key": "cart:alice", "op": map[string]any{"type": "lww-map", "nodeId": "m", "timestamp": 1, "op": "set", "key": "item", "value": "stolen"}}
	mallory := dial(t, ts.url, client.Options{Token: "mallory"})
	mallory.Emit(ctx, "crdt:op", op)
	if err := <-applied; !errors.Is(err, datasole.ErrCRDTForbidden) {
		t.Fatalf("mallory's op: %v, want ErrCRDTForbidden", err)
	}
	if st := stateOf(t, ts.ds, "cart:alice"); string(st.Value) != "{}" {
		t.Fatalf("mallory wrote into alice's cart: %s", st.Value)
	}
	alice := dial(t, ts.url, client.Options{Token: "alice"})
	op["op"].(map[string]any)["value"] = "mine"
	alice.Emit(ctx, "crdt:op", op)
	if err := <-applied; err != nil {
		t.Fatalf("alice's own op: %v", err)
	}
}

// Finding 7: with no per-IP cap one client could take every slot, and an
// IPv6 client rotated through its /64.
func TestFinding7PerIPCapsCountIPv6ByPrefix(t *testing.T) {
	if o := mustServer(t, datasole.Options{}).Options(); o.MaxConnectionsPerIP <= 0 {
		t.Fatalf("MaxConnectionsPerIP defaults to %d: no cap", o.MaxConnectionsPerIP)
	}
	ts := startServer(t, datasole.Options{MaxConnectionsPerIP: 2, TrustedProxies: []string{"127.0.0.1"}}, nil)
	dialFrom := func(ip string) (int, error) {
		h := http.Header{"X-Forwarded-For": {ip}}
		ws, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(ts.url, "http")+"/__ds", h)
		if err == nil {
			t.Cleanup(func() { ws.Close() })
			return http.StatusSwitchingProtocols, nil
		}
		if resp != nil {
			return resp.StatusCode, err
		}
		return 0, err
	}
	for i, c := range []struct {
		ip   string
		want int
	}{
		{"2001:db8:1:2::1", 101},
		{"2001:db8:1:2::ffff", 101},     // the same /64
		{"2001:db8:1:2:abcd::7", 429},   // the same /64 again: over the cap
		{"2001:db8:1:3::1", 101},        // another /64
		{"198.51.100.7", 101},           // IPv4 counts by address
		{"garbage, 198.51.100.7", 101},  // the last hop names the client
		{"198.51.100.7, 10.9.9.9", 101}, // an untrusted last hop is the client
	} {
		got, err := dialFrom(c.ip)
		if got != c.want {
			t.Fatalf("connection %d from %s: status %d (%v), want %d", i, c.ip, got, err, c.want)
		}
	}
}

func mustServer(t *testing.T, o datasole.Options) *datasole.Server {
	t.Helper()
	ds, err := datasole.New(quietOptions(o))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ds.Close(context.Background()) })
	return ds
}

// Finding 12: anonymous user ids were predictable and shared the namespace
// of real user ids.
func TestFinding12AnonymousIDsHaveTheirOwnNamespace(t *testing.T) {
	ts := startServer(t, datasole.Options{Auth: func(r *http.Request) (*datasole.Principal, error) {
		if u := r.URL.Query().Get("token"); u != "" {
			return &datasole.Principal{UserID: u}, nil
		}
		return &datasole.Principal{}, nil
	}}, func(ds *datasole.Server) {
		ds.HandleRPC("me", func(c *datasole.Context, _ json.RawMessage) (any, error) { return c.UserID(), nil })
	})
	anon := dial(t, ts.url, client.Options{})
	var me string
	if err := anon.Call(context.Background(), "me", nil, &me); err != nil || !strings.HasPrefix(me, "$anon:") {
		t.Fatalf("an anonymous user id is %q (%v), want the $anon: namespace", me, err)
	}
	_, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(ts.url, "http")+"/__ds?token="+me, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("an auth handler producing %q was admitted: %v", me, err)
	}
}

// Finding 13: lww-map values skipped the checks state values get.
func TestFinding13CRDTValuesAreCheckedLikeState(t *testing.T) {
	ts := crdtServer(t, datasole.Options{})
	r := dialRaw(t, ts.url, nil)
	r.sendFrame(protocol.CRDTOp, 3, `{"key":"m","op":{"type":"lww-map","nodeId":"x","timestamp":1,"op":"set","key":"f","value":{"__proto__":{"admin":true}}}}`)
	if body := decodeJSON[protocol.ErrorBody](t, r.next(protocol.Error).Payload); body.Code != "crdt-invalid" {
		t.Fatalf("got %+v", body)
	}
	if st := stateOf(t, ts.ds, "m"); string(st.Value) != "{}" {
		t.Fatalf("a forbidden member was stored: %s", st.Value)
	}
}
