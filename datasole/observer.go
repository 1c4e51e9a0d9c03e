package datasole

import (
	"context"
	"time"

	"github.com/datasole/datasole-go/datasole/protocol"
)

// Observer receives the server's measurements as they happen, for metrics
// and tracing exporters (the Prometheus collector and the OpenTelemetry
// instrumentation implement it). Methods are called on hot paths: they must
// be fast, must not block and must be safe for concurrent use. Embed
// NopObserver to implement only some of them.
type Observer interface {
	// ConnOpened is called when a connection is established.
	ConnOpened()
	// ConnClosed is called when a connection has ended, with why and the
	// close code: "closed" (by the peer), "slow-consumer", "abuse",
	// "shutdown", "write-error", "write-timeout", "too-big",
	// "protocol-error", "heartbeat", "expired", "closed-by-server".
	ConnClosed(reason string, code int)
	// UpgradeRejected is called for every refused upgrade, with the reason
	// ("origin", "unauthorized", "max-connections", …).
	UpgradeRejected(reason string)
	// FrameIn is called for every inbound message: its opcode (0 when it
	// could not be decoded) and size on the wire.
	FrameIn(op protocol.Opcode, bytes int)
	// FrameOut is called for every message written to a connection.
	FrameOut(op protocol.Opcode, bytes int)
	// FrameRefused is called when an inbound frame is refused, with the
	// reason ("short", "bad-zlib", "text-message", "rate-limited", …).
	FrameRefused(reason string)
	// FrameIgnored is called for a well-formed frame the server ignores
	// (an opcode only servers send), as v1 does.
	FrameIgnored(op protocol.Opcode)
	// EventIn is called for every client event, with whether a handler
	// took it.
	EventIn(handled bool)
	// Fanout is called for every server push with how many local
	// connections it was queued on.
	Fanout(op protocol.Opcode, recipients int)
	// SendDropped is called when a frame did not fit a send queue.
	SendDropped()
	// StartRPC is called when an RPC handler starts. The returned context
	// is the handler's (to carry a span); done is called with the outcome
	// ("ok", "error", "timeout", "panic") when the reply is sent.
	StartRPC(ctx context.Context, method string) (context.Context, func(outcome string))
	// RPCRefused is called for calls answered without running a handler
	// ("not-found", "parse-error", "rate-limited").
	RPCRefused(method, reason string)
	// StateChanged is called when a live-state key gets a new version.
	StateChanged()
	// CRDTApplied is called when a CRDT operation was applied.
	CRDTApplied()
	// BackendError is called when a backend operation fails.
	BackendError(op string)
	// BusLag is called for every cluster message with the time between its
	// publication and its local delivery.
	BusLag(d time.Duration)
	// BusGap is called when the cluster bus may have lost messages.
	BusGap()
	// HistoryAppended is called for every event stored in a kept target's
	// history.
	HistoryAppended()
	// Recovered is called for every stream a client asked to recover, with
	// whether the missed events could all be sent.
	Recovered(ok bool)
	// PresenceChanged is called when this node adds (+1) or removes (-1) a
	// presence entry.
	PresenceChanged(delta int)
}

// NopObserver implements Observer by doing nothing.
type NopObserver struct{}

func (NopObserver) ConnOpened()                   {}
func (NopObserver) ConnClosed(string, int)        {}
func (NopObserver) UpgradeRejected(string)        {}
func (NopObserver) FrameIn(protocol.Opcode, int)  {}
func (NopObserver) FrameOut(protocol.Opcode, int) {}
func (NopObserver) FrameRefused(string)           {}
func (NopObserver) FrameIgnored(protocol.Opcode)  {}
func (NopObserver) EventIn(bool)                  {}
func (NopObserver) Fanout(protocol.Opcode, int)   {}
func (NopObserver) SendDropped()                  {}
func (NopObserver) RPCRefused(string, string)     {}
func (NopObserver) StateChanged()                 {}
func (NopObserver) CRDTApplied()                  {}
func (NopObserver) BackendError(string)           {}
func (NopObserver) BusLag(time.Duration)          {}
func (NopObserver) BusGap()                       {}
func (NopObserver) HistoryAppended()              {}
func (NopObserver) Recovered(bool)                {}
func (NopObserver) PresenceChanged(int)           {}
func (NopObserver) StartRPC(ctx context.Context, _ string) (context.Context, func(string)) {
	return ctx, func(string) {}
}

// Observers returns an Observer that forwards to each of obs in order.
func Observers(obs ...Observer) Observer { return multiObserver(obs) }

type multiObserver []Observer

func (m multiObserver) ConnOpened() {
	for _, o := range m {
		o.ConnOpened()
	}
}
func (m multiObserver) ConnClosed(r string, code int) {
	for _, o := range m {
		o.ConnClosed(r, code)
	}
}
func (m multiObserver) FrameIgnored(op protocol.Opcode) {
	for _, o := range m {
		o.FrameIgnored(op)
	}
}
func (m multiObserver) EventIn(handled bool) {
	for _, o := range m {
		o.EventIn(handled)
	}
}
func (m multiObserver) StateChanged() {
	for _, o := range m {
		o.StateChanged()
	}
}
func (m multiObserver) CRDTApplied() {
	for _, o := range m {
		o.CRDTApplied()
	}
}
func (m multiObserver) BusGap() {
	for _, o := range m {
		o.BusGap()
	}
}
func (m multiObserver) HistoryAppended() {
	for _, o := range m {
		o.HistoryAppended()
	}
}
func (m multiObserver) Recovered(ok bool) {
	for _, o := range m {
		o.Recovered(ok)
	}
}
func (m multiObserver) PresenceChanged(d int) {
	for _, o := range m {
		o.PresenceChanged(d)
	}
}
func (m multiObserver) UpgradeRejected(r string) {
	for _, o := range m {
		o.UpgradeRejected(r)
	}
}
func (m multiObserver) FrameIn(op protocol.Opcode, n int) {
	for _, o := range m {
		o.FrameIn(op, n)
	}
}
func (m multiObserver) FrameOut(op protocol.Opcode, n int) {
	for _, o := range m {
		o.FrameOut(op, n)
	}
}
func (m multiObserver) FrameRefused(r string) {
	for _, o := range m {
		o.FrameRefused(r)
	}
}
func (m multiObserver) Fanout(op protocol.Opcode, n int) {
	for _, o := range m {
		o.Fanout(op, n)
	}
}
func (m multiObserver) SendDropped() {
	for _, o := range m {
		o.SendDropped()
	}
}
func (m multiObserver) RPCRefused(method, r string) {
	for _, o := range m {
		o.RPCRefused(method, r)
	}
}
func (m multiObserver) BackendError(op string) {
	for _, o := range m {
		o.BackendError(op)
	}
}
func (m multiObserver) BusLag(d time.Duration) {
	for _, o := range m {
		o.BusLag(d)
	}
}
func (m multiObserver) StartRPC(ctx context.Context, method string) (context.Context, func(string)) {
	dones := make([]func(string), len(m))
	for i, o := range m {
		ctx, dones[i] = o.StartRPC(ctx, method)
	}
	return ctx, func(outcome string) {
		for i := len(dones) - 1; i >= 0; i-- {
			dones[i](outcome)
		}
	}
}
