package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/networkcluster/networkcluster/compress"
	"github.com/networkcluster/networkcluster/provider"
)

// The harness protocol (loadtest/peers/PROTOCOL.md), which `loadtest serve`
// and every peer server speak: each data message is echoed to its sender,
// except a binary message that starts with bcastPrefix, which is sent whole
// to every open connection (the sender included), and the binary message
// statsQuery, which is answered to the sender with statsQuery followed by
// the JSON of the server's stats.
const (
	bcastPrefix = "NCBCAST:"
	statsQuery  = "NCSTATS:"
	// statsSettledQuery is answered as statsQuery, after a garbage
	// collection that returns the freed memory to the system.
	statsSettledQuery = "NCSTATS:gc"
)

// peerMaxMessage is the largest message the peer servers accept
// (peers.MaxMessageSize); serve accepts the same by default so that every
// server is asked the same.
const peerMaxMessage = 16 << 20

// serveShutdownTimeout bounds the graceful shutdown after SIGINT/SIGTERM.
const serveShutdownTimeout = 5 * time.Second

// serveStats is the JSON answer of `loadtest serve` to statsQuery.
type serveStats struct {
	statsFields
	Provider provider.Stats `json:"provider"`
	Jobs     *jobsStats     `json:"jobs,omitempty"` // the jobs scenario's queue
}

// serveCounters are the serve command's own counters.
type serveCounters struct {
	broadcasts, delivered, refused, closed, sendErrors atomic.Uint64
	jobs                                               jobsServer
}

