package main

import (
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"strings"
)

// The latency plot: one panel per echo or broadcast scenario label, one
// percentile curve per server, drawn as HDR histogram plots are: the x
// axis is the percentile on a log scale of 1/(1−p) (0 %, 90 %, 99 %,
// 99.9 %, …), the y axis the latency.

const (
	svgWidth   = 860
	svgPanelH  = 300 // at least; taller when the legend needs it
	svgMarginL = 70
	svgMarginR = 230 // the legend: server name, then p50 and p99
	svgLegendH = 34  // per server
	svgMarginT = 34
	svgMarginB = 40
)

var svgColors = []string{"#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"}

// xOfPercentile maps a percentile (0..100) to log10(1/(1−p)).
func xOfPercentile(p float64) float64 {
	q := 1 - p/100
	if q < 1e-7 {
		q = 1e-7
	}
	return -math.Log10(q)
}

// niceStep returns a round step (1, 2 or 5 × 10^k) giving about n ticks
// over span.
func niceStep(span float64, n int) float64 {
	if span <= 0 || n <= 0 {
		return 1
	}
	raw := span / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if raw <= m*mag {
			return m * mag
		}
	}
	return 10 * mag
}

// writeSVG writes the plot of every aggregate with a latency curve to w. It
// returns false (writing nothing) when there is none.
func writeSVG(w io.Writer, aggs []*aggregate, servers []string, title string) bool {
	var labels []string
	by := map[string]map[string]*aggregate{}
	for _, a := range aggs {
		if a.Latency == nil || len(a.Latency.Curve) == 0 || (a.Scenario != scEcho && a.Scenario != scBroadcast) {
			continue
		}
		if by[a.Label] == nil {
			by[a.Label] = map[string]*aggregate{}
			labels = append(labels, a.Label)
		}
		by[a.Label][a.Server] = a
	}
	if len(labels) == 0 {
		return false
	}
	color := map[string]string{}
	for i, s := range servers {
		color[s] = svgColors[i%len(svgColors)]
	}
	// Every panel shares one x axis (the highest percentile any curve
	// reaches) and one height (room for the whole legend).
	maxX := 1.0
	for _, l := range labels {
		for _, a := range by[l] {
			for _, p := range a.Latency.Curve {
				maxX = math.Max(maxX, xOfPercentile(p.Percentile))
			}
		}
	}
	maxX = math.Ceil(maxX)
	panelH := max(svgPanelH, svgMarginT+svgMarginB+8+len(servers)*svgLegendH)
	height := 30 + len(labels)*panelH
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		svgWidth, height, svgWidth, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14" font-weight="bold">%s</text>`+"\n", svgMarginL, html.EscapeString(title))
	for i, l := range labels {
		panel(&b, 30+i*panelH, panelH, maxX, l, by[l], servers, color)
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err == nil
}

func panel(b *strings.Builder, top, panelH int, maxX float64, label string, by map[string]*aggregate, servers []string, color map[string]string) {
	x0, x1 := float64(svgMarginL), float64(svgWidth-svgMarginR)
	y0, y1 := float64(top+panelH-svgMarginB), float64(top+svgMarginT)
	// Extent.
	maxY := 0.0
	for _, a := range by {
		for _, p := range a.Latency.Curve {
			maxY = math.Max(maxY, p.US)
		}
	}
	unit, div := "µs", 1.0
	switch {
	case maxY >= 2e6:
		unit, div = "s", 1e6
	case maxY >= 2000:
		unit, div = "ms", 1000
	}
	step := niceStep(maxY/div, 5)
	top2 := math.Ceil(maxY/div/step) * step
	if top2 <= 0 {
		top2 = step
	}
	sx := func(x float64) float64 { return x0 + (x1-x0)*x/maxX }
	sy := func(v float64) float64 { return y0 - (y0-y1)*(v/div)/top2 }

	fmt.Fprintf(b, `<text x="%d" y="%d" font-weight="bold">%s</text>`+"\n", svgMarginL, top+svgMarginT-12, html.EscapeString(label))
	// Grid and y ticks.
	for v := 0.0; v <= top2+step/2; v += step {
		y := y0 - (y0-y1)*v/top2
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", x0, y, x1, y)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", x0-6, y+4, trimFloat(v))
	}
	fmt.Fprintf(b, `<text x="14" y="%.1f" transform="rotate(-90 14 %.1f)" text-anchor="middle">latency (%s)</text>`+"\n",
		(y0+y1)/2, (y0+y1)/2, unit)
	// x ticks: 0 %, 90 %, 99 %, ...
	for k := 0.0; k <= maxX; k++ {
		x := sx(k)
		p := 100 * (1 - math.Pow(10, -k))
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", x, y0, x, y1)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s%%</text>`+"\n", x, y0+16, trimFloat(p))
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">percentile</text>`+"\n", (x0+x1)/2, y0+32)
	fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#888"/>`+"\n", x0, y1, x1-x0, y0-y1)
	// Curves and legend.
	ly := y1 + 4
	for _, s := range servers {
		a := by[s]
		if a == nil {
			continue
		}
		var pts []string
		for _, p := range a.Latency.Curve {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", sx(xOfPercentile(p.Percentile)), sy(p.US)))
		}
		fmt.Fprintf(b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", color[s], strings.Join(pts, " "))
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="3"/>`+"\n", x1+10, ly+6, x1+28, ly+6, color[s])
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", x1+34, ly+10, html.EscapeString(s))
		// In the panel's own unit, so that the legend is as wide whatever
		// the latency.
		lat := func(us float64) string { return num(us/div) + " " + unit }
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" fill="#555" font-size="10">p50 %s, p99 %s</text>`+"\n", x1+34, ly+23,
			lat(a.Latency.P50US), lat(a.Latency.P99US))
		ly += svgLegendH
	}
}

// trimFloat prints v with up to 4 decimals and no trailing zeros.
func trimFloat(v float64) string {
	s := fmt.Sprintf("%.4f", v)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// savePlot writes the SVG file; it returns "" when there was nothing to plot.
func savePlot(path string, aggs []*aggregate, servers []string, title string) (string, error) {
	var b strings.Builder
	if !writeSVG(&b, aggs, servers, title) {
		return "", nil
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return "", err
	}
	return path, nil
}
