package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/networkcluster/networkcluster/frame"
)

// Scenario names.
const (
	scConnect   = "connect"
	scIdle      = "idle"
	scEcho      = "echo"
	scBroadcast = "broadcast"
	scCompress  = "compress"
)

var scenarioNames = []string{scConnect, scIdle, scEcho, scBroadcast, scCompress, scRequest, scJobs}

// scenarioConfig is one scenario to run against one server.
type scenarioConfig struct {
	Scenario string
	// Conns is the number of connections (receivers for broadcast), not
	// counting the harness's control connection.
	Conns int
	// Duration is the measured window (idle: the settle time before
	// measuring).
	Duration time.Duration
	// Warmup runs before the measured window (echo, broadcast, compress).
	Warmup time.Duration
	// Inflight is the messages in flight per connection (echo, compress)
	// or the broadcasts in flight (broadcast).
	Inflight int
	// Size is the payload size in bytes.
	Size int
	// SlowShare is the share of broadcast receivers that stop reading in
	// the second phase (0: no second phase).
	SlowShare float64
	// SlowFill is the echo each slow receiver asks for as it stops reading
	// (default defaultSlowFill): the backlog the server must hold for it.
	SlowFill int
	// Parallel is the number of connections dialed at once.
	Parallel int
	// Preset names the server's compressor (compress; for the label).
	Preset string
	// Direction of the request scenario: dirC2P (default) or dirP2C.
	Direction string
	// KillShare is the share of workers of the jobs scenario that drop
	// their TCP connection halfway through the measured window.
	KillShare float64
	// TLS runs the scenario over wss (the label starts with "wss ").
	TLS bool `json:",omitempty"`
}

// label identifies a scenario's rows across servers and runs.
func (sc scenarioConfig) label() string {
	if sc.TLS {
		plain := sc
		plain.TLS = false
		return "wss " + plain.label()
	}
	switch sc.Scenario {
	case scEcho:
		return fmt.Sprintf("echo %s n=%d k=%d", sizeLabel(sc.Size), sc.Conns, sc.Inflight)
	case scBroadcast:
		return fmt.Sprintf("broadcast %s n=%d", sizeLabel(sc.Size), sc.Conns)
	case scCompress:
		return fmt.Sprintf("compress %s %s n=%d", sc.Preset, sizeLabel(sc.Size), sc.Conns)
	case scRequest:
		return fmt.Sprintf("request %s %s n=%d k=%d", sc.Direction, sizeLabel(sc.Size), sc.Conns, sc.Inflight)
	case scJobs:
		l := fmt.Sprintf("jobs %s n=%d k=%d", sizeLabel(sc.Size), sc.Conns, sc.Inflight)
		if sc.KillShare > 0 {
			l += fmt.Sprintf(" kill=%g%%", sc.KillShare*100)
		}
		return l
	}
	return fmt.Sprintf("%s n=%d", sc.Scenario, sc.Conns)
}

// slowLabel is the label of the second broadcast phase.
func (sc scenarioConfig) slowLabel() string {
	return fmt.Sprintf("broadcast %s n=%d %g%% not reading, %s backlog", sizeLabel(sc.Size), sc.Conns, sc.SlowShare*100, sizeLabel(sc.SlowFill))
}

func sizeLabel(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.Itoa(n>>20) + "MB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.Itoa(n>>10) + "KB"
	}
	return strconv.Itoa(n) + "B"
}

// metric is one figure of a result.
type metric struct {
	Key    string  `json:"key"`
	Name   string  `json:"name"`
	Unit   string  `json:"unit"`
	Value  float64 `json:"value"`
	Better string  `json:"better,omitempty"` // "higher" or "lower"
	// Min and Max are the extremes over the runs of an aggregate (Value is
	// their median); both 0 for one run.
	Min float64 `json:"min,omitempty"`
	Max float64 `json:"max,omitempty"`
}

const (
	higher = "higher"
	lower  = "lower"
)

// result is the outcome of one scenario against one server in one run.
type result struct {
	Scenario  string          `json:"scenario"`
	Label     string          `json:"label"`
	Server    string          `json:"server"`
	Run       int             `json:"run"`
	Conns     int             `json:"conns"`
	Inflight  int             `json:"inflight,omitempty"`
	Size      int             `json:"size,omitempty"`
	SlowShare float64         `json:"slow_share,omitempty"`
	Preset    string          `json:"preset,omitempty"`
	DurationS float64         `json:"duration_s"`
	Metrics   []metric        `json:"metrics"`
	Latency   *latencySummary `json:"latency,omitempty"`
	Notes     []string        `json:"notes,omitempty"`
	Error     string          `json:"error,omitempty"`

	hist *histogram
}

func (r *result) add(key, name, unit string, v float64, better string) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	r.Metrics = append(r.Metrics, metric{Key: key, Name: name, Unit: unit, Value: v, Better: better})
}

func (r *result) get(key string) (float64, bool) {
	for _, m := range r.Metrics {
		if m.Key == key {
			return m.Value, true
		}
	}
	return 0, false
}

