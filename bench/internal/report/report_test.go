package report

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"
)

func sampleRun() *Run {
	return &Run{
		Targets: []string{"gorilla", "centrifuge", "dshttp"},
		Results: []Result{
			{Scenario: "rpc", Label: "RPC 50×4", Target: "gorilla", Metrics: map[string]float64{"cpu": 6.5, "calls": 120000}},
			{Scenario: "rpc", Label: "RPC 50×4", Target: "centrifuge", Metrics: map[string]float64{"cpu": 5.2, "calls": 150000}},
			{Scenario: "rpc", Label: "RPC 50×4", Target: "dshttp", Metrics: map[string]float64{"cpu": 13, "calls": 80000}},
			{Scenario: "idle", Label: "idle 10k", Target: "gorilla", Error: "dial: too many open files"},
			{Scenario: "idle", Label: "idle 10k", Target: "dshttp", Metrics: map[string]float64{"kib": 3.5}},
		},
	}
}

var sampleRows = []Row{
	{Scenario: "rpc", Metric: "cpu", Label: "server CPU per call (µs)", Digits: 1, Chart: true},
	{Scenario: "rpc", Metric: "calls", Label: "calls/s", HigherBetter: true, Chart: true},
	{Scenario: "rpc", Metric: "missing", Label: "never measured"},
	{Scenario: "idle", Metric: "kib", Label: "KiB per connection", Digits: 2, Chart: true},
}

func TestMarkdown(t *testing.T) {
	r := sampleRun()
	var b bytes.Buffer
	if err := r.WriteMarkdown(&b, sampleRows, r.Ratios([]string{"dshttp"}, []string{"gorilla", "centrifuge"})); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"| Scenario | Metric | gorilla | centrifuge | dshttp | dshttp ÷ gorilla | dshttp ÷ centrifuge |",
		"| RPC 50×4 | server CPU per call (µs) | 6.5 | 5.2 | 13.0 | 2.00× | 2.50× |",
		"| RPC 50×4 | calls/s | 120,000 | 150,000 | 80,000 | 0.67× | 0.53× |",
		"| idle 10k | KiB per connection | failed | — | 3.50 | — | — |",
		"- idle on gorilla: dial: too many open files",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "never measured") {
		t.Errorf("a row without any value is printed:\n%s", out)
	}
}

func TestSVGIsWellFormedAndRelativeToTheBase(t *testing.T) {
	r := sampleRun()
	var b bytes.Buffer
	if err := r.WriteSVG(&b, sampleRows, "gorilla"); err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(bytes.NewReader(b.Bytes()))
	for {
		_, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, b.String())
		}
	}
	out := b.String()
	// dshttp's CPU is 2.00 times the floor's; the idle row has no base value.
	for _, want := range []string{">2.00<", ">1.00<", "server CPU per call (µs) (lower is better)", "calls/s (higher is better)"} {
		if !strings.Contains(out, want) {
			t.Errorf("chart lacks %q", want)
		}
	}
	if strings.Contains(out, "KiB per connection") {
		t.Error("a row without a base value is drawn")
	}
}

func TestFormat(t *testing.T) {
	cases := map[float64]string{1234567.891: "1,234,567.9", 0.04: "0.0", -1234: "-1,234.0", 999: "999.0"}
	for v, want := range cases {
		if got := Format(v, 1); got != want {
			t.Errorf("Format(%v) = %q, want %q", v, got, want)
		}
	}
}
