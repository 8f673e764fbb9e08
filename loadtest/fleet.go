package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/networkcluster/networkcluster/frame"
)

// progress prints timestamped progress lines (on stderr). Safe for
// concurrent use; a nil *progress prints nothing.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
}

func newProgress(w io.Writer) *progress { return &progress{w: w, start: time.Now()} }

func (p *progress) Printf(format string, args ...any) {
	if p == nil || p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "[%6.1fs] %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, args...))
}

// fleet is the set of connections of one scenario: it dials them in
// parallel, runs one goroutine per connection, and tears them all down.
type fleet struct {
	opts    *clientOptions
	sources []net.IP
	prog    *progress
	label   string

	mu    sync.Mutex
	conns []*wsConn
	wg    sync.WaitGroup
}

// dialPlan says how one connection is dialed.
type dialPlan struct {
	// rcvbuf, when > 0, sets SO_RCVBUF before connect (a small receive
	// window for a consumer that will stop reading).
	rcvbuf int
}

// openResult is the outcome of fleet.open.
type openResult struct {
	OK, Failed int
	FirstErr   error
	Elapsed    time.Duration
}

// open dials n connections, par at a time, numbering them from base, and
// runs serve(i, c) on a goroutine of its own for each as soon as it is
// open. With strict, the first failure stops the dialing. hs, if not nil,
// records each successful connect+upgrade time. plan may be nil.
func (f *fleet) open(ctx context.Context, base, n, par int, strict bool, hs *histogram,
	plan func(i int) dialPlan, serve func(i int, c *wsConn)) openResult {
	if par < 1 {
		par = 1
	}
	par = min(par, n)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next, ok, failed atomic.Int64
		errMu            sync.Mutex
		firstErr         error
		workers          sync.WaitGroup
	)
	f.mu.Lock()
	if need := base + n; len(f.conns) < need {
		f.conns = append(f.conns, make([]*wsConn, need-len(f.conns))...)
	}
	f.mu.Unlock()
	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				f.prog.Printf("%s: connecting %d/%d (%d failed)", f.label, ok.Load(), n, failed.Load())
			}
		}
	}()
	for range par {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)-1) + base
				if i >= base+n {
					return
				}
				var p dialPlan
				if plan != nil {
					p = plan(i)
				}
				var src net.IP
				if len(f.sources) > 0 {
					src = f.sources[i%len(f.sources)]
				}
				t0 := time.Now()
				c, err := dialConn(ctx, f.opts, src, p.rcvbuf)
				if err != nil {
					failed.Add(1)
					errMu.Lock()
					if firstErr == nil && ctx.Err() == nil {
						firstErr = fmt.Errorf("connection %d: %w", i, err)
					}
					errMu.Unlock()
					if strict {
						cancel()
					}
					continue
				}
				if hs != nil {
					hs.Record(time.Since(t0))
				}
				ok.Add(1)
				f.mu.Lock()
				f.conns[i] = c
				f.wg.Add(1)
				f.mu.Unlock()
				go func() {
					defer f.wg.Done()
					defer c.releaseRead()
					serve(i, c)
				}()
			}
		}()
	}
	workers.Wait()
	close(done)
	r := openResult{OK: int(ok.Load()), Failed: int(failed.Load()), FirstErr: firstErr, Elapsed: time.Since(start)}
	if r.FirstErr == nil && ctx.Err() != nil && r.OK < n {
		r.FirstErr = ctx.Err()
	}
	return r
}

// each calls fn for every open connection.
func (f *fleet) each(fn func(i int, c *wsConn)) {
	f.mu.Lock()
	conns := f.conns
	f.mu.Unlock()
	for i, c := range conns {
		if c != nil {
			fn(i, c)
		}
	}
}

// wire returns the bytes read and written by every connection so far.
func (f *fleet) wire() (in, out int64) {
	f.each(func(_ int, c *wsConn) {
		in += c.bytesIn.Load()
		out += c.bytesOut.Load()
	})
	return in, out
}

// closeAll closes every connection (close frame 1000, then TCP) and waits,
// at most wait, for their goroutines.
func (f *fleet) closeAll(wait time.Duration) error {
	f.each(func(_ int, c *wsConn) { c.CloseNormal() })
	done := make(chan struct{})
	go func() {
		f.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-time.After(wait):
		return fmt.Errorf("%w: connection goroutines still running %v after close", ErrScenario, wait)
	}
}