func (r *result) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// setLatency attaches h and adds its percentiles as metrics.
func (r *result) setLatency(h *histogram, what string) {
	if h.Count() == 0 {
		return
	}
	r.hist = h
	r.Latency = h.Summary()
	r.add("p50_us", what+" p50", "µs", r.Latency.P50US, lower)
	r.add("p99_us", what+" p99", "µs", r.Latency.P99US, lower)
	r.add("p999_us", what+" p99.9", "µs", r.Latency.P999US, lower)
}

// env is one server under test as the scenarios see it.
type env struct {
	Name string
	Opts *clientOptions
	PID  int // 0: CPU and RSS come only from the stats query, if at all
	// NoStats: the server does not answer the stats query (any WebSocket
	// echo server): the scenarios do not ask.
	NoStats bool
	Sources []net.IP
	Prog    *progress
	epoch   time.Time
}

func (e *env) now() int64 { return int64(time.Since(e.epoch)) }

func (e *env) sample() (procSample, bool) {
	s, err := readProc(e.PID)
	return s, err == nil
}

func (e *env) newFleet(what string) *fleet {
	return &fleet{opts: e.Opts, sources: e.Sources, prog: e.Prog, label: e.Name + " " + what}
}

func (e *env) src(i int) net.IP {
	if len(e.Sources) == 0 {
		return nil
	}
	return e.Sources[i%len(e.Sources)]
}

// watch waits d, printing the rate of count once a second.
func (e *env) watch(ctx context.Context, d time.Duration, what, unit string, count func() uint64) {
	end := time.Now().Add(d)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last, lastT := count(), time.Now()
	for {
		left := time.Until(end)
		if left <= 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(left):
			return
		case now := <-t.C:
			c := count()
			e.Prog.Printf("%s %s: %s %s", e.Name, what, group(float64(c-last)/now.Sub(lastT).Seconds()), unit)
			last, lastT = c, now
		}
	}
}

// cpuPer returns the server CPU time between two samples divided by n, in
// unit.
func cpuPer(p0, p1 procSample, n uint64, unit time.Duration) float64 {
	if n < minEvents {
		return math.NaN()
	}
	return float64(p1.CPU-p0.CPU) / float64(n) / float64(unit)
}

// minEvents is the fewest events (messages, deliveries, upgrades) a CPU
// figure per event is given for: a server that stalled gets none rather
// than its whole CPU time divided by a handful.
const minEvents = 100

// minCPUTicks is the CPU time below which a per-message CPU figure is
// flagged as coarse: /proc counts CPU time in ticks of 1/userHZ s.
const minCPUTicks = 50

// coarseCPU notes when the server CPU time between two samples is too
// short for its 10 ms resolution to give a figure within a few percent.
func (r *result) coarseCPU(p0, p1 procSample) {
	if d := p1.CPU - p0.CPU; d < minCPUTicks*time.Second/userHZ {
		r.note("server CPU figures are coarse: under %v of CPU time measured, in ticks of %v",
			minCPUTicks*time.Second/userHZ, time.Second/userHZ)
	}
}

// noProc notes that the server's CPU and RSS could not be read: a server
// that is not `loadtest serve` needs --server-pid (and to run on this
// machine).
func (r *result) noProc() {
	r.note("server CPU and memory not available: give --server-pid (a server on this machine)")
}

// addRate adds the rate of n items (messages, requests, jobs) done in a
// measured window, and the server's CPU per item where its /proc figures
// were read at both ends of the window (ok).
func (r *result) addRate(rateName, cpuName string, n uint64, dt time.Duration, p1, p2 procSample, ok bool) {
	r.add("msgs_per_s", rateName, "/s", float64(n)/dt.Seconds(), higher)
	if !ok {
		r.noProc()
		return
	}
	r.add("cpu_per_msg_us", cpuName, "µs", cpuPer(p1, p2, n, time.Microsecond), lower)
	r.coarseCPU(p1, p2)
	r.add("server_cpu_pct", "server CPU use", "%", cpuUse(p1, p2), "")
}

// cpuUse returns the server's CPU use between two samples in % of one core.
func cpuUse(p0, p1 procSample) float64 {
	dt := p1.At.Sub(p0.At)
	if dt <= 0 {
		return math.NaN()
	}
	return 100 * float64(p1.CPU-p0.CPU) / float64(dt)
}

func (e *env) newResult(sc scenarioConfig, label string) *result {
	return &result{
		Scenario: sc.Scenario, Label: label, Server: e.Name, Conns: sc.Conns,
		Inflight: sc.Inflight, Size: sc.Size, SlowShare: sc.SlowShare, Preset: sc.Preset,
		DurationS: sc.Duration.Seconds(),
	}
}

