// Package dsprom exports a datasole server's measurements as Prometheus
// metrics.
//
// A Collector is both a datasole.Observer, which the server feeds as things
// happen, and a prometheus.Collector, which the application registers on its
// own registry and serves wherever it likes; this package registers no route:
//
//	reg := prometheus.NewRegistry()
//	col := dsprom.New(dsprom.Options{})
//	reg.MustRegister(col)
//	ds := datasole.New(datasole.Options{Observer: col})
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// Label values are bounded so a client cannot grow the exposition: opcodes
// are the eleven v1 names or "unknown", reasons are capped, and an RPC method
// gets its own label value only once its handler has run (a registered
// method), up to Options.MaxMethods; everything else is labelled "other".
package dsprom

import (
	"context"
	"strconv"
	"time"

	"github.com/datasole/datasole-go/datasole/labelset"

	"github.com/datasole/datasole-go/datasole"
	"github.com/datasole/datasole-go/datasole/protocol"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configures a Collector. The zero value is usable.
type Options struct {
	// Namespace prefixes every metric name. Default "datasole".
	Namespace string
	// ConstLabels are added to every series, e.g. {"node": "eu-1"} when
	// several servers share a registry.
	ConstLabels prometheus.Labels
	// MaxMethods caps the distinct values of the method label; methods
	// beyond it are counted as "other". Default 256.
	MaxMethods int
	// Methods are given a method label from the start. Other methods get
	// one when their handler first runs, so calls refused before that (for
	// example rate-limited) are counted as "other".
	Methods []string
}

// Other is the label value that methods and reasons beyond the caps, and
// methods without a registered handler, are counted under.
const Other = labelset.Other

// maxReasons caps each reason-like label (close, rejection and refusal
// reasons, backend operations). The server uses a handful of fixed values;
// the cap only guards against a future caller passing free text.
const maxReasons = 64

// outcomes are the RPC outcomes the server reports, pre-resolved per method.
var outcomes = [...]string{"ok", "error", "timeout", "panic"}

// Collector records a datasole server's measurements as Prometheus metrics.
// Create it with New; it is safe for concurrent use.
type Collector struct {
	connections   prometheus.Gauge
	opened        prometheus.Counter
	sendDrops     prometheus.Counter
	slowConsumer  prometheus.Counter
	rateLimited   prometheus.Counter
	ignored       prometheus.Counter
	stateChanges  prometheus.Counter
	crdtOps       prometheus.Counter
	busGaps       prometheus.Counter
	histAppends   prometheus.Counter
	recoveries    *prometheus.CounterVec
	recovered     [2]prometheus.Counter // by ok: false, true
	presence      prometheus.Gauge
	eventsIn      [2]prometheus.Counter // by handled: false, true
	busLag        prometheus.Histogram
	framesIn      *prometheus.CounterVec
	bytesIn       *prometheus.CounterVec
	framesOut     *prometheus.CounterVec
	bytesOut      *prometheus.CounterVec
	fanout        *prometheus.HistogramVec
	closed        *prometheus.CounterVec
	closeCodes    *prometheus.CounterVec
	events        *prometheus.CounterVec
	rejected      *prometheus.CounterVec
	refused       *prometheus.CounterVec
	backendErrs   *prometheus.CounterVec
	rpcCalls      *prometheus.CounterVec
	rpcDuration   *prometheus.HistogramVec
	rpcRefused    *prometheus.CounterVec
	all           []prometheus.Collector
	in, out       [256]opSeries
	fanoutBy      [256]prometheus.Observer
	closedBy      *labelset.Set[prometheus.Counter]
	closeCodesBy  *labelset.Set[prometheus.Counter]
	rejectedBy    *labelset.Set[prometheus.Counter]
	refusedBy     *labelset.Set[prometheus.Counter]
	backendErrsBy *labelset.Set[prometheus.Counter]
	methods       *labelset.Set[*methodSeries]
}

// opSeries are the frame and byte counters of one opcode.
type opSeries struct {
	frames, bytes prometheus.Counter
}

// methodSeries are the pre-resolved series of one method label.
type methodSeries struct {
	label    string
	duration prometheus.Observer
	calls    [len(outcomes)]prometheus.Counter
}

var _ datasole.Observer = (*Collector)(nil)
var _ prometheus.Collector = (*Collector)(nil)

// New returns a Collector. Register it on a prometheus.Registerer and pass
// it as datasole.Options.Observer (combine it with others with
// datasole.Observers).
func New(opts Options) *Collector {
	if opts.Namespace == "" {
		opts.Namespace = "datasole"
	}
	if opts.MaxMethods <= 0 {
		opts.MaxMethods = 256
	}
	ns, cl := opts.Namespace, opts.ConstLabels
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help, ConstLabels: cl})
	}
	counterVec := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help, ConstLabels: cl}, labels)
	}
	c := &Collector{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "connections",
			Help: "Open WebSocket connections.", ConstLabels: cl}),
		opened:       counter("connections_opened_total", "Connections established."),
		sendDrops:    counter("send_queue_drops_total", "Frames that did not fit a connection's send queue."),
		slowConsumer: counter("slow_consumer_closes_total", "Connections closed because they did not read fast enough."),
		rateLimited:  counter("rate_limited_frames_total", "Inbound frames refused by the rate limiter."),
		ignored:      counter("frames_ignored_total", "Well-formed inbound frames the server ignores (opcodes only servers send)."),
		stateChanges: counter("state_changes_total", "Live-state versions created."),
		crdtOps:      counter("crdt_ops_total", "CRDT operations applied."),
		busGaps:      counter("bus_gaps_total", "Times the cluster bus may have lost messages."),
		histAppends:  counter("history_appends_total", "Events stored in the history of kept targets."),
		recoveries:   counterVec("recoveries_total", "Streams clients asked to recover after a reconnect, by whether every missed event could be sent.", "recovered"),
		presence: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "presence_entries",
			Help: "Presence entries of this node's connections.", ConstLabels: cl}),
		busLag: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "bus_lag_seconds",
			Help:        "Time between a cluster message's publication and its local delivery.",
			ConstLabels: cl, Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}),
		framesIn:  counterVec("frames_in_total", "Inbound WebSocket messages by opcode (unknown: not decodable).", "opcode"),
		bytesIn:   counterVec("bytes_in_total", "Inbound WebSocket message bytes by opcode.", "opcode"),
		framesOut: counterVec("frames_out_total", "Frames written to connections by opcode.", "opcode"),
		bytesOut:  counterVec("bytes_out_total", "Frame bytes written to connections by opcode.", "opcode"),
		fanout: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "fanout_recipients",
			Help:        "Local connections a server push was queued on.",
			ConstLabels: cl, Buckets: prometheus.ExponentialBuckets(1, 4, 9)}, []string{"opcode"}),
		closed:      counterVec("connections_closed_total", "Connections ended, by reason.", "reason"),
		closeCodes:  counterVec("connection_close_codes_total", "Connections ended, by WebSocket close code (sent or received first).", "code"),
		events:      counterVec("events_in_total", "Client events received, by whether a handler took them.", "handled"),
		rejected:    counterVec("upgrades_rejected_total", "Refused WebSocket upgrades, by reason.", "reason"),
		refused:     counterVec("frames_refused_total", "Inbound frames refused, by reason.", "reason"),
		backendErrs: counterVec("backend_errors_total", "Failed backend operations, by operation.", "op"),
		rpcCalls:    counterVec("rpc_calls_total", "RPC calls that ran a handler, by method and outcome.", "method", "outcome"),
		rpcDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "rpc_duration_seconds",
			Help:        "Time from an RPC handler's start to its reply, by method.",
			ConstLabels: cl, Buckets: prometheus.DefBuckets}, []string{"method"}),
		rpcRefused: counterVec("rpc_refused_total", "RPC calls answered without running a handler, by method and reason.", "method", "reason"),
	}
	c.all = []prometheus.Collector{c.connections, c.opened, c.closed, c.rejected, c.framesIn, c.bytesIn,
		c.framesOut, c.bytesOut, c.refused, c.rpcCalls, c.rpcDuration, c.rpcRefused, c.fanout,
		c.sendDrops, c.slowConsumer, c.rateLimited, c.backendErrs, c.busLag,
		c.closeCodes, c.events, c.ignored, c.stateChanges, c.crdtOps, c.busGaps,
		c.histAppends, c.recoveries, c.presence}
	c.recovered = [2]prometheus.Counter{c.recoveries.WithLabelValues("false"), c.recoveries.WithLabelValues("true")}
	c.eventsIn = [2]prometheus.Counter{c.events.WithLabelValues("false"), c.events.WithLabelValues("true")}

	for i := range c.in {
		op := protocol.Opcode(i)
		l := opcodeLabel(op)
		c.in[i] = opSeries{c.framesIn.WithLabelValues(l), c.bytesIn.WithLabelValues(l)}
		if serverSent(op) {
			c.out[i] = opSeries{c.framesOut.WithLabelValues(l), c.bytesOut.WithLabelValues(l)}
			c.fanoutBy[i] = c.fanout.WithLabelValues(l)
		}
	}
	vecLabels := func(v *prometheus.CounterVec) *labelset.Set[prometheus.Counter] {
		return labelset.New(maxReasons, func(l string) prometheus.Counter { return v.WithLabelValues(l) })
	}
	c.closedBy, c.rejectedBy = vecLabels(c.closed), vecLabels(c.rejected)
	c.closeCodesBy = vecLabels(c.closeCodes)
	c.refusedBy, c.backendErrsBy = vecLabels(c.refused), vecLabels(c.backendErrs)
	c.methods = labelset.New(opts.MaxMethods, func(l string) *methodSeries {
		m := &methodSeries{label: l, duration: c.rpcDuration.WithLabelValues(l)}
		for i, o := range outcomes {
			m.calls[i] = c.rpcCalls.WithLabelValues(l, o)
		}
		return m
	})
	for _, m := range opts.Methods {
		c.methods.Get(m, true)
	}
	return c
}

