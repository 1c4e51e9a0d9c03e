// Package dsotel instruments a datasole server with OpenTelemetry: it
// records the server's measurements through the OTel metrics API and starts
// a span for every RPC call.
//
//	obs, err := dsotel.New(dsotel.Options{}) // the global providers
//	if err != nil { … }
//	ds := datasole.New(datasole.Options{Observer: obs})
//
// Counters are monotonic and fed with increments as things happen, and the
// open-connection count is an up-down counter moved by one per connection,
// so no exporter ever sees a total added twice.
//
// Attribute values are bounded like the Prometheus collector's: opcodes are
// the eleven v1 names or "unknown", and an RPC method gets its own value
// only once its handler has run, up to Options.MaxMethods; everything else
// is recorded as "other".
package dsotel

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/datasole/datasole-go/datasole/labelset"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/protocol"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of the meter and the tracer.
const ScopeName = "github.com/datasole/datasole-go/metrics/otel"

// Other is the attribute value that methods and reasons beyond the caps,
// and methods without a registered handler, are recorded under.
const Other = labelset.Other

// Attribute keys. RPC spans and RPC metrics use the OpenTelemetry RPC
// semantic convention names where one exists.
const (
	KeyRPCSystem = attribute.Key("rpc.system")
	KeyRPCMethod = attribute.Key("rpc.method")
	KeyOutcome   = attribute.Key("datasole.rpc.outcome")
	KeyOpcode    = attribute.Key("datasole.opcode")
	KeyReason    = attribute.Key("datasole.reason")
	KeyBackendOp = attribute.Key("datasole.backend.operation")
	KeyHandled   = attribute.Key("datasole.event.handled")
	KeyCloseCode = attribute.Key("datasole.close_code")
	KeyRecovered = attribute.Key("datasole.recovered")
)

// maxReasons caps each reason-like attribute (close, rejection and refusal
// reasons, backend operations, outcomes). The server uses a handful of
// fixed values; the cap only guards against a future caller passing free
// text.
const maxReasons = 64

// outcomes and refusals are the values the server reports, pre-resolved per
// method.
var (
	outcomes = [...]string{"ok", "error", "timeout", "panic"}
	refusals = [...]string{"not-found", "parse-error", "overloaded", "rate-limited"}
)

// Options configures an Observer. The zero value is usable.
type Options struct {
	// MeterProvider creates the instruments. Default otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// TracerProvider creates RPC spans. Default otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
	// MaxMethods caps the distinct values of rpc.method on metrics;
	// methods beyond it are recorded as "other". Default 256.
	MaxMethods int
	// Methods are given their own rpc.method value from the start. Other
	// methods get one when their handler first runs.
	Methods []string
}

// Observer records a datasole server's measurements through OpenTelemetry.
// Create it with New; it is safe for concurrent use.
type Observer struct {
	tracer       trace.Tracer
	connections  metric.Int64UpDownCounter
	opened       metric.Int64Counter
	closed       metric.Int64Counter
	closedCodes  metric.Int64Counter
	rejected     metric.Int64Counter
	framesIn     metric.Int64Counter
	bytesIn      metric.Int64Counter
	framesOut    metric.Int64Counter
	bytesOut     metric.Int64Counter
	refused      metric.Int64Counter
	rpcCalls     metric.Int64Counter
	rpcDuration  metric.Float64Histogram
	rpcRefused   metric.Int64Counter
	fanout       metric.Int64Histogram
	sendDrops    metric.Int64Counter
	slowConsumer metric.Int64Counter
	rateLimited  metric.Int64Counter
	backendErrs  metric.Int64Counter
	ignored      metric.Int64Counter
	eventsIn     metric.Int64Counter
	stateChanges metric.Int64Counter
	crdtOps      metric.Int64Counter
	busGaps      metric.Int64Counter
	histAppends  metric.Int64Counter
	recoveries   metric.Int64Counter
	presence     metric.Int64UpDownCounter
	recovered    [2][]metric.AddOption
	handled      [2][]metric.AddOption
	busLag       metric.Float64Histogram
	opcodes      [256][]metric.AddOption // slices, so passing them does not allocate
	fanoutBy     [256][]metric.RecordOption
	reasons      *labelset.Set[[]metric.AddOption]
	closeCodes   *labelset.Set[[]metric.AddOption]
	backendOps   *labelset.Set[[]metric.AddOption]
	methods      *labelset.Set[*methodAttrs]
}

