package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/compress"
	"github.com/networkcluster/networkcluster/frame"
	"github.com/networkcluster/networkcluster/internal/testcert"
)

// tiny returns a scenario at test size: tens of connections, well under a
// second of measuring.
func tiny(name string, conns int) scenarioConfig {
	sc := scenarioConfig{Scenario: name, Conns: conns, Duration: 300 * time.Millisecond, Warmup: 100 * time.Millisecond, Parallel: 8}
	sc.defaults()
	return sc
}

func mustMetric(t *testing.T, r *result, key string) float64 {
	t.Helper()
	v, ok := r.get(key)
	if !ok {
		t.Fatalf("%s: no metric %s in %+v", r.Label, key, r.Metrics)
	}
	return v
}

// TestScenarios runs every scenario at a tiny size against the embedded
// Provider (`loadtest serve` in a child process), so that the harness
// cannot rot. It checks that each produced its figures and lost nothing;
// the figures themselves are for benchmarks.
func TestScenarios(t *testing.T) {
	srv := startServe(t)
	ctx := testCtx(t, 2*time.Minute)
	e := srv.env(nil, 2, baseClient())

	t.Run("connect", func(t *testing.T) {
		rs, err := e.run(ctx, tiny(scConnect, 30))
		if err != nil {
			t.Fatal(err)
		}
		if mustMetric(t, rs[0], "upgrades_per_s") <= 0 || rs[0].Latency == nil || rs[0].Latency.Count != 30 {
			t.Fatalf("%+v", rs[0])
		}
		if _, ok := rs[0].get("failed"); ok {
			t.Fatalf("failed connections: %v", rs[0].Notes)
		}
	})
	t.Run("idle", func(t *testing.T) {
		rs, err := e.run(ctx, tiny(scIdle, 30))
		if err != nil {
			t.Fatal(err)
		}
		mustMetric(t, rs[0], "rss_per_conn")
		mustMetric(t, rs[0], "rss_settled_per_conn") // serve answers the settled query
		mustMetric(t, rs[0], "heap_settled_per_conn")
		if g := mustMetric(t, rs[0], "goroutines"); g < 1 {
			t.Fatalf("goroutines %v", g)
		}
		if len(rs[0].Notes) > 0 {
			t.Fatalf("notes: %v", rs[0].Notes)
		}
	})
	for _, k := range []int{1, 4} {
		t.Run("echo", func(t *testing.T) {
			sc := tiny(scEcho, 10)
			sc.Inflight = k
			rs, err := e.run(ctx, sc)
			if err != nil {
				t.Fatal(err)
			}
			r := rs[0]
			if mustMetric(t, r, "msgs_per_s") <= 0 || r.Latency == nil {
				t.Fatalf("%+v", r)
			}
			mustMetric(t, r, "cpu_per_msg_us")
			if _, ok := r.get("lost"); ok {
				t.Fatalf("lost echoes: %v", r.Notes)
			}
			if _, ok := r.get("bad_echoes"); ok {
				t.Fatalf("bad echoes: %v", r.Notes)
			}
		})
	}
	t.Run("broadcast", func(t *testing.T) {
		sc := tiny(scBroadcast, 20)
		sc.SlowShare = 0.2
		rs, err := e.run(ctx, sc)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) != 2 {
			t.Fatalf("%d results, want 2 (all reading, then some not)", len(rs))
		}
		if mustMetric(t, rs[0], "deliveries_per_s") <= 0 || rs[0].Latency == nil {
			t.Fatalf("%+v", rs[0])
		}
		mustMetric(t, rs[1], "rate_kept_pct")
		mustMetric(t, rs[1], "rss_growth")
		for _, r := range rs {
			if _, ok := r.get("receivers_lost"); ok {
				t.Fatalf("%s: reading receivers lost", r.Label)
			}
		}
	})
	t.Run("broadcast stall", func(t *testing.T) {
		// Two receivers stop reading with a backlog over the Provider's
		// 1 MiB limit: it closes them, the others go on.
		sc := tiny(scBroadcast, 20)
		sc.SlowShare, sc.SlowFill = 0.1, 2<<20
		rs, err := e.run(ctx, sc)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) != 2 || !strings.Contains(rs[1].Label, "2MB backlog") {
			t.Fatalf("%d results: %+v", len(rs), rs)
		}
		mustMetric(t, rs[1], "deliveries_per_s")
		if _, ok := rs[1].get("receivers_lost"); ok {
			t.Fatalf("reading receivers lost")
		}
	})
}