// run runs one scenario; broadcast with a slow share gives two results.
func (e *env) run(ctx context.Context, sc scenarioConfig) ([]*result, error) {
	if e.epoch.IsZero() {
		e.epoch = time.Now()
	}
	sc.defaults()
	if e.Opts.Raw && sc.Scenario != scEcho && sc.Scenario != scConnect {
		return nil, fmt.Errorf("%w: the raw TCP mirror runs only echo and connect", ErrScenario)
	}
	switch sc.Scenario {
	case scConnect:
		r, err := e.connect(ctx, sc)
		return []*result{r}, err
	case scIdle:
		r, err := e.idle(ctx, sc)
		return []*result{r}, err
	case scEcho, scCompress:
		r, err := e.echo(ctx, sc)
		return []*result{r}, err
	case scBroadcast:
		return e.broadcast(ctx, sc)
	case scRequest:
		r, err := e.request(ctx, sc)
		return []*result{r}, err
	case scJobs:
		r, err := e.jobs(ctx, sc)
		return []*result{r}, err
	}
	return nil, fmt.Errorf("%w: unknown scenario %q", ErrUsage, sc.Scenario)
}

// drain reads and drops messages until the connection ends (answering
// pings on the way): an idle consumer.
func drain(_ int, c *wsConn) {
	for {
		if _, _, err := c.next(); err != nil {
			return
		}
	}
}

// closeWait bounds the teardown of a fleet.
const closeWait = 15 * time.Second

// connect: upgrades per second with Parallel dials at once.
func (e *env) connect(ctx context.Context, sc scenarioConfig) (r *result, err error) {
	r = e.newResult(sc, sc.label())
	h := &histogram{}
	f := e.newFleet("connect")
	defer closeFleet(f, &err)
	p0, ok0 := e.sample()
	or := f.open(ctx, 0, sc.Conns, sc.Parallel, false, h, nil, drain)
	p1, ok1 := e.sample()
	if or.OK == 0 {
		return r, fmt.Errorf("%w: no connection opened: %v", ErrScenario, or.FirstErr)
	}
	r.add("upgrades_per_s", "upgrades/s", "/s", float64(or.OK)/or.Elapsed.Seconds(), higher)
	if ok0 && ok1 {
		r.add("cpu_per_upgrade_us", "server CPU/upgrade", "µs", cpuPer(p0, p1, uint64(or.OK), time.Microsecond), lower)
		r.coarseCPU(p0, p1)
	} else {
		r.noProc()
	}
	r.setLatency(h, "connect+upgrade")
	if or.Failed > 0 {
		r.add("failed", "failed connections", "", float64(or.Failed), lower)
		r.note("%d of %d connections failed; first: %v", or.Failed, sc.Conns, or.FirstErr)
	}
	e.Prog.Printf("%s connect: %d connections in %v (%s/s)", e.Name, or.OK, or.Elapsed.Round(time.Millisecond), group(float64(or.OK)/or.Elapsed.Seconds()))
	return r, nil
}

// closeFleet tears f down and reports a teardown failure in *err unless
// it already holds an error.
func closeFleet(f *fleet, err *error) {
	if cerr := f.closeAll(closeWait); cerr != nil && *err == nil {
		*err = cerr
	}
}

// openStrict opens the fleet and fails on the first failed connection.
func (e *env) openStrict(ctx context.Context, f *fleet, sc scenarioConfig, plan func(int) dialPlan, serve func(int, *wsConn)) error {
	or := f.open(ctx, 0, sc.Conns, sc.Parallel, true, nil, plan, serve)
	if or.OK < sc.Conns {
		return fmt.Errorf("%w: opened %d of %d connections: %v", ErrScenario, or.OK, sc.Conns, or.FirstErr)
	}
	e.Prog.Printf("%s: %d connections open in %v", e.Name, or.OK, or.Elapsed.Round(time.Millisecond))
	return nil
}

