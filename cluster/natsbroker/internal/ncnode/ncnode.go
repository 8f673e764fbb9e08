// Package ncnode is the ncnode command: `loadtest serve` (the harness
// protocol of loadtest/peers/PROTOCOL.md) joined to a cluster over NATS.
// It is a package so that the tests can run it in child processes.
package ncnode

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/networkcluster/networkcluster/cluster"
	"github.com/networkcluster/networkcluster/cluster/natsbroker"
	"github.com/networkcluster/networkcluster/compress"
	"github.com/networkcluster/networkcluster/provider"
)

// The harness protocol, as `loadtest serve` speaks it: every data message
// is echoed to its sender, except these binary control messages.
const (
	// BcastPrefix: the whole message is broadcast to every connection of
	// the cluster (the sender included), through the Node.
	BcastPrefix = "NCBCAST:"
	// StatsQuery is answered with itself followed by the JSON of Stats.
	StatsQuery = "NCSTATS:"
	// PubPrefix: "NCPUB:<topic>:<data>" publishes the whole message to
	// topic cluster-wide.
	PubPrefix = "NCPUB:"
	// SubPrefix: "NCSUB:<topic>" subscribes the sender; answered "NCSUB:ok".
	SubPrefix = "NCSUB:"
	// IDQuery is answered "NCID:<connection id>".
	IDQuery = "NCID:"
	// SendPrefix: "NCSEND:<id>:<data>" sends the whole message to
	// connection id (on any node) with Node.Send; answered
	// "NCSENT:<id>:ok" or "NCSENT:<id>:<error>".
	SendPrefix = "NCSEND:"
	// SentPrefix starts the answer to SendPrefix.
	SentPrefix = "NCSENT:"
	// ReqPrefix: "NCREQ:<id>:<data>" sends the whole message as a request
	// to connection id (on any node) with Node.Request; answered
	// "NCREPLY:<id>:ok" or "NCREPLY:<id>:<error>".
	ReqPrefix = "NCREQ:"
	// ReplyPrefix starts the answer to ReqPrefix.
	ReplyPrefix = "NCREPLY:"
)

// Stats is the JSON answer to StatsQuery: the fields of `loadtest serve`
// plus the cluster's.
type Stats struct {
	Goroutines      int    `json:"goroutines"`
	HeapInuse       uint64 `json:"heap_inuse"`
	RSS             uint64 `json:"rss"`
	Conns           int    `json:"conns"`
	PID             int    `json:"pid"`
	MaxBackpressure int    `json:"max_backpressure"`
	Compressor      string `json:"compressor"`
	Broadcasts      uint64 `json:"broadcasts"`
	Delivered       uint64 `json:"delivered"`
	Refused         uint64 `json:"refused"`
	Closed          uint64 `json:"closed"`
	SendErrors      uint64 `json:"send_errors"`

	Provider provider.Stats     `json:"provider"`
	Node     string             `json:"node"`
	Cluster  cluster.Stats      `json:"cluster"`
	Len      int                `json:"cluster_conns"`
	Nodes    []cluster.NodeInfo `json:"nodes"`
}

type counters struct {
	broadcasts, delivered, refused, closed, sendErrors atomic.Uint64
}

// ErrUsage marks a command-line error.
var ErrUsage = errors.New("usage")

