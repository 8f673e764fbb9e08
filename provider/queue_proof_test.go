package provider_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/consumer"
	"github.com/networkcluster/networkcluster/provider"
)

// proofWorker is one worker Consumer of the proof tests, with the counts
// taken on its side.
type proofWorker struct {
	name string
	c    *consumer.Consumer

	mu      sync.Mutex // orders frozen against starting a reply
	frozen  bool       // stop answering (the jobs it holds stay unanswered)
	replies sync.WaitGroup

	received, replied atomic.Int64
}

// jobRuns counts, per job, the handler runs (on any worker) and the runs
// flagged redelivered.
type jobRuns struct {
	runs        []atomic.Int32
	redelivered atomic.Int64
}

func jobID(data []byte) int {
	id, err := strconv.Atoi(strings.TrimPrefix(string(data), "job-"))
	if err != nil {
		panic(fmt.Sprintf("bad job %q", data))
	}
	return id
}

// handler answers after a short random delay, from another goroutine
// (the reply is counted only once it went out); a frozen worker answers
// nothing.
func (w *proofWorker) handler(runs *jobRuns) func(r *consumer.Request) {
	return func(r *consumer.Request) {
		runs.runs[jobID(r.Message().Data)].Add(1)
		if r.Redelivered() {
			runs.redelivered.Add(1)
		}
		w.received.Add(1)
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.frozen {
			return
		}
		reply := laterEcho(r)
		w.replies.Add(1)
		go func() {
			defer w.replies.Done()
			time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
			w.mu.Lock()
			frozen := w.frozen
			w.mu.Unlock()
			if !frozen && reply() == nil {
				w.replied.Add(1)
			}
		}()
	}
}

// inFlightOn returns the queue's jobs in flight on the worker named name.
func inFlightOn(q *provider.Queue, name string) int {
	for _, w := range q.Workers() {
		if w.Conn.Param("w") == name {
			return w.InFlight
		}
	}
	return -1
}

