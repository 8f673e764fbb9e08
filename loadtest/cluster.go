package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/networkcluster/networkcluster/consumer"
)

// The cluster scenario: `loadtest cluster` builds nats-server and ncnode
// from the nested module cluster/natsbroker (the main module never
// requires NATS), starts 1 nats-server and 3 ncnode processes on
// 127.0.0.1, spreads the Consumers over them, and measures, in one run:
// delivery latency of broadcasts from node A to local and remote
// receivers, cross-node deliveries/s against a single Provider holding all
// Consumers (plain, and joined to NATS alone), directed sends A→B, how
// long node A's presence takes to count Consumers that connected to B,
// then how cross-node delivery resumes after a nats-server SIGKILL and
// restart, and how Consumers with Addrs fail over when node C is SIGKILLed.

const clusterNodes = 3

// Control messages of ncnode beyond the harness protocol.
const (
	ncIDQuery  = "NCID:"
	ncSendPref = "NCSEND:"
	ncSentPref = "NCSENT:"
	ncReqPref  = "NCREQ:"
	ncRepPref  = "NCREPLY:"
)

func cmdCluster(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	conns := fs.Int("conns", 900, "Consumers in all (spread evenly over the 3 nodes)")
	size := fs.Int("size", 1024, "broadcast size in bytes")
	inflight := fs.Int("inflight", 8, "broadcasts in flight in the throughput phases")
	duration := fs.Duration("duration", 3*time.Second, "length of each measured phase")
	sends := fs.Int("sends", 500, "directed sends A→B, one at a time")
	rounds := fs.Int("rounds", 3, "measurement rounds (each measures every configuration; medians are reported)")
	failoverN := fs.Int("failover-conns", 300, "Consumers (Addrs = the 3 nodes) in the failover test, which SIGKILLs node C")
	interval := fs.Duration("reconnect-interval", time.Second, "the failover Consumers' Reconnect.Interval")
	dir := fs.String("natsbroker-dir", "", "the cluster/natsbroker module (default: found from the working directory)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *conns < clusterNodes || *size < bcastHeader || *inflight < 1 || *inflight > broadcastRing/2 || *duration <= 0 || *rounds < 1 {
		return fmt.Errorf("%w: cluster: --conns ≥ 3, --size ≥ %d, --inflight 1..%d, --duration > 0", ErrUsage, bcastHeader, broadcastRing/2)
	}
	if _, _, err := raiseNoFile(); err != nil {
		fmt.Fprintln(stderr, "cluster: warning:", err)
	}
	modDir := *dir
	if modDir == "" {
		var err error
		if modDir, err = findModuleDir(filepath.Join("cluster", "natsbroker")); err != nil {
			return err
		}
	}
	tmp, err := os.MkdirTemp("", "nc-cluster-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	fmt.Fprintln(stderr, "cluster: building ncnode and nats-server from", modDir)
	ncnode := filepath.Join(tmp, "ncnode")
	natsBin := filepath.Join(tmp, "nats-server")
	if err := goBuild(ctx, modDir, ncnode, "./cmd/ncnode"); err != nil {
		return err
	}
	if err := goBuild(ctx, modDir, natsBin, "github.com/nats-io/nats-server/v2"); err != nil {
		return err
	}
	nats, natsURL, err := startNats(ctx, natsBin)
	if err != nil {
		return err
	}
	defer nats.kill()

	rep := &clusterReport{Conns: *conns, Size: *size, Inflight: *inflight, Duration: duration.String(), Rounds: *rounds}
	ph := clusterPhase{size: *size, inflight: *inflight, duration: *duration, stderr: stderr}

	// Three configurations side by side, measured in turns (each round
	// measures all three), so that the load of a shared machine weighs on
	// them alike: a single plain Provider holding every Consumer; the same
	// joined to NATS alone (a cluster of one, its own subject prefix); and
	// 3 nodes sharing the Consumers.
	single, err := startNodes(ctx, ncnode, 1, "", "")
	if err != nil {
		return err
	}
	defer stopAll(single)
	one, err := startNodes(ctx, ncnode, 1, natsURL, "solo")
	if err != nil {
		return err
	}
	defer stopAll(one)
	nodes, err := startNodes(ctx, ncnode, clusterNodes, natsURL, "")
	if err != nil {
		return err
	}
	defer stopAll(nodes)
	var rigs []*rig
	defer func() {
		for _, r := range rigs {
			r.close()
		}
	}()
	for _, ns := range [][]*serverProc{single, one, nodes} {
		r, err := ph.setup(ctx, ns, *conns, len(ns) > 1)
		if err != nil {
			return err
		}
		rigs = append(rigs, r)
	}
	var results [3][]*phaseResult
	for round := range *rounds {
		for i, r := range rigs {
			fmt.Fprintf(stderr, "cluster: round %d, %s\n", round+1, []string{"single Provider", "single Provider + NATS", "3 nodes"}[i])
			res, err := r.measure(ctx)
			if err != nil {
				return err
			}
			results[i] = append(results[i], res)
		}
	}
	rep.Single, rep.OneNode = medianPhase(results[0]), medianPhase(results[1])
	rep.Cluster = medianPhase(results[2])
	rep.Cluster.PresenceMs = rigs[2].presenceMs
	if rep.Directed, err = directed(ctx, nodes, *sends); err != nil {
		return err
	}
	rep.NatsCPUms = procCPUms(nats.PID)
	// Last, as they break things: a nats-server restart, then a node's death.
	if rep.Restart, nats, err = natsRestart(ctx, rigs[2], nats, natsBin, natsURL); err != nil {
		return err
	}
	defer nats.kill()
	if rep.Failover, err = failover(ctx, nodes, *failoverN, *interval); err != nil {
		return err
	}
	rep.ratios()
	rep.print(stdout)
	js, _ := json.MarshalIndent(rep, "", "  ")
	fmt.Fprintf(stderr, "%s\n", js)
	return nil
}

// medianPhase returns, field by field, the median of the rounds' results.
func medianPhase(rs []*phaseResult) *phaseResult {
	med := func(get func(*phaseResult) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = get(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	out := *rs[0]
	out.DeliveriesPerS = med(func(r *phaseResult) float64 { return r.DeliveriesPerS })
	out.BroadcastsPerS = med(func(r *phaseResult) float64 { return r.BroadcastsPerS })
	out.LocalP50us = med(func(r *phaseResult) float64 { return r.LocalP50us })
	out.LocalP99us = med(func(r *phaseResult) float64 { return r.LocalP99us })
	out.RemoteP50us = med(func(r *phaseResult) float64 { return r.RemoteP50us })
	out.RemoteP99us = med(func(r *phaseResult) float64 { return r.RemoteP99us })
	out.ServerCPUPerDel = med(func(r *phaseResult) float64 { return r.ServerCPUPerDel })
	out.WrittenOff = 0
	for _, r := range rs {
		out.WrittenOff += r.WrittenOff
	}
	return &out
}

// findModuleDir finds rel (a nested module) from the working directory up.
func findModuleDir(rel string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		c := filepath.Join(dir, rel)
		if st, err := os.Stat(filepath.Join(c, "go.mod")); err == nil && !st.IsDir() {
			return c, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%w: cannot find %s from the working directory; pass --natsbroker-dir", ErrServer, rel)
		}
		dir = parent
	}
}

func goBuild(ctx context.Context, modDir, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = modDir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%w: go build %s in %s: %v\n%s", ErrServer, pkg, modDir, err, b)
	}
	return nil
}

// natsProc is the nats-server child.
type natsProc struct {
	cmd *exec.Cmd
	PID int
}

func (n *natsProc) kill() { _ = n.cmd.Process.Kill(); _ = n.cmd.Wait() }

// startNats starts nats-server on a random port of 127.0.0.1 (-p -1; -p 0
// would mean 4222) and parses its listening line.
func startNats(ctx context.Context, bin string) (*natsProc, string, error) {
	cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", "-1")
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	childDiesWithUs(cmd)
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("%w: nats-server: %v", ErrServer, err)
	}
	p := &natsProc{cmd: cmd, PID: cmd.Process.Pid}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if _, addr, ok := strings.Cut(sc.Text(), "Listening for client connections on "); ok {
				select {
				case found <- strings.TrimSpace(addr):
				default:
				}
			}
		}
	}()
	select {
	case addr := <-found:
		return p, "nats://" + addr, nil
	case <-time.After(serverStartTimeout):
	case <-ctx.Done():
	}
	p.kill()
	return nil, "", fmt.Errorf("%w: nats-server did not report its port", ErrServer)
}

