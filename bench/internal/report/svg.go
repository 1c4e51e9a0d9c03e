package report

import (
	"fmt"
	"html"
	"io"
	"strings"
)

// chartCap is where bars stop growing; longer ones end in an arrow and
// show their value.
const chartCap = 4.0

var palette = []string{"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f"}

// WriteSVG draws the chart rows as grouped horizontal bars: for each row,
// one bar per target, its length the target's value divided by base's (so
// the base is 1.0 everywhere). Rows without a base value are left out.
func (r *Run) WriteSVG(w io.Writer, rows []Row, base string) error {
	type group struct {
		title string
		bars  []float64 // per target; NaN when missing
	}
	var groups []group
	for _, row := range rows {
		if !row.Chart {
			continue
		}
		b, ok, _ := r.Lookup(row.Scenario, base, row.Metric)
		if !ok || b == 0 {
			continue
		}
		g := group{title: r.label(row.Scenario) + ": " + row.Label}
		if row.HigherBetter {
			g.title += " (higher is better)"
		} else {
			g.title += " (lower is better)"
		}
		for _, t := range r.Targets {
			v, ok, _ := r.Lookup(row.Scenario, t, row.Metric)
			if ok {
				g.bars = append(g.bars, v/b)
			} else {
				g.bars = append(g.bars, -1)
			}
		}
		groups = append(groups, g)
	}

	const (
		left, right, top  = 130, 60, 70
		barH, gap, titleH = 14, 18, 18
		plotW             = 520
	)
	groupH := titleH + barH*len(r.Targets) + gap
	height := top + groupH*len(groups) + 40
	width := left + plotW + right
	x := func(v float64) float64 { return left + plotW*min(v, chartCap)/chartCap }

	var s strings.Builder
	fmt.Fprintf(&s, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", width, height, width, height)
	fmt.Fprintf(&s, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", width, height)
	fmt.Fprintf(&s, `<text x="10" y="20" font-size="14" font-weight="bold">Side by side, relative to %s (= 1.0)</text>`+"\n", html.EscapeString(base))
	// Legend.
	lx := 10
	for i, t := range r.Targets {
		fmt.Fprintf(&s, `<rect x="%d" y="32" width="10" height="10" fill="%s"/><text x="%d" y="41">%s</text>`+"\n",
			lx, palette[i%len(palette)], lx+14, html.EscapeString(t))
		lx += 24 + 7*len(t)
	}
	// Grid lines at 0, 1, 2, 3, 4.
	for v := 0.0; v <= chartCap; v++ {
		stroke := "#dddddd"
		if v == 1 {
			stroke = "#333333"
		}
		fmt.Fprintf(&s, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>`+"\n", x(v), top-8, x(v), height-30, stroke)
		fmt.Fprintf(&s, `<text x="%.1f" y="%d" text-anchor="middle">%.0f×</text>`+"\n", x(v), height-16, v)
	}
	y := top
	for _, g := range groups {
		fmt.Fprintf(&s, `<text x="10" y="%d" font-weight="bold">%s</text>`+"\n", y+12, html.EscapeString(g.title))
		y += titleH
		for i, v := range g.bars {
			t := r.Targets[i]
			fmt.Fprintf(&s, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", left-6, y+barH-3, html.EscapeString(t))
			if v < 0 {
				fmt.Fprintf(&s, `<text x="%d" y="%d" fill="#888888">no value</text>`+"\n", left+4, y+barH-3)
				y += barH
				continue
			}
			fmt.Fprintf(&s, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n",
				left, y+1, x(v)-left, barH-2, palette[i%len(palette)])
			label := fmt.Sprintf("%.2f", v)
			if v > chartCap {
				label = "▶ " + label
			}
			fmt.Fprintf(&s, `<text x="%.1f" y="%d">%s</text>`+"\n", x(v)+4, y+barH-3, label)
			y += barH
		}
		y += gap
	}
	s.WriteString("</svg>\n")
	_, err := io.WriteString(w, s.String())
	return err
}