// opcodeLabel is the v1 name of op, or "unknown".
func opcodeLabel(op protocol.Opcode) string {
	if op.Valid() {
		return op.String()
	}
	return "unknown"
}

// serverSent reports whether the server sends op; only those get
// pre-resolved outbound series, so the exposition is not padded with series
// that stay zero.
func serverSent(op protocol.Opcode) bool {
	switch op {
	case protocol.RPCRes, protocol.EventS2C, protocol.StatePatch, protocol.StateSnapshot,
		protocol.Pong, protocol.Error, protocol.CRDTState:
		return true
	}
	return false
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.all {
		m.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c.all {
		m.Collect(ch)
	}
}

// ConnOpened implements datasole.Observer.
func (c *Collector) ConnOpened() {
	c.connections.Inc()
	c.opened.Inc()
}

// ConnClosed implements datasole.Observer.
func (c *Collector) ConnClosed(reason string, code int) {
	c.connections.Dec()
	c.closedBy.Get(reason, true).Inc()
	c.closeCodesBy.Get(strconv.Itoa(code), true).Inc()
	if reason == "slow-consumer" {
		c.slowConsumer.Inc()
	}
}

// UpgradeRejected implements datasole.Observer.
func (c *Collector) UpgradeRejected(reason string) { c.rejectedBy.Get(reason, true).Inc() }

// FrameIn implements datasole.Observer.
func (c *Collector) FrameIn(op protocol.Opcode, bytes int) {
	s := &c.in[op]
	s.frames.Inc()
	s.bytes.Add(float64(bytes))
}

// FrameOut implements datasole.Observer.
func (c *Collector) FrameOut(op protocol.Opcode, bytes int) {
	s := &c.out[op]
	if s.frames == nil { // not an opcode the server sends today
		l := opcodeLabel(op)
		c.framesOut.WithLabelValues(l).Inc()
		c.bytesOut.WithLabelValues(l).Add(float64(bytes))
		return
	}
	s.frames.Inc()
	s.bytes.Add(float64(bytes))
}

// FrameRefused implements datasole.Observer.
func (c *Collector) FrameRefused(reason string) {
	c.refusedBy.Get(reason, true).Inc()
	if reason == "rate-limited" {
		c.rateLimited.Inc()
	}
}

// Fanout implements datasole.Observer.
func (c *Collector) Fanout(op protocol.Opcode, recipients int) {
	h := c.fanoutBy[op]
	if h == nil {
		h = c.fanout.WithLabelValues(opcodeLabel(op))
	}
	h.Observe(float64(recipients))
}

// SendDropped implements datasole.Observer.
func (c *Collector) SendDropped() { c.sendDrops.Inc() }

// StartRPC implements datasole.Observer: it times the handler and counts
// its outcome. A method gets its own label here, as only registered methods
// reach a handler.
func (c *Collector) StartRPC(ctx context.Context, method string) (context.Context, func(outcome string)) {
	m := c.methods.Get(method, true)
	start := time.Now()
	return ctx, func(outcome string) {
		m.duration.Observe(time.Since(start).Seconds())
		for i, o := range outcomes {
			if o == outcome {
				m.calls[i].Inc()
				return
			}
		}
		c.rpcCalls.WithLabelValues(m.label, outcome).Inc()
	}
}

// RPCRefused implements datasole.Observer. The method keeps its label only
// if it already has one: refused calls include unknown methods, which a
// client can make up by the million.
func (c *Collector) RPCRefused(method, reason string) {
	c.rpcRefused.WithLabelValues(c.methods.Get(method, false).label, reason).Inc()
}

// BackendError implements datasole.Observer.
func (c *Collector) BackendError(op string) { c.backendErrsBy.Get(op, true).Inc() }

// FrameIgnored implements datasole.Observer.
func (c *Collector) FrameIgnored(protocol.Opcode) { c.ignored.Inc() }

// EventIn implements datasole.Observer.
func (c *Collector) EventIn(handled bool) {
	if handled {
		c.eventsIn[1].Inc()
	} else {
		c.eventsIn[0].Inc()
	}
}

// StateChanged implements datasole.Observer.
func (c *Collector) StateChanged() { c.stateChanges.Inc() }

// CRDTApplied implements datasole.Observer.
func (c *Collector) CRDTApplied() { c.crdtOps.Inc() }

// BusGap implements datasole.Observer.
func (c *Collector) BusGap() { c.busGaps.Inc() }

// HistoryAppended implements datasole.Observer.
func (c *Collector) HistoryAppended() { c.histAppends.Inc() }

// Recovered implements datasole.Observer.
func (c *Collector) Recovered(ok bool) {
	if ok {
		c.recovered[1].Inc()
	} else {
		c.recovered[0].Inc()
	}
}

// PresenceChanged implements datasole.Observer.
func (c *Collector) PresenceChanged(delta int) { c.presence.Add(float64(delta)) }

// BusLag implements datasole.Observer.
func (c *Collector) BusLag(d time.Duration) { c.busLag.Observe(d.Seconds()) }
