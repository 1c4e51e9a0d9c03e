package datasole

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// Exporter pushes snapshots of the server's counters to a metrics system
// that takes periodic values: StatsD, CloudWatch, a log line. It is the
// push-style companion of the Observer exporters (Prometheus,
// OpenTelemetry); run it with Server.ExportEvery. Snapshot.Metrics lists the
// numbers by name.
type Exporter interface {
	// Export sends one snapshot. It should give up when ctx ends.
	Export(ctx context.Context, s Snapshot) error
}

// ExporterFunc adapts a function to Exporter.
type ExporterFunc func(ctx context.Context, s Snapshot) error

// Export calls f.
func (f ExporterFunc) Export(ctx context.Context, s Snapshot) error { return f(ctx, s) }

// ExportEvery hands e a fresh Snapshot every interval, from a goroutine of
// its own, for as long as the server runs, and once more when Close has
// ended the connections, so that the last counts are exported too. Each
// Export gets a context that ends after interval (5 s for the last one); a
// slow Export delays only the next one (ticks are not queued). Failures
// and panics are counted (Snapshot.ExportErrors) and logged at most once a
// second; they never block the server. Close waits for the last Export at
// most 6 s.
//
// It returns an *OptionError for an interval that is not positive or a nil
// e, and ErrClosed once Close has started.
func (s *Server) ExportEvery(interval time.Duration, e Exporter) error {
	switch {
	case interval <= 0:
		return &OptionError{Field: "ExportEvery interval", Value: interval, Fix: "use a positive interval, e.g. 10 * time.Second"}
	case e == nil:
		return &OptionError{Field: "ExportEvery exporter", Value: e, Fix: "pass an Exporter"}
	}
	x := &s.exports
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed || s.closing.Load() {
		return ErrClosed
	}
	if x.stop == nil {
		x.stop = make(chan struct{})
		x.ctx, x.cancel = context.WithCancel(context.Background())
	}
	x.wg.Add(1)
	go s.runExporter(interval, e, x.stop, x.ctx)
	return nil
}

// exporters are the goroutines ExportEvery started; the zero value is
// ready to use.
type exporters struct {
	mu     sync.Mutex
	closed bool
	stop   chan struct{}   // closed by close: export once more, then return
	ctx    context.Context // cancelled by close: a tick's export gives up
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// finalExportTimeout bounds the last export at Close.
const finalExportTimeout = 5 * time.Second

func (s *Server) runExporter(interval time.Duration, e Exporter, stop chan struct{}, ctx context.Context) {
	defer s.exports.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			tctx, cancel := context.WithTimeout(ctx, interval)
			s.export(tctx, e)
			cancel()
		case <-stop:
			fctx, cancel := context.WithTimeout(context.Background(), finalExportTimeout)
			s.export(fctx, e)
			cancel()
			return
		}
	}
}

// export runs one Export, counting and logging its failure.
func (s *Server) export(ctx context.Context, e Exporter) {
	if err := exportOnce(ctx, e, s.Snapshot()); err != nil {
		s.counters.exportFailed()
		s.logSampled("datasole: metrics export failed", "err", err)
	}
}

func exportOnce(ctx context.Context, e Exporter, snap Snapshot) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("exporter panicked: %v", p)
		}
	}()
	return e.Export(ctx, snap)
}

func (c *counters) exportFailed() { c.exportErrors.Add(1) }

// close runs the last export of every exporter and waits for it, at most
// finalExportTimeout and a second: an Exporter that ignores its context is
// left behind rather than holding up Close. Server.Close calls it once the
// connections have ended.
func (x *exporters) close(s *Server) {
	x.mu.Lock()
	x.closed = true
	stop := x.stop
	x.mu.Unlock()
	if stop == nil {
		return
	}
	x.cancel()
	close(stop)
	done := make(chan struct{})
	go func() { x.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(finalExportTimeout + time.Second):
		s.log.Warn("datasole: an Exporter did not return in time; Close goes on without it")
	}
}

// Metric is one number of a Snapshot, named for exporters that push
// name/value pairs.
type Metric struct {
	// Name is the number's JSON name in Snapshot ("connections",
	// "framesIn", "uptimeMillis", …); counts by label are named
	// "closes.<reason>", "closeCodes.<code>" and "rejections.<reason>",
	// with every character of the label other than a letter, digit, "-"
	// or "_" replaced by "_" ("rejections.shutting_down").
	Name  string
	Value int64
	// Gauge marks a level that goes up and down (connections,
	// uptimeMillis). Every other metric is a counter: it only grows, so an
	// exporter whose system sums increments (StatsD) sends the difference
	// from the previous snapshot.
	Gauge bool
}

// Metrics returns the snapshot's numbers in a fixed order: the gauges, the
// counters in the order of the Snapshot fields, then the counts by label,
// sorted.
func (s Snapshot) Metrics() []Metric {
	out := []Metric{
		{Name: "connections", Value: int64(s.Connections), Gauge: true},
		{Name: "uptimeMillis", Value: s.UptimeMillis, Gauge: true},
	}
	for _, c := range []struct {
		name string
		v    uint64
	}{
		{"connectionsOpened", s.ConnectionsOpened},
		{"connectionsClosed", s.ConnectionsClosed},
		{"framesIn", s.FramesIn},
		{"bytesIn", s.BytesIn},
		{"framesOut", s.FramesOut},
		{"bytesOut", s.BytesOut},
		{"framesIgnored", s.FramesIgnored},
		{"badFrames", s.BadFrames},
		{"rpcCalls", s.RPCCalls},
		{"rpcErrors", s.RPCErrors},
		{"rpcRefused", s.RPCRefused},
		{"eventsIn", s.EventsIn},
		{"eventsUnhandled", s.EventsUnhandled},
		{"fanoutDeliveries", s.FanoutDeliveries},
		{"sendDrops", s.SendDrops},
		{"slowConsumerCloses", s.SlowConsumerCloses},
		{"stateChanges", s.StateChanges},
		{"statePatches", s.StatePatches},
		{"crdtOps", s.CRDTOps},
		{"backendErrors", s.BackendErrors},
		{"rateLimited", s.RateLimited},
		{"busGaps", s.BusGaps},
		{"exportErrors", s.ExportErrors},
	} {
		out = append(out, Metric{Name: c.name, Value: int64(c.v)})
	}
	for _, set := range []struct {
		name string
		m    map[string]uint64
	}{{"closes", s.Closes}, {"closeCodes", s.CloseCodes}, {"rejections", s.Rejections}} {
		labels := make([]string, 0, len(set.m))
		for l := range set.m {
			labels = append(labels, l)
		}
		sort.Strings(labels)
		for _, l := range labels {
			out = append(out, Metric{Name: set.name + "." + metricLabel(l), Value: int64(set.m[l])})
		}
	}
	return out
}

// metricLabel makes a label safe inside a metric name.
func metricLabel(l string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '_'
	}, l)
}