// cmdServe runs `loadtest serve`: a Provider speaking the harness
// protocol until SIGINT or SIGTERM (or ctx).
func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "listen address host:port (port 0: any free port)")
	path := fs.String("path", provider.DefaultPath, "WebSocket path")
	key := fs.String("key", "", "require the URL parameter key=SECRET")
	comp := fs.String("compressor", "DISABLED", "permessage-deflate preset, e.g. SHARED_COMPRESSOR or 'DEDICATED_COMPRESSOR_4KB|DEDICATED_DECOMPRESSOR'")
	hbInterval := fs.Duration("heartbeat-interval", provider.DefaultHeartbeatInterval, "heartbeat interval")
	textHB := fs.Bool("text-heartbeat", false, "speak the Node network-cluster 1.0.4 text heartbeat (PING/PONG)")
	cert := fs.String("tls-cert", "", "PEM certificate file: serve wss")
	keyFile := fs.String("tls-key", "", "PEM key file (with --tls-cert)")
	tlsGoroutines := fs.Bool("tls-goroutines", false, "wss: one goroutine per connection instead of TLS on the event loop")
	maxPayload := fs.Int("max-payload", peerMaxMessage, "largest inbound message in bytes")
	maxBP := fs.Int("max-backpressure", provider.DefaultMaxBackpressure, "bytes queued per connection before the backpressure policy applies")
	refuse := fs.Bool("refuse-on-backpressure", false, "refuse messages over max backpressure instead of closing the connection")
	loops := fs.Int("poll-loops", 0, "netpoll event loops (0: netpoll's default)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file (go tool pprof)")
	memProfile := fs.String("memprofile", "", "write a heap profile to this file at shutdown")
	metricsAddr := fs.String("metrics", "", "also serve the Provider's counters in the Prometheus text format at http://ADDR/metrics (host:port)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	preset, err := compress.ParsePreset(*comp)
	if err != nil {
		return fmt.Errorf("%w: --compressor: %v", ErrUsage, err)
	}
	if (*cert == "") != (*keyFile == "") {
		return fmt.Errorf("%w: --tls-cert and --tls-key go together", ErrUsage)
	}
	if _, _, err := raiseNoFile(); err != nil {
		fmt.Fprintln(stderr, "serve: warning:", err)
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *memProfile != "" {
		defer func() {
			if f, err := os.Create(*memProfile); err == nil {
				_ = pprof.WriteHeapProfile(f)
				f.Close()
			}
		}()
	}

	var cnt serveCounters
	var p *provider.Provider
	o := provider.Options{
		Addr:             *addr,
		Path:             *path,
		Compressor:       preset,
		MaxPayloadLength: *maxPayload,
		MaxBackpressure:  *maxBP,
		Heartbeat:        provider.Heartbeat{Interval: *hbInterval},
		PollLoops:        *loops,
		OnMessage: func(c *provider.Connection, m provider.Message) {
			handleServeMessage(p, &cnt, c, m, *maxBP, preset)
		},
		// Requests are answered with their payload.
		OnRequest: func(c *provider.Connection, r *provider.Request) {
			m := r.Message()
			if r.Reply(m.Binary, m.Data) != nil {
				cnt.sendErrors.Add(1)
			}
		},
	}
	if *refuse {
		o.Backpressure = provider.RefuseOnBackpressure
	}
	if *textHB {
		o.Heartbeat.Mode = provider.HeartbeatText
	}
	if *key != "" {
		o.Auth.Parameters = map[string]string{"key": *key}
	}
	if *cert != "" {
		o.TLS = &provider.TLS{CertFile: *cert, KeyFile: *keyFile, GoroutinePerConn: *tlsGoroutines}
	}
	p, err = provider.New(o)
	if err != nil {
		return err
	}
	if err := p.Start(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "PEER networkcluster pid=%d addr=%s\n", os.Getpid(), p.Addr())
	fmt.Fprintf(stdout, "target for run: loadtest run --target '%s'\n", serveURL(p, *cert != "", *key))
	if *metricsAddr != "" {
		stopMetrics, maddr, err := serveMetrics(*metricsAddr, p)
		if err != nil {
			p.Close()
			return fmt.Errorf("serve: --metrics: %w", err)
		}
		defer stopMetrics()
		fmt.Fprintf(stdout, "metrics: http://%s/metrics\n", maddr)
	}

	sctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-sctx.Done()
	dctx, cancel := context.WithTimeout(context.Background(), serveShutdownTimeout)
	defer cancel()
	if err := p.Shutdown(dctx); err != nil {
		p.Close()
		return fmt.Errorf("serve: shutdown: %w", err)
	}
	return nil
}

// handleServeMessage is serve's OnMessage: the harness protocol.
func handleServeMessage(p *provider.Provider, cnt *serveCounters, c *provider.Connection, m provider.Message, maxBP int, preset compress.Preset) {
	if m.Binary {
		switch {
		case c.SupportsRequests() && len(m.Data) >= len(reqTrigger) && string(m.Data[:len(reqTrigger)]) == reqTrigger:
			go requestLoop(c, cnt, bytes.Clone(m.Data))
			return
		case len(m.Data) >= jobsHeader && string(m.Data[:len(jobsTrigger)]) == jobsTrigger:
			go cnt.jobs.start(p, bytes.Clone(m.Data))
			return
		case len(m.Data) >= len(bcastPrefix) && string(m.Data[:len(bcastPrefix)]) == bcastPrefix:
			r, err := p.Broadcast(true, m.Data)
			cnt.broadcasts.Add(1)
			if err != nil {
				cnt.sendErrors.Add(1)
				return
			}
			cnt.delivered.Add(uint64(r.Sent))
			cnt.refused.Add(uint64(r.Refused))
			cnt.closed.Add(uint64(r.Closed))
			return
		case string(m.Data) == statsQuery || string(m.Data) == statsSettledQuery:
			if string(m.Data) == statsSettledQuery {
				runtime.GC()
				debug.FreeOSMemory()
			}
			st := serveStats{statsFields: statsFields{
				Goroutines:      runtime.NumGoroutine(),
				Conns:           p.Len(),
				PID:             os.Getpid(),
				MaxBackpressure: maxBP,
				Compressor:      preset.String(),
				Broadcasts:      cnt.broadcasts.Load(),
				Delivered:       cnt.delivered.Load(),
				Refused:         cnt.refused.Load(),
				Closed:          cnt.closed.Load(),
				SendErrors:      cnt.sendErrors.Load(),
			}, Provider: p.Stats(), Jobs: cnt.jobs.stats()}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			st.HeapInuse = ms.HeapInuse
			if b, err := os.ReadFile("/proc/self/status"); err == nil {
				if rss, err := parseStatusKB(b, "VmRSS:"); err == nil {
					st.RSS = uint64(rss)
				}
			}
			js, err := json.Marshal(st)
			if err != nil { // cannot happen for this struct
				js = []byte("{}")
			}
			if c.SendBinary(append([]byte(statsQuery), js...)) != nil {
				cnt.sendErrors.Add(1)
			}
			return
		}
		if c.SendBinary(m.Data) != nil {
			cnt.sendErrors.Add(1)
		}
		return
	}
	if c.SendText(m.Data) != nil {
		cnt.sendErrors.Add(1)
	}
}

// requestLoop sends the client request after request, each with the
// payload of the previous reply, until a request fails (the client answers
// with an error to stop, or the connection ends).
func requestLoop(c *provider.Connection, cnt *serveCounters, payload []byte) {
	for {
		m, err := c.Request(context.Background(), true, payload)
		if err != nil {
			return
		}
		payload = m.Data
	}
}
