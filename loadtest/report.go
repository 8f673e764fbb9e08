package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ours is the server name of the library under test: the first column of
// the table and the numerator of every ratio.
const ours = "networkcluster"

// aggregate is one scenario against one server over every run: the median
// of each metric, the merged latency histogram, and what went wrong.
type aggregate struct {
	Label    string          `json:"label"`
	Scenario string          `json:"scenario"`
	Server   string          `json:"server"`
	Runs     int             `json:"runs"`
	Metrics  []metric        `json:"metrics"` // medians over the runs
	Latency  *latencySummary `json:"latency,omitempty"`
	Notes    []string        `json:"notes,omitempty"`
	Errors   []string        `json:"errors,omitempty"`

	hist *histogram
}

func (a *aggregate) metric(key string) (metric, bool) {
	for _, m := range a.Metrics {
		if m.Key == key {
			return m, true
		}
	}
	return metric{}, false
}

func (a *aggregate) get(key string) (float64, bool) {
	for _, m := range a.Metrics {
		if m.Key == key {
			return m.Value, true
		}
	}
	return 0, false
}

// summarize groups results by label and server, in the order labels first
// appear and in the order of servers.
func summarize(results []*result, servers []string) []*aggregate {
	var labels []string
	by := map[string]map[string][]*result{}
	for _, r := range results {
		if by[r.Label] == nil {
			by[r.Label] = map[string][]*result{}
			labels = append(labels, r.Label)
		}
		by[r.Label][r.Server] = append(by[r.Label][r.Server], r)
	}
	var out []*aggregate
	for _, l := range labels {
		for _, s := range servers {
			rs := by[l][s]
			if len(rs) == 0 {
				continue
			}
			out = append(out, aggregateOf(rs))
		}
	}
	return out
}

func aggregateOf(rs []*result) *aggregate {
	a := &aggregate{Label: rs[0].Label, Scenario: rs[0].Scenario, Server: rs[0].Server, Runs: len(rs)}
	var keys []string
	proto := map[string]metric{}
	vals := map[string][]float64{}
	for _, r := range rs {
		for _, m := range r.Metrics {
			if _, ok := proto[m.Key]; !ok {
				keys = append(keys, m.Key)
				proto[m.Key] = m
			}
			vals[m.Key] = append(vals[m.Key], m.Value)
		}
		if r.hist != nil {
			if a.hist == nil {
				a.hist = &histogram{}
			}
			a.hist.Merge(r.hist)
		}
		for _, n := range r.Notes {
			if len(rs) > 1 && !inAll(rs, n) {
				n = fmt.Sprintf("run %d: %s", r.Run, n)
			}
			if !slices.Contains(a.Notes, n) {
				a.Notes = append(a.Notes, n)
			}
		}
		if r.Error != "" {
			a.Errors = append(a.Errors, fmt.Sprintf("run %d: %s", r.Run, r.Error))
		}
	}
	for _, k := range keys {
		m := proto[k]
		m.Value = median(vals[k]) // sorts vals[k]
		if v := vals[k]; len(v) > 1 {
			m.Min, m.Max = v[0], v[len(v)-1]
		}
		a.Metrics = append(a.Metrics, m)
	}
	if a.hist != nil {
		a.Latency = a.hist.Summary()
	}
	return a
}

// inAll reports whether every result carries note n.
func inAll(rs []*result, n string) bool {
	for _, r := range rs {
		if !slices.Contains(r.Notes, n) {
			return false
		}
	}
	return true
}