// The proof: 1 000 jobs over 50 workers with MaxInFlight 2; 10 % of the
// workers dropped mid-run (TCP closed without a close handshake), one
// worker whose handler runs past AttemptTimeout. Every job ends exactly
// once, with its result; no job ran more than MaxAttempts times; the
// redeliveries are exactly the jobs in flight on the lost workers plus the
// jobs that timed out; the wait stays bounded (ErrQueueFull); no goroutine
// is left.
func TestQueueProof(t *testing.T) {
	const (
		jobs        = 1000
		workers     = 50
		dropped     = workers / 10
		maxInFlight = 2
		maxAttempts = 5
		maxQueued   = 100
		timeout     = 3 * time.Second
	)
	before := runtime.NumGoroutine()
	p, err := provider.New(provider.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	runs := &jobRuns{runs: make([]atomic.Int32, jobs)}

	// The slow worker takes its jobs and answers each after
	// AttemptTimeout: too late.
	var hungJobs atomic.Int64
	var late sync.WaitGroup
	slow := func(r *consumer.Request) {
		runs.runs[jobID(r.Message().Data)].Add(1)
		if r.Redelivered() {
			runs.redelivered.Add(1)
		}
		hungJobs.Add(1)
		reply := laterEcho(r)
		late.Add(1)
		go func() {
			defer late.Done()
			time.Sleep(timeout + 100*time.Millisecond)
			reply()
		}()
	}
	var fleet []*proofWorker
	var consumers []*consumer.Consumer
	for i := range workers {
		w := &proofWorker{name: fmt.Sprint("w", i)}
		handle := w.handler(runs)
		if i == workers-1 {
			w.name, handle = "slow", slow
		}
		c, err := consumer.New(consumer.Options{Host: "127.0.0.1", Port: p.Port(), OnRequest: handle,
			Parameters: map[string]string{"w": w.name}})
		if err != nil {
			t.Fatal(err)
		}
		w.c = c
		consumers = append(consumers, c)
		if i < workers-1 {
			fleet = append(fleet, w)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, c := range consumers {
		if err := c.Connect(ctx); err != nil {
			t.Fatal(err)
		}
	}
	q, err := p.NewQueue(provider.QueueOptions{MaxInFlight: maxInFlight, MaxAttempts: maxAttempts,
		MaxQueued: maxQueued, AttemptTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "50 workers", func() bool { return q.Stats().Workers == workers })

	outcomes := make([]atomic.Int32, jobs)
	var finished atomic.Int64
	freed := make(chan struct{}, 1)
	var badMu sync.Mutex
	var bad []string
	var refused, peakQueued int
	submitted := make(chan struct{})
	go func() {
		defer close(submitted)
		for i := 0; i < jobs; {
			payload := []byte(fmt.Sprint("job-", i))
			err := q.SubmitAsync(ctx, i%2 == 1, payload, func(m provider.Message, err error) {
				id := jobID(payload)
				outcomes[id].Add(1)
				if err != nil || string(m.Data) != "done:job-"+strconv.Itoa(id) {
					badMu.Lock()
					bad = append(bad, fmt.Sprintf("job %d: %q %v", id, m.Data, err))
					badMu.Unlock()
				}
				finished.Add(1)
				select {
				case freed <- struct{}{}:
				default:
				}
			})
			if errors.Is(err, provider.ErrQueueFull) {
				refused++
				select {
				case <-freed:
				case <-time.After(10 * time.Millisecond):
				}
				continue
			}
			if err != nil {
				badMu.Lock()
				bad = append(bad, fmt.Sprintf("submit %d: %v", i, err))
				badMu.Unlock()
				return
			}
			if i%50 == 0 {
				peakQueued = max(peakQueued, q.Stats().Queued)
			}
			i++
		}
	}()

	// Mid-run, drop 10 % of the workers. Each is first frozen until the
	// queue has MaxInFlight jobs on it and it holds as many unanswered, so
	// that no answer is on the way: those are exactly the jobs it takes
	// down.
	waitFor(t, "300 jobs done", func() bool { return finished.Load() >= 300 })
	lost := 0
	for _, w := range fleet[:dropped] {
		w.mu.Lock()
		w.frozen = true
		w.mu.Unlock()
		w.replies.Wait()
		waitFor(t, "a frozen worker full", func() bool {
			ok := w.received.Load()-w.replied.Load() == maxInFlight && inFlightOn(q, w.name) == maxInFlight
			if !ok && testing.Verbose() {
				t.Logf("%s: received %d replied %d in flight %d; %+v", w.name, w.received.Load(), w.replied.Load(), inFlightOn(q, w.name), q.Stats())
			}
			return ok
		})
		lost += maxInFlight
		w.c.Destroy()
	}

	<-submitted
	waitFor(t, "every outcome", func() bool { return finished.Load() == jobs })
	closeCtx, closeCancel := context.WithTimeout(ctx, 10*time.Second)
	defer closeCancel()
	if err := q.Close(closeCtx); err != nil {
		t.Fatal(err)
	}
	late.Wait()
	for _, w := range fleet {
		w.replies.Wait()
	}
	// Every answer after AttemptTimeout is dropped and counted: the slow
	// worker's, and any normal worker's that a loaded machine delayed that
	// long (its job was redelivered too).
	waitFor(t, "the late answers", func() bool { return p.Stats().LateReplies >= uint64(hungJobs.Load()) })
	time.Sleep(20 * time.Millisecond)
	slowOthers := p.Stats().LateReplies - uint64(hungJobs.Load())

	if len(bad) > 0 {
		t.Fatalf("%d jobs without their result, first: %s", len(bad), bad[0])
	}
	for i := range jobs {
		if n := outcomes[i].Load(); n != 1 {
			t.Fatalf("job %d ended %d times", i, n)
		}
		if n := runs.runs[i].Load(); n < 1 || n > maxAttempts {
			t.Fatalf("job %d ran %d times", i, n)
		}
	}
	s := q.Stats()
	t.Logf("stats %+v; lost with dropped workers %d, timed out on the slow worker %d (elsewhere %d), refused %d, peak queued %d",
		s, lost, hungJobs.Load(), slowOthers, refused, peakQueued)
	if want := uint64(lost) + uint64(hungJobs.Load()) + slowOthers; s.Redelivered != want {
		t.Fatalf("redelivered %d, want %d in flight on the dropped workers + %d timed out on the slow worker + %d elsewhere",
			s.Redelivered, lost, hungJobs.Load(), slowOthers)
	}
	if uint64(runs.redelivered.Load()) != s.Redelivered {
		t.Fatalf("handlers saw %d redelivered jobs, the queue sent %d", runs.redelivered.Load(), s.Redelivered)
	}
	if hungJobs.Load() == 0 {
		t.Fatal("the slow worker got no job")
	}
	if s.Done != jobs || s.Failed != 0 || s.Submitted != jobs || s.Queued != 0 || s.InFlight != 0 {
		t.Fatalf("stats %+v", s)
	}
	if refused == 0 || s.Refused != uint64(refused) {
		t.Fatalf("ErrQueueFull %d times (stats %d): the bound was never reached", refused, s.Refused)
	}
	// Jobs taken back from lost workers go to the front past the bound:
	// at most one per slot.
	if peakQueued > maxQueued+workers*maxInFlight {
		t.Fatalf("peak queued %d", peakQueued)
	}
	for _, c := range consumers {
		c.Destroy()
	}
	p.Close()
	waitGoroutines(t, before)
}
