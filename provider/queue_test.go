package provider_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/consumer"
	"github.com/networkcluster/networkcluster/provider"
)

// startProvider starts a Provider on 127.0.0.1 with po.
func startProvider(t testing.TB, po provider.Options) *provider.Provider {
	t.Helper()
	po.Addr = "127.0.0.1:0"
	p, err := provider.New(po)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// startWorker connects a Consumer to p whose OnRequest is handle.
func startWorker(t testing.TB, p *provider.Provider, handle func(r *consumer.Request), co consumer.Options) *consumer.Consumer {
	t.Helper()
	co.Host, co.Port = "127.0.0.1", p.Port()
	co.OnRequest = handle
	if co.Reconnect.Interval == 0 {
		co.Reconnect.Interval = 20 * time.Millisecond
	}
	c, err := consumer.New(co)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Destroy)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

// newQueue makes a queue on p and closes it at the end of the test.
func newQueue(t testing.TB, p *provider.Provider, o provider.QueueOptions) *provider.Queue {
	t.Helper()
	q, err := p.NewQueue(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		q.Close(ctx)
	})
	return q
}

// waitFor polls cond for up to 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func echoJob(r *consumer.Request) {
	_ = r.Reply(r.Message().Binary, append([]byte("done:"), r.Message().Data...))
}

// laterEcho returns a func that answers r as echoJob does, from any
// goroutine after OnRequest returned (the request's Data is only valid
// during the call, so it is copied now).
func laterEcho(r *consumer.Request) func() error {
	m := r.Message()
	out := append([]byte("done:"), m.Data...)
	return func() error { return r.Reply(m.Binary, out) }
}

// Jobs spread over the workers, each answered once with its own result;
// Stats adds up.
func TestQueueSpreadsJobs(t *testing.T) {
	p := startProvider(t, provider.Options{})
	var mu sync.Mutex
	per := map[string]int{}
	for i := range 3 {
		name := fmt.Sprint("w", i)
		startWorker(t, p, func(r *consumer.Request) {
			mu.Lock()
			per[name]++
			mu.Unlock()
			echoJob(r)
		}, consumer.Options{})
	}
	q := newQueue(t, p, provider.QueueOptions{MaxInFlight: 2})
	waitFor(t, "3 workers", func() bool { return q.Stats().Workers == 3 })
	ctx := ctxT(t)
	const n = 300
	var wg sync.WaitGroup
	var bad atomic.Int32
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			payload := fmt.Sprint("job ", i)
			m, err := q.Submit(ctx, i%2 == 0, []byte(payload))
			if err != nil || string(m.Data) != "done:"+payload || m.Binary != (i%2 == 0) {
				bad.Add(1)
				t.Errorf("job %d: %+v %v", i, m, err)
			}
		}()
	}
	wg.Wait()
	if bad.Load() > 0 {
		t.FailNow()
	}
	mu.Lock()
	for name, k := range per {
		if k == 0 {
			t.Errorf("worker %s got no job: %v", name, per)
		}
	}
	mu.Unlock()
	s := q.Stats()
	if s.Submitted != n || s.Done != n || s.Failed != 0 || s.Attempts != n || s.Redelivered != 0 || s.Queued != 0 || s.InFlight != 0 {
		t.Fatalf("stats %+v", s)
	}
	if s.JobLatency.N == 0 || s.JobLatency.P50 <= 0 || s.JobLatency.P99 < s.JobLatency.P50 || s.AttemptLatency.N == 0 {
		t.Fatalf("latency %+v %+v", s.JobLatency, s.AttemptLatency)
	}
}

