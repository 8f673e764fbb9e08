package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/networkcluster/networkcluster/frame"
)

const scJobs = "jobs"

// jobs: N worker connections negotiate the request protocol; `loadtest
// serve` runs a provider.Queue over them (MaxInFlight K) and N×K loops,
// each submitting a job and then the job's result as the next job. A
// worker answers each job it gets with the payload stamped anew, so the
// harness measures, per job received, one full trip through the queue
// from the worker that answered the previous job: the same measure as
// request p2c with the same N and K, which hands each loop's requests to
// one fixed connection instead. With KillShare, that share of the workers
// drops its TCP connection (no close handshake) halfway through the
// measured window; their jobs go to the others, flagged redelivered, and no
// job may be lost.
func (e *env) jobs(ctx context.Context, sc scenarioConfig) (r *result, err error) {
	r = e.newResult(sc, sc.label())
	if sc.Size < jobsHeader {
		return r, fmt.Errorf("%w: jobs needs --size of at least %d", ErrUsage, jobsHeader)
	}
	o := *e.Opts
	o.Protocols = []string{protoV1, protoV2}
	je := *e
	je.Opts = &o
	loops := sc.Conns * sc.Inflight
	killed := int(math.Round(sc.KillShare * float64(sc.Conns)))
	if killed >= sc.Conns {
		killed = sc.Conns - 1
	}

	var (
		recv, bad, redelivered atomic.Uint64
		notV2                  atomic.Int64
		recording, stop        atomic.Bool
		h                      = &histogram{}
		start, quit            = make(chan struct{}), make(chan struct{})
	)
	serve := func(i int, c *wsConn) {
		if c.Protocol != protoV2 {
			notV2.Add(1)
			return
		}
		out := make([]byte, 0, 1+binary.MaxVarintLen64+sc.Size)
		select {
		case <-start:
		case <-quit:
			return
		}
		if i == 0 {
			trigger := make([]byte, sc.Size)
			copy(trigger, jobsTrigger)
			stampBinary(trigger[len(jobsTrigger):], e.now())
			binary.BigEndian.PutUint32(trigger[len(jobsTrigger)+8:], uint32(loops))
			binary.BigEndian.PutUint32(trigger[len(jobsTrigger)+12:], uint32(sc.Inflight))
			if c.queue(frame.OpBinary, append(append(out[:0], kindMessage), trigger...)) != nil {
				return
			}
		}
		for {
			op, p, err := c.next()
			if err != nil {
				return
			}
			if op != frame.OpBinary || len(p) == 0 {
				continue
			}
			kind := p[0] & 0x0f
			rid, n := binary.Uvarint(p[1:])
			if kind != kindRequest || n <= 0 {
				if kind != kindMessage {
					bad.Add(1)
				}
				continue
			}
			if p[0]&0x20 != 0 {
				redelivered.Add(1)
			}
			body := p[1+n:]
			ts, ok := unstampBinary(body[min(len(body), len(jobsTrigger)):])
			if len(body) != sc.Size || !ok {
				bad.Add(1)
				continue
			}
			if recording.Load() {
				h.Record(time.Duration(e.now() - ts))
			}
			recv.Add(1)
			if stop.Load() {
				// A final error ends the job and its loop.
				out = binary.AppendUvarint(append(out[:0], kindError), rid)
				out = append(binary.AppendUvarint(out, jobsStopCode), "stop"...)
				_ = c.queue(frame.OpBinary, out)
				continue
			}
			out = binary.AppendUvarint(append(out[:0], kindReply), rid)
			stampBinary(body[len(jobsTrigger):], e.now())
			out = append(out, body...)
			if c.queue(frame.OpBinary, out) != nil {
				return
			}
		}
	}
	ctl, err := openCtl(ctx, e.Opts, e.src(0))
	if err != nil {
		return r, err
	}
	defer ctl.close()
	f := je.newFleet(sc.Scenario)
	defer closeFleet(f, &err)
	defer func() {
		stop.Store(true)
		select {
		case <-quit:
		default:
			close(quit)
		}
	}()
	if err := je.openStrict(ctx, f, sc, nil, serve); err != nil {
		return r, err
	}
	if n := notV2.Load(); n > 0 {
		return r, fmt.Errorf("%w: %d connections did not negotiate %s (the server does not speak requests)", ErrScenario, n, protoV2)
	}
	close(start)
	what := fmt.Sprintf("jobs k=%d", sc.Inflight)
	e.watch(ctx, sc.Warmup, what+" (warm-up)", "jobs/s", recv.Load)

	p1, ok1 := e.sample()
	n1, t1 := recv.Load(), time.Now()
	recording.Store(true)
	if killed > 0 {
		e.watch(ctx, sc.Duration/2, what, "jobs/s", recv.Load)
		// Drop the TCP connections of the last `killed` workers.
		f.each(func(i int, c *wsConn) {
			if i >= sc.Conns-killed {
				c.Close()
			}
		})
		e.Prog.Printf("%s: dropped %d of %d workers", e.Name, killed, sc.Conns)
		e.watch(ctx, sc.Duration-sc.Duration/2, what, "jobs/s", recv.Load)
	} else {
		e.watch(ctx, sc.Duration, what, "jobs/s", recv.Load)
	}
	recording.Store(false)
	n2, t2 := recv.Load(), time.Now()
	p2, ok2 := e.sample()
	if err := ctx.Err(); err != nil {
		return r, err
	}
	stop.Store(true)
	// Every loop ends: stopped by a worker, or lost.
	var js *jobsStats
	for end := time.Now().Add(10 * time.Second); ; {
		st, err := ctl.stats(ctx)
		if err != nil {
			return r, err
		}
		js = st.Jobs
		if js == nil {
			return r, fmt.Errorf("%w: the server reports no jobs (not loadtest serve?)", ErrScenario)
		}
		if js.Stopped+js.Lost >= uint64(loops) || time.Now().After(end) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	msgs := n2 - n1
	if msgs == 0 {
		return r, fmt.Errorf("%w: no job received in %v", ErrScenario, sc.Duration)
	}
	r.addRate("jobs/s", "server CPU/job", msgs, t2.Sub(t1), p1, p2, ok1 && ok2)
	r.setLatency(h, "job trip")
	r.add("job_p50_us", "job latency p50 (Submit to result, server)", "µs", js.P50US, lower)
	r.add("job_p99_us", "job latency p99 (Submit to result, server)", "µs", js.P99US, lower)
	r.add("redelivered", "jobs redelivered", "", float64(js.Redelivered), "")
	r.add("lost_jobs", "jobs lost", "", float64(js.Lost+uint64(loops)-min(uint64(loops), js.Stopped+js.Lost)), lower)
	if killed > 0 {
		r.note("%d of %d workers dropped their TCP connection halfway; %d jobs redelivered (workers saw %d flagged)", killed, sc.Conns, js.Redelivered, redelivered.Load())
	}
	if lost := js.Lost; lost > 0 {
		r.note("%d jobs lost: their loops ended with an error other than the harness's stop", lost)
	}
	if b := bad.Load(); b > 0 {
		r.add("bad_jobs", "malformed jobs", "", float64(b), lower)
	}
	return r, nil
}