// TestCompress runs the compress scenario against two presets.
func TestCompress(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	for _, preset := range []string{"SHARED_COMPRESSOR", "DEDICATED_COMPRESSOR_4KB|DEDICATED_DECOMPRESSOR_4KB"} {
		t.Run(preset, func(t *testing.T) {
			srv := startServe(t, "--compressor", preset)
			base := baseClient()
			base.Preset, _ = compress.ParsePreset(defaultClientPreset)
			e := srv.env(nil, 1, base)
			sc := tiny(scCompress, 5)
			sc.Preset = preset
			rs, err := e.run(ctx, sc)
			if err != nil {
				t.Fatal(err)
			}
			r := rs[0]
			if ratio := mustMetric(t, r, "wire_ratio_pct"); ratio >= 100 {
				t.Fatalf("wire %v%% of uncompressed: nothing was compressed (%v)", ratio, r.Notes)
			}
			if !strings.Contains(strings.Join(r.Notes, " "), "permessage-deflate") || !strings.Contains(strings.Join(r.Notes, " "), "(5 of 5") {
				t.Fatalf("notes %v", r.Notes)
			}
			if _, ok := r.get("lost"); ok {
				t.Fatalf("lost echoes: %v", r.Notes)
			}
		})
	}
}

type testMsg struct {
	op  frame.Opcode
	p   []byte
	err error
}

// pump reads c on a goroutine of its own (so that heartbeats are answered
// meanwhile) and hands each message over, until c ends.
func pump(c *wsConn) <-chan testMsg {
	ch := make(chan testMsg, 16)
	go func() {
		defer close(ch)
		for {
			op, p, err := c.next()
			ch <- testMsg{op, bytes.Clone(p), err}
			if err != nil {
				return
			}
		}
	}()
	return ch
}

func recv(t *testing.T, ch <-chan testMsg) testMsg {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok || m.err != nil {
			t.Fatalf("connection ended: %v", m.err)
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message in 10 s")
	}
	return testMsg{}
}

