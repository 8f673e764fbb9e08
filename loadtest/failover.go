package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/networkcluster/networkcluster/consumer"
)

// failoverConfig is the request scenario's --kill-after mode.
type failoverConfig struct {
	Conns     int           // Consumers, each with Addrs = both Providers and Resend on
	Inflight  int           // requests in flight per Consumer
	Size      int           // payload bytes
	KillAfter time.Duration // SIGKILL the Provider holding most Consumers after this
	After     time.Duration // keep requesting this long after the kill
	Timeout   time.Duration // each request's ctx
	Interval  time.Duration // the Consumers' Reconnect.Interval
}

// failoverReport is what the kill test counts.
type failoverReport struct {
	Requests   uint64 // Request calls made
	Replies    uint64 // ended in the right reply
	CtxErrors  uint64 // ended in their ctx's error (allowed: not lost)
	Lost       uint64 // ended in any other error (must be 0)
	Wrong      uint64 // a reply that did not carry the request's payload
	OnKilled   int    // Consumers on the killed Provider
	Resent     uint64 // requests the Consumers sent again after the kill
	Duplicates uint64 // redelivered requests the survivor received
	Moved      int    // Consumers on the survivor at the end
	Reconnect  *histogram
	LostErrors []string // up to 5 examples
}

// runFailover starts two `loadtest serve` processes, connects cfg.Conns
// real Consumers (Addrs = both, Resend on) that keep requests in flight,
// SIGKILLs the Provider that holds the most of them after cfg.KillAfter, and
// counts the outcome of every request: none may be lost (each ends in its
// reply or its ctx error); duplicates are at most what was in flight on the
// killed Provider.
func runFailover(ctx context.Context, prog *progress, cfg failoverConfig) (*failoverReport, error) {
	var procs [2]*serverProc
	var addrs [2]string
	for i := range procs {
		spec, err := selfServe()
		if err != nil {
			return nil, err
		}
		p, err := startServer(ctx, spec)
		if err != nil {
			return nil, err
		}
		defer p.kill()
		procs[i], addrs[i] = p, p.Addr
	}
	rep := &failoverReport{Reconnect: &histogram{}}
	var (
		requests, replies, ctxErrs, lost, wrong atomic.Uint64
		errMu                                   sync.Mutex
		stop                                    atomic.Bool
		wg                                      sync.WaitGroup
		killedAt                                atomic.Int64
	)
	consumers := make([]*consumer.Consumer, cfg.Conns)
	payload := make([]byte, cfg.Size)
	for i := range consumers {
		var c *consumer.Consumer
		c, err := consumer.New(consumer.Options{
			Addrs:     addrs[:],
			Resend:    true,
			Reconnect: consumer.Reconnect{Interval: cfg.Interval, MaxAttempts: -1},
			OnOpen: func() {
				if t := killedAt.Load(); t != 0 {
					rep.Reconnect.Record(time.Duration(time.Now().UnixNano() - t))
				}
			},
		})
		if err != nil {
			return nil, err
		}
		consumers[i] = c
		defer c.Destroy()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = c.Connect(cctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("%w: consumer %d: %v", ErrScenario, i, err)
		}
	}
	prog.Printf("failover: %d consumers on %s and %s, %d requests in flight each", cfg.Conns, addrs[0], addrs[1], cfg.Inflight)
	for i, c := range consumers {
		for k := 0; k < cfg.Inflight; k++ {
			wg.Add(1)
			go func(tag byte) {
				defer wg.Done()
				data := append([]byte(nil), payload...)
				var seq uint32
				for !stop.Load() {
					seq++
					data[0], data[1], data[2], data[3] = tag, byte(seq>>16), byte(seq>>8), byte(seq)
					rctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
					requests.Add(1)
					m, err := c.Request(rctx, true, data)
					cancel()
					switch {
					case err == nil && string(m.Data) == string(data):
						replies.Add(1)
					case err == nil:
						wrong.Add(1)
					case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
						ctxErrs.Add(1)
					default:
						lost.Add(1)
						errMu.Lock()
						if len(rep.LostErrors) < 5 {
							rep.LostErrors = append(rep.LostErrors, err.Error())
						}
						errMu.Unlock()
					}
				}
			}(byte(i + k))
		}
	}
	sleep(ctx, cfg.KillAfter)
	// Kill the Provider that holds the most Consumers.
	var on [2]int
	for _, c := range consumers {
		for j, a := range addrs {
			if c.Connected() && c.RemoteAddr() == a {
				on[j]++
			}
		}
	}
	victim := 0
	if on[1] > on[0] {
		victim = 1
	}
	rep.OnKilled = on[victim]
	var resent0 uint64
	for _, c := range consumers {
		resent0 += c.Stats().Resent
	}
	st0, _ := serverStats(ctx, addrs[1-victim])
	killedAt.Store(time.Now().UnixNano())
	_ = syscall.Kill(procs[victim].PID, syscall.SIGKILL)
	prog.Printf("failover: SIGKILL %s (pid %d), which held %d consumers", addrs[victim], procs[victim].PID, on[victim])
	sleep(ctx, cfg.After)
	stop.Store(true)
	wg.Wait()
	for _, c := range consumers {
		rep.Resent += c.Stats().Resent
		if c.Connected() && c.RemoteAddr() == addrs[1-victim] {
			rep.Moved++
		}
	}
	rep.Resent -= resent0
	st1, err := serverStats(ctx, addrs[1-victim])
	if err != nil {
		return nil, err
	}
	rep.Duplicates = st1.Provider.RequestsRedelivered - st0.Provider.RequestsRedelivered
	rep.Requests, rep.Replies, rep.CtxErrors = requests.Load(), replies.Load(), ctxErrs.Load()
	rep.Lost, rep.Wrong = lost.Load(), wrong.Load()
	return rep, ctx.Err()
}