// Main runs the command until SIGINT or SIGTERM (or ctx), then leaves the
// cluster gracefully.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ncnode", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "listen address host:port (port 0: any free port)")
	path := fs.String("path", provider.DefaultPath, "WebSocket path")
	key := fs.String("key", "", "require the URL parameter key=SECRET")
	comp := fs.String("compressor", "DISABLED", "permessage-deflate preset")
	hbInterval := fs.Duration("heartbeat-interval", provider.DefaultHeartbeatInterval, "WebSocket heartbeat interval")
	maxPayload := fs.Int("max-payload", 16<<20, "largest inbound message in bytes")
	maxBP := fs.Int("max-backpressure", provider.DefaultMaxBackpressure, "bytes queued per connection before the backpressure policy applies")
	refuse := fs.Bool("refuse-on-backpressure", false, "refuse messages over max backpressure instead of closing the connection")
	loops := fs.Int("poll-loops", 0, "netpoll event loops (0: netpoll's default)")
	natsURLs := fs.String("nats", "", "NATS server URLs, comma-separated (empty: no cluster, a plain Provider)")
	nodeID := fs.String("node-id", "", "this node's id in the cluster (default: random)")
	prefix := fs.String("prefix", natsbroker.DefaultPrefix, "NATS subject prefix of the cluster")
	nodeTimeout := fs.Duration("node-timeout", cluster.DefaultNodeTimeout, "a node silent this long is down")
	nodeHB := fs.Duration("node-heartbeat", cluster.DefaultHeartbeat, "cluster heartbeat interval")
	presence := fs.String("presence-params", "", "connection parameters replicated in presence, comma-separated")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: unexpected arguments %q", ErrUsage, fs.Args())
	}
	preset, err := compress.ParsePreset(*comp)
	if err != nil {
		return fmt.Errorf("%w: --compressor: %v", ErrUsage, err)
	}
	raiseNoFile()

	var cnt counters
	var p *provider.Provider
	var n *cluster.Node
	o := provider.Options{
		Addr:             *addr,
		Path:             *path,
		Compressor:       preset,
		MaxPayloadLength: *maxPayload,
		MaxBackpressure:  *maxBP,
		Heartbeat:        provider.Heartbeat{Interval: *hbInterval},
		PollLoops:        *loops,
		OnMessage: func(c *provider.Connection, m provider.Message) {
			handle(p, n, &cnt, c, m, *maxBP, preset)
		},
	}
	if *refuse {
		o.Backpressure = provider.RefuseOnBackpressure
	}
	if *key != "" {
		o.Auth.Parameters = map[string]string{"key": *key}
	}
	if p, err = provider.New(o); err != nil {
		return err
	}
	if *natsURLs != "" {
		b, err := natsbroker.New(natsbroker.Options{URLs: strings.Split(*natsURLs, ","), Prefix: *prefix})
		if err != nil {
			return err
		}
		var params []string
		if *presence != "" {
			params = strings.Split(*presence, ",")
		}
		n, err = cluster.New(p, cluster.Options{
			Broker: b, NodeID: *nodeID, NodeTimeout: *nodeTimeout, Heartbeat: *nodeHB,
			PresenceParams: params,
			OnNodeUp:       func(id string) { fmt.Fprintf(stderr, "ncnode: node %s up\n", id) },
			OnNodeDown:     func(id string) { fmt.Fprintf(stderr, "ncnode: node %s down\n", id) },
			OnError:        func(err error) { fmt.Fprintf(stderr, "ncnode: %v\n", err) },
		})
		if err != nil {
			return err
		}
	}
	if err := p.Start(); err != nil {
		return err
	}
	if n != nil {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := n.Start(sctx)
		cancel()
		if err != nil {
			p.Close()
			return err
		}
	}
	id := "-"
	if n != nil {
		id = n.ID()
	}
	// The PEER line of the harness protocol (4 fields), then the node id.
	fmt.Fprintf(stdout, "PEER networkcluster pid=%d addr=%s\n", os.Getpid(), p.Addr())
	fmt.Fprintf(stderr, "ncnode: node %s\n", id)

	sctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-sctx.Done()
	dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if n != nil {
		err = n.Shutdown(dctx)
	} else {
		err = p.Shutdown(dctx)
	}
	if err != nil {
		p.Close()
		return fmt.Errorf("ncnode: shutdown: %w", err)
	}
	return nil
}