// TestServeProtocol checks `loadtest serve` against the harness protocol:
// key, echo of both kinds, stats, broadcast, and the text heartbeat.
func TestServeProtocol(t *testing.T) {
	srv := startServe(t, "--key", "s3cret", "--text-heartbeat", "--heartbeat-interval", "50ms")
	ctx := testCtx(t, time.Minute)
	o := baseClient()
	o.Addr, o.Host, o.RequestURI = srv.Addr, srv.Addr, "/connect"
	if _, err := dialConn(ctx, &o, nil, 0); err == nil {
		t.Fatal("connected without the key")
	} else {
		var he *handshakeError
		if !errors.As(err, &he) || he.Status != 403 {
			t.Fatalf("without the key: %v, want 403", err)
		}
	}
	o.RequestURI = "/connect?key=s3cret"
	a, err := dialConn(ctx, &o, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := dialConn(ctx, &o, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	ach, bch := pump(a), pump(b)
	defer func() {
		a.Close()
		b.Close()
		for range ach {
		}
		for range bch {
		}
	}()
	// Longer than 3 heartbeat intervals: the client must keep answering.
	time.Sleep(300 * time.Millisecond)
	for _, m := range []struct {
		op frame.Opcode
		p  string
	}{{frame.OpText, "héllo"}, {frame.OpBinary, "\x00\x01"}, {frame.OpText, textPong + "!"}} {
		if err := a.write(m.op, []byte(m.p)); err != nil {
			t.Fatal(err)
		}
		got := recv(t, ach)
		if got.op != m.op || string(got.p) != m.p {
			t.Fatalf("echo of %q: %v %q", m.p, got.op, got.p)
		}
	}
	if err := a.write(frame.OpBinary, []byte(statsQuery)); err != nil {
		t.Fatal(err)
	}
	st, err := parseStats(recv(t, ach).p)
	if err != nil || st.Conns != 2 || st.PID != srv.PID || st.Goroutines < 1 || st.MaxBackpressure <= 0 {
		t.Fatalf("stats %+v %v", st, err)
	}
	bc := []byte(bcastPrefix + "to everyone")
	if err := b.write(frame.OpBinary, bc); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []<-chan testMsg{ach, bch} {
		if got := recv(t, ch); got.op != frame.OpBinary || !bytes.Equal(got.p, bc) {
			t.Fatalf("broadcast: %v %q", got.op, got.p)
		}
	}
}

// TestRunCommand runs `loadtest run` as a user would, with JSON and plot.
func TestRunCommand(t *testing.T) {
	srv := startServe(t)
	dir := t.TempDir()
	js, svg := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.svg")
	var out, errb bytes.Buffer
	code := realMain(testCtx(t, time.Minute), []string{"run", "--target", "ws://" + srv.Addr + "/connect",
		"--scenario", "echo", "--conns", "8", "--duration", "300ms", "--warmup", "100ms", "--inflight", "2",
		"--json", js, "--svg", svg}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "messages/s") || !strings.Contains(out.String(), "server CPU/msg") {
		t.Fatalf("table:\n%s", out.String())
	}
	var rep fullReport
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil || len(rep.Results) != 1 || len(rep.Summary) != 1 {
		t.Fatalf("json: %v %+v", err, rep)
	}
	checkSVG(t, svg, 1)
}

func checkSVG(t *testing.T, path string, curves int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	n := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "polyline" {
			n++
		}
	}
	if n != curves {
		t.Fatalf("%d curves, want %d", n, curves)
	}
}

// TestRunRefuses: bad targets and impossible sizes are refused clearly.
func TestRunRefuses(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"run", "--target", "ws://192.0.2.1:80/connect"}, 1, "only targets loopback"},
		{[]string{"run", "--target", "ws://127.0.0.1:1/connect", "--conns", "100000000"}, 1, "open-file limit"},
		{[]string{"run", "--target", "ws://127.0.0.1:1/connect", "--scenario", "nope"}, 2, "unknown scenario"},
		{[]string{"run"}, 2, "needs --target"},
		{[]string{"run", "--target", "ws://127.0.0.1:1/connect", "--slow-share", "0.5"}, 2, "broadcast only"},
		{[]string{"frobnicate"}, 2, "unknown command"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		code := realMain(ctx, c.args, &out, &errb)
		if code != c.code || !strings.Contains(errb.String(), c.msg) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, errb.String(), c.code, c.msg)
		}
	}
}

func TestCheckLimits(t *testing.T) {
	if err := checkLimits(10, 1); err != nil {
		t.Fatal(err)
	}
	err := checkLimits(1<<28, 1)
	if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "RLIMIT_NOFILE") {
		t.Fatalf("fd limit: %v", err)
	}
	soft, _, _ := raiseNoFile()
	lo, hi := ephemeralRange()
	if ports := hi - lo + 1; uint64(ports) < soft-fdOverhead {
		err = checkLimits(ports, 1)
		if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "--sources") {
			t.Fatalf("port limit: %v", err)
		}
		if err := checkLimits(ports, 2); err != nil {
			t.Fatalf("two sources: %v", err)
		}
	}
}

// TestTableAndTargets checks the compare table's ratios and the target
// verdicts on made-up figures.
func TestTableAndTargets(t *testing.T) {
	mk := func(server, scenario, label string, kv ...any) *result {
		r := &result{Scenario: scenario, Label: label, Server: server, Run: 1}
		for i := 0; i < len(kv); i += 2 {
			r.add(kv[i].(string), kv[i].(string), "/s", kv[i+1].(float64), higher)
		}
		return r
	}
	rs := []*result{
		mk(ours, scEcho, "echo 64B n=1000 k=16", "msgs_per_s", 300000.0),
		mk("gorilla", scEcho, "echo 64B n=1000 k=16", "msgs_per_s", 100000.0),
		mk("rawtcp", scEcho, "echo 64B n=1000 k=16", "msgs_per_s", 400000.0),
		mk(ours, scConnect, "connect n=10", "upgrades_per_s", 10.0),
		mk("gorilla", scConnect, "connect n=10", "upgrades_per_s", 10.0),
		mk(ours, scConnect, "connect n=10", "upgrades_per_s", 30.0), // a second run
	}
	rs[5].Run = 2
	rs = append(rs, mk("gorilla", scConnect, "connect n=10", "upgrades_per_s", 10.0))
	servers := []string{ours, "gorilla", "rawtcp"}
	aggs := summarize(rs, servers)
	var out bytes.Buffer
	writeTable(&out, aggs, servers)
	if !strings.Contains(out.String(), "3.00×") || !strings.Contains(out.String(), "÷gorilla") {
		t.Fatalf("table:\n%s", out.String())
	}
	checks := checkTargets(aggs, servers)
	want := map[string]bool{"best peer": true, "raw TCP": false, "upgrades/s": true}
	for sub, met := range want {
		found := false
		for _, c := range checks {
			if strings.Contains(c.Target, sub) {
				found = true
				if c.Met != met {
					t.Errorf("%s: met %v, want %v (%+v)", sub, c.Met, met, c)
				}
			}
		}
		if !found {
			t.Errorf("no check for %q in %+v", sub, checks)
		}
	}
	// The connect median over runs 10 and 30 is 20: 2× gorilla.
	for _, a := range aggs {
		if a.Server == ours && a.Scenario == scConnect {
			if v, _ := a.get("upgrades_per_s"); v != 20 || a.Runs != 2 {
				t.Fatalf("median %v over %d runs", v, a.Runs)
			}
		}
	}
}