// median returns the median of v (the mean of the middle two for an even
// count); v is sorted in place.
func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// group formats v with thousands separators and no decimals.
func group(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	s := strconv.FormatFloat(math.Round(math.Abs(v)), 'f', 0, 64)
	var b strings.Builder
	if v < 0 && s != "0" {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// bytesLabel formats a byte count with a binary unit.
func bytesLabel(v float64) string {
	return bytesScale(math.Abs(v))(v)
}

// bytesScale returns the formatter of a byte count in the unit that suits
// m, the smallest non-zero magnitude it will format: one unit for a whole
// row, precise for its smallest figure.
func bytesScale(m float64) func(float64) string {
	switch {
	case m < 1<<10:
		return func(v float64) string { return num(v) + " B" }
	case m < 1<<20:
		return func(v float64) string { return num(v/(1<<10)) + " KiB" }
	case m < 1<<30:
		return func(v float64) string { return num(v/(1<<20)) + " MiB" }
	}
	return func(v float64) string { return num(v/(1<<30)) + " GiB" }
}

// num prints v with two significant decimals below 10, one below 100, and
// none (with thousands separators) above.
func num(v float64) string {
	switch a := math.Abs(v); {
	case a == 0 || math.IsNaN(v):
		return group(v)
	case a < 10:
		return fmt.Sprintf("%.2f", v)
	case a < 100:
		return fmt.Sprintf("%.1f", v)
	}
	return group(v)
}

// formatValue renders a metric value with its unit.
func formatValue(v float64, unit string) string { return formatter(unit, math.Abs(v))(v) }

// formatter returns the formatter of values in unit whose smallest
// non-zero magnitude is m: every value of a row gets the same unit.
func formatter(unit string, m float64) func(float64) string {
	switch unit {
	case "/s":
		return func(v float64) string { return group(v) + "/s" }
	case "µs":
		// Latency percentiles and CPU per event read best in one unit
		// across rows: µs throughout.
		return func(v float64) string { return num(v) + " µs" }
	case "ns":
		return func(v float64) string { return fmt.Sprintf("%.0f ns", v) }
	case "B":
		return bytesScale(m)
	case "%":
		return func(v float64) string { return fmt.Sprintf("%.1f%%", v) }
	}
	return group
}

// spread renders the range of a median over runs as ±half of it, relative
// to the median ("" for one run or no spread).
func spread(m metric) string {
	if m.Max <= m.Min || m.Value == 0 || math.IsNaN(m.Value) {
		return ""
	}
	return fmt.Sprintf(" ±%.0f%%", 100*(m.Max-m.Min)/2/math.Abs(m.Value))
}

// legend explains the table.
const legend = `legend: ↑ higher is better, ↓ lower is better. ÷peer is our figure divided by the peer's
  (better for us above 1× on a ↑ row, below 1× on a ↓ row). With --runs above 1, each figure is the
  median over the runs and ±N% is half the range between runs, relative to the median. Units:
  /s per second; µs microseconds; B, KiB, MiB bytes (1 KiB = 1024 B), one unit per row;
  CPU use in % of one core.
`

// writeTable prints the summary as one block per scenario label: a row per
// metric, a column per server, and with more than one server a column
// ours÷peer for each peer.
func writeTable(w io.Writer, aggs []*aggregate, servers []string) {
	var labels []string
	byLabel := map[string]map[string]*aggregate{}
	for _, a := range aggs {
		if byLabel[a.Label] == nil {
			byLabel[a.Label] = map[string]*aggregate{}
			labels = append(labels, a.Label)
		}
		byLabel[a.Label][a.Server] = a
	}
	var peers []string
	hasOurs := slices.Contains(servers, ours)
	for _, s := range servers {
		if s != ours {
			peers = append(peers, s)
		}
	}
	ratios := hasOurs && len(peers) > 0

	// A row is either a label line (title set) or a line of cells.
	type row struct {
		title string
		cells []string
	}
	head := []string{"", ""}
	head = append(head, servers...)
	if ratios {
		for _, p := range peers {
			head = append(head, "÷"+p)
		}
	}
	rows := []row{{cells: head}}
	for _, l := range labels {
		rows = append(rows, row{title: l})
		// Metric order: as the first server that has the label reports them.
		var keys []metric
		seen := map[string]bool{}
		for _, s := range servers {
			if a := byLabel[l][s]; a != nil {
				for _, m := range a.Metrics {
					if !seen[m.Key] {
						seen[m.Key] = true
						keys = append(keys, m)
					}
				}
			}
		}
		for _, k := range keys {
			arrow := ""
			switch k.Better {
			case higher:
				arrow = "↑"
			case lower:
				arrow = "↓"
			}
			cells := []string{"  " + k.Name, arrow}
			minAbs := math.Inf(1)
			for _, s := range servers {
				if a := byLabel[l][s]; a != nil {
					if v, ok := a.get(k.Key); ok && !math.IsNaN(v) && v != 0 {
						minAbs = math.Min(minAbs, math.Abs(v))
					}
				}
			}
			if math.IsInf(minAbs, 1) {
				minAbs = 0
			}
			format := formatter(k.Unit, minAbs)
			for _, s := range servers {
				cell := ""
				if a := byLabel[l][s]; a != nil {
					if m, ok := a.metric(k.Key); ok {
						cell = format(m.Value) + spread(m)
					}
				}
				cells = append(cells, cell)
			}
			if ratios {
				var o float64
				var okO bool
				if a := byLabel[l][ours]; a != nil {
					o, okO = a.get(k.Key)
				}
				for _, p := range peers {
					cell := ""
					if a := byLabel[l][p]; a != nil && okO && k.Better != "" {
						if v, ok := a.get(k.Key); ok && v != 0 {
							cell = fmt.Sprintf("%.2f×", o/v)
						}
					}
					cells = append(cells, cell)
				}
			}
			rows = append(rows, row{cells: cells})
		}
	}
	widths := make([]int, len(head))
	for _, r := range rows {
		for i, c := range r.cells {
			widths[i] = max(widths[i], displayWidth(c))
		}
	}
	for _, r := range rows {
		if r.title != "" {
			fmt.Fprintln(w, r.title)
			continue
		}
		var b strings.Builder
		for i, c := range r.cells {
			pad := strings.Repeat(" ", widths[i]-displayWidth(c))
			if i == 0 {
				b.WriteString(c + pad)
			} else {
				b.WriteString(" " + pad + c)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	fmt.Fprint(w, legend)
	for _, l := range labels {
		for _, s := range servers {
			if a := byLabel[l][s]; a != nil {
				for _, n := range a.Notes {
					fmt.Fprintf(w, "note: %s, %s: %s\n", l, s, n)
				}
				for _, e := range a.Errors {
					fmt.Fprintf(w, "error: %s, %s: %s\n", l, s, e)
				}
			}
		}
	}
}

// displayWidth counts runes, which is the width of everything the table
// prints (no wide characters).
func displayWidth(s string) int { return len([]rune(s)) }

// envInfo describes the machine a report was made on.
type envInfo struct {
	GoVersion  string `json:"go_version"`
	OS         string `json:"os"`
	Arch       string `json:"arch"`
	CPUs       int    `json:"cpus"`
	Kernel     string `json:"kernel,omitempty"`
	CPUModel   string `json:"cpu_model,omitempty"`
	NoFileSoft uint64 `json:"nofile_soft"`
	NoFileHard uint64 `json:"nofile_hard"`
}

func currentEnv() envInfo {
	e := envInfo{GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		e.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for l := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				e.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	e.NoFileSoft, e.NoFileHard, _ = raiseNoFile()
	return e
}

func (e envInfo) String() string {
	s := fmt.Sprintf("%s %s/%s, %d CPUs", e.GoVersion, e.OS, e.Arch, e.CPUs)
	if e.CPUModel != "" {
		s += " (" + e.CPUModel + ")"
	}
	if e.Kernel != "" {
		s += ", kernel " + e.Kernel
	}
	return s
}

// targetCheck is one of the library's performance targets judged on the
// figures of a run: Ratio is the median's, [RatioMin, RatioMax] the range
// the runs allow.
type targetCheck struct {
	Target   string  `json:"target"`
	Label    string  `json:"label"`
	Want     string  `json:"want"`
	Ours     float64 `json:"ours"`
	Other    float64 `json:"other"`
	Ratio    float64 `json:"ratio"`
	RatioMin float64 `json:"ratio_min,omitempty"`
	RatioMax float64 `json:"ratio_max,omitempty"`
	Met      bool    `json:"met"`
	// Uncertain: the range between runs reaches both sides of the target.
	Uncertain bool   `json:"uncertain,omitempty"`
	Note      string `json:"note,omitempty"`
}

// judge sets Met from the median and Uncertain from the range.
func (c *targetCheck) judge(ok func(float64) bool) {
	c.Met = ok(c.Ratio)
	if c.RatioMax > c.RatioMin {
		c.Uncertain = ok(c.RatioMin) != ok(c.RatioMax)
	}
}

// ratioRange is the range of o÷p given the ranges of o and p over runs.
func ratioRange(o, p metric) (lo, hi float64) {
	if o.Max <= o.Min && p.Max <= p.Min {
		return 0, 0
	}
	oLo, oHi, pLo, pHi := o.Value, o.Value, p.Value, p.Value
	if o.Max > o.Min {
		oLo, oHi = o.Min, o.Max
	}
	if p.Max > p.Min {
		pLo, pHi = p.Min, p.Max
	}
	if pLo <= 0 || pHi <= 0 {
		return 0, 0
	}
	return oLo / pHi, oHi / pLo
}

// fullReport is the JSON written by --json.
type fullReport struct {
	Tool     string         `json:"tool"`
	Command  string         `json:"command"`
	Started  time.Time      `json:"started"`
	Finished time.Time      `json:"finished"`
	Env      envInfo        `json:"env"`
	Servers  []string       `json:"servers"`
	Runs     int            `json:"runs"`
	Summary  []*aggregate   `json:"summary"`
	Targets  []targetCheck  `json:"targets,omitempty"`
	Results  []*result      `json:"results"`
	Plot     string         `json:"plot,omitempty"`
	Config   map[string]any `json:"config,omitempty"`
}

func writeJSON(path string, rep *fullReport) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// findAgg returns the aggregate of the first label of scenario sc whose
// label satisfies match, for server.
func findAgg(aggs []*aggregate, server string, match func(*aggregate) bool) *aggregate {
	for _, a := range aggs {
		if a.Server == server && match(a) {
			return a
		}
	}
	return nil
}

// checkTargets judges the library's performance targets on the
// aggregates, for whichever of them the run measured.
func checkTargets(aggs []*aggregate, servers []string) []targetCheck {
	var out []targetCheck
	has := func(s string) bool { return slices.Contains(servers, s) }
	labelHas := func(sub ...string) func(*aggregate) bool {
		return func(a *aggregate) bool {
			for _, s := range sub {
				if !strings.Contains(a.Label, s) {
					return false
				}
			}
			return true
		}
	}
	ratio := func(target, want string, match func(*aggregate) bool, key, peer string, ok func(r float64) bool) {
		o := findAgg(aggs, ours, match)
		p := findAgg(aggs, peer, match)
		if o == nil || p == nil {
			return
		}
		om, ok1 := o.metric(key)
		pm, ok2 := p.metric(key)
		if !ok1 || !ok2 || pm.Value == 0 {
			return
		}
		c := targetCheck{Target: target, Label: o.Label, Want: want, Ours: om.Value, Other: pm.Value, Ratio: om.Value / pm.Value}
		c.RatioMin, c.RatioMax = ratioRange(om, pm)
		c.judge(ok)
		out = append(out, c)
	}
	isWSS := func(a *aggregate) bool { return strings.HasPrefix(a.Label, "wss ") }
	isScenario := func(sc string, m func(*aggregate) bool) func(*aggregate) bool {
		return func(a *aggregate) bool { return a.Scenario == sc && !isWSS(a) && m(a) }
	}
	wss := func(sc string, m func(*aggregate) bool) func(*aggregate) bool {
		return func(a *aggregate) bool { return a.Scenario == sc && isWSS(a) && m(a) }
	}
	if has("nbio") {
		ratio("idle memory per connection below nbio's", "ours÷nbio < 1",
			isScenario(scIdle, labelHas("")), "rss_per_conn", "nbio", func(r float64) bool { return r < 1 })
	}
	if has("gobwas") {
		ratio("echo 64 B, 1 in flight: server CPU per message at most gobwas's", "ours÷gobwas ≤ 1",
			isScenario(scEcho, labelHas(" k=1")), "cpu_per_msg_us", "gobwas", func(r float64) bool { return r <= 1 })
	}
	// Echo with 16 in flight: ≥ 2× the best WebSocket peer, ≥ 0.9× raw TCP.
	k16 := isScenario(scEcho, labelHas(" k=16"))
	if o := findAgg(aggs, ours, k16); o != nil {
		om, _ := o.metric("msgs_per_s")
		var best metric
		bestName := ""
		for _, s := range servers {
			if s == ours || s == "rawtcp" || s == oursGoroutines {
				continue
			}
			if p := findAgg(aggs, s, k16); p != nil {
				if m, ok := p.metric("msgs_per_s"); ok && m.Value > best.Value {
					best, bestName = m, s
				}
			}
		}
		if best.Value > 0 {
			c := targetCheck{Target: "echo 64 B, 16 in flight: messages/s at least 2× the best peer (" + bestName + ")",
				Label: o.Label, Want: "ours÷best ≥ 2", Ours: om.Value, Other: best.Value, Ratio: om.Value / best.Value}
			c.RatioMin, c.RatioMax = ratioRange(om, best)
			c.judge(func(r float64) bool { return r >= 2 })
			out = append(out, c)
		}
		if has("rawtcp") {
			ratio("echo 64 B, 16 in flight: messages/s at least 0.9× raw TCP", "ours÷rawtcp ≥ 0.9",
				k16, "msgs_per_s", "rawtcp", func(r float64) bool { return r >= 0.9 })
		}
	}
	// wss on the event loop: idle memory and goroutines, and at least the
	// goroutine engine's echo and handshake rates.
	if o := findAgg(aggs, ours, wss(scIdle, labelHas(""))); o != nil {
		// Absolute bounds: the range over runs is that of our figure.
		bound := func(target, want, key string, limit float64) {
			m, ok := o.metric(key)
			if !ok {
				return
			}
			c := targetCheck{Target: target, Label: o.Label, Want: want, Ours: m.Value, Other: limit, Ratio: m.Value / limit}
			if m.Max > m.Min {
				c.RatioMin, c.RatioMax = m.Min/limit, m.Max/limit
			}
			c.judge(func(r float64) bool { return r <= 1 })
			out = append(out, c)
		}
		bound("wss idle: server RSS per connection at most 10 KB", "÷10 KB ≤ 1", "rss_per_conn", 10<<10)
		bound("wss idle: the same, settled (after a GC)", "÷10 KB ≤ 1", "rss_settled_per_conn", 10<<10)
		bound("wss idle: goroutines independent of the connections (at most 64 at any N)", "goroutines÷64 ≤ 1", "goroutines", 64)
	}
	if has(oursGoroutines) {
		ratio("wss echo 64 B, 16 in flight: messages/s at least the goroutine engine's", "ours÷goroutines ≥ 1",
			wss(scEcho, labelHas(" k=16")), "msgs_per_s", oursGoroutines, func(r float64) bool { return r >= 1 })
		ratio("wss connect: handshakes/s at least the goroutine engine's", "ours÷goroutines ≥ 1",
			wss(scConnect, labelHas("")), "upgrades_per_s", oursGoroutines, func(r float64) bool { return r >= 1 })
	}
	notSlow := func(a *aggregate) bool { return !isWSS(a) && !strings.Contains(a.Label, "not reading") }
	if has("gorilla") {
		ratio("broadcast 1 KB: deliveries/s at least 2× gorilla's", "ours÷gorilla ≥ 2",
			isScenario(scBroadcast, notSlow), "deliveries_per_s", "gorilla", func(r float64) bool { return r >= 2 })
		ratio("connect: upgrades/s at least 1.5× gorilla's", "ours÷gorilla ≥ 1.5",
			isScenario(scConnect, labelHas("")), "upgrades_per_s", "gorilla", func(r float64) bool { return r >= 1.5 })
	}
	// With some receivers not reading, the others keep ≥ 90 %, and the
	// server's memory stays within their backpressure limits.
	for _, o := range aggs {
		if o.Server != ours || o.Scenario != scBroadcast || !strings.Contains(o.Label, "not reading") {
			continue
		}
		if m, ok := o.metric("rate_kept_pct"); ok {
			c := targetCheck{Target: "broadcast with receivers not reading: the others keep ≥ 90 % of their rate",
				Label: o.Label, Want: "≥ 0.9", Ours: m.Value, Ratio: m.Value / 100, RatioMin: m.Min / 100, RatioMax: m.Max / 100}
			c.judge(func(r float64) bool { return r >= 0.9 })
			out = append(out, c)
		}
		if m, ok := o.metric("rss_growth_per_slow"); ok {
			if bound, ok := o.get("backpressure_limit"); ok && bound > 0 {
				c := targetCheck{Target: "broadcast with receivers not reading: server memory growth per slow receiver within its backpressure limit",
					Label: o.Label, Want: "growth ÷ limit ≤ 1", Ours: m.Value, Other: bound, Ratio: m.Value / bound,
					RatioMin: m.Min / bound, RatioMax: m.Max / bound}
				c.judge(func(r float64) bool { return r <= 1 })
				out = append(out, c)
			}
		}
	}
	return out
}

// writeTargets prints the targets the run measured: their ratios and
// spread, and with check a verdict for each.
func writeTargets(w io.Writer, checks []targetCheck, check bool) {
	if len(checks) == 0 {
		return
	}
	if check {
		fmt.Fprintln(w, "\ntargets (--check: the exit status is 1 if one is missed; judged on the median):")
	} else {
		fmt.Fprintln(w, "\ntargets (give --check to judge them):")
	}
	for _, c := range checks {
		rng := ""
		if c.RatioMax > c.RatioMin {
			rng = fmt.Sprintf(", runs %.2f to %.2f", c.RatioMin, c.RatioMax)
		}
		verdict := ""
		if check {
			switch {
			case c.Met && c.Uncertain:
				verdict = "met (within the spread)  "
			case c.Met:
				verdict = "met                      "
			case c.Uncertain:
				verdict = "MISSED (within the spread)"
			default:
				verdict = "MISSED                   "
			}
			verdict += " "
		}
		fmt.Fprintf(w, "  %s%s: %.2f (want %s%s) [%s]\n", verdict, c.Target, c.Ratio, c.Want, rng, c.Label)
	}
}

// missed counts the targets whose median misses.
func missed(checks []targetCheck) int {
	n := 0
	for _, c := range checks {
		if !c.Met {
			n++
		}
	}
	return n
}