func startNodes(ctx context.Context, bin string, n int, natsURL, prefix string) ([]*serverProc, error) {
	var ps []*serverProc
	for i := range n {
		args := []string{"--addr", "127.0.0.1:0"}
		if natsURL != "" {
			id := string(rune('a' + i))
			if prefix != "" {
				id = prefix
				args = append(args, "--prefix", prefix)
			}
			args = append(args, "--nats", natsURL, "--node-id", id)
		}
		p, err := startServer(ctx, serverSpec{Name: "ncnode", Bin: bin, Args: args, Path: "/connect"})
		if err != nil {
			stopAll(ps)
			return nil, err
		}
		ps = append(ps, p)
	}
	return ps, nil
}

func stopAll(ps []*serverProc) {
	for _, p := range ps {
		_ = p.stop()
	}
}

func procCPUms(pid int) float64 {
	s, err := readProc(pid)
	if err != nil {
		return 0
	}
	return float64(s.CPU) / float64(time.Millisecond)
}

// --- measurement ---

type clusterPhase struct {
	size, inflight int
	duration       time.Duration
	stderr         io.Writer
}

// phaseResult is what one configuration measured.
type phaseResult struct {
	Nodes           int     `json:"nodes"`
	DeliveriesPerS  float64 `json:"deliveries_per_s"`
	BroadcastsPerS  float64 `json:"broadcasts_per_s"`
	LocalP50us      float64 `json:"local_p50_us"`
	LocalP99us      float64 `json:"local_p99_us"`
	RemoteP50us     float64 `json:"remote_p50_us,omitempty"`
	RemoteP99us     float64 `json:"remote_p99_us,omitempty"`
	PresenceMs      float64 `json:"presence_ms,omitempty"`
	WrittenOff      uint64  `json:"broadcasts_written_off"`
	ServerCPUPerDel float64 `json:"server_cpu_ns_per_delivery"`
}