// TestCompare runs `loadtest compare` at a tiny size against two peers.
// It builds the peers' nested module, so it is skipped in -short.
func TestCompare(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the peer servers")
	}
	dir := t.TempDir()
	js := filepath.Join(dir, "c.json")
	var out, errb bytes.Buffer
	code := realMain(testCtx(t, 3*time.Minute), []string{"compare", "--peers", "gorilla,rawtcp",
		"--scenarios", "connect,echo,broadcast", "--connect-conns", "10", "--echo-conns", "5", "--echo-inflight", "2",
		"--broadcast-conns", "10", "--slow-share", "0", "--stall-conns", "0", "--duration", "1s", "--warmup", "200ms",
		"--wss", "echo", "--json", js, "--svg", filepath.Join(dir, "c.svg"), "-q"}, &out, &errb)
	t.Logf("compare:\n%s", out.String())
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	for _, s := range []string{"÷gorilla", "÷rawtcp", "echo 64B n=5 k=2", "wss echo 64B n=5 k=2", "÷networkcluster-goroutines", "targets"} {
		if !strings.Contains(out.String(), s) {
			t.Fatalf("no %q in\n%s", s, out.String())
		}
	}
	// echo: 3 servers; broadcast: 2; wss echo: ours on the event loop and
	// with goroutines, and gorilla (rawtcp has no TLS).
	checkSVG(t, filepath.Join(dir, "c.svg"), 8)
}

// TestServeTLS serves wss from PEM files and runs echo over it.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := testcert.New(t).WriteFiles(t, dir)
	srv := startServe(t, "--tls-cert", certFile, "--tls-key", keyFile)
	var out, errb bytes.Buffer
	code := realMain(testCtx(t, time.Minute), []string{"run", "--target", "wss://" + srv.Addr + "/connect", "--insecure",
		"--scenario", "echo", "--conns", "4", "--duration", "200ms", "--warmup", "50ms", "--svg", "none", "-q"}, &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "messages/s") {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}
}

// TestRunConcurrent: several runs against one serve at once (as several
// `loadtest run` processes would be) do not disturb each other.
func TestRunConcurrent(t *testing.T) {
	srv := startServe(t)
	ctx := testCtx(t, time.Minute)
	target := "ws://" + srv.Addr + "/connect"
	runs := [][]string{
		{"run", "--target", target, "--scenario", "echo", "--conns", "6", "--inflight", "3"},
		{"run", "--target", target, "--scenario", "broadcast", "--conns", "6"},
		{"run", "--target", target, "--scenario", "broadcast", "--conns", "5"},
	}
	type res struct {
		code     int
		out, err string
	}
	ch := make(chan res, len(runs))
	for _, args := range runs {
		args = append(args, "--duration", "300ms", "--warmup", "100ms", "--svg", "none", "-q")
		go func() {
			var out, errb bytes.Buffer
			code := realMain(ctx, args, &out, &errb)
			ch <- res{code, out.String(), errb.String()}
		}()
	}
	for range runs {
		r := <-ch
		if r.code != 0 || strings.Contains(r.out, "missing") || strings.Contains(r.out, "malformed") ||
			strings.Contains(r.out, "lost") || strings.Contains(r.out, "error:") {
			t.Errorf("exit %d\n%s\n%s", r.code, r.out, r.err)
		}
	}
}
