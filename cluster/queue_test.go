package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/consumer"
	"github.com/networkcluster/networkcluster/provider"
)

// ledger records what the workers of a test ran.
type ledger struct {
	mu          sync.Mutex
	runs        map[string]int // job → handler runs
	redelivered map[string]int // job → runs flagged redelivered
	byNode      map[string]int // node → runs
}

func newLedger() *ledger {
	return &ledger{runs: map[string]int{}, redelivered: map[string]int{}, byNode: map[string]int{}}
}

func (l *ledger) record(node string, r *consumer.Request) string {
	job := string(r.Message().Data)
	l.mu.Lock()
	l.runs[job]++
	l.byNode[node]++
	if r.Redelivered() {
		l.redelivered[job]++
	}
	l.mu.Unlock()
	return job
}

// workers connects k Consumers to m whose handler is handle (after the
// ledger has recorded the run), and waits until every node sees them in
// presence as request-speaking connections.
func workers(t *testing.T, m *member, k int, l *ledger, handle func(r *consumer.Request)) []*consumer.Consumer {
	t.Helper()
	host, port := splitAddr(t, m.addr)
	out := make([]*consumer.Consumer, k)
	for i := range out {
		c, err := consumer.New(consumer.Options{Host: host, Port: port, OnRequest: func(r *consumer.Request) {
			l.record(m.n.ID(), r)
			handle(r)
		}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = c.Connect(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		out[i] = c
		select {
		case <-m.opened:
		case <-time.After(10 * time.Second):
			t.Fatal("not opened")
		}
	}
	return out
}

// queueWorkers waits until q sees want workers, remote of them.
func queueWorkers(t *testing.T, q *Queue, want, remote int) {
	t.Helper()
	eventually(t, "queue workers", func() error {
		s := q.Stats()
		if s.Workers != want || s.RemoteWorkers != remote {
			return fmt.Errorf("workers %d (remote %d), want %d (%d)", s.Workers, s.RemoteWorkers, want, remote)
		}
		return nil
	})
}

func reply(r *consumer.Request) { r.Reply(false, append([]byte("done:"), r.Message().Data...)) }

// Jobs submitted on node a reach workers on b and c (and a), each gets
// its worker's result, and the queue's counters add up.
func TestClusterQueueSpreads(t *testing.T) {
	hub := NewMemHub(0)
	ms := cluster3(t, hub, provider.Options{}, Options{})
	l := newLedger()
	for _, m := range ms {
		workers(t, m, 3, l, func(r *consumer.Request) {
			time.Sleep(time.Millisecond)
			reply(r)
		})
	}
	q, err := ms[0].n.NewQueue(QueueOptions{MaxInFlight: 2, AttemptTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	queueWorkers(t, q, 9, 6)
	const jobs = 300
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			job := fmt.Sprint("j", i)
			m, err := q.Submit(context.Background(), false, []byte(job))
			if err != nil || string(m.Data) != "done:"+job {
				failed.Add(1)
				t.Errorf("%s: %q %v", job, m.Data, err)
			}
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.FailNow()
	}
	s := q.Stats()
	if s.Done != jobs || s.Failed != 0 || s.Redelivered != 0 || s.Queued != 0 || s.InFlight != 0 {
		t.Fatalf("stats %+v", s)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range []string{"a", "b", "c"} {
		if l.byNode[id] == 0 {
			t.Fatalf("no job ran on node %s: %v", id, l.byNode)
		}
	}
	if int(s.RemoteAttempts) != l.byNode["b"]+l.byNode["c"] {
		t.Fatalf("remote attempts %d, runs on b and c %v", s.RemoteAttempts, l.byNode)
	}
	if err := q.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Submit(context.Background(), false, []byte("x")); !errors.Is(err, provider.ErrQueueClosed) {
		t.Fatal(err)
	}
	// Closed: its goroutine has ended and the Node no longer tells it of
	// presence changes.
	select {
	case <-q.loopDone:
	default:
		t.Fatal("queue loop still running after Close")
	}
	if qs := ms[0].n.queues(); len(qs) != 0 {
		t.Fatalf("%d queues still watching", len(qs))
	}
}

// The proof across 3 nodes: jobs submitted on a, workers on b and c only.
// Mid-run a worker on b drops its connection with a job in hand, and then
// node c is lost while holding jobs: gracefully (Shutdown) or abruptly
// (its broker link vanishes without a leave, as a SIGKILLed process's
// would). Every job ends with one result, the lost jobs are redelivered
// flagged, and no handler runs a job more than MaxAttempts times.
func TestClusterQueueProof(t *testing.T) {
	for _, mode := range []string{"shutdown", "vanish"} {
		t.Run(mode, func(t *testing.T) { clusterQueueProof(t, mode) })
	}
}

func clusterQueueProof(t *testing.T, mode string) {
	hub := NewMemHub(0)
	ms := cluster3(t, hub, provider.Options{}, Options{})
	a, b, c := ms[0], ms[1], ms[2]
	l := newLedger()
	// A worker on b that holds its first job, then loses its connection.
	held := make(chan struct{})
	var dropOnce sync.Once
	dropper := workers(t, b, 1, l, func(r *consumer.Request) {
		dropOnce.Do(func() { close(held) })
		// never answers: the test closes this Consumer
	})
	// Workers on c that hold their jobs once the test says so (c dies then).
	var holdC atomic.Bool
	cHeld := make(chan struct{}, 64)
	workers(t, c, 3, l, func(r *consumer.Request) {
		if holdC.Load() {
			cHeld <- struct{}{}
			return // never answers: node c is lost with it
		}
		time.Sleep(time.Millisecond)
		reply(r)
	})
	workers(t, b, 3, l, func(r *consumer.Request) {
		time.Sleep(time.Millisecond)
		reply(r)
	})
	const maxAttempts = 3
	q, err := a.n.NewQueue(QueueOptions{MaxInFlight: 2, MaxAttempts: maxAttempts, AttemptTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	queueWorkers(t, q, 7, 7)

	const jobs = 400
	var returned atomic.Int32
	outcomes := make([]int32, jobs)
	var wg sync.WaitGroup
	submit := func(i int) {
		defer wg.Done()
		job := fmt.Sprint("j", i)
		m, err := q.Submit(context.Background(), false, []byte(job))
		atomic.AddInt32(&outcomes[i], 1)
		returned.Add(1)
		if err != nil || string(m.Data) != "done:"+job {
			t.Errorf("%s: %q %v", job, m.Data, err)
		}
	}
	for i := range jobs / 2 {
		wg.Add(1)
		go submit(i)
	}
	// The dropper holds a job: drop it.
	select {
	case <-held:
	case <-time.After(20 * time.Second):
		t.Fatal("the dropping worker got no job")
	}
	dropper[0].Close()
	// Node c's workers now hold their next jobs, and c is lost.
	holdC.Store(true)
	for range 3 {
		select {
		case <-cHeld:
		case <-time.After(20 * time.Second):
			t.Fatal("c's workers got no job to hold")
		}
	}
	switch mode {
	case "shutdown":
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c.n.Shutdown(ctx)
		cancel()
	case "vanish":
		// The broker forgets c without a leave: a's requests to c hang
		// until a declares c down (NodeTimeout).
		c.b.Close(context.Background())
	}
	for i := jobs / 2; i < jobs; i++ {
		wg.Add(1)
		go submit(i)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("only %d of %d Submit calls returned; stats %+v", returned.Load(), jobs, q.Stats())
	}
	for i, n := range outcomes {
		if n != 1 {
			t.Fatalf("job %d: Submit returned %d times", i, n)
		}
	}
	s := q.Stats()
	if s.Done != jobs || s.Failed != 0 {
		t.Fatalf("stats %+v", s)
	}
	l.mu.Lock()
	redelivered := 0
	for job, k := range l.runs {
		if k > maxAttempts {
			t.Errorf("job %s ran %d times", job, k)
		}
		if k > 1 && l.redelivered[job] == 0 {
			t.Errorf("job %s ran %d times, never flagged redelivered", job, k)
		}
		redelivered += l.redelivered[job]
	}
	if len(l.runs) != jobs {
		t.Errorf("%d jobs ran, want %d", len(l.runs), jobs)
	}
	l.mu.Unlock()
	// Every attempt that gave no result led to exactly one redelivery
	// (nothing failed for good): the dropped worker's job and the 3 held
	// on c at least, plus any sent to c as it died; and a redelivered
	// attempt may itself be lost with c before its handler runs.
	if s.Attempts != s.Done+s.Redelivered || s.Redelivered < 4 || uint64(redelivered) > s.Redelivered {
		t.Fatalf("queue redelivered %d, handlers saw %d flagged (want ≥ 4, at most the queue's); stats %+v", s.Redelivered, redelivered, s)
	}
	if mode == "vanish" && s.Lost < 3 {
		t.Fatalf("lost attempts %d, want ≥ 3 (c's held jobs)", s.Lost)
	}
	t.Logf("%s: %+v", mode, s)
	if err := q.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// A node that shuts down ends its own queue's jobs: those waiting with
// ErrClosed, those in flight with a *provider.JobError wrapping it.
func TestClusterQueueSubmitterShutdown(t *testing.T) {
	hub := NewMemHub(0)
	ms := cluster3(t, hub, provider.Options{}, Options{})
	a, b := ms[0], ms[1]
	l := newLedger()
	hold := make(chan struct{})
	workers(t, b, 1, l, func(r *consumer.Request) { <-hold; reply(r) })
	defer close(hold)
	q, err := a.n.NewQueue(QueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	queueWorkers(t, q, 1, 1)
	errs := make(chan error, 2)
	for i := range 2 {
		go func() {
			_, err := q.Submit(context.Background(), false, []byte(fmt.Sprint(i)))
			errs <- err
		}()
	}
	eventually(t, "one in flight, one queued", func() error {
		if s := q.Stats(); s.InFlight != 1 || s.Queued != 1 {
			return fmt.Errorf("%+v", s)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a.n.Shutdown(ctx)
	var je *provider.JobError
	var sawJobErr, sawPlain bool
	for range 2 {
		select {
		case err := <-errs:
			switch {
			case errors.As(err, &je) && errors.Is(err, ErrClosed):
				sawJobErr = true
			case errors.Is(err, ErrClosed):
				sawPlain = true
			default:
				t.Fatalf("outcome %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Submit did not return after Shutdown")
		}
	}
	if !sawJobErr || !sawPlain {
		t.Fatalf("job error %v, plain %v", sawJobErr, sawPlain)
	}
	if _, err := q.Submit(context.Background(), false, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
}

// A node that joins later learns the workers from the others' presence
// snapshots, with their "speaks requests" bit: plain WebSocket connections
// are not workers. A topic selects the workers subscribed to it anywhere.
func TestClusterQueueSnapshotAndTopic(t *testing.T) {
	hub := NewMemHub(0)
	ms := cluster3(t, hub, provider.Options{}, Options{})
	l := newLedger()
	workers(t, ms[1], 2, l, reply)
	workers(t, ms[2], 1, l, reply)
	dialN(t, ms[1], 2, "t=render") // plain connections (no requests), on the topic
	eventually(t, "presence", converged(ms, 5, "render", 2))
	d := newMember(t, hub, "d", provider.Options{}, Options{})
	q, err := d.n.NewQueue(QueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	queueWorkers(t, q, 3, 3)
	if m, err := q.Submit(context.Background(), false, []byte("x")); err != nil || string(m.Data) != "done:x" {
		t.Fatal(m, err)
	}
	// Only the plain connections are on "render": no workers.
	qt, err := d.n.NewQueue(QueueOptions{Topic: "render"})
	if err != nil {
		t.Fatal(err)
	}
	if s := qt.Stats(); s.Workers != 0 {
		t.Fatalf("plain connections taken as workers: %+v", s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := qt.Submit(ctx, false, []byte("x")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("no worker: %v", err)
	}
	// A worker subscribes to it on c (a Provider-side Subscribe): it is
	// taken at once.
	host, port := splitAddr(t, ms[2].addr)
	c, err := consumer.New(consumer.Options{Host: host, Port: port, Parameters: map[string]string{"t": "render"}, OnRequest: reply})
	if err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	if err := c.Connect(cctx); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	queueWorkers(t, qt, 1, 1)
	if m, err := qt.Submit(context.Background(), false, []byte("y")); err != nil || string(m.Data) != "done:y" {
		t.Fatal(m, err)
	}
	qt.Close(context.Background())
	q.Close(context.Background())
}

// Across nodes: a worker that does not answer within AttemptTimeout loses
// the job to another (flagged redelivered); a worker's failure with a code
// that is not retryable ends the job with a *provider.JobError wrapping
// its *provider.RemoteError; attempts used up end it with
// provider.ErrAttemptsExhausted.
func TestClusterQueueTimeoutAndFailure(t *testing.T) {
	hub := NewMemHub(0)
	ms := cluster3(t, hub, provider.Options{}, Options{})
	l := newLedger()
	release := make(chan struct{})
	workers(t, ms[1], 1, l, func(r *consumer.Request) {
		switch string(r.Message().Data) {
		case "slow":
			// Past AttemptTimeout (the Data is only valid during the call).
			go func() { <-release; r.Reply(false, []byte("done:slow")) }()
		case "bad":
			r.Fail(4000, "bad job")
		default:
			r.Fail(provider.CodeRetryMin, "busy")
		}
	})
	workers(t, ms[2], 1, l, func(r *consumer.Request) {
		switch string(r.Message().Data) {
		case "slow":
			reply(r)
		case "bad":
			r.Fail(4000, "bad job")
		default:
			r.Fail(provider.CodeRetryMin, "busy")
		}
	})
	defer close(release)
	q, err := ms[0].n.NewQueue(QueueOptions{AttemptTimeout: 300 * time.Millisecond, MaxAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	queueWorkers(t, q, 2, 2)
	// "slow": whichever worker gets it first, it ends on c, and if b had it
	// first, c's run is flagged.
	if m, err := q.Submit(context.Background(), false, []byte("slow")); err != nil || string(m.Data) != "done:slow" {
		t.Fatal(m, err)
	}
	l.mu.Lock()
	runs, flagged, onB := l.runs["slow"], l.redelivered["slow"], l.byNode["b"]
	l.mu.Unlock()
	if onB == 1 && (runs != 2 || flagged != 1) || onB == 0 && runs != 1 {
		t.Fatalf("slow: runs %d, flagged %d, on b %d", runs, flagged, onB)
	}
	var je *provider.JobError
	var re *provider.RemoteError
	_, err = q.Submit(context.Background(), false, []byte("bad"))
	if !errors.As(err, &je) || !errors.As(err, &re) || re.Code != 4000 || len(je.Attempts) != 1 {
		t.Fatalf("bad: %v", err)
	}
	_, err = q.Submit(context.Background(), false, []byte("busy"))
	if !errors.As(err, &je) || !errors.Is(err, provider.ErrAttemptsExhausted) || len(je.Attempts) != 2 ||
		je.Attempts[0].Worker == je.Attempts[1].Worker || !je.Attempts[1].Redelivered {
		t.Fatalf("busy: %v", err)
	}
	q.Close(context.Background())
}

// BenchmarkClusterQueue: jobs submitted on node a (64 B, 8 at a time) to
// a worker on a itself (local) or on node b (remote, through MemBroker).
func BenchmarkClusterQueue(b *testing.B) {
	for _, where := range []string{"local", "remote"} {
		b.Run(where, func(b *testing.B) {
			hub := NewMemHub(0)
			a := newMember(b, hub, "a", provider.Options{}, Options{})
			m := a
			if where == "remote" {
				m = newMember(b, hub, "b", provider.Options{}, Options{})
			}
			host, port := splitAddr(b, m.addr)
			w, err := consumer.New(consumer.Options{Host: host, Port: port, OnRequest: func(r *consumer.Request) { r.Reply(true, r.Message().Data) }})
			if err != nil {
				b.Fatal(err)
			}
			if err := w.Connect(context.Background()); err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			q, err := a.n.NewQueue(QueueOptions{MaxInFlight: 8})
			if err != nil {
				b.Fatal(err)
			}
			defer q.Close(context.Background())
			for q.Stats().Workers == 0 {
				time.Sleep(time.Millisecond)
			}
			job := make([]byte, 64)
			b.ReportAllocs()
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := q.Submit(context.Background(), true, job); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
