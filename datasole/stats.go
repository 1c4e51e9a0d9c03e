package datasole

import (
	"sync"
	"sync/atomic"
	"time"
)

// Stats are the server's in-process counters. Read them with Snapshot; the
// Prometheus and OpenTelemetry exporters read the same numbers.
type Stats struct {
	ConnectionsOpened  atomic.Uint64
	ConnectionsClosed  atomic.Uint64
	FramesIn           atomic.Uint64
	BytesIn            atomic.Uint64
	FramesOut          atomic.Uint64
	BytesOut           atomic.Uint64
	FramesIgnored      atomic.Uint64 // well-formed frames v1 servers ignore
	BadFrames          atomic.Uint64 // malformed frames and messages
	RPCCalls           atomic.Uint64
	RPCErrors          atomic.Uint64
	EventsIn           atomic.Uint64
	EventsUnhandled    atomic.Uint64
	FanoutDeliveries   atomic.Uint64
	SendDrops          atomic.Uint64
	SlowConsumerCloses atomic.Uint64
	StateChanges       atomic.Uint64 // versions created
	StatePatches       atomic.Uint64 // STATE_PATCH frames fanned out
	CRDTOps            atomic.Uint64 // CRDT operations applied
	BackendErrors      atomic.Uint64
	RateLimited        atomic.Uint64 // frames refused by the rate limiter
	BusGaps            atomic.Uint64 // times the bus may have lost messages

	mu         sync.Mutex
	rejections map[string]uint64
}

func (st *Stats) countRejection(reason string) {
	st.mu.Lock()
	if st.rejections == nil {
		st.rejections = make(map[string]uint64)
	}
	st.rejections[reason]++
	st.mu.Unlock()
}

// Snapshot is a point-in-time copy of the counters, ready for JSON.
type Snapshot struct {
	Connections        int               `json:"connections"`
	ConnectionsOpened  uint64            `json:"connectionsOpened"`
	ConnectionsClosed  uint64            `json:"connectionsClosed"`
	FramesIn           uint64            `json:"framesIn"`
	BytesIn            uint64            `json:"bytesIn"`
	FramesOut          uint64            `json:"framesOut"`
	BytesOut           uint64            `json:"bytesOut"`
	FramesIgnored      uint64            `json:"framesIgnored"`
	BadFrames          uint64            `json:"badFrames"`
	RPCCalls           uint64            `json:"rpcCalls"`
	RPCErrors          uint64            `json:"rpcErrors"`
	EventsIn           uint64            `json:"eventsIn"`
	EventsUnhandled    uint64            `json:"eventsUnhandled"`
	FanoutDeliveries   uint64            `json:"fanoutDeliveries"`
	SendDrops          uint64            `json:"sendDrops"`
	SlowConsumerCloses uint64            `json:"slowConsumerCloses"`
	StateChanges       uint64            `json:"stateChanges"`
	StatePatches       uint64            `json:"statePatches"`
	CRDTOps            uint64            `json:"crdtOps"`
	BackendErrors      uint64            `json:"backendErrors"`
	RateLimited        uint64            `json:"rateLimited"`
	BusGaps            uint64            `json:"busGaps"`
	Rejections         map[string]uint64 `json:"rejections"`
	At                 time.Time         `json:"at"`
}

// Snapshot returns the current counters.
func (s *Server) Snapshot() Snapshot {
	st := &s.stats
	snap := Snapshot{
		Connections:        s.hub.count(),
		ConnectionsOpened:  st.ConnectionsOpened.Load(),
		ConnectionsClosed:  st.ConnectionsClosed.Load(),
		FramesIn:           st.FramesIn.Load(),
		BytesIn:            st.BytesIn.Load(),
		FramesOut:          st.FramesOut.Load(),
		BytesOut:           st.BytesOut.Load(),
		FramesIgnored:      st.FramesIgnored.Load(),
		BadFrames:          st.BadFrames.Load(),
		RPCCalls:           st.RPCCalls.Load(),
		RPCErrors:          st.RPCErrors.Load(),
		EventsIn:           st.EventsIn.Load(),
		EventsUnhandled:    st.EventsUnhandled.Load(),
		FanoutDeliveries:   st.FanoutDeliveries.Load(),
		SendDrops:          st.SendDrops.Load(),
		SlowConsumerCloses: st.SlowConsumerCloses.Load(),
		StateChanges:       st.StateChanges.Load(),
		StatePatches:       st.StatePatches.Load(),
		CRDTOps:            st.CRDTOps.Load(),
		BackendErrors:      st.BackendErrors.Load(),
		RateLimited:        st.RateLimited.Load(),
		BusGaps:            st.BusGaps.Load(),
		Rejections:         map[string]uint64{},
		At:                 time.Now(),
	}
	st.mu.Lock()
	for k, v := range st.rejections {
		snap.Rejections[k] = v
	}
	st.mu.Unlock()
	return snap
}

// logSampled logs bad input at most once per second, so a flood of garbage
// cannot flood the logs.
func (s *Server) logSampled(msg string, args ...any) {
	now := time.Now().UnixNano()
	last := s.lastSampled.Load()
	if now-last < int64(time.Second) || !s.lastSampled.CompareAndSwap(last, now) {
		return
	}
	s.log.Warn(msg, args...)
}