func handle(p *provider.Provider, n *cluster.Node, cnt *counters, c *provider.Connection, m provider.Message, maxBP int, preset compress.Preset) {
	if !m.Binary {
		if c.SendText(m.Data) != nil {
			cnt.sendErrors.Add(1)
		}
		return
	}
	d := m.Data
	switch {
	case bytes.HasPrefix(d, []byte(BcastPrefix)):
		var r provider.BroadcastResult
		var err error
		if n != nil {
			r, err = n.Broadcast(true, d)
		} else {
			r, err = p.Broadcast(true, d)
		}
		cnt.broadcasts.Add(1)
		if err != nil {
			cnt.sendErrors.Add(1)
		}
		cnt.delivered.Add(uint64(r.Sent))
		cnt.refused.Add(uint64(r.Refused))
		cnt.closed.Add(uint64(r.Closed))
	case bytes.HasPrefix(d, []byte(PubPrefix)):
		topic, _, _ := strings.Cut(string(d[len(PubPrefix):]), ":")
		var err error
		if n != nil {
			_, err = n.Publish(topic, true, d)
		} else {
			_, err = p.Publish(topic, true, d)
		}
		if err != nil {
			cnt.sendErrors.Add(1)
		}
	case bytes.HasPrefix(d, []byte(SubPrefix)):
		if c.Subscribe(string(d[len(SubPrefix):])) != nil || c.SendBinary([]byte(SubPrefix+"ok")) != nil {
			cnt.sendErrors.Add(1)
		}
	case string(d) == IDQuery:
		if c.SendBinary([]byte(IDQuery+c.ID())) != nil {
			cnt.sendErrors.Add(1)
		}
	case bytes.HasPrefix(d, []byte(SendPrefix)):
		to, _, _ := strings.Cut(string(d[len(SendPrefix):]), ":")
		msg := append([]byte(nil), d...)
		go func() { // a remote Send waits for the owner: off the event loop
			var err error
			if n != nil {
				err = n.Send(context.Background(), to, true, msg)
			} else if t, ok := p.Connection(to); ok {
				err = t.SendBinary(msg)
			} else {
				err = cluster.ErrUnknownConnection
			}
			res := "ok"
			if err != nil {
				res = err.Error()
			}
			if c.SendBinary([]byte(SentPrefix+to+":"+res)) != nil {
				cnt.sendErrors.Add(1)
			}
		}()
	case bytes.HasPrefix(d, []byte(ReqPrefix)):
		to, _, _ := strings.Cut(string(d[len(ReqPrefix):]), ":")
		msg := append([]byte(nil), d...)
		go func() { // a request waits for the Consumer's answer: off the event loop
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var err error
			if n != nil {
				_, err = n.Request(ctx, to, true, msg)
			} else if t, ok := p.Connection(to); ok {
				_, err = t.Request(ctx, true, msg)
			} else {
				err = cluster.ErrUnknownConnection
			}
			res := "ok"
			if err != nil {
				res = err.Error()
			}
			if c.SendBinary([]byte(ReplyPrefix+to+":"+res)) != nil {
				cnt.sendErrors.Add(1)
			}
		}()
	case string(d) == StatsQuery:
		st := Stats{
			Goroutines: runtime.NumGoroutine(), Conns: p.Len(), PID: os.Getpid(),
			MaxBackpressure: maxBP, Compressor: preset.String(),
			Broadcasts: cnt.broadcasts.Load(), Delivered: cnt.delivered.Load(),
			Refused: cnt.refused.Load(), Closed: cnt.closed.Load(), SendErrors: cnt.sendErrors.Load(),
			Provider: p.Stats(),
		}
		if n != nil {
			st.Node, st.Cluster, st.Len, st.Nodes = n.ID(), n.Stats(), n.Len(), n.Nodes()
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		st.HeapInuse = ms.HeapInuse
		st.RSS = rss()
		js, err := json.Marshal(st)
		if err != nil {
			js = []byte("{}")
		}
		if c.SendBinary(append([]byte(StatsQuery), js...)) != nil {
			cnt.sendErrors.Add(1)
		}
	default:
		if c.SendBinary(d) != nil {
			cnt.sendErrors.Add(1)
		}
	}
}

// rss reads VmRSS from /proc (0 elsewhere), in kB.
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb uint64
			fmt.Sscan(rest, &kb)
			return kb
		}
	}
	return 0
}

func raiseNoFile() {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
}
