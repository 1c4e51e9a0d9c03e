package datasole

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/datasole/datasole-go/datasole/crdt"
	"github.com/datasole/datasole-go/datasole/protocol"
	"github.com/datasole/datasole-go/datasole/session"
)

// The cluster bus carries every server push once, already encoded, with its
// target: each node delivers it to its own connections. A node skips its own
// messages (it delivered them locally when it sent them), so nothing is
// applied or delivered twice. State messages also carry the new value and
// version, so every node's cache can serve snapshots; CRDT messages carry the
// sender's state, which receivers merge (merging is idempotent).

const busChannel = "bus"

type busKind uint8

const (
	busFrame   busKind = iota + 1 // a push: deliver msg to target
	busState                      // a state change: update the cache, deliver msg
	busCRDT                       // a CRDT state: merge it, deliver our state
	busSession                    // a session change: update the user's copy here
)

// busMsg is one message on the cluster bus.
type busMsg struct {
	kind    busKind
	origin  string
	sentAt  int64 // unix nanoseconds, for the lag metric
	target  Target
	op      protocol.Opcode
	msg     []byte // encoded frame (busFrame, busState)
	key     string
	version uint64
	value   []byte // state value (nil: deleted) or CRDT state JSON
}

func (m *busMsg) encode() []byte {
	b := make([]byte, 0, 64+len(m.msg)+len(m.value)+len(m.key))
	b = append(b, 1, byte(m.kind)) // format version, kind
	b = appendBytes(b, []byte(m.origin))
	b = binary.BigEndian.AppendUint64(b, uint64(m.sentAt))
	b = append(b, byte(m.target.kind))
	b = appendBytes(b, []byte(m.target.id))
	b = append(b, byte(m.op))
	b = appendBytes(b, m.msg)
	b = appendBytes(b, []byte(m.key))
	b = binary.AppendUvarint(b, m.version)
	if m.value == nil {
		return append(b, 0)
	}
	b = append(b, 1)
	return appendBytes(b, m.value)
}