// rig is one configuration with its Consumers connected: a control
// connection on the first node sends the broadcasts.
type rig struct {
	ph       clusterPhase
	nodes    []*serverProc
	runID    uint64
	slots    [broadcastRing]atomic.Int32
	complete chan uint64
	target   int32
	local    atomic.Pointer[histogram]
	remote   atomic.Pointer[histogram]
	deliv    atomic.Uint64
	epoch    time.Time
	ctl      *consumer.Consumer
	ctlIn    chan []byte
	all      []*consumer.Consumer
	seq      uint64
	buf      []byte

	// The latency probes: latPerNode Consumers per node subscribed to
	// latTopic; the latency phase publishes to it one message at a time,
	// so that the figure is the hop (and the broker), not a fan-out to
	// every Consumer.
	latBuf  []byte
	latSeen atomic.Int32
	latDone chan uint64
	latN    int32

	presenceMs float64
}

const (
	latTopic   = "nclat"
	latPrefix  = "NCPUB:" + latTopic + ":"
	latPerNode = 4
	latHeader  = 48 // latPrefix, padding, run id at 16, sequence at 24, time at 32
)

// onLat records a latency probe.
func (r *rig) onLat(isLocal bool) func(m consumer.Message) {
	return func(m consumer.Message) {
		p := m.Data
		if !m.Binary || len(p) < latHeader || string(p[:len(latPrefix)]) != latPrefix || binary.BigEndian.Uint64(p[16:]) != r.runID {
			return
		}
		lat := time.Since(r.epoch) - time.Duration(binary.BigEndian.Uint64(p[32:]))
		h := r.remote.Load()
		if isLocal {
			h = r.local.Load()
		}
		if h != nil {
			h.Record(lat)
		}
		if r.latSeen.Add(1) == r.latN {
			select {
			case r.latDone <- binary.BigEndian.Uint64(p[24:]):
			default:
			}
		}
	}
}

func (r *rig) close() {
	for _, c := range r.all {
		c.Destroy()
	}
}

func (r *rig) onMsg(isLocal bool) func(m consumer.Message) {
	return func(m consumer.Message) {
		p := m.Data
		if !m.Binary || len(p) < bcastHeader || string(p[:len(bcastPrefix)]) != bcastPrefix || binary.BigEndian.Uint64(p[8:]) != r.runID {
			return
		}
		lat := time.Since(r.epoch) - time.Duration(binary.BigEndian.Uint64(p[24:]))
		h := r.remote.Load()
		if isLocal {
			h = r.local.Load()
		}
		if h != nil {
			h.Record(lat)
		}
		r.deliv.Add(1)
		seq := binary.BigEndian.Uint64(p[16:])
		if r.slots[seq%broadcastRing].Add(1) == r.target {
			select {
			case r.complete <- seq:
			default:
			}
		}
	}
}

func (r *rig) open(ctx context.Context, node int, handler func(consumer.Message)) (*consumer.Consumer, error) {
	host, port, _ := net.SplitHostPort(r.nodes[node].Addr)
	pn, _ := strconv.Atoi(port)
	c, err := consumer.New(consumer.Options{Host: host, Port: pn, OnMessage: handler,
		Reconnect: consumer.Reconnect{MaxAttempts: 1}})
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := c.Connect(cctx); err != nil {
		c.Destroy()
		return nil, fmt.Errorf("%w: consumer to %s: %v", ErrScenario, r.nodes[node].Addr, err)
	}
	r.all = append(r.all, c)
	return c, nil
}