// peerStats is the answer to statsQuery as the harness reads it: the
// fields every peer sends, plus those of `loadtest serve` (zero for the
// peers), whose Provider stats are kept undecoded.
type peerStats struct {
	statsFields
	Provider json.RawMessage `json:"provider,omitempty"`
	Jobs     *jobsStats      `json:"jobs,omitempty"` // loadtest serve, jobs scenario
}

// statsFields are the fields of a stats answer shared by the peers (the
// first four) and `loadtest serve` (all).
type statsFields struct {
	Goroutines int    `json:"goroutines"`
	HeapInuse  uint64 `json:"heap_inuse"`
	RSS        uint64 `json:"rss"`
	Conns      int    `json:"conns"`

	PID             int    `json:"pid"`
	MaxBackpressure int    `json:"max_backpressure"`
	Compressor      string `json:"compressor"`
	// Broadcasts counts NCBCAST: messages; Delivered, Refused and Closed
	// add up their BroadcastResults. SendErrors counts echoes that failed.
	Broadcasts uint64 `json:"broadcasts"`
	Delivered  uint64 `json:"delivered"`
	Refused    uint64 `json:"refused"`
	Closed     uint64 `json:"closed"`
	SendErrors uint64 `json:"send_errors"`
}

// parseStats decodes a stats answer (statsQuery followed by JSON). p is
// not retained.
func parseStats(p []byte) (peerStats, error) {
	var st peerStats
	rest, ok := bytes.CutPrefix(p, []byte(statsQuery))
	if !ok {
		return st, fmt.Errorf("%w: answer without the %s prefix", ErrNoStats, statsQuery)
	}
	if len(rest) == 0 {
		return st, fmt.Errorf("%w: the server echoed the query (it does not speak the harness protocol)", ErrNoStats)
	}
	if err := json.Unmarshal(rest, &st); err != nil {
		return peerStats{}, fmt.Errorf("%w: %v", ErrNoStats, err)
	}
	if st.Goroutines < 0 || st.Conns < 0 {
		return peerStats{}, fmt.Errorf("%w: negative counts", ErrNoStats)
	}
	return st, nil
}

// ctlConn is the harness's control connection to a server: it asks for
// stats and sends the broadcasts. It reads (and drops) every other
// message, so it never holds up a broadcast.
type ctlConn struct {
	c       *wsConn
	answers chan []byte
	done    chan struct{}
	qmu     sync.Mutex // one stats query at a time
}

// statsTimeout bounds the wait for a stats answer.
const statsTimeout = 5 * time.Second

func openCtl(ctx context.Context, o *clientOptions, src net.IP) (*ctlConn, error) {
	c, err := dialConn(ctx, o, src, 0)
	if err != nil {
		return nil, err
	}
	k := &ctlConn{c: c, answers: make(chan []byte, 1), done: make(chan struct{})}
	go k.read()
	return k, nil
}

func (k *ctlConn) read() {
	defer close(k.done)
	defer k.c.releaseRead()
	for {
		op, p, err := k.c.next()
		if err != nil {
			return
		}
		// An exact echo of the query (any echo server) is an answer too:
		// parseStats says the server has no stats, without waiting.
		if op == frame.OpBinary && len(p) >= len(statsQuery) && string(p[:len(statsQuery)]) == statsQuery {
			select {
			case k.answers <- bytes.Clone(p):
			default:
			}
		}
	}
}

// stats queries the server's stats.
func (k *ctlConn) stats(ctx context.Context) (peerStats, error) {
	return k.query(ctx, statsQuery)
}

// settledStats queries the server's stats after a garbage collection.
func (k *ctlConn) settledStats(ctx context.Context) (peerStats, error) {
	return k.query(ctx, statsSettledQuery)
}

func (k *ctlConn) query(ctx context.Context, q string) (peerStats, error) {
	k.qmu.Lock()
	defer k.qmu.Unlock()
	select { // a late answer to an earlier query
	case <-k.answers:
	default:
	}
	if err := k.c.write(frame.OpBinary, []byte(q)); err != nil {
		return peerStats{}, fmt.Errorf("%w: %v", ErrNoStats, err)
	}
	t := time.NewTimer(statsTimeout)
	defer t.Stop()
	select {
	case p := <-k.answers:
		return parseStats(p)
	case <-k.done:
		return peerStats{}, fmt.Errorf("%w: control connection closed", ErrNoStats)
	case <-t.C:
		return peerStats{}, fmt.Errorf("%w: no answer in %v", ErrNoStats, statsTimeout)
	case <-ctx.Done():
		return peerStats{}, ctx.Err()
	}
}

func (k *ctlConn) close() {
	k.c.CloseNormal()
	<-k.done
}