func appendBytes(b, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

var errBadBusMsg = errors.New("datasole: malformed bus message")

func decodeBusMsg(b []byte) (*busMsg, error) {
	r := busReader{b: b}
	if r.byte() != 1 {
		return nil, errBadBusMsg
	}
	m := &busMsg{kind: busKind(r.byte())}
	m.origin = string(r.bytes())
	m.sentAt = int64(r.uint64())
	m.target.kind = targetKind(r.byte())
	m.target.id = string(r.bytes())
	m.op = protocol.Opcode(r.byte())
	m.msg = r.bytes()
	m.key = string(r.bytes())
	m.version = r.uvarint()
	if r.byte() == 1 {
		m.value = r.bytes()
	}
	if r.err {
		return nil, errBadBusMsg
	}
	return m, nil
}

type busReader struct {
	b   []byte
	err bool
}

func (r *busReader) byte() byte {
	if len(r.b) < 1 {
		r.err = true
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *busReader) uint64() uint64 {
	if len(r.b) < 8 {
		r.err = true
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *busReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *busReader) bytes() []byte {
	n := r.uvarint()
	if r.err || n > uint64(len(r.b)) {
		r.err = true
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// busTimeout bounds one publication or store operation of the cluster.
const busTimeout = 5 * time.Second

// startCluster subscribes to the bus and loads the stored state keys, so
// this node can serve snapshots at once. Called by Start when a backend is set.
func (s *Server) startCluster(ctx context.Context) error {
	b := s.opts.Backend
	cancelSub, err := b.Subscribe(ctx, busChannel, s.onBus)
	if err != nil {
		return err
	}
	s.busCancel = cancelSub
	if g, ok := b.(backend.GapNotifier); ok {
		g.OnGap(s.onBusGap)
	}
	keys, err := b.Keys(ctx, "state:")
	if err != nil {
		return err
	}
	for _, k := range keys {
		id, ok := parseStoreKey(k)
		if !ok {
			continue
		}
		s.reloadState(s.live.entry(id, true), false)
	}
	return nil
}

// parseStoreKey reverses storeKey.
func parseStoreKey(k string) (stateID, bool) {
	rest, ok := strings.CutPrefix(k, "state:")
	if !ok || len(rest) < 2 || rest[1] != ':' {
		return stateID{}, false
	}
	kind, rest := rest[0], rest[2:]
	if kind == 'g' {
		return stateID{Global(), rest}, true
	}
	esc, key, ok := strings.Cut(rest, ":")
	owner, err := url.QueryUnescape(esc)
	if !ok || err != nil {
		return stateID{}, false
	}
	switch kind {
	case 'u':
		return stateID{ForUser(owner), key}, true
	case 't':
		return stateID{ForTag(owner), key}, true
	}
	return stateID{}, false
}

// publish sends m on the bus. Failures are counted and logged; the other
// nodes' clients repair what they missed from versioned snapshots.
func (s *Server) publish(m *busMsg) {
	if s.opts.Backend == nil {
		return
	}
	m.origin = s.nodeID
	m.sentAt = time.Now().UnixNano()
	ctx, cancel := context.WithTimeout(context.Background(), busTimeout)
	defer cancel()
	if err := s.opts.Backend.Publish(ctx, busChannel, m.encode()); err != nil {
		s.backendError("publish", err)
	}
}

func (s *Server) backendError(op string, err error) {
	s.obs.BackendError(op)
	s.logSampled("datasole: backend operation failed", "op", op, "err", err)
}

func (s *Server) onBus(raw []byte) {
	m, err := decodeBusMsg(raw)
	if err != nil {
		s.backendError("decode", err)
		return
	}
	if m.origin == s.nodeID {
		return // delivered locally when sent
	}
	s.obs.BusLag(time.Duration(time.Now().UnixNano() - m.sentAt))
	switch m.kind {
	case busFrame:
		s.deliver(m.target, m.op, m.msg)
	case busState:
		s.applyRemoteState(m)
	case busCRDT:
		s.applyRemoteCRDT(m)
	case busSession:
		if s.sessions != nil {
			s.sessions.ApplyRemote(session.Change{UserID: m.target.id, Key: m.key, Value: m.value, Remote: true})
		}
	}
}

// applyRemoteState updates this node's copy of a key changed on another
// node and delivers the change to local connections. Versions come from
// the store, so an older message arriving late is skipped.
func (s *Server) applyRemoteState(m *busMsg) {
	sc := Scope{kind: m.target.kind, id: m.target.id}
	s.syncMu.RLock()
	defer s.syncMu.RUnlock()
	e := s.live.entry(stateID{sc, m.key}, true)
	e.mu.Lock()
	defer e.mu.Unlock()
	if m.value == nil { // deleted
		if e.value == nil && e.sent == nil {
			s.live.drop(e)
			return
		}
		e.value, e.sent, e.pending, e.version, e.sentVersion = nil, nil, nil, 0, 0
		s.live.drop(e)
		s.deliver(m.target, m.op, m.msg)
		return
	}
	if m.version <= e.version {
		return // stale: a newer version is already here
	}
	e.value = append(json.RawMessage(nil), m.value...)
	e.version = m.version
	e.pending = nil
	e.sent, e.sentVersion = e.value, e.version
	s.deliver(m.target, m.op, m.msg)
}

// applyRemoteCRDT merges another node's state and sends ours.
func (s *Server) applyRemoteCRDT(m *busMsg) {
	e := s.crdtEntry(m.key)
	if e == nil {
		return // not registered here
	}
	var st crdt.State
	if err := json.Unmarshal(m.value, &st); err != nil {
		s.backendError("decode", err)
		return
	}
	s.syncMu.RLock()
	defer s.syncMu.RUnlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.c.Merge(st); err != nil {
		s.logSampled("datasole: remote crdt state refused", "key", m.key, "err", err)
		return
	}
	s.push(e.scope.target(), protocol.CRDTState, crdtStatePayload(e))
}

// onBusGap runs when the backend may have lost bus messages: reload every
// cached state key from the store and send fresh snapshots.
func (s *Server) onBusGap() {
	s.obs.BusGap()
	for _, e := range s.live.all() {
		s.reloadState(e, true)
	}
	s.crdts.mu.Lock()
	var crdts []*crdtEntry
	for _, e := range s.crdts.byKey {
		crdts = append(crdts, e)
	}
	s.crdts.mu.Unlock()
	for _, e := range crdts {
		s.loadCRDT(e)
	}
}

// storeKey is where a state key lives in the backend.
func storeKey(id stateID) string {
	switch id.scope.kind {
	case targetUser:
		return "state:u:" + url.QueryEscape(id.scope.id) + ":" + id.key
	case targetTag:
		return "state:t:" + url.QueryEscape(id.scope.id) + ":" + id.key
	}
	return "state:g:" + id.key
}

// refreshFromStore reloads a key this node may have missed, creating its
// cache entry only when the store has the key (resync requests name keys
// freely; they must not grow memory).
func (s *Server) refreshFromStore(id stateID) {
	if e := s.live.entry(id, false); e != nil {
		s.reloadState(e, false)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), busTimeout)
	defer cancel()
	if _, _, err := s.opts.Backend.Get(ctx, storeKey(id)); err == nil {
		s.reloadState(s.live.entry(id, true), false)
	}
}

// reloadState refreshes e from the store; with announce it also sends a
// snapshot to the key's local connections when the value moved.
func (s *Server) reloadState(e *stateEntry, announce bool) {
	ctx, cancel := context.WithTimeout(context.Background(), busTimeout)
	defer cancel()
	e.mu.Lock()
	before := e.version
	e.mu.Unlock()
	val, ver, err := s.opts.Backend.Get(ctx, storeKey(e.id))
	if err != nil && !errors.Is(err, backend.ErrNotFound) {
		s.backendError("get", err)
		return
	}
	s.syncMu.RLock()
	defer s.syncMu.RUnlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.version != before {
		return // changed while we read: what this node has now is newer than our read
	}
	if ver == e.sentVersion && len(e.pending) == 0 {
		return
	}
	if errors.Is(err, backend.ErrNotFound) {
		val, ver = nil, 0
	}
	e.value, e.version, e.pending = val, ver, nil
	e.sent, e.sentVersion = val, ver
	if announce {
		data := json.RawMessage(val)
		if data == nil {
			data = json.RawMessage("null")
		}
		s.push(e.id.scope.target(), protocol.StateSnapshot, snapshotPayload(e.id.key, data, ver))
	}
}

// crdtStoreKey is where a CRDT's state lives in the backend.
func crdtStoreKey(key string) string { return "crdt:" + key }

// loadCRDT merges the stored state of e into it (restore on start, repair
// after a gap).
func (s *Server) loadCRDT(e *crdtEntry) {
	if s.opts.Backend == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), busTimeout)
	defer cancel()
	raw, _, err := s.opts.Backend.Get(ctx, crdtStoreKey(e.key))
	if errors.Is(err, backend.ErrNotFound) {
		return
	}
	if err != nil {
		s.backendError("get", err)
		return
	}
	var st crdt.State
	if err := json.Unmarshal(raw, &st); err != nil {
		s.backendError("decode", err)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.c.Merge(st); err != nil {
		s.log.Warn("datasole: stored crdt state refused", "key", e.key, "err", err)
	}
}

// saveCRDT writes e's state to the store without losing what other nodes
// wrote meanwhile: merge the stored state in, then compare-and-set.
// e.mu is held.
func (s *Server) saveCRDT(e *crdtEntry) {
	ctx, cancel := context.WithTimeout(context.Background(), busTimeout)
	defer cancel()
	b := s.opts.Backend
	for range 16 {
		raw, ver, err := b.Get(ctx, crdtStoreKey(e.key))
		if err != nil && !errors.Is(err, backend.ErrNotFound) {
			s.backendError("get", err)
			return
		}
		if err == nil {
			var st crdt.State
			if json.Unmarshal(raw, &st) == nil {
				e.c.Merge(st)
			}
		}
		out, _ := json.Marshal(e.c.State())
		_, err = b.CompareAndSet(ctx, crdtStoreKey(e.key), out, ver, 0)
		if err == nil {
			return
		}
		if !errors.Is(err, backend.ErrConflict) {
			s.backendError("cas", err)
			return
		}
	}
	s.backendError("cas", errors.New("too many conflicts"))
}
