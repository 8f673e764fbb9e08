package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/networkcluster/networkcluster/compress"
)

// errHelp: -h was asked for; the usage has been printed.
var errHelp = errors.New("help")

// defaultClientPreset is the permessage-deflate offer of the harness in the
// compress scenario: the widest (context takeover both ways, the client's
// window left to the server), so that the server's preset decides.
const defaultClientPreset = "DEDICATED_COMPRESSOR|DEDICATED_DECOMPRESSOR"

// Client defaults.
const (
	defaultDialTimeout = 10 * time.Second
	defaultReadBuffer  = 4 << 10
	defaultParallel    = 64
)

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: %s: unexpected arguments %q", ErrUsage, fs.Name(), fs.Args())
	}
	return nil
}

// defaults fills the scenario-dependent defaults of sc.
func (sc *scenarioConfig) defaults() {
	if sc.Inflight == 0 {
		sc.Inflight = 1
		if sc.Scenario == scBroadcast {
			sc.Inflight = 2
		}
	}
	if sc.Size == 0 {
		sc.Size = 64
		if sc.Scenario == scBroadcast || sc.Scenario == scCompress {
			sc.Size = 1024
		}
	}
	if sc.Parallel == 0 {
		sc.Parallel = defaultParallel
	}
	if sc.SlowFill == 0 && sc.SlowShare > 0 {
		sc.SlowFill = defaultSlowFill
	}
	if sc.Scenario == scRequest && sc.Direction == "" {
		sc.Direction = dirC2P
	}
}

func (sc *scenarioConfig) validate() error {
	switch {
	case !slices.Contains(scenarioNames, sc.Scenario):
		return fmt.Errorf("%w: unknown scenario %q (want %s)", ErrUsage, sc.Scenario, strings.Join(scenarioNames, ", "))
	case sc.KillShare < 0 || sc.KillShare >= 1 || (sc.KillShare > 0 && sc.Scenario != scJobs):
		return fmt.Errorf("%w: --kill-share must be in [0, 1) and is for jobs only", ErrUsage)
	case sc.Scenario == scRequest && sc.Direction != dirC2P && sc.Direction != dirP2C:
		return fmt.Errorf("%w: --direction %q (want %s or %s)", ErrUsage, sc.Direction, dirC2P, dirP2C)
	case sc.Conns < 1:
		return fmt.Errorf("%w: --conns must be at least 1", ErrUsage)
	case sc.Duration <= 0 || sc.Warmup < 0:
		return fmt.Errorf("%w: --duration must be positive and --warmup not negative", ErrUsage)
	case sc.Inflight < 1 || sc.Inflight > 1<<16:
		return fmt.Errorf("%w: --inflight out of range", ErrUsage)
	case sc.Size < 1 || sc.Size > peerMaxMessage:
		return fmt.Errorf("%w: --size must be 1..%d", ErrUsage, peerMaxMessage)
	case sc.SlowShare < 0 || sc.SlowShare >= 1 || (sc.SlowShare > 0 && sc.Scenario != scBroadcast):
		return fmt.Errorf("%w: --slow-share must be in [0, 1) and is for broadcast only", ErrUsage)
	case sc.SlowFill < 0 || sc.SlowFill > peerMaxMessage:
		return fmt.Errorf("%w: --slow-fill must be 0..%d", ErrUsage, peerMaxMessage)
	case sc.Parallel < 1:
		return fmt.Errorf("%w: --parallel must be at least 1", ErrUsage)
	}
	return nil
}

func baseClient() clientOptions {
	return clientOptions{
		DialTimeout:       defaultDialTimeout,
		MaxPayload:        peerMaxMessage,
		ReadBuffer:        defaultReadBuffer,
		CompressThreshold: compress.DefaultThreshold,
	}
}

// plotPath resolves --svg: "none" → "", "auto" → a new file in the temp
// directory.
func plotPath(flagValue, what string) string {
	switch flagValue {
	case "none", "":
		return ""
	case "auto":
		return filepath.Join(os.TempDir(), fmt.Sprintf("loadtest-%s-%s.svg", what, time.Now().Format("20060102-150405")))
	}
	return flagValue
}

