package datasole

import (
	"context"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/datasole/datasole-go/datasole/labelset"
	"github.com/datasole/datasole-go/datasole/protocol"
)

// counters is the built-in Observer behind Snapshot: every measurement is
// made once, through Server.obs, and lands both here and in the application's
// Observer (Prometheus, OpenTelemetry, …), so the two never disagree.
type counters struct {
	connectionsOpened  atomic.Uint64
	connectionsClosed  atomic.Uint64
	framesIn           atomic.Uint64
	bytesIn            atomic.Uint64
	framesOut          atomic.Uint64
	bytesOut           atomic.Uint64
	framesIgnored      atomic.Uint64
	badFrames          atomic.Uint64
	rateLimited        atomic.Uint64
	rpcCalls           atomic.Uint64
	rpcErrors          atomic.Uint64
	rpcRefused         atomic.Uint64
	eventsIn           atomic.Uint64
	eventsUnhandled    atomic.Uint64
	fanoutDeliveries   atomic.Uint64
	statePatches       atomic.Uint64
	sendDrops          atomic.Uint64
	slowConsumerCloses atomic.Uint64
	stateChanges       atomic.Uint64
	crdtOps            atomic.Uint64
	backendErrors      atomic.Uint64
	busGaps            atomic.Uint64
	historyAppends     atomic.Uint64
	recoveries         atomic.Uint64
	recoveriesFailed   atomic.Uint64
	presenceEntries    atomic.Int64
	exportErrors       atomic.Uint64 // failed Exporter calls (exporter.go)

	started time.Time // when the server was created

	closedBy   *labelset.Set[*atomic.Uint64] // closes by reason
	closeCodes *labelset.Set[*atomic.Uint64] // closes by code
	rejections *labelset.Set[*atomic.Uint64] // refused upgrades by reason
}

// maxLabels bounds the distinct reasons and codes counted one by one; the
// rest are counted as "other" (close codes come from peers).
const maxLabels = 64

func newCounters() *counters {
	mk := func(string) *atomic.Uint64 { return new(atomic.Uint64) }
	return &counters{
		started:    time.Now(),
		closedBy:   labelset.New(maxLabels, mk),
		closeCodes: labelset.New(maxLabels, mk),
		rejections: labelset.New(maxLabels, mk),
	}
}

func (c *counters) ConnOpened() { c.connectionsOpened.Add(1) }
func (c *counters) ConnClosed(reason string, code int) {
	c.connectionsClosed.Add(1)
	if reason == "slow-consumer" {
		c.slowConsumerCloses.Add(1)
	}
	c.closedBy.Get(reason, true).Add(1)
	c.closeCodes.Get(strconv.Itoa(code), true).Add(1)
}
func (c *counters) UpgradeRejected(reason string) { c.rejections.Get(reason, true).Add(1) }
func (c *counters) FrameIn(_ protocol.Opcode, n int) {
	c.framesIn.Add(1)
	c.bytesIn.Add(uint64(n))
}
func (c *counters) FrameOut(_ protocol.Opcode, n int) {
	c.framesOut.Add(1)
	c.bytesOut.Add(uint64(n))
}
func (c *counters) FrameRefused(reason string) {
	if reason == "rate-limited" {
		c.rateLimited.Add(1)
		return
	}
	c.badFrames.Add(1)
}
func (c *counters) FrameIgnored(protocol.Opcode) { c.framesIgnored.Add(1) }
func (c *counters) EventIn(handled bool) {
	c.eventsIn.Add(1)
	if !handled {
		c.eventsUnhandled.Add(1)
	}
}
func (c *counters) Fanout(op protocol.Opcode, n int) {
	c.fanoutDeliveries.Add(uint64(n))
	if op == protocol.StatePatch {
		c.statePatches.Add(1)
	}
}
func (c *counters) SendDropped() { c.sendDrops.Add(1) }
func (c *counters) StartRPC(ctx context.Context, _ string) (context.Context, func(string)) {
	c.rpcCalls.Add(1)
	return ctx, c.rpcDone
}
func (c *counters) rpcDone(outcome string) {
	if outcome != "ok" {
		c.rpcErrors.Add(1)
	}
}
func (c *counters) RPCRefused(_, reason string) {
	c.rpcRefused.Add(1)
	if reason == "parse-error" {
		c.badFrames.Add(1)
	}
}
func (c *counters) StateChanged()        { c.stateChanges.Add(1) }
func (c *counters) CRDTApplied()         { c.crdtOps.Add(1) }
func (c *counters) BackendError(string)  { c.backendErrors.Add(1) }
func (c *counters) BusLag(time.Duration) {}
func (c *counters) BusGap()              { c.busGaps.Add(1) }
func (c *counters) HistoryAppended()     { c.historyAppends.Add(1) }
func (c *counters) Recovered(ok bool) {
	if ok {
		c.recoveries.Add(1)
	} else {
		c.recoveriesFailed.Add(1)
	}
}
func (c *counters) PresenceChanged(d int) { c.presenceEntries.Add(int64(d)) }