// methodAttrs are the pre-built attribute sets of one rpc.method value.
type methodAttrs struct {
	label    string
	duration []metric.RecordOption
	calls    [len(outcomes)][]metric.AddOption
	refused  [len(refusals)][]metric.AddOption
}

func newMethodAttrs(label string) *methodAttrs {
	m := &methodAttrs{label: label, duration: []metric.RecordOption{attrs(KeyRPCMethod.String(label))}}
	for i, o := range outcomes {
		m.calls[i] = addAttrs(KeyRPCMethod.String(label), KeyOutcome.String(o))
	}
	for i, r := range refusals {
		m.refused[i] = addAttrs(KeyRPCMethod.String(label), KeyReason.String(r))
	}
	return m
}

func attrs(kv ...attribute.KeyValue) metric.MeasurementOption {
	return metric.WithAttributeSet(attribute.NewSet(kv...))
}

func addAttrs(kv ...attribute.KeyValue) []metric.AddOption {
	return []metric.AddOption{attrs(kv...)}
}

var _ datasole.Observer = (*Observer)(nil)

// New returns an Observer whose instruments are created on the meter
// provider's meter; it fails only if the provider refuses an instrument.
func New(opts Options) (*Observer, error) {
	if opts.MeterProvider == nil {
		opts.MeterProvider = otel.GetMeterProvider()
	}
	if opts.TracerProvider == nil {
		opts.TracerProvider = otel.GetTracerProvider()
	}
	if opts.MaxMethods <= 0 {
		opts.MaxMethods = 256
	}
	m := opts.MeterProvider.Meter(ScopeName)
	o := &Observer{
		tracer: opts.TracerProvider.Tracer(ScopeName),
		reasons: labelset.New(maxReasons, func(r string) []metric.AddOption {
			return addAttrs(KeyReason.String(r))
		}),
		backendOps: labelset.New(maxReasons, func(op string) []metric.AddOption {
			return addAttrs(KeyBackendOp.String(op))
		}),
		methods: labelset.New(opts.MaxMethods, newMethodAttrs),
	}
	var errs []error
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	var err error
	o.connections, err = m.Int64UpDownCounter("datasole.connections", metric.WithUnit("{connection}"),
		metric.WithDescription("Open WebSocket connections."))
	errs = append(errs, err)
	o.opened = counter("datasole.connections.opened", "{connection}", "Connections established.")
	o.closed = counter("datasole.connections.closed", "{connection}", "Connections ended, by reason.")
	o.closedCodes = counter("datasole.connections.close_codes", "{connection}", "Connections ended, by WebSocket close code (sent or received first).")
	o.rejected = counter("datasole.upgrades.rejected", "{upgrade}", "Refused WebSocket upgrades, by reason.")
	o.framesIn = counter("datasole.frames.in", "{frame}", "Inbound WebSocket messages by opcode (unknown: not decodable).")
	o.bytesIn = counter("datasole.bytes.in", "By", "Inbound WebSocket message bytes by opcode.")
	o.framesOut = counter("datasole.frames.out", "{frame}", "Frames written to connections by opcode.")
	o.bytesOut = counter("datasole.bytes.out", "By", "Frame bytes written to connections by opcode.")
	o.refused = counter("datasole.frames.refused", "{frame}", "Inbound frames refused, by reason.")
	o.rpcCalls = counter("datasole.rpc.calls", "{call}", "RPC calls that ran a handler, by method and outcome.")
	o.rpcRefused = counter("datasole.rpc.refused", "{call}", "RPC calls answered without running a handler, by method and reason.")
	o.sendDrops = counter("datasole.send_queue.drops", "{frame}", "Frames that did not fit a connection's send queue.")
	o.slowConsumer = counter("datasole.slow_consumer.closes", "{connection}", "Connections closed because they did not read fast enough.")
	o.rateLimited = counter("datasole.rate_limited.frames", "{frame}", "Inbound frames refused by the rate limiter.")
	o.backendErrs = counter("datasole.backend.errors", "{error}", "Failed backend operations, by operation.")
	o.ignored = counter("datasole.frames.ignored", "{frame}", "Well-formed inbound frames the server ignores (opcodes only servers send).")
	o.eventsIn = counter("datasole.events.in", "{event}", "Client events received, by whether a handler took them.")
	o.stateChanges = counter("datasole.state.changes", "{version}", "Live-state versions created.")
	o.crdtOps = counter("datasole.crdt.ops", "{op}", "CRDT operations applied.")
	o.busGaps = counter("datasole.bus.gaps", "{gap}", "Times the cluster bus may have lost messages.")
	o.histAppends = counter("datasole.history.appends", "{event}", "Events stored in the history of kept targets.")
	o.recoveries = counter("datasole.recoveries", "{stream}", "Streams clients asked to recover after a reconnect, by whether every missed event could be sent.")
	o.recovered = [2][]metric.AddOption{addAttrs(KeyRecovered.Bool(false)), addAttrs(KeyRecovered.Bool(true))}
	if o.presence, err = m.Int64UpDownCounter("datasole.presence.entries", metric.WithUnit("{entry}"),
		metric.WithDescription("Presence entries of this node's connections.")); err != nil {
		return nil, err
	}
	o.handled = [2][]metric.AddOption{addAttrs(KeyHandled.Bool(false)), addAttrs(KeyHandled.Bool(true))}
	o.closeCodes = labelset.New(maxReasons, func(l string) []metric.AddOption {
		code, _ := strconv.Atoi(l)
		return addAttrs(KeyCloseCode.Int(code))
	})
	o.rpcDuration, err = m.Float64Histogram("datasole.rpc.duration", metric.WithUnit("s"),
		metric.WithDescription("Time from an RPC handler's start to its reply, by method."),
		metric.WithExplicitBucketBoundaries(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
	errs = append(errs, err)
	o.fanout, err = m.Int64Histogram("datasole.fanout.recipients", metric.WithUnit("{connection}"),
		metric.WithDescription("Local connections a server push was queued on."),
		metric.WithExplicitBucketBoundaries(1, 4, 16, 64, 256, 1024, 4096, 16384, 65536))
	errs = append(errs, err)
	o.busLag, err = m.Float64Histogram("datasole.bus.lag", metric.WithUnit("s"),
		metric.WithDescription("Time between a cluster message's publication and its local delivery."),
		metric.WithExplicitBucketBoundaries(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for i := range o.opcodes {
		l := "unknown"
		if op := protocol.Opcode(i); op.Valid() {
			l = op.String()
		}
		o.opcodes[i] = addAttrs(KeyOpcode.String(l))
		o.fanoutBy[i] = []metric.RecordOption{attrs(KeyOpcode.String(l))}
	}
	for _, name := range opts.Methods {
		o.methods.Get(name, true)
	}
	return o, nil
}

// bg is the context measurements are recorded with: the server's calls
// carry none (RPC measurements use the span's, for exemplars).
var bg = context.Background()

// ConnOpened implements datasole.Observer.
func (o *Observer) ConnOpened() {
	o.connections.Add(bg, 1)
	o.opened.Add(bg, 1)
}

// ConnClosed implements datasole.Observer.
func (o *Observer) ConnClosed(r string, code int) {
	o.connections.Add(bg, -1)
	o.closed.Add(bg, 1, o.reasons.Get(r, true)...)
	o.closedCodes.Add(bg, 1, o.closeCodes.Get(strconv.Itoa(code), true)...)
	if r == "slow-consumer" {
		o.slowConsumer.Add(bg, 1)
	}
}

// UpgradeRejected implements datasole.Observer.
func (o *Observer) UpgradeRejected(r string) { o.rejected.Add(bg, 1, o.reasons.Get(r, true)...) }

// FrameIn implements datasole.Observer.
func (o *Observer) FrameIn(op protocol.Opcode, bytes int) {
	o.framesIn.Add(bg, 1, o.opcodes[op]...)
	o.bytesIn.Add(bg, int64(bytes), o.opcodes[op]...)
}

// FrameOut implements datasole.Observer.
func (o *Observer) FrameOut(op protocol.Opcode, bytes int) {
	o.framesOut.Add(bg, 1, o.opcodes[op]...)
	o.bytesOut.Add(bg, int64(bytes), o.opcodes[op]...)
}

// FrameRefused implements datasole.Observer.
func (o *Observer) FrameRefused(r string) {
	o.refused.Add(bg, 1, o.reasons.Get(r, true)...)
	if r == "rate-limited" {
		o.rateLimited.Add(bg, 1)
	}
}

// Fanout implements datasole.Observer.
func (o *Observer) Fanout(op protocol.Opcode, recipients int) {
	o.fanout.Record(bg, int64(recipients), o.fanoutBy[op]...)
}

// SendDropped implements datasole.Observer.
func (o *Observer) SendDropped() { o.sendDrops.Add(bg, 1) }

// StartRPC implements datasole.Observer: it starts a server span named
// "datasole.rpc <method>" as a child of the span in ctx, and on done ends it
// with the outcome, marking it as an error unless the outcome is "ok", and
// records the call's duration and outcome.
func (o *Observer) StartRPC(parent context.Context, method string) (context.Context, func(outcome string)) {
	m := o.methods.Get(method, true)
	start := time.Now()
	sctx, span := o.tracer.Start(parent, "datasole.rpc "+method, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithTimestamp(start),
		trace.WithAttributes(KeyRPCSystem.String("datasole"), KeyRPCMethod.String(method)))
	return sctx, func(outcome string) {
		end := time.Now()
		o.rpcDuration.Record(sctx, end.Sub(start).Seconds(), m.duration...)
		o.rpcCalls.Add(sctx, 1, m.outcome(outcome)...)
		span.SetAttributes(KeyOutcome.String(outcome))
		if outcome != "ok" {
			span.SetStatus(codes.Error, outcome)
		}
		span.End(trace.WithTimestamp(end))
	}
}

// RPCRefused implements datasole.Observer. The method keeps its own value
// only if it already has one: refused calls include unknown methods, which
// a client can make up by the million.
func (o *Observer) RPCRefused(method, r string) {
	o.rpcRefused.Add(bg, 1, o.methods.Get(method, false).refusal(r)...)
}

// BackendError implements datasole.Observer.
func (o *Observer) BackendError(op string) {
	o.backendErrs.Add(bg, 1, o.backendOps.Get(op, true)...)
}

// FrameIgnored implements datasole.Observer.
func (o *Observer) FrameIgnored(op protocol.Opcode) { o.ignored.Add(bg, 1, o.opcodes[op]...) }

// EventIn implements datasole.Observer.
func (o *Observer) EventIn(handled bool) {
	if handled {
		o.eventsIn.Add(bg, 1, o.handled[1]...)
	} else {
		o.eventsIn.Add(bg, 1, o.handled[0]...)
	}
}

// StateChanged implements datasole.Observer.
func (o *Observer) StateChanged() { o.stateChanges.Add(bg, 1) }

// CRDTApplied implements datasole.Observer.
func (o *Observer) CRDTApplied() { o.crdtOps.Add(bg, 1) }

// BusGap implements datasole.Observer.
func (o *Observer) BusGap() { o.busGaps.Add(bg, 1) }

// HistoryAppended implements datasole.Observer.
func (o *Observer) HistoryAppended() { o.histAppends.Add(bg, 1) }

// Recovered implements datasole.Observer.
func (o *Observer) Recovered(ok bool) {
	if ok {
		o.recoveries.Add(bg, 1, o.recovered[1]...)
	} else {
		o.recoveries.Add(bg, 1, o.recovered[0]...)
	}
}

// PresenceChanged implements datasole.Observer.
func (o *Observer) PresenceChanged(delta int) { o.presence.Add(bg, int64(delta)) }

// BusLag implements datasole.Observer.
func (o *Observer) BusLag(d time.Duration) { o.busLag.Record(bg, d.Seconds()) }

// outcome returns the attributes of a call with outcome, building them for
// an outcome the server did not report when this was written.
func (m *methodAttrs) outcome(o string) []metric.AddOption {
	for i, known := range outcomes {
		if o == known {
			return m.calls[i]
		}
	}
	return addAttrs(KeyRPCMethod.String(m.label), KeyOutcome.String(o))
}

// refusal is outcome for refusal reasons.
func (m *methodAttrs) refusal(r string) []metric.AddOption {
	for i, known := range refusals {
		if r == known {
			return m.refused[i]
		}
	}
	return addAttrs(KeyRPCMethod.String(m.label), KeyReason.String(r))
}