// cmdRun runs `loadtest run`: one scenario against a running server.
func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	targetS := fs.String("target", "", "server URL: ws://HOST:PORT/PATH[?key=SECRET], wss://..., or tcp://HOST:PORT for a raw TCP mirror (required)")
	var sc scenarioConfig
	fs.StringVar(&sc.Scenario, "scenario", scEcho, "scenario: "+strings.Join(scenarioNames, "|"))
	fs.StringVar(&sc.Scenario, "scenarios", scEcho, "the same as --scenario (run takes one; the suite takes a list)")
	fs.IntVar(&sc.Conns, "conns", 100, "connections (broadcast: receivers)")
	fs.DurationVar(&sc.Duration, "duration", 4*time.Second, "measured time of the scenario (idle: settle time)")
	fs.DurationVar(&sc.Warmup, "warmup", time.Second, "warm-up before each measured window")
	fs.IntVar(&sc.Inflight, "inflight", 0, "messages in flight per connection (echo, compress; default 1) or broadcasts in flight (default 2)")
	fs.IntVar(&sc.Size, "size", 0, "payload bytes (default 64; broadcast and compress 1024)")
	fs.Float64Var(&sc.SlowShare, "slow-share", 0, "broadcast: share of receivers that stop reading in a second phase, e.g. 0.1")
	fs.Var((*byteSize)(&sc.SlowFill), "slow-fill", "broadcast: echo each slow receiver asks for as it stops reading (default 128KiB)")
	fs.IntVar(&sc.Parallel, "parallel", defaultParallel, "connections dialed at once")
	fs.StringVar(&sc.Direction, "direction", dirC2P, "request: c2p (the client requests, the server replies) or p2c (the server requests)")
	fs.Float64Var(&sc.KillShare, "kill-share", 0, "jobs: share of workers that drop their TCP connection halfway, e.g. 0.1")
	jsonPath := fs.String("json", "", "write the full result as JSON to this file")
	svgFlag := fs.String("svg", "auto", "latency plot: auto (a file in the temp directory), none, or a file name")
	pid := fs.Int("server-pid", 0, "the server's process id, to read its CPU time and memory from /proc (0: found from the stats of loadtest serve; against another server, CPU and memory are then shown as not available)")
	sources := fs.Int("sources", defaultSources, "spread connections over 127.0.0.1 … 127.0.0.N (loopback targets, Linux)")
	allowRemote := fs.Bool("allow-remote", false, "allow a target outside 127.0.0.0/8")
	insecure := fs.Bool("insecure", false, "wss: do not verify the server certificate")
	clientPreset := fs.String("compressor", defaultClientPreset, "permessage-deflate preset the client offers, in every scenario when given (compress: always)")
	name := fs.String("name", "", "server name in the output (default: the target's host:port)")
	quiet := fs.Bool("q", false, "no progress lines on stderr")
	killAfter := fs.Duration("kill-after", 0, "request: instead of --target, start two serve processes, connect --conns Consumers with both as Addrs and Resend on, SIGKILL the busier Provider after this and count lost requests")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *killAfter > 0 {
		if sc.Scenario != scRequest || *targetS != "" {
			return fmt.Errorf("%w: --kill-after goes with --scenario request and no --target", ErrUsage)
		}
		var prog *progress
		if !*quiet {
			prog = newProgress(stderr)
		}
		sc.defaults()
		return cmdFailover(ctx, stdout, prog, failoverConfig{Conns: sc.Conns, Inflight: sc.Inflight, Size: sc.Size,
			KillAfter: *killAfter, After: sc.Duration, Timeout: 30 * time.Second, Interval: time.Second})
	}
	if *targetS == "" {
		return fmt.Errorf("%w: run needs --target", ErrUsage)
	}
	sc.defaults()
	if err := sc.validate(); err != nil {
		return err
	}
	t, err := parseTarget(ctx, *targetS, *allowRemote)
	if err != nil {
		return err
	}
	if err := checkLimits(sc.Conns+1, max(1, *sources)); err != nil {
		return err
	}
	opts := baseClient()
	opts.Addr, opts.Host, opts.RequestURI = t.Addr, t.Host, t.RequestURI
	opts.Raw = t.Scheme == "tcp"
	if t.Scheme == "wss" {
		host, _, _ := strings.Cut(t.Host, ":")
		opts.TLS = &tls.Config{ServerName: host, InsecureSkipVerify: *insecure, MinVersion: tls.VersionTLS12}
	}
	offer := sc.Scenario == scCompress
	fs.Visit(func(f *flag.Flag) { offer = offer || f.Name == "compressor" })
	if offer {
		if opts.Preset, err = compress.ParsePreset(*clientPreset); err != nil {
			return fmt.Errorf("%w: --compressor: %v", ErrUsage, err)
		}
	}
	var prog *progress
	if !*quiet {
		prog = newProgress(stderr)
	}
	e := &env{Name: *name, Opts: &opts, PID: *pid, Sources: sourceIPs(t.IP, *sources), Prog: prog}
	if e.Name == "" {
		e.Name = t.Host
	}
	// Find the server's pid, compressor and name from its stats.
	if !opts.Raw {
		if ctl, err := openCtl(ctx, &opts, e.src(0)); err == nil {
			if st, err := ctl.stats(ctx); err == nil {
				if e.PID == 0 && st.PID > 0 && isLoopback4(t.IP) {
					if _, err := readProc(st.PID); err == nil {
						e.PID = st.PID
					}
				}
				if sc.Scenario == scCompress && st.Compressor != "" {
					sc.Preset = st.Compressor
				}
			} else {
				e.NoStats = errors.Is(err, ErrNoStats)
				if e.PID != 0 {
					prog.Printf("note: %v: the server's heap and goroutines are not reported (CPU and RSS come from --server-pid)", err)
				} else {
					prog.Printf("note: %v: the server's CPU, memory and goroutines are not reported (give --server-pid for CPU and RSS)", err)
				}
			}
			ctl.close()
		} else {
			return err
		}
	}
	if sc.Scenario == scCompress && sc.Preset == "" {
		sc.Preset = "server's preset"
	}
	if e.PID != 0 {
		if _, err := readProc(e.PID); err != nil {
			return fmt.Errorf("%w: --server-pid %d: %v", ErrUsage, e.PID, err)
		}
	}
	started := time.Now()
	prog.Printf("run %s against %s (%s), %d connections", sc.label(), e.Name, t.Addr, sc.Conns)
	results, err := e.run(ctx, sc)
	for _, r := range results {
		r.Run = 1
	}
	if err != nil {
		if len(results) == 0 {
			return err
		}
		results[len(results)-1].Error = err.Error()
	}
	servers := []string{e.Name}
	aggs := summarize(results, servers)
	envi := currentEnv()
	fmt.Fprintf(stdout, "network-cluster load test: run against %s, %s\n", e.Name, envi)
	writeTable(stdout, aggs, servers)
	rep := &fullReport{Tool: "network-cluster loadtest", Command: "run " + strings.Join(args, " "),
		Started: started, Finished: time.Now(), Env: envi, Servers: servers, Runs: 1,
		Summary: aggs, Results: results}
	if oerr := finishOutputs(stdout, rep, aggs, servers, *svgFlag, *jsonPath, sc.Scenario); oerr != nil {
		return oerr
	}
	return err // the scenario's, if it failed
}

