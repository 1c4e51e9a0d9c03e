// Package report turns the harness's results into a Markdown table, a JSON
// file and an SVG chart.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// Result is one scenario run against one target.
type Result struct {
	Scenario string             `json:"scenario"` // scenario id, e.g. "rpc"
	Label    string             `json:"label"`    // what ran, e.g. "RPC echo, 50 conns × 4 in flight, 16 B"
	Target   string             `json:"target"`
	Metrics  map[string]float64 `json:"metrics,omitempty"`
	Error    string             `json:"error,omitempty"`
}

// Run is a whole harness run.
type Run struct {
	Started  time.Time         `json:"started"`
	Duration string            `json:"duration"`
	Machine  map[string]string `json:"machine"`
	Settings map[string]string `json:"settings"`
	Targets  []string          `json:"targets"`
	Results  []Result          `json:"results"`
}

// Row is one line of the table: a metric of a scenario.
type Row struct {
	Scenario string
	Metric   string
	Label    string // shown after the scenario label, e.g. "server CPU per call (µs)"
	Digits   int    // decimals shown
	// HigherBetter is shown in the chart's caption; it does not change ratios.
	HigherBetter bool
	// Chart puts the row in the SVG chart.
	Chart bool
}

// Lookup returns the value of metric for scenario and target, and the
// result's error if it failed.
func (r *Run) Lookup(scenario, target, metric string) (float64, bool, string) {
	for _, res := range r.Results {
		if res.Scenario == scenario && res.Target == target {
			if res.Error != "" {
				return 0, false, res.Error
			}
			v, ok := res.Metrics[metric]
			return v, ok, ""
		}
	}
	return 0, false, ""
}

func (r *Run) label(scenario string) string {
	for _, res := range r.Results {
		if res.Scenario == scenario && res.Label != "" {
			return res.Label
		}
	}
	return scenario
}

// WriteJSON writes the run as indented JSON.
func (r *Run) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Ratio is a ratio column: Of's value divided by Base's.
type Ratio struct{ Of, Base string }

// Ratios returns the ratio columns of each of ours against each base that
// is among the run's targets.
func (r *Run) Ratios(ours, bases []string) []Ratio {
	has := func(t string) bool {
		for _, x := range r.Targets {
			if x == t {
				return true
			}
		}
		return false
	}
	var out []Ratio
	for _, o := range ours {
		for _, b := range bases {
			if o != b && has(o) && has(b) {
				out = append(out, Ratio{o, b})
			}
		}
	}
	return out
}

// WriteMarkdown writes the table: one line per row that has a value for at
// least one target, one column per target, then the ratio columns.
func (r *Run) WriteMarkdown(w io.Writer, rows []Row, ratios []Ratio) error {
	var b strings.Builder
	b.WriteString("| Scenario | Metric |")
	for _, t := range r.Targets {
		fmt.Fprintf(&b, " %s |", t)
	}
	for _, q := range ratios {
		fmt.Fprintf(&b, " %s ÷ %s |", q.Of, q.Base)
	}
	b.WriteString("\n|---|---|")
	for range len(r.Targets) + len(ratios) {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	var failures []string
	for _, row := range rows {
		any := false
		cells := make([]string, 0, len(r.Targets)+len(ratios))
		for _, t := range r.Targets {
			v, ok, errText := r.Lookup(row.Scenario, t, row.Metric)
			switch {
			case ok:
				any = true
				cells = append(cells, Format(v, row.Digits))
			case errText != "":
				cells = append(cells, "failed")
				failures = appendOnce(failures, fmt.Sprintf("%s on %s: %s", row.Scenario, t, errText))
			default:
				cells = append(cells, "—")
			}
		}
		if !any {
			continue
		}
		for _, q := range ratios {
			a, okA, _ := r.Lookup(row.Scenario, q.Of, row.Metric)
			c, okB, _ := r.Lookup(row.Scenario, q.Base, row.Metric)
			if okA && okB && c != 0 {
				cells = append(cells, fmt.Sprintf("%.2f×", a/c))
			} else {
				cells = append(cells, "—")
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", r.label(row.Scenario), row.Label, strings.Join(cells, " | "))
	}
	if len(failures) > 0 {
		b.WriteString("\nFailed runs:\n\n")
		for _, f := range failures {
			fmt.Fprintf(&b, "- %s\n", f)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func appendOnce(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// Format prints v with digits decimals and thousands separators.
func Format(v float64, digits int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "—"
	}
	s := fmt.Sprintf("%.*f", digits, math.Abs(v))
	intPart, frac, hasFrac := strings.Cut(s, ".")
	var b strings.Builder
	if v < 0 && strings.Trim(s, "0.") != "" {
		b.WriteByte('-')
	}
	for i, c := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if hasFrac {
		b.WriteByte('.')
		b.WriteString(frac)
	}
	return b.String()
}
