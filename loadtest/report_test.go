package main

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestReportExplainsItself: the table has a legend, gives one unit per
// row, shows the spread between runs, names no issue, and the targets get
// a verdict only with --check, flagged when the runs straddle the target.
func TestReportExplainsItself(t *testing.T) {
	mk := func(server, label string, run int, key, unit string, v float64) *result {
		r := &result{Scenario: scEcho, Label: label, Server: server, Run: run}
		r.add(key, key, unit, v, lower)
		return r
	}
	rs := []*result{
		mk(ours, "echo 64B n=1000 k=1", 1, "p99_us", "µs", 500),
		mk("gorilla", "echo 64B n=1000 k=1", 1, "p99_us", "µs", 5000),
		mk(ours, "echo 64B n=1000 k=1", 1, "rss", "B", 900),
		mk("gorilla", "echo 64B n=1000 k=1", 1, "rss", "B", 3<<20),
		mk(ours, "echo 64B n=1000 k=1", 2, "p99_us", "µs", 700),
		mk("gorilla", "echo 64B n=1000 k=1", 2, "p99_us", "µs", 5000),
		mk(ours, "echo 64B n=1000 k=1", 2, "rss", "B", 900),
		mk("gorilla", "echo 64B n=1000 k=1", 2, "rss", "B", 3<<20),
	}
	servers := []string{ours, "gorilla"}
	aggs := summarize(rs, servers)
	var out bytes.Buffer
	writeTable(&out, aggs, servers)
	s := out.String()
	for _, want := range []string{"legend:", "↑ higher is better", "÷peer", "±"} {
		if !strings.Contains(s, want) {
			t.Errorf("table lacks %q:\n%s", want, s)
		}
	}
	// p99: 600 µs (median of 500 and 700) and 5000 µs, both in µs (every
	// duration is).
	if !strings.Contains(s, "600 µs ±17%") || !strings.Contains(s, "5,000 µs") {
		t.Errorf("p99 row not in one unit with its spread:\n%s", s)
	}
	// RSS: 900 B and 3 MiB, both in B.
	if !strings.Contains(s, "900 B") || !strings.Contains(s, "3,145,728 B") {
		t.Errorf("rss row not in one unit:\n%s", s)
	}
	if regexp.MustCompile(`(?i)issue`).MatchString(s) {
		t.Errorf("the table names an issue:\n%s", s)
	}

	checks := []targetCheck{{Target: "broadcast kept", Want: "≥ 0.9", Ratio: 0.92, RatioMin: 0.76, RatioMax: 1.01}}
	checks[0].judge(func(r float64) bool { return r >= 0.9 })
	if !checks[0].Met || !checks[0].Uncertain {
		t.Fatalf("judge: %+v", checks[0])
	}
	out.Reset()
	writeTargets(&out, checks, false)
	if s := out.String(); strings.Contains(s, "met") || strings.Contains(s, "MISSED") || !strings.Contains(s, "runs 0.76 to 1.01") {
		t.Errorf("targets without --check:\n%s", s)
	}
	out.Reset()
	writeTargets(&out, checks, true)
	if s := out.String(); !strings.Contains(s, "met (within the spread)") {
		t.Errorf("targets with --check:\n%s", s)
	}
	if missed(checks) != 0 {
		t.Error("a met target counted as missed")
	}
	checks[0].Ratio = 0.8
	checks[0].judge(func(r float64) bool { return r >= 0.9 })
	if missed(checks) != 1 {
		t.Error("a missed target not counted")
	}
}

// TestSVGPanels: every panel has the same percentile axis, and the legend
// of every server fits in the plot.
func TestSVGPanels(t *testing.T) {
	curve := func(maxP float64) *latencySummary {
		// Latencies in the seconds: the widest legend.
		return &latencySummary{P50US: 1234567, P99US: 98765432, Curve: []curvePoint{{Percentile: 0, US: 50}, {Percentile: 50, US: 1234567}, {Percentile: maxP, US: 98765432}}}
	}
	servers := []string{ours, "gorilla", "nbio", "gobwas", "rawtcp", "a-rather-long-server-name", "seventh"}
	var aggs []*aggregate
	for i, s := range servers {
		aggs = append(aggs,
			&aggregate{Label: "echo A", Scenario: scEcho, Server: s, Latency: curve(99.9)},
			&aggregate{Label: "echo B", Scenario: scEcho, Server: s, Latency: curve(99 + float64(i)/100)})
	}
	var b strings.Builder
	if !writeSVG(&b, aggs, servers, "title") {
		t.Fatal("nothing plotted")
	}
	svg := b.String()
	ticks := regexp.MustCompile(`>(99\.9+|99|90|0)%<`).FindAllString(svg, -1)
	if len(ticks) == 0 || len(ticks)%2 != 0 {
		t.Fatalf("percentile ticks %v", ticks)
	}
	half := len(ticks) / 2
	if strings.Join(ticks[:half], " ") != strings.Join(ticks[half:], " ") {
		t.Errorf("panels have different percentile axes: %v", ticks)
	}
	// The legend of the first panel ends above the second panel's title.
	legendY := regexp.MustCompile(`<text x="[\d.]+" y="([\d.]+)" fill="#555"`).FindAllStringSubmatch(svg, -1)
	second := regexp.MustCompile(`y="([\d.]+)" font-weight="bold">echo B<`).FindStringSubmatch(svg)
	if len(legendY) != 2*len(servers) || second == nil {
		t.Fatalf("legend entries %d, second panel %v", len(legendY), second)
	}
	if atof(t, legendY[len(servers)-1][1]) >= atof(t, second[1]) {
		t.Errorf("the first legend (down to y=%s) runs into the second panel (y=%s)", legendY[len(servers)-1][1], second[1])
	}
	// Every legend text fits in the width (at most 7 px a character).
	for _, m := range regexp.MustCompile(`<text x="([\d.]+)" y="[\d.]+"(?: fill="#555" font-size="10")?>([^<]+)</text>`).FindAllStringSubmatch(svg, -1) {
		if end := atof(t, m[1]) + 7*float64(len([]rune(m[2]))); m[2] != "title" && end > svgWidth {
			t.Errorf("%q ends at x=%.0f, past the width %d", m[2], end, svgWidth)
		}
	}
}

func atof(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