// finishOutputs writes the plot and the JSON and prints their paths.
func finishOutputs(stdout io.Writer, rep *fullReport, aggs []*aggregate, servers []string, svgFlag, jsonPath, what string) error {
	if p := plotPath(svgFlag, what); p != "" {
		path, err := savePlot(p, aggs, servers, "network-cluster load test: latency ("+rep.Env.String()+")")
		if err != nil {
			return fmt.Errorf("writing the plot: %w", err)
		}
		if path != "" {
			rep.Plot = path
			fmt.Fprintf(stdout, "latency plot: %s\n", path)
		}
	}
	if jsonPath != "" {
		if err := writeJSON(jsonPath, rep); err != nil {
			return fmt.Errorf("writing %s: %w", jsonPath, err)
		}
		fmt.Fprintf(stdout, "full result: %s\n", jsonPath)
	}
	return nil
}

// suiteFlags are the sizes of the suite and of compare.
type suiteFlags struct {
	scenarios                          string
	duration, warmup                   time.Duration
	runs                               int
	connectConns, idleConns, echoConns int
	echoSize                           int
	echoInflight                       string
	bcastConns, bcastSize, bcastFlight int
	slowShare, killShare               float64
	slowFill                           int
	stallConns, stallFill              int
	stallShare                         float64
	compressConns, compressSize        int
	presets                            string
	parallel, sources                  int
	serveArgs                          string
	peers, peersDir                    string
	wss                                string
	jsonPath, svg                      string
	quiet, check                       bool
}

