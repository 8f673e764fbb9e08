package main

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/networkcluster/networkcluster/provider"
)

// jobsTrigger starts, in `loadtest serve`, the jobs of the jobs scenario:
// a provider.Queue over every connection that speaks requests, and loops
// that each submit a job, then the job's result as the next job, until a
// worker fails one (the client's way to stop them). The trigger is a plain
// binary message: jobsTrigger, 8 bytes the client uses (a time stamp), the
// number of loops and the queue's MaxInFlight (uint32 big-endian each),
// then padding; the whole message is the first job of every loop.
const jobsTrigger = "NCJOBS:"

// jobsHeader is the length of the trigger's fixed part.
const jobsHeader = len(jobsTrigger) + 8 + 4 + 4

// jobsStopCode is the error code the client fails jobs with to stop the
// loops: not retryable, so the job ends at once.
const jobsStopCode = 4000

// jobsStats is the jobs part of serve's stats answer.
type jobsStats struct {
	// Loops were started; each ended Stopped (by the client) or Lost
	// (any other failure: a job the queue could not complete).
	Loops, Stopped, Lost uint64
	// Queue counters (provider.QueueStats).
	Submitted, Done, Failed, Redelivered, Attempts uint64
	// Server-side job latency, Submit to result, µs.
	P50US, P99US float64
}

// jobsServer is serve's queue and loops.
type jobsServer struct {
	mu                   sync.Mutex
	q                    *provider.Queue
	loops, stopped, lost atomic.Uint64
}

// start replaces the queue and starts the loops of a trigger.
func (j *jobsServer) start(p *provider.Provider, trigger []byte) {
	if len(trigger) < jobsHeader {
		return
	}
	b := trigger[len(jobsTrigger)+8:]
	loops, inFlight := int(binary.BigEndian.Uint32(b)), int(binary.BigEndian.Uint32(b[4:]))
	if loops < 1 || loops > 1<<20 || inFlight < 1 || inFlight > 1<<16 {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.q != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = j.q.Close(ctx)
		cancel()
	}
	q, err := p.NewQueue(provider.QueueOptions{MaxInFlight: inFlight, MaxQueued: loops, AttemptTimeout: 10 * time.Second})
	if err != nil {
		return
	}
	j.q = q
	j.loops.Store(uint64(loops))
	j.stopped.Store(0)
	j.lost.Store(0)
	for range loops {
		go j.loop(q, trigger)
	}
}

func (j *jobsServer) loop(q *provider.Queue, job []byte) {
	for {
		m, err := q.Submit(context.Background(), true, job)
		if err != nil {
			var re *provider.RemoteError
			if errors.As(err, &re) && re.Code == jobsStopCode {
				j.stopped.Add(1)
			} else {
				j.lost.Add(1)
			}
			return
		}
		job = m.Data
	}
}

// stats returns the jobs part of the stats, nil before the first trigger.
func (j *jobsServer) stats() *jobsStats {
	j.mu.Lock()
	q := j.q
	j.mu.Unlock()
	if q == nil {
		return nil
	}
	s := q.Stats()
	return &jobsStats{
		Loops: j.loops.Load(), Stopped: j.stopped.Load(), Lost: j.lost.Load(),
		Submitted: s.Submitted, Done: s.Done, Failed: s.Failed, Redelivered: s.Redelivered, Attempts: s.Attempts,
		P50US: float64(s.JobLatency.P50) / float64(time.Microsecond),
		P99US: float64(s.JobLatency.P99) / float64(time.Microsecond),
	}
}