// Snapshot is a point-in-time copy of the server's counters, ready for JSON.
// Counters count since the server was created and only grow; Connections
// and UptimeMillis are levels. Metrics lists the numbers by name for
// exporters.
type Snapshot struct {
	Node               string            `json:"node"`         // the server's NodeID
	StartedAt          time.Time         `json:"startedAt"`    // when the server was created (New)
	UptimeMillis       int64             `json:"uptimeMillis"` // milliseconds since StartedAt, at At
	Connections        int               `json:"connections"`
	ConnectionsOpened  uint64            `json:"connectionsOpened"`
	ConnectionsClosed  uint64            `json:"connectionsClosed"`
	FramesIn           uint64            `json:"framesIn"`
	BytesIn            uint64            `json:"bytesIn"`
	FramesOut          uint64            `json:"framesOut"`
	BytesOut           uint64            `json:"bytesOut"`
	FramesIgnored      uint64            `json:"framesIgnored"`      // well-formed frames v1 servers ignore
	BadFrames          uint64            `json:"badFrames"`          // malformed frames and messages
	RPCCalls           uint64            `json:"rpcCalls"`           // calls that ran a handler
	RPCErrors          uint64            `json:"rpcErrors"`          // of those, failed, timed out or panicked
	RPCRefused         uint64            `json:"rpcRefused"`         // answered without a handler
	EventsIn           uint64            `json:"eventsIn"`           // client events received
	EventsUnhandled    uint64            `json:"eventsUnhandled"`    // of those, with no handler
	FanoutDeliveries   uint64            `json:"fanoutDeliveries"`   // frames queued by server pushes
	SendDrops          uint64            `json:"sendDrops"`          // frames that did not fit a send queue
	SlowConsumerCloses uint64            `json:"slowConsumerCloses"` // connections closed for not reading
	StateChanges       uint64            `json:"stateChanges"`       // versions created
	StatePatches       uint64            `json:"statePatches"`       // STATE_PATCH frames fanned out
	CRDTOps            uint64            `json:"crdtOps"`            // CRDT operations applied
	BackendErrors      uint64            `json:"backendErrors"`
	RateLimited        uint64            `json:"rateLimited"`      // frames refused by the rate limiter
	BusGaps            uint64            `json:"busGaps"`          // times the bus may have lost messages
	HistoryAppends     uint64            `json:"historyAppends"`   // events stored in kept targets' histories
	Recoveries         uint64            `json:"recoveries"`       // streams recovered for reconnecting clients
	RecoveriesFailed   uint64            `json:"recoveriesFailed"` // streams that could not be (window passed, epoch changed)
	PresenceEntries    int64             `json:"presenceEntries"`  // presence entries of this node's connections
	ExportErrors       uint64            `json:"exportErrors"`     // failed Exporter calls (ExportEvery)
	Closes             map[string]uint64 `json:"closes"`           // connections ended, by reason
	CloseCodes         map[string]uint64 `json:"closeCodes"`       // connections ended, by close code
	Rejections         map[string]uint64 `json:"rejections"`       // refused upgrades, by reason
	At                 time.Time         `json:"at"`
}

// Snapshot returns the current counters.
func (s *Server) Snapshot() Snapshot {
	c := s.counters
	now := time.Now()
	return Snapshot{
		Node:               s.nodeID,
		StartedAt:          c.started,
		UptimeMillis:       now.Sub(c.started).Milliseconds(),
		Connections:        s.hub.count(),
		ConnectionsOpened:  c.connectionsOpened.Load(),
		ConnectionsClosed:  c.connectionsClosed.Load(),
		FramesIn:           c.framesIn.Load(),
		BytesIn:            c.bytesIn.Load(),
		FramesOut:          c.framesOut.Load(),
		BytesOut:           c.bytesOut.Load(),
		FramesIgnored:      c.framesIgnored.Load(),
		BadFrames:          c.badFrames.Load(),
		RPCCalls:           c.rpcCalls.Load(),
		RPCErrors:          c.rpcErrors.Load(),
		RPCRefused:         c.rpcRefused.Load(),
		EventsIn:           c.eventsIn.Load(),
		EventsUnhandled:    c.eventsUnhandled.Load(),
		FanoutDeliveries:   c.fanoutDeliveries.Load(),
		SendDrops:          c.sendDrops.Load(),
		SlowConsumerCloses: c.slowConsumerCloses.Load(),
		StateChanges:       c.stateChanges.Load(),
		StatePatches:       c.statePatches.Load(),
		CRDTOps:            c.crdtOps.Load(),
		BackendErrors:      c.backendErrors.Load(),
		RateLimited:        c.rateLimited.Load(),
		BusGaps:            c.busGaps.Load(),
		HistoryAppends:     c.historyAppends.Load(),
		Recoveries:         c.recoveries.Load(),
		RecoveriesFailed:   c.recoveriesFailed.Load(),
		PresenceEntries:    c.presenceEntries.Load(),
		ExportErrors:       c.exportErrors.Load(),
		Closes:             loadAll(c.closedBy),
		CloseCodes:         loadAll(c.closeCodes),
		Rejections:         loadAll(c.rejections),
		At:                 now,
	}
}

func loadAll(set *labelset.Set[*atomic.Uint64]) map[string]uint64 {
	out := map[string]uint64{}
	set.Each(func(label string, v *atomic.Uint64) {
		if n := v.Load(); n > 0 {
			out[label] = n
		}
	})
	return out
}

// logSampled logs a repeated warning at most once per second per message
// (msg is a constant), so a flood of garbage or of slow consumers cannot
// flood the logs, and one kind of flood does not hide another.
func (s *Server) logSampled(msg string, args ...any) {
	v, ok := s.sampled.Load(msg)
	if !ok {
		v, _ = s.sampled.LoadOrStore(msg, new(atomic.Int64))
	}
	last := v.(*atomic.Int64)
	now := time.Now().UnixNano()
	if prev := last.Load(); now-prev < int64(time.Second) || !last.CompareAndSwap(prev, now) {
		return
	}
	s.log.Warn(msg, args...)
}