// setup opens conns Consumers spread evenly over nodes, and the control
// connection on the first; with presence, it times how long the first
// node's presence takes to count them all.
func (ph clusterPhase) setup(ctx context.Context, nodes []*serverProc, conns int, presence bool) (*rig, error) {
	r := &rig{ph: ph, nodes: nodes, runID: rand.Uint64(), complete: make(chan uint64, broadcastRing),
		target: int32(conns), epoch: time.Now(), ctlIn: make(chan []byte, 64)}
	var err error
	r.ctl, err = r.open(ctx, 0, func(m consumer.Message) {
		if m.Binary && (strings.HasPrefix(string(m.Data), statsQuery) || strings.HasPrefix(string(m.Data), ncSentPref) || strings.HasPrefix(string(m.Data), ncIDQuery)) {
			select {
			case r.ctlIn <- append([]byte(nil), m.Data...):
			default:
			}
		}
	})
	if err != nil {
		r.close()
		return nil, err
	}
	var lastOpen time.Time
	for i := range conns {
		node := i % len(nodes)
		if _, err := r.open(ctx, node, r.onMsg(node == 0)); err != nil {
			r.close()
			return nil, err
		}
		lastOpen = time.Now()
	}
	r.latDone = make(chan uint64, 1)
	r.latN = int32(latPerNode * len(nodes))
	for node := range nodes {
		for range latPerNode {
			subOK := make(chan struct{}, 1)
			lat := r.onLat(node == 0)
			c, err := r.open(ctx, node, func(m consumer.Message) {
				if string(m.Data) == "NCSUB:ok" {
					subOK <- struct{}{}
					return
				}
				lat(m)
			})
			if err == nil {
				err = c.SendBinary([]byte("NCSUB:" + latTopic))
			}
			if err == nil {
				select {
				case <-subOK:
				case <-time.After(10 * time.Second):
					err = fmt.Errorf("%w: the node did not subscribe a latency probe", ErrScenario)
				}
			}
			if err != nil {
				r.close()
				return nil, err
			}
		}
	}
	fmt.Fprintf(ph.stderr, "cluster: %d consumers on %d node(s)\n", conns, len(nodes))
	if presence {
		for {
			st, err := ctlStats(ctx, r.ctl, r.ctlIn)
			if err != nil {
				r.close()
				return nil, err
			}
			if st.Len >= conns+1+int(r.latN) {
				r.presenceMs = float64(time.Since(lastOpen)) / float64(time.Millisecond)
				break
			}
			if time.Since(lastOpen) > 10*time.Second {
				r.close()
				return nil, fmt.Errorf("%w: node A's presence counts %d of %d connections", ErrScenario, st.Len, conns+1+int(r.latN))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	r.buf = make([]byte, ph.size)
	copy(r.buf, bcastPrefix)
	binary.BigEndian.PutUint64(r.buf[8:], r.runID)
	r.latBuf = make([]byte, max(ph.size, latHeader))
	copy(r.latBuf, latPrefix)
	binary.BigEndian.PutUint64(r.latBuf[16:], r.runID)
	return r, nil
}

// probe publishes latency probes one at a time for d.
func (r *rig) probe(ctx context.Context, d time.Duration, res *phaseResult) error {
	end := time.Now().Add(d)
	for time.Now().Before(end) && ctx.Err() == nil {
		r.latSeen.Store(0)
		binary.BigEndian.PutUint64(r.latBuf[24:], r.seq)
		binary.BigEndian.PutUint64(r.latBuf[32:], uint64(time.Since(r.epoch)))
		r.seq++
		if err := r.ctl.SendBinary(r.latBuf); err != nil {
			return err
		}
		select {
		case <-r.latDone:
		case <-time.After(2 * time.Second):
			res.WrittenOff++
		case <-ctx.Done():
		}
	}
	return ctx.Err()
}

// pump keeps k broadcasts in flight for d; a broadcast not complete after
// 2 s is written off (at most once across nodes: it may be lost).
func (r *rig) pump(ctx context.Context, k int, d time.Duration, res *phaseResult) (done uint64, err error) {
	end := time.Now().Add(d)
	pending := map[uint64]time.Time{}
	for time.Now().Before(end) && ctx.Err() == nil {
		for len(pending) < k {
			r.slots[r.seq%broadcastRing].Store(0)
			binary.BigEndian.PutUint64(r.buf[16:], r.seq)
			binary.BigEndian.PutUint64(r.buf[24:], uint64(time.Since(r.epoch)))
			if err := r.ctl.SendBinary(r.buf); err != nil {
				return done, err
			}
			pending[r.seq] = time.Now()
			r.seq++
		}
		select {
		case s := <-r.complete:
			if _, ok := pending[s]; ok {
				delete(pending, s)
				done++
			}
		case <-time.After(100 * time.Millisecond):
			for s, t := range pending {
				if time.Since(t) > 2*time.Second {
					delete(pending, s)
					res.WrittenOff++
				}
			}
		}
	}
	deadline := time.After(2 * time.Second)
	for len(pending) > 0 {
		select {
		case s := <-r.complete:
			delete(pending, s)
		case <-deadline:
			res.WrittenOff += uint64(len(pending))
			return done, nil
		}
	}
	return done, nil
}

// measure runs the latency phase (one broadcast at a time) and the
// throughput phase (inflight at a time).
func (r *rig) measure(ctx context.Context) (*phaseResult, error) {
	ph := r.ph
	res := &phaseResult{Nodes: len(r.nodes)}
	if err := r.probe(ctx, ph.duration/3, res); err != nil { // warm-up
		return nil, err
	}
	lh, rh := &histogram{}, &histogram{}
	r.local.Store(lh)
	r.remote.Store(rh)
	if err := r.probe(ctx, ph.duration, res); err != nil {
		return nil, err
	}
	r.local.Store(nil)
	r.remote.Store(nil)
	res.LocalP50us, res.LocalP99us = us(lh.Percentile(50)), us(lh.Percentile(99))
	if rh.Count() > 0 {
		res.RemoteP50us, res.RemoteP99us = us(rh.Percentile(50)), us(rh.Percentile(99))
	}
	var cpu0 float64
	for _, n := range r.nodes {
		cpu0 += procCPUms(n.PID)
	}
	d0, t0 := r.deliv.Load(), time.Now()
	done, err := r.pump(ctx, ph.inflight, ph.duration, res)
	if err != nil {
		return nil, err
	}
	dt := time.Since(t0).Seconds()
	dl := r.deliv.Load() - d0
	var cpu1 float64
	for _, n := range r.nodes {
		cpu1 += procCPUms(n.PID)
	}
	res.DeliveriesPerS = float64(dl) / dt
	res.BroadcastsPerS = float64(done) / dt
	if dl > 0 {
		res.ServerCPUPerDel = (cpu1 - cpu0) * 1e6 / float64(dl)
	}
	fmt.Fprintf(ph.stderr, "cluster: %.0f deliveries/s, latency local p50 %.0f µs, remote p50 %.0f µs\n", res.DeliveriesPerS, res.LocalP50us, res.RemoteP50us)
	return res, nil
}

type ncStats struct {
	Len int `json:"cluster_conns"`
}

func ctlStats(ctx context.Context, ctl *consumer.Consumer, in <-chan []byte) (ncStats, error) {
	var st ncStats
	if err := ctl.SendBinary([]byte(statsQuery)); err != nil {
		return st, err
	}
	for {
		select {
		case m := <-in:
			if rest, ok := strings.CutPrefix(string(m), statsQuery); ok {
				err := json.Unmarshal([]byte(rest), &st)
				return st, err
			}
		case <-time.After(5 * time.Second):
			return st, fmt.Errorf("%w: no stats answer", ErrScenario)
		}
	}
}

// directedResult: Node.Send from A to a Consumer on B, and Node.Request
// from A to a Consumer on B (remote) and on A (local), one at a time.
type directedResult struct {
	Sends  int     `json:"sends"`
	P50us  float64 `json:"p50_us"`
	P99us  float64 `json:"p99_us"`
	Errors int     `json:"errors"`

	RemoteReqP50us float64 `json:"remote_request_p50_us"`
	RemoteReqP99us float64 `json:"remote_request_p99_us"`
	LocalReqP50us  float64 `json:"local_request_p50_us"`
	LocalReqP99us  float64 `json:"local_request_p99_us"`
	ReqErrors      int     `json:"request_errors"`
}

// directed has a control connection on A ask Node.Send to Consumers on B,
// one at a time, and times each NCSEND→NCSENT round trip (the owner's
// answer crossing back).
func directed(ctx context.Context, nodes []*serverProc, n int) (*directedResult, error) {
	dial := func(node int, in chan []byte) (*consumer.Consumer, error) {
		host, port, _ := net.SplitHostPort(nodes[node].Addr)
		pn, _ := strconv.Atoi(port)
		c, err := consumer.New(consumer.Options{Host: host, Port: pn, Reconnect: consumer.Reconnect{MaxAttempts: 1},
			OnMessage: func(m consumer.Message) {
				select {
				case in <- append([]byte(nil), m.Data...):
				default:
				}
			}})
		if err != nil {
			return nil, err
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return c, c.Connect(cctx)
	}
	ain, bin := make(chan []byte, 1024), make(chan []byte, 1024)
	a, err := dial(0, ain)
	if err != nil {
		return nil, err
	}
	defer a.Destroy()
	b, err := dial(1, bin)
	if err != nil {
		return nil, err
	}
	defer b.Destroy()
	wait := func(in chan []byte, prefix string) (string, error) {
		for {
			select {
			case m := <-in:
				if rest, ok := strings.CutPrefix(string(m), prefix); ok {
					return rest, nil
				}
			case <-time.After(5 * time.Second):
				return "", fmt.Errorf("%w: no %s answer", ErrScenario, prefix)
			}
		}
	}
	if err := b.SendBinary([]byte(ncIDQuery)); err != nil {
		return nil, err
	}
	id, err := wait(bin, ncIDQuery)
	if err != nil {
		return nil, err
	}
	// Wait until A's presence knows b's connection.
	time.Sleep(300 * time.Millisecond)
	h := &histogram{}
	res := &directedResult{Sends: n}
	var mu sync.Mutex
	for i := range n {
		msg := []byte(fmt.Sprintf("%s%s:%d", ncSendPref, id, i))
		t0 := time.Now()
		if err := a.SendBinary(msg); err != nil {
			return nil, err
		}
		ans, err := wait(ain, ncSentPref)
		if err != nil {
			return nil, err
		}
		h.Record(time.Since(t0))
		if !strings.HasSuffix(ans, ":ok") {
			mu.Lock()
			res.Errors++
			mu.Unlock()
		}
	}
	res.P50us, res.P99us = us(h.Percentile(50)), us(h.Percentile(99))

	// Requests: to b (remote) and to a Consumer on A (local), which
	// acknowledge them automatically (no OnRequest handler).
	lin := make(chan []byte, 1024)
	l, err := dial(0, lin)
	if err != nil {
		return nil, err
	}
	defer l.Destroy()
	if err := l.SendBinary([]byte(ncIDQuery)); err != nil {
		return nil, err
	}
	lid, err := wait(lin, ncIDQuery)
	if err != nil {
		return nil, err
	}
	request := func(to string) (*histogram, error) {
		h := &histogram{}
		for i := range n {
			t0 := time.Now()
			if err := a.SendBinary([]byte(fmt.Sprintf("%s%s:%d", ncReqPref, to, i))); err != nil {
				return nil, err
			}
			ans, err := wait(ain, ncRepPref)
			if err != nil {
				return nil, err
			}
			h.Record(time.Since(t0))
			if !strings.HasSuffix(ans, ":ok") {
				res.ReqErrors++
			}
		}
		return h, nil
	}
	rh, err := request(id)
	if err != nil {
		return nil, err
	}
	lh, err := request(lid)
	if err != nil {
		return nil, err
	}
	res.RemoteReqP50us, res.RemoteReqP99us = us(rh.Percentile(50)), us(rh.Percentile(99))
	res.LocalReqP50us, res.LocalReqP99us = us(lh.Percentile(50)), us(lh.Percentile(99))
	return res, nil
}

// --- report ---

type clusterReport struct {
	Conns    int             `json:"conns"`
	Size     int             `json:"size"`
	Inflight int             `json:"inflight"`
	Duration string          `json:"duration"`
	Rounds   int             `json:"rounds"`
	Single   *phaseResult    `json:"single_provider"`
	OneNode  *phaseResult    `json:"one_node_with_broker"`
	Cluster  *phaseResult    `json:"three_nodes"`
	Directed *directedResult `json:"directed_send"`
	Restart  *restartResult  `json:"nats_restart"`
	Failover *failoverResult `json:"failover"`
	// Ratios, in this run.
	ClusterVsSingle   float64 `json:"cluster_vs_single_deliveries"`
	OneNodeVsSingle   float64 `json:"one_node_vs_single_deliveries"`
	RemoteMinusLocal  float64 `json:"remote_minus_local_p50_us"`
	RemoteOverLocal99 float64 `json:"remote_over_local_p99"`
	NatsCPUms         float64 `json:"nats_server_cpu_ms"`
}

func (r *clusterReport) ratios() {
	if r.Single.DeliveriesPerS > 0 {
		r.ClusterVsSingle = r.Cluster.DeliveriesPerS / r.Single.DeliveriesPerS
		r.OneNodeVsSingle = r.OneNode.DeliveriesPerS / r.Single.DeliveriesPerS
	}
	r.RemoteMinusLocal = r.Cluster.RemoteP50us - r.Cluster.LocalP50us
	if r.Cluster.LocalP99us > 0 {
		r.RemoteOverLocal99 = r.Cluster.RemoteP99us / r.Cluster.LocalP99us
	}
}

func (r *clusterReport) print(w io.Writer) {
	fmt.Fprintf(w, "cluster: %d Consumers, %d B broadcasts, %d in flight, %s per phase, median of %d rounds (1 nats-server, ncnode processes, 127.0.0.1)\n",
		r.Conns, r.Size, r.Inflight, r.Duration, r.Rounds)
	fmt.Fprintf(w, "latency: a message published on A to %d subscribers per node, one at a time; deliveries/s: broadcasts to every Consumer\n", latPerNode)
	fmt.Fprintf(w, "%-34s %14s %12s %12s %12s %12s %14s\n", "configuration", "deliveries/s", "local p50", "local p99", "remote p50", "remote p99", "CPU/delivery")
	row := func(name string, p *phaseResult) {
		fmt.Fprintf(w, "%-34s %14.0f %10.0fµs %10.0fµs %10.0fµs %10.0fµs %12.0fns\n", name, p.DeliveriesPerS,
			p.LocalP50us, p.LocalP99us, p.RemoteP50us, p.RemoteP99us, p.ServerCPUPerDel)
	}
	row("single Provider, no broker", r.Single)
	row("single Provider + NATS", r.OneNode)
	row("3 nodes (control on A)", r.Cluster)
	fmt.Fprintf(w, "cluster deliveries/s vs single Provider:        %.2f× (target ≥ 0.8×)\n", r.ClusterVsSingle)
	fmt.Fprintf(w, "one node with broker vs plain Provider:         %.2f× (target ≥ 0.95×)\n", r.OneNodeVsSingle)
	fmt.Fprintf(w, "remote p50 − local p50:                         %+.0f µs (target ≤ +250 µs)\n", r.RemoteMinusLocal)
	fmt.Fprintf(w, "remote p99 / local p99:                         %.2f× (target ≤ 2×)\n", r.RemoteOverLocal99)
	fmt.Fprintf(w, "presence: node A counted B's and C's Consumers  %.0f ms after the last upgrade\n", r.Cluster.PresenceMs)
	fmt.Fprintf(w, "directed Node.Send A→B, 1 in flight:            p50 %.0f µs, p99 %.0f µs, %d errors of %d (round trip to the control connection)\n",
		r.Directed.P50us, r.Directed.P99us, r.Directed.Errors, r.Directed.Sends)
	fmt.Fprintf(w, "Node.Request, 1 in flight, Consumer auto-acks: to B p50 %.0f µs, p99 %.0f µs; to A (local) p50 %.0f µs, p99 %.0f µs; %d errors\n",
		r.Directed.RemoteReqP50us, r.Directed.RemoteReqP99us, r.Directed.LocalReqP50us, r.Directed.LocalReqP99us, r.Directed.ReqErrors)
	fmt.Fprintf(w, "broadcasts written off (at most once):          %d single, %d one node, %d cluster\n",
		r.Single.WrittenOff, r.OneNode.WrittenOff, r.Cluster.WrittenOff)
	fmt.Fprintf(w, "nats-server CPU over the measured rounds:       %.0f ms\n", r.NatsCPUms)
	fmt.Fprintf(w, "nats-server SIGKILL, restarted after %v:        cross-node delivery resumed %.0f ms after the restart; %d of %d probes lost (at most once)\n",
		natsDown, r.Restart.ResumedMs, r.Restart.Lost, r.Restart.Sent)
	fmt.Fprintf(w, "node C SIGKILL (%d Consumers with Addrs):      %d moved; 99%% reconnected %.0f ms after the kill, all %.0f ms (Reconnect.Interval %s)\n",
		r.Failover.Conns, r.Failover.Moved, r.Failover.P99Ms, r.Failover.AllMs, r.Failover.Interval)
}

// --- NATS restart and node failover ---

// natsDown is how long the nats-server stays dead in the restart test.
const natsDown = 2 * time.Second

type restartResult struct {
	ResumedMs float64 `json:"resumed_ms"`
	Sent      int     `json:"probes_sent"`
	Lost      int     `json:"probes_lost"`
}

// natsRestart SIGKILLs the nats-server while node A publishes a probe
// every 10 ms to the probes of every node, restarts it on the same port
// after natsDown, and measures when a remote probe receives again and how
// many probes were lost. It returns the new server.
func natsRestart(ctx context.Context, r *rig, nats *natsProc, bin, url string) (*restartResult, *natsProc, error) {
	port := url[strings.LastIndexByte(url, ':')+1:]
	res := &restartResult{}
	perProbe := int64(r.latN) - latPerNode // remote receivers of each probe
	remote := &histogram{}
	r.remote.Store(remote)
	defer r.remote.Store(nil)
	count := func() int64 { return int64(remote.Count()) }
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			binary.BigEndian.PutUint64(r.latBuf[24:], r.seq)
			binary.BigEndian.PutUint64(r.latBuf[32:], uint64(time.Since(r.epoch)))
			r.seq++
			if r.ctl.SendBinary(r.latBuf) == nil {
				res.Sent++
			}
		}
	}()
	time.Sleep(500 * time.Millisecond)
	nats.kill()
	time.Sleep(natsDown)
	cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", port)
	childDiesWithUs(cmd)
	if err := cmd.Start(); err != nil {
		close(stop)
		<-done
		return nil, nil, fmt.Errorf("%w: restarting nats-server: %v", ErrServer, err)
	}
	restarted := time.Now()
	nats = &natsProc{cmd: cmd, PID: cmd.Process.Pid}
	mark := count()
	for count() == mark {
		if time.Since(restarted) > 30*time.Second || ctx.Err() != nil {
			close(stop)
			<-done
			return nil, nats, fmt.Errorf("%w: cross-node delivery did not resume after the nats-server restart", ErrScenario)
		}
		time.Sleep(time.Millisecond)
	}
	res.ResumedMs = float64(time.Since(restarted)) / float64(time.Millisecond)
	time.Sleep(500 * time.Millisecond)
	close(stop)
	<-done
	time.Sleep(200 * time.Millisecond)
	if perProbe > 0 {
		res.Lost = res.Sent - int(count()/perProbe)
	}
	return res, nats, nil
}

type failoverResult struct {
	Conns    int     `json:"conns"`
	Moved    int     `json:"moved"`
	P99Ms    float64 `json:"p99_reconnected_ms"`
	AllMs    float64 `json:"all_reconnected_ms"`
	Interval string  `json:"reconnect_interval"`
}

// failover connects n Consumers with Addrs = the 3 nodes, SIGKILLs node C,
// and measures when the Consumers it held are connected again.
func failover(ctx context.Context, nodes []*serverProc, n int, interval time.Duration) (*failoverResult, error) {
	res := &failoverResult{Conns: n, Interval: interval.String()}
	addrs := make([]string, len(nodes))
	for i, p := range nodes {
		addrs[i] = p.Addr
	}
	var mu sync.Mutex
	var killed time.Time
	var back []time.Duration
	var cs []*consumer.Consumer
	defer func() {
		for _, c := range cs {
			c.Destroy()
		}
	}()
	for range n {
		var c *consumer.Consumer
		c, err := consumer.New(consumer.Options{Addrs: addrs,
			Reconnect: consumer.Reconnect{Interval: interval, MaxAttempts: -1},
			OnOpen: func() {
				mu.Lock()
				if !killed.IsZero() {
					back = append(back, time.Since(killed))
				}
				mu.Unlock()
			}})
		if err != nil {
			return nil, err
		}
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		err = c.Connect(cctx)
		cancel()
		if err != nil {
			c.Destroy()
			return nil, fmt.Errorf("%w: failover consumer: %v", ErrScenario, err)
		}
		cs = append(cs, c)
	}
	victim := nodes[len(nodes)-1]
	for _, c := range cs {
		if c.RemoteAddr() == victim.Addr {
			res.Moved++
		}
	}
	mu.Lock()
	killed = time.Now()
	mu.Unlock()
	victim.kill()
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		k := len(back)
		mu.Unlock()
		if k >= res.Moved || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(back) < res.Moved {
		return nil, fmt.Errorf("%w: %d of %d Consumers reconnected after node C died", ErrScenario, len(back), res.Moved)
	}
	slices.Sort(back)
	if len(back) > 0 {
		res.P99Ms = float64(back[(len(back)*99+99)/100-1]) / float64(time.Millisecond)
		res.AllMs = float64(back[len(back)-1]) / float64(time.Millisecond)
	}
	return res, nil
}