// A worker never has more than MaxInFlight of the queue's jobs; jobs wait
// while every worker is busy and go out as slots free up.
func TestQueueMaxInFlight(t *testing.T) {
	p := startProvider(t, provider.Options{})
	const maxIn = 3
	var cur, peak atomic.Int32
	release := make(chan struct{})
	startWorker(t, p, func(r *consumer.Request) {
		n := cur.Add(1)
		for {
			old := peak.Load()
			if n <= old || peak.CompareAndSwap(old, n) {
				break
			}
		}
		reply := laterEcho(r)
		go func() {
			<-release
			cur.Add(-1)
			reply()
		}()
	}, consumer.Options{})
	q := newQueue(t, p, provider.QueueOptions{MaxInFlight: maxIn})
	waitFor(t, "worker", func() bool { return q.Stats().Workers == 1 })
	ctx := ctxT(t)
	const n = 10
	var done sync.WaitGroup
	for i := range n {
		done.Add(1)
		if err := q.SubmitAsync(ctx, false, []byte(fmt.Sprint(i)), func(m provider.Message, err error) {
			defer done.Done()
			if err != nil {
				t.Error(err)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "a full worker", func() bool { return cur.Load() == maxIn })
	if s := q.Stats(); s.InFlight != maxIn || s.Queued != n-maxIn {
		t.Fatalf("stats with a full worker: %+v", s)
	}
	close(release)
	done.Wait()
	if peak.Load() != maxIn {
		t.Fatalf("peak in flight %d, want %d", peak.Load(), maxIn)
	}
}

// A job whose worker is lost goes to another worker, flagged redelivered.
func TestQueueRedeliverOnDisconnect(t *testing.T) {
	p := startProvider(t, provider.Options{})
	got := make(chan *consumer.Request, 1)
	first := startWorker(t, p, func(r *consumer.Request) { got <- r }, consumer.Options{})
	q := newQueue(t, p, provider.QueueOptions{})
	waitFor(t, "worker", func() bool { return q.Stats().Workers == 1 })
	ctx := ctxT(t)
	type outcome struct {
		m   provider.Message
		err error
	}
	res := make(chan outcome, 1)
	go func() {
		m, err := q.Submit(ctx, false, []byte("job"))
		res <- outcome{m, err}
	}()
	r := <-got
	if r.Redelivered() {
		t.Fatal("first delivery flagged redelivered")
	}
	var redelivered atomic.Bool
	startWorker(t, p, func(r *consumer.Request) {
		redelivered.Store(r.Redelivered())
		echoJob(r)
	}, consumer.Options{})
	first.Destroy() // TCP closed, no close handshake
	o := <-res
	if o.err != nil || string(o.m.Data) != "done:job" {
		t.Fatalf("outcome %+v", o)
	}
	if !redelivered.Load() {
		t.Fatal("the second worker did not see Redelivered")
	}
	if s := q.Stats(); s.Attempts != 2 || s.Redelivered != 1 || s.Done != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// An attempt past AttemptTimeout goes to another worker; the first
// worker's late answer is dropped.
func TestQueueAttemptTimeout(t *testing.T) {
	p := startProvider(t, provider.Options{})
	late := make(chan *consumer.Request, 1)
	startWorker(t, p, func(r *consumer.Request) { late <- r }, consumer.Options{})
	q := newQueue(t, p, provider.QueueOptions{AttemptTimeout: 100 * time.Millisecond})
	waitFor(t, "worker", func() bool { return q.Stats().Workers == 1 })
	ctx := ctxT(t)
	res := make(chan error, 1)
	go func() {
		m, err := q.Submit(ctx, true, []byte("job"))
		if err == nil && string(m.Data) != "done:job" {
			err = fmt.Errorf("reply %q", m.Data)
		}
		res <- err
	}()
	stuck := <-late
	startWorker(t, p, echoJob, consumer.Options{})
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	before := p.Stats().LateReplies
	if err := stuck.Reply(true, []byte("late")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the late reply dropped", func() bool { return p.Stats().LateReplies == before+1 })
	if s := q.Stats(); s.Attempts != 2 || s.Redelivered != 1 || s.Done != 1 || s.Failed != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// Retryable codes go to another worker; other application codes end the
// job at once; MaxAttempts retryable failures end it with
// ErrAttemptsExhausted, listing every attempt.
func TestQueueRemoteErrors(t *testing.T) {
	p := startProvider(t, provider.Options{})
	var handled atomic.Int32
	for range 2 {
		startWorker(t, p, func(r *consumer.Request) {
			handled.Add(1)
			switch s := string(r.Message().Data); {
			case s == "bad":
				_ = r.Fail(1000, "bad job")
			case s == "busy":
				_ = r.Fail(provider.CodeRetryMax, "busy")
			case strings.HasPrefix(s, "once") && !r.Redelivered():
				_ = r.Fail(provider.CodeRetryMin, "try elsewhere")
			default:
				echoJob(r)
			}
		}, consumer.Options{})
	}
	q := newQueue(t, p, provider.QueueOptions{MaxAttempts: 3})
	waitFor(t, "workers", func() bool { return q.Stats().Workers == 2 })
	ctx := ctxT(t)

	if m, err := q.Submit(ctx, false, []byte("once")); err != nil || string(m.Data) != "done:once" {
		t.Fatalf("retried job: %+v %v", m, err)
	}

	handled.Store(0)
	_, err := q.Submit(ctx, false, []byte("bad"))
	var je *provider.JobError
	var re *provider.RemoteError
	if !errors.As(err, &je) || !errors.As(err, &re) || re.Code != 1000 || len(je.Attempts) != 1 || handled.Load() != 1 {
		t.Fatalf("final code: %v (handled %d)", err, handled.Load())
	}

	handled.Store(0)
	_, err = q.Submit(ctx, false, []byte("busy"))
	if !errors.As(err, &je) || !errors.Is(err, provider.ErrAttemptsExhausted) || len(je.Attempts) != 3 || handled.Load() != 3 {
		t.Fatalf("exhausted: %v (handled %d)", err, handled.Load())
	}
	// The second attempt went to the other worker, the third back to
	// the first: a job avoids the workers that failed it while others
	// are free.
	a := je.Attempts
	if a[0].Worker == a[1].Worker || a[0].Redelivered || !a[1].Redelivered || !a[2].Redelivered {
		t.Fatalf("attempts %+v", a)
	}
	for _, at := range a {
		if !errors.As(at.Err, &re) || re.Code != provider.CodeRetryMax {
			t.Fatalf("attempt error %v", at.Err)
		}
	}
}

// Jobs wait while there is no worker, up to MaxQueued (ErrQueueFull
// beyond), and go out when a worker connects; a waiting job ends with its
// ctx.
func TestQueueWaitFullAndCtx(t *testing.T) {
	p := startProvider(t, provider.Options{})
	q := newQueue(t, p, provider.QueueOptions{MaxQueued: 3})
	ctx := ctxT(t)
	cctx, cancel := context.WithCancel(ctx)
	res := make(chan error, 3)
	for i := range 3 {
		c := ctx
		if i == 0 {
			c = cctx
		}
		go func() {
			_, err := q.Submit(c, false, []byte(fmt.Sprint(i)))
			res <- err
		}()
	}
	waitFor(t, "3 queued", func() bool { return q.Stats().Queued == 3 })
	if _, err := q.Submit(ctx, false, []byte("x")); !errors.Is(err, provider.ErrQueueFull) {
		t.Fatalf("4th job: %v", err)
	}
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled job: %v", err)
	}
	if s := q.Stats(); s.Queued != 2 || s.Refused != 1 || s.Failed != 1 {
		t.Fatalf("stats %+v", s)
	}
	startWorker(t, p, echoJob, consumer.Options{})
	for range 2 {
		if err := <-res; err != nil {
			t.Fatal(err)
		}
	}
	if err := q.SubmitAsync(ctx, false, []byte{0xff}, func(provider.Message, error) {}); !errors.Is(err, provider.ErrInvalidUTF8) {
		t.Fatalf("invalid text: %v", err)
	}
}

// Close lets queued and in-flight jobs finish; a Close whose ctx ends
// gives up on the rest with ErrQueueClosed. No goroutine is left.
func TestQueueClose(t *testing.T) {
	before := runtime.NumGoroutine()
	p := startProvider(t, provider.Options{})
	release := make(chan struct{})
	w := startWorker(t, p, func(r *consumer.Request) {
		reply := laterEcho(r)
		go func() { <-release; reply() }()
	}, consumer.Options{})
	q, err := p.NewQueue(provider.QueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "worker", func() bool { return q.Stats().Workers == 1 })
	ctx := ctxT(t)
	res := make(chan error, 4)
	for i := range 2 {
		if err := q.SubmitAsync(ctx, false, []byte(fmt.Sprint(i)), func(_ provider.Message, err error) { res <- err }); err != nil {
			t.Fatal(err)
		}
	}
	closed := make(chan error, 1)
	go func() { closed <- q.Close(ctx) }()
	waitFor(t, "closing", func() bool {
		return errors.Is(q.SubmitAsync(ctx, false, nil, func(provider.Message, error) {}), provider.ErrQueueClosed)
	})
	close(release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-res; err != nil {
			t.Fatalf("drained job: %v", err)
		}
	}

	// Give up: one job in flight with a worker that never answers, one
	// waiting behind it.
	q2, err := p.NewQueue(provider.QueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.Destroy()
	startWorker(t, p, func(r *consumer.Request) {}, consumer.Options{})
	waitFor(t, "worker", func() bool { return q2.Stats().Workers == 1 })
	for i := range 2 {
		if err := q2.SubmitAsync(ctx, false, []byte(fmt.Sprint(i)), func(_ provider.Message, err error) { res <- err }); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "one in flight", func() bool { return q2.Stats().InFlight == 1 })
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := q2.Close(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close: %v", err)
	}
	for range 2 {
		if err := <-res; !errors.Is(err, provider.ErrQueueClosed) {
			t.Fatalf("abandoned job: %v", err)
		}
	}
	if s := q2.Stats(); s.Queued != 0 || s.InFlight != 0 || s.Failed != 2 {
		t.Fatalf("stats %+v", s)
	}
	p.Close()
	waitGoroutines(t, before)
}

// Jobs waiting when the Provider stops end with ErrServerClosed; Submit
// after that refuses.
func TestQueueProviderClose(t *testing.T) {
	p := startProvider(t, provider.Options{})
	q := newQueue(t, p, provider.QueueOptions{})
	ctx := ctxT(t)
	res := make(chan error, 1)
	go func() { _, err := q.Submit(ctx, false, []byte("job")); res <- err }()
	waitFor(t, "queued", func() bool { return q.Stats().Queued == 1 })
	p.Close()
	if err := <-res; !errors.Is(err, provider.ErrServerClosed) {
		t.Fatalf("waiting job: %v", err)
	}
	if _, err := q.Submit(ctx, false, []byte("job")); !errors.Is(err, provider.ErrServerClosed) {
		t.Fatalf("Submit after Close: %v", err)
	}
}

// Only the subscribers of Topic are workers; a connection that subscribes
// later takes the waiting jobs, one that unsubscribes gets no more.
func TestQueueTopic(t *testing.T) {
	opened := make(chan *provider.Connection, 4)
	p := startProvider(t, provider.Options{OnOpen: func(c *provider.Connection) { opened <- c }})
	var other atomic.Int32
	startWorker(t, p, func(r *consumer.Request) { other.Add(1); echoJob(r) }, consumer.Options{})
	<-opened
	startWorker(t, p, echoJob, consumer.Options{})
	sub := <-opened
	q := newQueue(t, p, provider.QueueOptions{Topic: "render"})
	ctx := ctxT(t)
	res := make(chan error, 1)
	go func() { _, err := q.Submit(ctx, false, []byte("job")); res <- err }()
	waitFor(t, "queued", func() bool { return q.Stats().Queued == 1 })
	if err := sub.Subscribe("render"); err != nil {
		t.Fatal(err)
	}
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if _, err := q.Submit(ctx, false, []byte("job")); err != nil {
			t.Fatal(err)
		}
	}
	if other.Load() != 0 {
		t.Fatalf("a connection outside the topic got %d jobs", other.Load())
	}
	sub.Unsubscribe("render")
	if s := q.Stats(); s.Workers != 0 {
		t.Fatalf("workers after unsubscribe: %d", s.Workers)
	}
	// A queue made after the subscription sees the subscriber.
	sub.Subscribe("render")
	q2 := newQueue(t, p, provider.QueueOptions{Topic: "render"})
	if s := q2.Stats(); s.Workers != 1 {
		t.Fatalf("new queue's workers: %d", s.Workers)
	}
}

// A custom Pick is offered the workers with a free slot and its choice is
// used.
func TestQueuePick(t *testing.T) {
	opened := make(chan *provider.Connection, 4)
	p := startProvider(t, provider.Options{OnOpen: func(c *provider.Connection) { opened <- c }})
	var got [2]atomic.Int32
	for i := range 2 {
		startWorker(t, p, func(r *consumer.Request) { got[i].Add(1); echoJob(r) }, consumer.Options{Parameters: map[string]string{"n": fmt.Sprint(i)}})
		<-opened
	}
	q := newQueue(t, p, provider.QueueOptions{Pick: func(cands []*provider.Connection) *provider.Connection {
		for _, c := range cands {
			if c.Param("n") == "1" {
				return c
			}
		}
		return nil
	}})
	waitFor(t, "workers", func() bool { return q.Stats().Workers == 2 })
	ctx := ctxT(t)
	for range 10 {
		if _, err := q.Submit(ctx, false, []byte("job")); err != nil {
			t.Fatal(err)
		}
	}
	if got[0].Load() != 0 || got[1].Load() != 10 {
		t.Fatalf("jobs per worker %d %d", got[0].Load(), got[1].Load())
	}
}

// A job that takes many heartbeat intervals does not cost the worker its
// connection, whether the handler answers from its own goroutine or works
// in OnRequest itself: the Consumer runs handlers off its read loop, which
// keeps answering pings meanwhile.
func TestQueueLongJobBlockingHandler(t *testing.T) {
	p := startProvider(t, provider.Options{Heartbeat: provider.Heartbeat{Interval: 100 * time.Millisecond}})
	w := startWorker(t, p, func(r *consumer.Request) {
		time.Sleep(700 * time.Millisecond) // 7 heartbeat intervals, in the handler
		echoJob(r)
	}, consumer.Options{})
	q := newQueue(t, p, provider.QueueOptions{})
	waitFor(t, "worker", func() bool { return q.Stats().Workers == 1 })
	if m, err := q.Submit(ctxT(t), false, []byte("long")); err != nil || string(m.Data) != "done:long" {
		t.Fatalf("%+v %v", m, err)
	}
	if s := w.Stats(); s.Opens != 1 || s.Disconnects != 0 {
		t.Fatalf("worker reconnected during the job: %+v", s)
	}
	if s := p.Stats(); s.HeartbeatKills != 0 {
		t.Fatalf("heartbeat kills %d", s.HeartbeatKills)
	}
}

func TestQueueLongJobKeepsWorker(t *testing.T) {
	p := startProvider(t, provider.Options{Heartbeat: provider.Heartbeat{Interval: 100 * time.Millisecond}})
	w := startWorker(t, p, func(r *consumer.Request) {
		reply := laterEcho(r)
		go func() {
			time.Sleep(700 * time.Millisecond) // 7 heartbeat intervals
			reply()
		}()
	}, consumer.Options{})
	q := newQueue(t, p, provider.QueueOptions{})
	waitFor(t, "worker", func() bool { return q.Stats().Workers == 1 })
	if _, err := q.Submit(ctxT(t), false, []byte("long")); err != nil {
		t.Fatal(err)
	}
	if s := w.Stats(); s.Opens != 1 || s.Disconnects != 0 {
		t.Fatalf("worker reconnected during the job: %+v", s)
	}
}

// The default pick gives a job to the worker with the fewest of the
// queue's jobs in flight: jobs held by the workers spread evenly.
func TestQueueFewestInFlight(t *testing.T) {
	p := startProvider(t, provider.Options{})
	release := make(chan struct{})
	var got [3]atomic.Int32
	for i := range 3 {
		startWorker(t, p, func(r *consumer.Request) {
			got[i].Add(1)
			reply := laterEcho(r)
			go func() { <-release; reply() }()
		}, consumer.Options{})
	}
	q := newQueue(t, p, provider.QueueOptions{MaxInFlight: 4})
	waitFor(t, "workers", func() bool { return q.Stats().Workers == 3 })
	ctx := ctxT(t)
	var done sync.WaitGroup
	for i := range 6 {
		done.Add(1)
		if err := q.SubmitAsync(ctx, false, []byte(fmt.Sprint(i)), func(_ provider.Message, err error) {
			defer done.Done()
			if err != nil {
				t.Error(err)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "6 jobs held", func() bool { return got[0].Load()+got[1].Load()+got[2].Load() == 6 })
	for i := range got {
		if n := got[i].Load(); n != 2 {
			t.Errorf("worker %d holds %d jobs, want 2 each", i, n)
		}
	}
	for _, w := range q.Workers() {
		if w.InFlight != 2 {
			t.Errorf("Workers: %s has %d in flight", w.Conn.ID(), w.InFlight)
		}
	}
	close(release)
	done.Wait()
}

// A job in flight when the Provider shuts down gracefully ends with a
// *JobError wrapping ErrServerClosed (its worker went away with the
// Provider); one still waiting ends with ErrServerClosed.
func TestQueueShutdown(t *testing.T) {
	p := startProvider(t, provider.Options{})
	got := make(chan struct{}, 1)
	startWorker(t, p, func(r *consumer.Request) { got <- struct{}{} }, consumer.Options{}) // never answers
	q := newQueue(t, p, provider.QueueOptions{})
	waitFor(t, "worker", func() bool { return q.Stats().Workers == 1 })
	ctx := ctxT(t)
	res := make(chan error, 2)
	for range 2 {
		go func() { _, err := q.Submit(ctx, false, []byte("job")); res <- err }()
	}
	<-got
	waitFor(t, "one waiting", func() bool { return q.Stats().Queued == 1 })
	if err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	var je *provider.JobError
	sawJobError := false
	for range 2 {
		err := <-res
		if !errors.Is(err, provider.ErrServerClosed) {
			t.Fatalf("outcome %v", err)
		}
		if errors.As(err, &je) {
			sawJobError = true
			if len(je.Attempts) != 1 || !errors.Is(je.Attempts[0].Err, provider.ErrDisconnected) {
				t.Fatalf("attempts %+v", je.Attempts)
			}
		}
	}
	if !sawJobError {
		t.Fatal("the job in flight did not report its attempt")
	}
}