// cmdSuite runs the default suite (compare=false: our Provider only) or
// compare (our Provider and the peers).
func cmdSuite(ctx context.Context, args []string, stdout, stderr io.Writer, compare bool) error {
	name := "suite"
	if compare {
		name = "compare"
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f suiteFlags
	def := func(suite, cmp int) int {
		if compare {
			return cmp
		}
		return suite
	}
	scen := "connect,idle,echo,request,broadcast"
	if compare {
		scen += ",compress"
	}
	fs.StringVar(&f.scenarios, "scenarios", scen, "scenarios to run, comma-separated")
	fs.StringVar(&f.scenarios, "scenario", scen, "the same as --scenarios")
	fs.DurationVar(&f.duration, "duration", 4*time.Second, "measured time of each scenario (idle: settle time)")
	fs.DurationVar(&f.warmup, "warmup", time.Second, "warm-up before each measured window")
	fs.IntVar(&f.runs, "runs", 1, "runs of everything; figures are the median over the runs (e.g. 3)")
	fs.IntVar(&f.connectConns, "connect-conns", def(2000, 5000), "connect: connections")
	fs.IntVar(&f.idleConns, "idle-conns", def(5000, 10000), "idle: connections")
	fs.IntVar(&f.echoConns, "echo-conns", 1000, "echo: connections")
	fs.IntVar(&f.echoSize, "echo-size", 64, "echo: payload bytes")
	fs.StringVar(&f.echoInflight, "echo-inflight", "1,16", "echo: messages in flight per connection, one run per value")
	fs.IntVar(&f.bcastConns, "broadcast-conns", def(5000, 10000), "broadcast: receivers")
	fs.IntVar(&f.bcastSize, "broadcast-size", 1024, "broadcast: payload bytes")
	fs.IntVar(&f.bcastFlight, "broadcast-inflight", 2, "broadcast: broadcasts in flight")
	fs.Float64Var(&f.slowShare, "slow-share", 0.1, "broadcast: share of receivers that stop reading in the second phase (0: none)")
	fs.Float64Var(&f.killShare, "kill-share", 0.1, "jobs: share of workers that drop their TCP connection halfway in an extra jobs run (0: none)")
	f.slowFill = defaultSlowFill
	fs.Var((*byteSize)(&f.slowFill), "slow-fill", "broadcast: echo each slow receiver asks for as it stops reading")
	fs.IntVar(&f.stallConns, "stall-conns", 1000, "broadcast stall variant: receivers (0: skip the variant)")
	fs.Float64Var(&f.stallShare, "stall-share", 0.01, "broadcast stall variant: share of receivers not reading")
	f.stallFill = 8 << 20
	fs.Var((*byteSize)(&f.stallFill), "stall-fill", "broadcast stall variant: backlog per slow receiver, above the kernel's socket buffers")
	fs.IntVar(&f.compressConns, "compress-conns", 200, "compress: connections")
	fs.IntVar(&f.compressSize, "compress-size", 1024, "compress: payload bytes (JSON-like text)")
	fs.StringVar(&f.presets, "presets", "DISABLED,SHARED_COMPRESSOR,DEDICATED_COMPRESSOR_4KB|DEDICATED_DECOMPRESSOR_4KB,DEDICATED_COMPRESSOR|DEDICATED_DECOMPRESSOR",
		"compress: server presets, comma-separated (our Provider only)")
	fs.IntVar(&f.parallel, "parallel", defaultParallel, "connections dialed at once")
	fs.IntVar(&f.sources, "sources", defaultSources, "spread connections over 127.0.0.1 … 127.0.0.N")
	fs.StringVar(&f.wss, "wss", map[bool]string{false: "", true: "connect,idle,echo"}[compare],
		"scenarios also run over wss (connect, idle, echo): ours on the event loop and with a goroutine per connection"+
			map[bool]string{false: "", true: ", and the peers that serve TLS (gorilla, nbio)"}[compare])
	fs.StringVar(&f.serveArgs, "serve-args", "", "extra flags for loadtest serve, space-separated (e.g. \"--max-backpressure 65536\")")
	if compare {
		fs.StringVar(&f.peers, "peers", "gorilla,nbio,gobwas,rawtcp", "peer servers, comma-separated")
		fs.StringVar(&f.peersDir, "peers-dir", "", "directory of the peers module (default: found from the working directory)")
	}
	fs.StringVar(&f.jsonPath, "json", "", "write the full result as JSON to this file")
	fs.StringVar(&f.svg, "svg", "auto", "latency plot: auto (a file in the temp directory), none, or a file name")
	fs.BoolVar(&f.quiet, "q", false, "no progress lines on stderr")
	fs.BoolVar(&f.check, "check", false, "judge the performance targets: exit status 1 if one is missed")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if f.runs < 1 || f.runs > 100 {
		return fmt.Errorf("%w: --runs must be 1..100", ErrUsage)
	}
	scs, err := f.plan()
	if err != nil {
		return err
	}
	maxConns := 0
	for _, sc := range scs {
		maxConns = max(maxConns, sc.Conns+1)
	}
	if err := checkLimits(maxConns, max(1, f.sources)); err != nil {
		return err
	}
	servers := []string{ours}
	var prog *progress
	if !f.quiet {
		prog = newProgress(stderr)
	}
	var certs *tlsFiles
	if slices.ContainsFunc(scs, func(sc scenarioConfig) bool { return sc.TLS }) {
		servers = append(servers, oursGoroutines)
		tmp, err := os.MkdirTemp("", "loadtest-tls-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		if certs, err = writeTLSFiles(tmp); err != nil {
			return err
		}
	}
	peerBin := ""
	if compare {
		for p := range strings.SplitSeq(f.peers, ",") {
			if p = strings.TrimSpace(p); p != "" && !slices.Contains(servers, p) {
				servers = append(servers, p)
			}
		}
		dir := f.peersDir
		if dir == "" {
			if dir, err = findPeersDir(); err != nil {
				return err
			}
		}
		tmp, err := os.MkdirTemp("", "loadtest-peers-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		prog.Printf("building the peer servers in %s", dir)
		if peerBin, err = buildPeers(ctx, dir, tmp); err != nil {
			return err
		}
	}
	var serveExtra []string
	if s := strings.TrimSpace(f.serveArgs); s != "" {
		serveExtra = strings.Fields(s)
	}
	started := time.Now()
	results := runPlan(ctx, prog, scs, servers, peerBin, serveExtra, f.runs, f.sources, certs)
	envi := currentEnv()
	aggs := summarize(results, servers)
	fmt.Fprintf(stdout, "network-cluster load test: %s, %s", name, envi)
	if f.runs > 1 {
		fmt.Fprintf(stdout, ", median of %d runs", f.runs)
	}
	fmt.Fprintln(stdout)
	writeTable(stdout, aggs, servers)
	checks := checkTargets(aggs, servers)
	writeTargets(stdout, checks, f.check)
	rep := &fullReport{Tool: "network-cluster loadtest", Command: strings.TrimSpace(name + " " + strings.Join(args, " ")),
		Started: started, Finished: time.Now(), Env: envi, Servers: servers, Runs: f.runs,
		Summary: aggs, Targets: checks, Results: results}
	if err := finishOutputs(stdout, rep, aggs, servers, f.svg, f.jsonPath, name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, r := range results {
		if r.Error != "" {
			return fmt.Errorf("%w: some scenarios failed (see the errors above)", ErrScenario)
		}
	}
	if n := missed(checks); f.check && n > 0 {
		return fmt.Errorf("%w: %d of %d missed (see above)", ErrTargets, n, len(checks))
	}
	return nil
}

// plan turns the suite flags into scenarios.
func (f *suiteFlags) plan() ([]scenarioConfig, error) {
	var out []scenarioConfig
	base := scenarioConfig{Duration: f.duration, Warmup: f.warmup, Parallel: f.parallel}
	// The messages in flight of echo, and of request and jobs, which run
	// with echo's N and K for ratios in one run.
	var ks []int
	for k := range strings.SplitSeq(f.echoInflight, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(k))
		if err != nil {
			return nil, fmt.Errorf("%w: --echo-inflight %q", ErrUsage, f.echoInflight)
		}
		ks = append(ks, n)
	}
	for s := range strings.SplitSeq(f.scenarios, ",") {
		s = strings.TrimSpace(s)
		sc := base
		sc.Scenario = s
		switch s {
		case "":
			continue
		case scConnect:
			sc.Conns = f.connectConns
			out = append(out, sc)
		case scIdle:
			sc.Conns = f.idleConns
			out = append(out, sc)
		case scEcho:
			sc.Conns, sc.Size = f.echoConns, f.echoSize
			for _, k := range ks {
				sc.Inflight = k
				out = append(out, sc)
			}
		case scBroadcast:
			sc.Conns, sc.Size, sc.Inflight, sc.SlowShare = f.bcastConns, f.bcastSize, f.bcastFlight, f.slowShare
			if f.slowShare > 0 {
				sc.SlowFill = f.slowFill
			}
			out = append(out, sc)
			if f.stallConns > 0 && f.stallShare > 0 {
				sc.Conns, sc.SlowShare, sc.SlowFill = f.stallConns, f.stallShare, f.stallFill
				out = append(out, sc)
			}
		case scRequest:
			// Same N, size and K as echo, both directions, for ratios in
			// one run.
			sc.Conns, sc.Size = f.echoConns, f.echoSize
			for _, dir := range []string{dirC2P, dirP2C} {
				for _, k := range ks {
					sc.Inflight, sc.Direction = k, dir
					out = append(out, sc)
				}
			}
		case scJobs:
			// Request p2c with the same N, size and K first, for the
			// ratio in one run; then jobs, and jobs with --kill-share.
			sc.Conns, sc.Size = f.echoConns, f.echoSize
			for _, k := range ks {
				sc.Inflight = k
				req := sc
				req.Scenario, req.Direction = scRequest, dirP2C
				out = append(out, req, sc)
				if f.killShare > 0 {
					kill := sc
					kill.KillShare = f.killShare
					out = append(out, kill)
				}
			}
		case scCompress:
			sc.Conns, sc.Size = f.compressConns, f.compressSize
			for p := range strings.SplitSeq(f.presets, ",") {
				p = strings.TrimSpace(p)
				if p == "" {
					continue
				}
				pr, err := compress.ParsePreset(p)
				if err != nil {
					return nil, fmt.Errorf("%w: --presets: %v", ErrUsage, err)
				}
				sc.Preset = pr.String()
				out = append(out, sc)
			}
		default:
			return nil, fmt.Errorf("%w: unknown scenario %q (want %s)", ErrUsage, s, strings.Join(scenarioNames, ", "))
		}
	}
	for s := range strings.SplitSeq(f.wss, ",") {
		s = strings.TrimSpace(s)
		sc := base
		sc.Scenario, sc.TLS = s, true
		switch s {
		case "":
			continue
		case scConnect:
			sc.Conns = f.connectConns
			out = append(out, sc)
		case scIdle:
			sc.Conns = f.idleConns
			out = append(out, sc)
		case scEcho:
			sc.Conns, sc.Size = f.echoConns, f.echoSize
			for _, k := range ks {
				sc.Inflight = k
				out = append(out, sc)
			}
		default:
			return nil, fmt.Errorf("%w: --wss: %q (want connect, idle or echo)", ErrUsage, s)
		}
	}
	for i := range out {
		out[i].defaults()
		if err := out[i].validate(); err != nil {
			return nil, err
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no scenario to run", ErrUsage)
	}
	return out, nil
}

// runPlan runs every scenario against every server that can run it, each
// on a fresh server process, runs times; failures are recorded in the
// results and do not stop the others.
func runPlan(ctx context.Context, prog *progress, scs []scenarioConfig, servers []string, peerBin string,
	serveExtra []string, runs, sources int, certs *tlsFiles) []*result {
	var results []*result
	for run := 1; run <= runs; run++ {
		for _, sc := range scs {
			for _, s := range servers {
				if ctx.Err() != nil {
					return results
				}
				if (s == "rawtcp" && sc.Scenario != scEcho) || ((sc.Scenario == scCompress || sc.Scenario == scRequest || sc.Scenario == scJobs) && s != ours) {
					continue
				}
				if !servesScheme(s, sc.TLS) {
					continue
				}
				var spec serverSpec
				if s == ours || s == oursGoroutines {
					extra := slices.Clone(serveExtra)
					if sc.Scenario == scCompress {
						extra = append(extra, "--compressor", sc.Preset)
					}
					if sc.TLS {
						extra = append(extra, "--tls-cert", certs.cert, "--tls-key", certs.key)
					}
					if s == oursGoroutines {
						extra = append(extra, "--tls-goroutines")
					}
					var err error
					if spec, err = selfServe(extra...); err != nil {
						results = append(results, failed(sc, s, run, err))
						continue
					}
					spec.Name = s
				} else {
					spec = peerSpec(peerBin, s)
					if sc.TLS {
						spec.Args = append(spec.Args, "--tls-cert", certs.cert, "--tls-key", certs.key)
					}
				}
				if runs > 1 {
					prog.Printf("run %d/%d: %s against %s", run, runs, sc.label(), s)
				} else {
					prog.Printf("%s against %s", sc.label(), s)
				}
				rs := runOne(ctx, prog, spec, sc, sources, certs)
				for _, r := range rs {
					r.Run = run
					if r.Error != "" {
						prog.Printf("%s against %s failed: %s", r.Label, s, r.Error)
					}
				}
				results = append(results, rs...)
			}
		}
	}
	return results
}

// runOne starts the server, runs one scenario and stops the server.
func runOne(ctx context.Context, prog *progress, spec serverSpec, sc scenarioConfig, sources int, certs *tlsFiles) []*result {
	proc, err := startServer(ctx, spec)
	if err != nil {
		return []*result{failed(sc, spec.Name, 0, err)}
	}
	base := baseClient()
	if sc.TLS {
		base.TLS = certs.client.Clone()
		base.TLS.ServerName, _, _ = net.SplitHostPort(proc.Addr)
	}
	if sc.Scenario == scCompress {
		base.Preset, _ = compress.ParsePreset(defaultClientPreset)
	}
	e := proc.env(prog, sources, base)
	rs, err := e.run(ctx, sc)
	if len(rs) == 0 {
		rs = []*result{failed(sc, spec.Name, 0, err)}
	} else if err != nil {
		rs[len(rs)-1].Error = err.Error()
	}
	if serr := proc.stop(); serr != nil {
		rs[len(rs)-1].note("stopping the server: %v", serr)
	}
	return rs
}

func failed(sc scenarioConfig, server string, run int, err error) *result {
	return &result{Scenario: sc.Scenario, Label: sc.label(), Server: server, Run: run, Conns: sc.Conns,
		Inflight: sc.Inflight, Size: sc.Size, Preset: sc.Preset, DurationS: sc.Duration.Seconds(), Error: err.Error()}
}

// byteSize is a flag holding a byte count written as 1024, 128KiB, 8MiB
// (or KB/MB, taken as binary units too).
type byteSize int

func (b *byteSize) String() string {
	n := int(*b)
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.Itoa(n>>20) + "MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n)
}

func (b *byteSize) Set(s string) error {
	s = strings.TrimSpace(s)
	mult := 1
	for _, u := range []struct {
		suffix string
		m      int
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"K", 1 << 10}, {"M", 1 << 20}, {"B", 1}} {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(rest), u.m
			break
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > (1<<31)/mult {
		return fmt.Errorf("bad size %q", s)
	}
	*b = byteSize(n * mult)
	return nil
}