// serverStats asks a `loadtest serve` for its stats over a connection of
// its own.
func serverStats(ctx context.Context, addr string) (serveStats, error) {
	var st serveStats
	o := &clientOptions{Addr: addr, Host: addr, RequestURI: "/connect", DialTimeout: 5 * time.Second,
		MaxPayload: 1 << 20, ReadBuffer: 4096}
	ctl, err := openCtl(ctx, o, nil)
	if err != nil {
		return st, err
	}
	defer ctl.close()
	ps, err := ctl.stats(ctx)
	if err != nil {
		return st, err
	}
	st.statsFields = ps.statsFields
	if err := json.Unmarshal(ps.Provider, &st.Provider); err != nil {
		return st, fmt.Errorf("%w: provider stats: %v", ErrNoStats, err)
	}
	return st, nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// addFailover turns the report into the result's figures.
func (r *result) addFailover(rep *failoverReport) {
	r.add("requests", "requests made", "", float64(rep.Requests), "")
	r.add("replies", "answered", "", float64(rep.Replies), "")
	r.add("ctx_errors", "ended at their ctx deadline", "", float64(rep.CtxErrors), lower)
	r.add("lost", "lost (other errors)", "", float64(rep.Lost+rep.Wrong), lower)
	r.add("on_killed", "consumers on the killed provider", "", float64(rep.OnKilled), "")
	r.add("moved", "consumers on the survivor at the end", "", float64(rep.Moved), "")
	r.add("resent", "requests resent after the kill", "", float64(rep.Resent), "")
	r.add("duplicates", "redelivered requests at the survivor", "", float64(rep.Duplicates), lower)
	if rep.Reconnect.Count() > 0 {
		s := rep.Reconnect.Summary()
		r.add("reconnect_p50_ms", "reconnect after the kill p50", "ms", s.P50US/1000, lower)
		r.add("reconnect_p99_ms", "reconnect after the kill p99", "ms", s.P99US/1000, lower)
	}
	for _, e := range rep.LostErrors {
		r.note("lost: %s", e)
	}
}

// cmdFailover runs the kill test and prints its figures; it fails when a
// request was lost.
func cmdFailover(ctx context.Context, stdout io.Writer, prog *progress, cfg failoverConfig) error {
	if err := checkLimits(2*cfg.Conns+2, 1); err != nil {
		return err
	}
	rep, err := runFailover(ctx, prog, cfg)
	if err != nil {
		return err
	}
	r := &result{Scenario: scRequest, Server: ours, Run: 1, Conns: cfg.Conns, Inflight: cfg.Inflight, Size: cfg.Size,
		Label: fmt.Sprintf("request failover n=%d k=%d, SIGKILL after %v", cfg.Conns, cfg.Inflight, cfg.KillAfter)}
	r.addFailover(rep)
	servers := []string{ours}
	fmt.Fprintf(stdout, "network-cluster load test: failover, %s\n", currentEnv())
	writeTable(stdout, summarize([]*result{r}, servers), servers)
	if rep.Lost+rep.Wrong > 0 {
		return fmt.Errorf("%w: %d requests lost, %d wrong replies", ErrScenario, rep.Lost, rep.Wrong)
	}
	return nil
}
