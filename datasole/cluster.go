package datasole

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/datasole/datasole-go/datasole/backend"
	"github.com/datasole/datasole-go/datasole/crdt"
	"github.com/datasole/datasole-go/datasole/protocol"
	"github.com/datasole/datasole-go/datasole/session"
)

// busTimeout bounds one publication or store operation of the cluster.
const busTimeout = 5 * time.Second

// startCluster subscribes to the bus, starts the publisher and loads what
// this node serves from the store: the global scope's state and the
// registered CRDTs. The subscription comes first, so that nothing changed
// during the load is missed. Called by Start.
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
	s.pub.start()
	gl := s.scopes.global
	s.ensureLoaded(ctx, gl)
	gl.mu.Lock()
	loaded := gl.loaded
	gl.mu.Unlock()
	if !loaded {
		return ctx.Err()
	}
	return s.loadCRDTs(ctx)
}

func (s *Server) backendError(op string, err error) {
	s.obs.BackendError(op)
	s.logSampled("datasole: backend operation failed", "op", op, "err", err)
}

func (s *Server) onBus(raw []byte) {
	if sm, err := backend.DecodeStreamEnvelope(raw); err == nil {
		s.onHistory(sm)
		return
	}
	msgs, err := decodeBus(raw)
	if err != nil {
		s.backendError("decode", err)
		return
	}
	now := time.Now().UnixNano()
	for _, m := range msgs {
		if m.origin == s.nodeID {
			continue // delivered locally when sent
		}
		switch s.peers.check(m.origin, m.seq, now) {
		case seqDuplicate:
			continue
		case seqGap:
			go s.onBusGap() // messages of that node were lost: repair from the store
		}
		s.obs.BusLag(time.Duration(now - m.sentAt))
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
		case busGap:
			go s.onBusGap() // it reads the store: not on the bus goroutine
		case busClose:
			s.closeUserLocal(m.target.id, int(m.version), m.key)
		case busServer:
			s.serverEvents.deliverRemote(m)
		}
	}
}

// peerSeqs remembers the last sequence number seen from each node, to drop
// duplicates and notice lost messages. Nodes gone quiet for an hour are
// forgotten (node ids are new on every start), so it stays small.
type peerSeqs struct {
	mu   sync.Mutex
	last map[string]peerSeq
}

type peerSeq struct {
	seq  uint64
	seen int64 // unix nanoseconds
}

type seqVerdict uint8

const (
	seqNext seqVerdict = iota
	seqDuplicate
	seqGap
)

// seen records seq of origin and reports whether it was seen before; it
// does not look for gaps (kept events of a node are a subsequence of its
// messages).
func (p *peerSeqs) seen(origin string, seq uint64) bool {
	if seq == 0 {
		return false
	}
	key := origin + "/history"
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last == nil {
		p.last = make(map[string]peerSeq)
	}
	prev, known := p.last[key]
	if known && seq <= prev.seq {
		return true
	}
	p.last[key] = peerSeq{seq, time.Now().UnixNano()}
	return false
}

func (p *peerSeqs) check(origin string, seq uint64, now int64) seqVerdict {
	if seq == 0 {
		return seqNext
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last == nil {
		p.last = make(map[string]peerSeq)
	}
	prev, known := p.last[origin]
	if known && seq <= prev.seq {
		return seqDuplicate
	}
	p.last[origin] = peerSeq{seq, now}
	if len(p.last) > 64 {
		for o, ps := range p.last {
			if now-ps.seen > int64(time.Hour) {
				delete(p.last, o)
			}
		}
	}
	if known && seq > prev.seq+1 {
		return seqGap
	}
	return seqNext
}

// applyRemoteState updates this node's copy of a key changed on another
// node and delivers the change to local connections: the origin's patch
// when local clients hold the version it applies to, else a snapshot.
// Versions come from the store, so an older message arriving late is
// skipped. Scopes this node does not keep are ignored: it has nobody to
// deliver to, and reads them from the store when a member arrives.
func (s *Server) applyRemoteState(m *busMsg) {
	sp := s.scopes.get(Scope{kind: m.target.kind, id: m.target.id})
	if sp == nil {
		return
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	e := sp.entries[m.key]
	if m.value == nil { // deleted
		if e == nil {
			return
		}
		if e.timer != nil {
			e.timer.Stop()
			e.timer = nil
		}
		had := e.sent != nil || e.value != nil
		delete(sp.entries, m.key)
		if had && !sp.evicted {
			s.deliver(m.target, m.op, m.msg)
		}
		return
	}
	if e == nil {
		e = s.newEntryLocked(sp, m.key)
	}
	if e.known && m.version <= e.version {
		return // stale: a newer version is already here
	}
	value := append(json.RawMessage(nil), m.value...)
	if m.op == protocol.StatePatch && e.known && len(e.pending) == 0 && m.base == e.sentVersion {
		if e.timer != nil {
			e.timer.Stop()
			e.timer = nil
		}
		e.value, e.version, e.known = value, m.version, true
		e.sent, e.sentVersion, e.snap = value, m.version, nil
		if !sp.evicted {
			s.deliver(m.target, m.op, m.msg)
		}
		return
	}
	s.adoptLocked(sp, e, value, m.version)
}

// applyRemoteCRDT merges another node's state and sends ours to the local
// connections.
func (s *Server) applyRemoteCRDT(m *busMsg) {
	e := s.crdtEntry(m.key)
	if e == nil {
		return // not registered here
	}
	e.mu.Lock()
	err := crdt.MergeRecord(e.c, e.owners, m.value)
	e.changedLocked(false)
	e.mu.Unlock()
	if err != nil {
		s.logSampled("datasole: remote crdt state refused", "key", m.key, "err", err)
		return
	}
	s.broadcastCRDT(e)
}

// onBusGap runs when the bus may have lost messages: reload every scope and
// CRDT this node keeps from the store and send what changed.
func (s *Server) onBusGap() {
	s.obs.BusGap()
	s.reloadScopes()
	for _, e := range s.crdts.all() {
		ctx, cancel := context.WithTimeout(s.ctx, busTimeout)
		if err := s.loadCRDT(ctx, e); err != nil {
			s.backendError("get", err)
		}
		cancel()
	}
}