// waitConns polls the server's stats until it reports at least n
// connections, for at most d. It returns the last stats.
func waitConns(ctx context.Context, ctl *ctlConn, n int, d time.Duration) (peerStats, error) {
	end := time.Now().Add(d)
	for {
		st, err := ctl.stats(ctx)
		if err != nil || st.Conns >= n || time.Now().After(end) {
			return st, err
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// idle: server memory and goroutines per idle connection.
func (e *env) idle(ctx context.Context, sc scenarioConfig) (r *result, err error) {
	r = e.newResult(sc, sc.label())
	ctl, err := openCtl(ctx, e.Opts, e.src(0))
	if err != nil {
		return r, err
	}
	defer ctl.close()
	var st0 peerStats
	err = fmt.Errorf("%w: not asked (it did not answer before)", ErrNoStats)
	if !e.NoStats {
		st0, err = ctl.stats(ctx)
	}
	stats := err == nil
	if err != nil {
		if !errors.Is(err, ErrNoStats) {
			return r, err
		}
		// Any WebSocket server will do: only /proc then tells its memory.
		r.note("server heap and goroutines not available: %v", err)
	}
	p0, ok0 := e.sample()
	f := e.newFleet("idle")
	defer closeFleet(f, &err)
	if err := e.openStrict(ctx, f, sc, nil, drain); err != nil {
		return r, err
	}
	if stats {
		if _, err := waitConns(ctx, ctl, sc.Conns+1, 10*time.Second); err != nil {
			return r, err
		}
	}
	e.Prog.Printf("%s idle: %d connections open; settling %v", e.Name, sc.Conns, sc.Duration)
	select {
	case <-ctx.Done():
		return r, ctx.Err()
	case <-time.After(sc.Duration):
	}
	var st1 peerStats
	if stats {
		if st1, err = ctl.stats(ctx); err != nil {
			return r, err
		}
	}
	p1, ok1 := e.sample()
	n := float64(sc.Conns)
	if ok0 && ok1 {
		r.add("rss_per_conn", "server RSS/conn", "B", float64(p1.RSS-p0.RSS)/n, lower)
		r.add("rss_total", "server RSS at N", "B", float64(p1.RSS), lower)
	}
	if !stats {
		if !ok0 || !ok1 {
			r.note("server memory not available: give --server-pid (a server on this machine)")
		}
		return r, nil
	}
	if !ok0 || !ok1 {
		r.add("rss_per_conn", "server RSS/conn", "B", (float64(st1.RSS)-float64(st0.RSS))/n, lower)
		r.add("rss_total", "server RSS at N", "B", float64(st1.RSS), lower)
	}
	r.add("heap_per_conn", "server heap in use/conn", "B", (float64(st1.HeapInuse)-float64(st0.HeapInuse))/n, lower)
	r.add("goroutines", "server goroutines at N", "", float64(st1.Goroutines), lower)
	// Settled: after a collection the server runs on the settled query, what
	// it keeps per connection once the garbage of the connect burst (TLS
	// handshakes above all) is gone, as the Go runtime's own collection (at
	// least every 2 minutes) leaves it. A server without the query echoes
	// it, and has no settled rows. The baseline is the first query's.
	if st2, err := ctl.settledStats(ctx); err == nil {
		p2, ok2 := e.sample()
		if ok0 && ok2 {
			r.add("rss_settled_per_conn", "server RSS/conn, settled", "B", float64(p2.RSS-p0.RSS)/n, lower)
		} else {
			r.add("rss_settled_per_conn", "server RSS/conn, settled", "B", (float64(st2.RSS)-float64(st0.RSS))/n, lower)
		}
		r.add("heap_settled_per_conn", "server heap in use/conn, settled", "B", (float64(st2.HeapInuse)-float64(st0.HeapInuse))/n, lower)
	} else if !errors.Is(err, ErrNoStats) {
		return r, err
	} else {
		r.note("no settled figures: %v", err)
	}
	if st1.Conns != sc.Conns+1 {
		r.note("server reports %d connections, expected %d", st1.Conns, sc.Conns+1)
	}
	return r, nil
}

// Payload stamps: each echoed message carries the harness's monotonic
// clock (ns since env.epoch) at send time.
//
// Binary: 8 bytes big-endian at offset 0. Text (compress): 16 hex digits
// at offset textStampAt, inside the JSON document.
const textStampAt = 6

func stampBinary(p []byte, ts int64) { binary.BigEndian.PutUint64(p, uint64(ts)) }

func unstampBinary(p []byte) (int64, bool) {
	if len(p) < 8 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(p)), true
}

const hexDigits = "0123456789abcdef"

func stampText(p []byte, ts int64) {
	v := uint64(ts)
	for i := textStampAt + 15; i >= textStampAt; i-- {
		p[i] = hexDigits[v&15]
		v >>= 4
	}
}

func unstampText(p []byte) (int64, bool) {
	if len(p) < textStampAt+16 {
		return 0, false
	}
	var v uint64
	for _, c := range p[textStampAt : textStampAt+16] {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return int64(v), true
}

// echo (and compress): N connections, K messages in flight on each; each
// echo received sends the next message.
func (e *env) echo(ctx context.Context, sc scenarioConfig) (r *result, err error) {
	r = e.newResult(sc, sc.label())
	text := sc.Scenario == scCompress
	var docs [][]byte
	if text {
		if sc.Size < textStampAt+16 {
			return r, fmt.Errorf("%w: compress needs --size of at least %d", ErrUsage, textStampAt+16)
		}
		docs = makeDocs(sc.Size, 64)
	} else if sc.Size < 8 {
		return r, fmt.Errorf("%w: echo needs --size of at least 8", ErrUsage)
	}
	var ctl *ctlConn
	var st0 peerStats
	var p0 procSample
	var ok0 bool
	if !e.Opts.Raw {
		if ctl, err = openCtl(ctx, e.Opts, e.src(0)); err != nil {
			return r, err
		}
		defer ctl.close()
		if text { // memory before any compression context exists
			err = fmt.Errorf("%w: not asked (it did not answer before)", ErrNoStats)
			if !e.NoStats {
				st0, err = ctl.stats(ctx)
			}
			if err != nil {
				if !errors.Is(err, ErrNoStats) {
					return r, err
				}
				// Any WebSocket echo server will do: its heap is then not
				// reported (RSS still is, from /proc, with --server-pid).
				r.note("server heap not available: %v", err)
				ctl.close()
				ctl = nil
			}
			p0, ok0 = e.sample()
		}
	}

	var (
		sent, recv, bad  atomic.Uint64
		recording, stop  atomic.Bool
		h                = &histogram{}
		start, quit      = make(chan struct{}), make(chan struct{})
		extMu            sync.Mutex
		ext              string
		deflated, plains atomic.Int64
	)
	serve := func(i int, c *wsConn) {
		if i == 0 {
			extMu.Lock()
			ext = c.Extensions
			extMu.Unlock()
		}
		if c.Deflate() {
			deflated.Add(1)
		} else {
			plains.Add(1)
		}
		buf := make([]byte, sc.Size)
		seq := i
		send := func() error {
			sent.Add(1)
			if text {
				copy(buf, docs[seq%len(docs)])
				seq++
				stampText(buf, e.now())
				return c.queue(frame.OpText, buf)
			}
			stampBinary(buf, e.now())
			return c.queue(frame.OpBinary, buf)
		}
		select {
		case <-start:
		case <-quit:
			return
		}
		for range sc.Inflight {
			if send() != nil {
				return
			}
		}
		for {
			op, p, err := c.next()
			if err != nil {
				return
			}
			if op == frame.OpBinary && len(p) >= len(bcastPrefix) && string(p[:len(bcastPrefix)]) == bcastPrefix {
				continue // another run's broadcast, on the same server
			}
			var ts int64
			var ok bool
			if text {
				ts, ok = unstampText(p)
			} else {
				ts, ok = unstampBinary(p)
			}
			if !ok || len(p) != sc.Size {
				bad.Add(1)
				continue
			}
			if recording.Load() {
				h.Record(time.Duration(e.now() - ts))
			}
			recv.Add(1)
			if stop.Load() {
				continue
			}
			if send() != nil {
				return
			}
		}
	}
	f := e.newFleet(sc.Scenario)
	defer closeFleet(f, &err)
	defer func() {
		stop.Store(true)
		select {
		case <-quit:
		default:
			close(quit)
		}
	}()
	if err := e.openStrict(ctx, f, sc, nil, serve); err != nil {
		return r, err
	}
	close(start)
	what := fmt.Sprintf("%s k=%d", sc.Scenario, sc.Inflight)
	e.watch(ctx, sc.Warmup, what+" (warm-up)", "msg/s", recv.Load)

	p1, ok1 := e.sample()
	c1, _ := readProc(os.Getpid())
	in1, out1 := f.wire()
	n1, t1 := recv.Load(), time.Now()
	recording.Store(true)
	e.watch(ctx, sc.Duration, what, "msg/s", recv.Load)
	recording.Store(false)
	n2, t2 := recv.Load(), time.Now()
	p2, ok2 := e.sample()
	c2, _ := readProc(os.Getpid())
	in2, out2 := f.wire()
	if err := ctx.Err(); err != nil {
		return r, err
	}

	// Every message sent must come back: wait for those in flight.
	stop.Store(true)
	for i := 0; i < 100 && recv.Load()+bad.Load() < sent.Load(); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if lost := int64(sent.Load()) - int64(recv.Load()+bad.Load()); lost > 0 {
		r.add("lost", "echoes missing 2 s after the end", "", float64(lost), lower)
		r.note("%d of %d messages sent were not echoed", lost, sent.Load())
	}
	msgs := n2 - n1
	if msgs == 0 {
		return r, fmt.Errorf("%w: no echo received in %v", ErrScenario, sc.Duration)
	}
	r.addRate("messages/s", "server CPU/msg", msgs, t2.Sub(t1), p1, p2, ok1 && ok2)
	if c2.CPU > 0 {
		r.add("client_cpu_pct", "harness CPU use", "%", cpuUse(c1, c2), "")
	}
	r.setLatency(h, "round trip")
	if b := bad.Load(); b > 0 {
		r.add("bad_echoes", "malformed echoes", "", float64(b), lower)
		r.note("%d echoes did not carry the payload that was sent", b)
	}
	if text {
		wire := float64((in2-in1)+(out2-out1)) / float64(msgs)
		plain := float64(2*sc.Size + frame.HeaderSize(int64(sc.Size), true) + frame.HeaderSize(int64(sc.Size), false))
		r.add("wire_per_msg", "wire bytes/echo (both ways)", "B", wire, lower)
		r.add("wire_ratio_pct", "wire vs uncompressed", "%", 100*wire/plain, lower)
		var st2 peerStats
		err := ErrNoStats
		if ctl != nil {
			st2, err = ctl.stats(ctx)
		}
		if err == nil {
			per := (float64(st2.HeapInuse) - float64(st0.HeapInuse)) / float64(sc.Conns)
			r.add("heap_per_conn", "server heap in use/conn", "B", per, lower)
		}
		if ok0 && ok2 {
			r.add("rss_per_conn", "server RSS/conn", "B", float64(p2.RSS-p0.RSS)/float64(sc.Conns), lower)
		}
		extMu.Lock()
		if ext == "" {
			ext = "none"
		}
		r.note("negotiated: %s (%d of %d connections compressed)", ext, deflated.Load(), deflated.Load()+plains.Load())
		extMu.Unlock()
	}
	return r, nil
}

// makeDocs returns count different JSON-like text documents of exactly
// size bytes (ASCII), compressible the way job messages are: repeated
// keys, varying numbers and identifiers. The first textStampAt+16 bytes
// are `{"t":"` and 16 hex digits, which stampText overwrites.
func makeDocs(size, count int) [][]byte {
	rng := mrand.New(mrand.NewPCG(1, 2))
	kinds := []string{"resize", "transcode", "thumbnail", "index", "notify", "score"}
	docs := make([][]byte, count)
	for d := range docs {
		b := make([]byte, 0, size+256)
		b = append(b, `{"t":"0000000000000000","id":`...)
		b = strconv.AppendInt(b, int64(rng.IntN(1e9)), 10)
		b = append(b, `,"kind":"`...)
		b = append(b, kinds[rng.IntN(len(kinds))]...)
		b = append(b, `","items":[`...)
		for len(b) < size {
			b = append(b, `{"sku":"A-`...)
			b = strconv.AppendInt(b, int64(rng.IntN(100000)), 10)
			b = append(b, `","qty":`...)
			b = strconv.AppendInt(b, int64(rng.IntN(20)), 10)
			b = append(b, `,"price":`...)
			b = strconv.AppendFloat(b, float64(rng.IntN(100000))/100, 'f', 2, 64)
			b = append(b, `,"tags":["`...)
			b = append(b, kinds[rng.IntN(len(kinds))]...)
			b = append(b, `"]},`...)
		}
		docs[d] = b[:size]
	}
	return docs
}

// defaultSlowFill is the echo a receiver asks for when it stops reading,
// so that the server has a backlog for it at once instead of after minutes
// of 1 KB broadcasts: well under the Provider's default 1 MiB backpressure
// limit. Note that Linux lets a loopback socket's send buffer grow to
// net.ipv4.tcp_wmem's maximum (4 MiB here), so a server that blocks on a
// full connection only meets one when a receiver's backlog exceeds that
// (see the stall variant in the suite).
const defaultSlowFill = 128 << 10

// broadcastRing is the number of broadcast sequence slots tracked at once;
// at most half of it may be in flight.
const broadcastRing = 4096

// Broadcast payload: bcastPrefix, run id (8), sequence (8), send time (8),
// padding.
const bcastHeader = len(bcastPrefix) + 24

type bcastSlot struct {
	n    atomic.Int32
	done atomic.Bool
}

// broadcast: the control connection asks the server to broadcast, with
// Inflight broadcasts outstanding; a broadcast completes when every
// counted receiver has it. Phase 1: every receiver reads. Phase 2 (with a
// slow share): that share of receivers stops reading (their receive buffer
// was made small at dial time, and each asks for a slowFiller echo first,
// so that its connection is full from the start), and the others' rate is
// compared with phase 1.
func (e *env) broadcast(ctx context.Context, sc scenarioConfig) (results []*result, err error) {
	r1 := e.newResult(sc, sc.label())
	results = []*result{r1}
	if sc.Size < bcastHeader {
		return results, fmt.Errorf("%w: broadcast needs --size of at least %d", ErrUsage, bcastHeader)
	}
	if sc.Inflight < 1 || sc.Inflight > broadcastRing/2 {
		return results, fmt.Errorf("%w: broadcast --inflight must be 1..%d", ErrUsage, broadcastRing/2)
	}
	n := sc.Conns
	slowN := int(math.Round(sc.SlowShare * float64(n)))
	if sc.SlowShare > 0 && (slowN < 1 || slowN >= n) {
		return results, fmt.Errorf("%w: --slow-share %g of %d receivers leaves no slow or no fast one", ErrUsage, sc.SlowShare, n)
	}
	isSlow := func(i int) bool { return slowN > 0 && (i*slowN)/n != ((i+1)*slowN)/n }
	filler := make([]byte, sc.SlowFill)

	ctl, err := openCtl(ctx, e.Opts, e.src(0))
	if err != nil {
		return results, err
	}
	defer ctl.close()
	var rid [8]byte
	_, _ = rand.Read(rid[:])
	runID := binary.BigEndian.Uint64(rid[:])

	var (
		slots     = make([]bcastSlot, broadcastRing)
		target    atomic.Int32
		phase2    atomic.Bool
		tearing   atomic.Bool
		delivered atomic.Uint64
		lost      atomic.Int32
		fillers   atomic.Int32 // slow receivers whose backlog request went out
		hist      atomic.Pointer[histogram]
		hold      = make(chan struct{})
		complete  = make(chan uint64, broadcastRing)
	)
	target.Store(int32(n))
	finish := func(seq uint64) {
		s := &slots[seq%broadcastRing]
		if s.n.Load() >= target.Load() && s.done.CompareAndSwap(false, true) {
			complete <- seq
		}
	}
	serve := func(i int, c *wsConn) {
		slow := isSlow(i)
		for {
			op, p, err := c.next()
			if err != nil {
				if !tearing.Load() && !(slow && phase2.Load()) {
					lost.Add(1)
					target.Add(-1)
				}
				return
			}
			if slow && phase2.Load() {
				// Become a consumer that stopped reading while data flows
				// to it: ask for an echo that overfills the socket buffers
				// at once, then read nothing until the teardown.
				_ = c.write(frame.OpBinary, filler)
				fillers.Add(1)
				<-hold
				return
			}
			if op != frame.OpBinary || len(p) < bcastHeader || string(p[:len(bcastPrefix)]) != bcastPrefix ||
				binary.BigEndian.Uint64(p[8:]) != runID {
				continue
			}
			seq := binary.BigEndian.Uint64(p[16:])
			if h := hist.Load(); h != nil {
				h.Record(time.Duration(e.now() - int64(binary.BigEndian.Uint64(p[24:]))))
			}
			delivered.Add(1)
			slots[seq%broadcastRing].n.Add(1)
			finish(seq)
		}
	}
	plan := func(i int) dialPlan {
		if isSlow(i) {
			return dialPlan{rcvbuf: 4096}
		}
		return dialPlan{}
	}
	f := e.newFleet("broadcast")
	defer closeFleet(f, &err)
	defer func() {
		tearing.Store(true)
		close(hold)
	}()
	if err := e.openStrict(ctx, f, sc, plan, serve); err != nil {
		return results, err
	}

	// The sender.
	buf := make([]byte, sc.Size)
	copy(buf, bcastPrefix)
	binary.BigEndian.PutUint64(buf[8:], runID)
	// sent counts broadcasts sent; done counts those completed, plus those
	// written off at the phase change (floor: completions of sequence
	// numbers below it no longer count).
	var sent, done, floor uint64
	var sendErr error
	pump := func(d time.Duration) {
		// A server that stops reading the control connection must not hold
		// the sender past the phase.
		_ = ctl.c.nc.SetWriteDeadline(time.Now().Add(d + 5*time.Second))
		defer ctl.c.nc.SetWriteDeadline(time.Time{})
		end := time.NewTimer(d)
		defer end.Stop()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for sendErr == nil && ctx.Err() == nil {
			for sent-done < uint64(sc.Inflight) {
				s := &slots[sent%broadcastRing]
				s.n.Store(0)
				s.done.Store(false)
				binary.BigEndian.PutUint64(buf[16:], sent)
				binary.BigEndian.PutUint64(buf[24:], uint64(e.now()))
				sent++
				if sendErr = ctl.c.write(frame.OpBinary, buf); sendErr != nil {
					return
				}
			}
			select {
			case s := <-complete:
				if s >= floor {
					done++
				}
			case <-t.C:
				// A receiver may have been lost: re-check what is in
				// flight (at most Inflight sequence numbers, the last ones).
				for s := max(floor, sent-min(sent, uint64(sc.Inflight))); s < sent; s++ {
					finish(s)
				}
			case <-end.C:
				return
			case <-ctx.Done():
				return
			}
		}
	}
	// settle waits for the broadcasts in flight, at most d.
	settle := func(d time.Duration) {
		end := time.After(d)
		for done < sent {
			select {
			case s := <-complete:
				if s >= floor {
					done++
				}
			case <-end:
				return
			case <-ctx.Done():
				return
			}
		}
	}
	measure := func(r *result, receivers int, what string) (procSample, procSample, bool) {
		h := &histogram{}
		p1, ok1 := e.sample()
		d1, b1, t1 := delivered.Load(), done, time.Now()
		hist.Store(h)
		stopWatch := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.watchUntil(stopWatch, what, "deliveries/s", delivered.Load)
		}()
		pump(sc.Duration)
		hist.Store(nil)
		d2, b2, t2 := delivered.Load(), done, time.Now()
		p2, ok2 := e.sample()
		close(stopWatch)
		wg.Wait()
		dt := t2.Sub(t1).Seconds()
		dl := d2 - d1
		r.add("deliveries_per_s", "deliveries/s", "/s", float64(dl)/dt, higher)
		r.add("broadcasts_per_s", "broadcasts/s", "/s", float64(b2-b1)/dt, higher)
		r.add("rate_per_receiver", "deliveries/s per reading receiver", "/s", float64(dl)/dt/float64(receivers), higher)
		if ok1 && ok2 {
			r.add("cpu_per_delivery_ns", "server CPU/delivery", "ns", cpuPer(p1, p2, dl, time.Nanosecond), lower)
			r.coarseCPU(p1, p2)
			r.add("server_cpu_pct", "server CPU use", "%", cpuUse(p1, p2), "")
		} else {
			r.noProc()
		}
		r.setLatency(h, "delivery")
		if l := lost.Load(); l > 0 {
			r.add("receivers_lost", "reading receivers lost", "", float64(l), lower)
		}
		return p1, p2, ok1 && ok2
	}

	pump(sc.Warmup)
	measure(r1, n, "broadcast")
	if sendErr != nil {
		return results, fmt.Errorf("%w: sending broadcasts: %v", ErrScenario, sendErr)
	}
	if done == 0 {
		return results, fmt.Errorf("%w: no broadcast reached all receivers (does the server broadcast %q?)", ErrScenario, bcastPrefix)
	}
	if slowN == 0 {
		return results, ctx.Err()
	}

	// Phase 2.
	r2 := e.newResult(sc, sc.slowLabel())
	r2.Scenario = scBroadcast
	results = append(results, r2)
	settle(2 * time.Second)
	base, _ := r1.get("rate_per_receiver")
	st0, stErr := ctl.stats(ctx)
	target.Store(int32(n - slowN - int(lost.Load())))
	phase2.Store(true)
	done, floor = sent, sent // whatever is still in flight no longer counts
	e.Prog.Printf("%s broadcast: %d of %d receivers stop reading, each with a %s backlog", e.Name, slowN, n, sizeLabel(sc.SlowFill))
	// The warm-up covers the backlogs; memory is measured from its end, so
	// that what the server needed to receive them does not count: wait
	// until every backlog request is written and, where the server counts
	// messages (ours), received.
	pump(sc.Warmup)
	for end := time.Now().Add(10 * time.Second); fillers.Load() < int32(slowN) && time.Now().Before(end) && ctx.Err() == nil; {
		pump(100 * time.Millisecond)
	}
	if in0, ok := bytesIn(st0); ok {
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end) && ctx.Err() == nil; {
			st, err := ctl.stats(ctx)
			if in1, ok := bytesIn(st); err != nil || !ok || in1 >= in0+uint64(slowN)*uint64(sc.SlowFill) {
				break
			}
			pump(100 * time.Millisecond)
		}
	}
	pBase, okBase := e.sample()
	peak := pBase.RSS
	stopPeak := make(chan struct{})
	var peakWG sync.WaitGroup
	peakWG.Add(1)
	go func() {
		defer peakWG.Done()
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopPeak:
				return
			case <-t.C:
				if s, ok := e.sample(); ok && s.RSS > peak {
					peak = s.RSS
				}
			}
		}
	}()
	_, _, okp := measure(r2, n-slowN, "broadcast slow")
	close(stopPeak)
	peakWG.Wait()
	if v, ok := r2.get("rate_per_receiver"); ok && base > 0 {
		r2.add("rate_kept_pct", "reading receivers' rate kept", "%", 100*v/base, higher)
	}
	if okp && okBase {
		r2.add("rss_growth", "server RSS growth (peak)", "B", float64(peak-pBase.RSS), lower)
		r2.add("rss_growth_per_slow", "server RSS growth per slow receiver", "B", float64(peak-pBase.RSS)/float64(slowN), lower)
	}
	if stErr == nil {
		if st1, err := ctl.stats(ctx); err == nil {
			if st1.MaxBackpressure > 0 {
				r2.add("backpressure_limit", "server backpressure limit per connection", "B", float64(st1.MaxBackpressure), "")
				r2.note("memory bound by backpressure: %d slow × %s = %s; peak growth %s",
					slowN, bytesLabel(float64(st1.MaxBackpressure)), bytesLabel(float64(slowN)*float64(st1.MaxBackpressure)),
					bytesLabel(float64(peak-pBase.RSS)))
			}
			if st1.Refused > st0.Refused || st1.Closed > st0.Closed {
				r2.note("broadcast receivers refused (over backpressure): %d, closing or closed: %d",
					st1.Refused-st0.Refused, st1.Closed-st0.Closed)
			}
			var p0, p1 struct{ BackpressureCloses, BackpressureRefusals uint64 }
			if json.Unmarshal(st0.Provider, &p0) == nil && json.Unmarshal(st1.Provider, &p1) == nil &&
				p1.BackpressureCloses > p0.BackpressureCloses {
				r2.note("the server closed %d connections for backpressure", p1.BackpressureCloses-p0.BackpressureCloses)
			}
		}
	}
	if sendErr != nil {
		r2.note("sending broadcasts failed: %v", sendErr)
	}
	return results, ctx.Err()
}

// bytesIn returns the Provider's count of payload bytes received, from the
// stats of `loadtest serve` (peers do not count them).
func bytesIn(st peerStats) (uint64, bool) {
	var p struct{ BytesIn *uint64 }
	if len(st.Provider) == 0 || json.Unmarshal(st.Provider, &p) != nil || p.BytesIn == nil {
		return 0, false
	}
	return *p.BytesIn, true
}

// watchUntil prints the rate of count once a second until stop is closed.
func (e *env) watchUntil(stop <-chan struct{}, what, unit string, count func() uint64) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last, lastT := count(), time.Now()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			c := count()
			e.Prog.Printf("%s %s: %s %s", e.Name, what, group(float64(c-last)/now.Sub(lastT).Seconds()), unit)
			last, lastT = c, now
		}
	}
}
