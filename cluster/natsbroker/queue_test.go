package natsbroker_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/cluster"
	"github.com/networkcluster/networkcluster/consumer"
)

// jobLedger records the runs of each job by the workers of a test.
type jobLedger struct {
	mu          sync.Mutex
	runs        map[string]int
	redelivered map[string]int
	onNode      map[string]int
}

func (l *jobLedger) record(node string, r *consumer.Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	job := string(r.Message().Data)
	l.runs[job]++
	l.onNode[node]++
	if r.Redelivered() {
		l.redelivered[job]++
	}
}

// queueWorker connects a Consumer to addr whose requests are recorded for
// node and then handled by handle.
func queueWorker(t *testing.T, addr, node string, l *jobLedger, handle func(r *consumer.Request)) {
	t.Helper()
	host, port := splitHostPort(t, addr)
	c, err := consumer.New(consumer.Options{Host: host, Port: port,
		Reconnect: consumer.Reconnect{Interval: 200 * time.Millisecond, MaxAttempts: -1},
		OnRequest: func(r *consumer.Request) { l.record(node, r); handle(r) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Destroy() })
}

// The cluster Queue across 3 nodes on a real NATS server, with a node
// SIGKILLed: jobs are submitted on node a (in this process); the workers
// are Consumers on node b (in this process) and on node c, an ncnode child
// process. c's workers are made to hold their jobs, then c is SIGKILLed.
// a declares c down after NodeTimeout and redelivers c's jobs to b,
// flagged; every Submit returns exactly once with its result, and no
// handler runs a job more than MaxAttempts times.
func TestClusterQueueNodeKilled(t *testing.T) {
	s := embedded(t, 0)
	mo := memberOpts{}
	mo.Heartbeat = 250 * time.Millisecond
	mo.NodeTimeout = time.Second
	a := newMember(t, s.ClientURL(), "a", mo)
	b := newMember(t, s.ClientURL(), "b", mo)
	cproc, line := startChild(t, "ncnode", "PEER ", "--nats", s.ClientURL(), "--node-id", "c",
		"--node-heartbeat", "250ms", "--node-timeout", "1s")
	caddr := fieldOf(line, "addr=")

	l := &jobLedger{runs: map[string]int{}, redelivered: map[string]int{}, onNode: map[string]int{}}
	reply := func(r *consumer.Request) {
		time.Sleep(time.Millisecond)
		r.Reply(false, append([]byte("done:"), r.Message().Data...))
	}
	var holdC atomic.Bool
	held := make(chan struct{}, 64)
	release := make(chan struct{})
	for range 3 {
		queueWorker(t, b.addr, "b", l, reply)
		queueWorker(t, caddr, "c", l, func(r *consumer.Request) {
			if holdC.Load() {
				held <- struct{}{}
				<-release // c dies with this job
				return
			}
			reply(r)
		})
	}
	t.Cleanup(func() { close(release) }) // before the workers' Destroy (cleanups run last first)
	const maxAttempts = 3
	q, err := a.n.NewQueue(cluster.QueueOptions{MaxInFlight: 2, MaxAttempts: maxAttempts, AttemptTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "6 remote workers", func() error {
		if st := q.Stats(); st.Workers != 6 || st.RemoteWorkers != 6 {
			return fmt.Errorf("%+v", st)
		}
		return nil
	})

	const jobs = 300
	outcomes := make([]atomic.Int32, jobs)
	var wg sync.WaitGroup
	submit := func(i int) {
		defer wg.Done()
		job := fmt.Sprint("j", i)
		m, err := q.Submit(context.Background(), false, []byte(job))
		outcomes[i].Add(1)
		if err != nil || string(m.Data) != "done:"+job {
			t.Errorf("%s: %q %v", job, m.Data, err)
		}
	}
	for i := range jobs / 2 {
		wg.Add(1)
		go submit(i)
	}
	holdC.Store(true)
	for range 3 {
		select {
		case <-held:
		case <-time.After(20 * time.Second):
			t.Fatalf("c's workers hold no job; stats %+v", q.Stats())
		}
	}
	cproc.kill()
	killed := time.Now()
	for i := jobs / 2; i < jobs; i++ {
		wg.Add(1)
		go submit(i)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("Submit calls still waiting; stats %+v", q.Stats())
	}
	t.Logf("all %d jobs done %v after the kill", jobs, time.Since(killed))
	for i := range outcomes {
		if k := outcomes[i].Load(); k != 1 {
			t.Fatalf("job %d: Submit returned %d times", i, k)
		}
	}
	st := q.Stats()
	l.mu.Lock()
	defer l.mu.Unlock()
	flagged := 0
	for job, k := range l.runs {
		if k > maxAttempts {
			t.Errorf("job %s ran %d times", job, k)
		}
		if k > 1 && l.redelivered[job] == 0 {
			t.Errorf("job %s ran %d times, never flagged redelivered", job, k)
		}
		flagged += l.redelivered[job]
	}
	if len(l.runs) != jobs || l.onNode["c"] == 0 {
		t.Fatalf("%d jobs ran (want %d), by node %v", len(l.runs), jobs, l.onNode)
	}
	if st.Done != jobs || st.Failed != 0 || st.Lost < 3 || st.Redelivered < 3 ||
		st.Attempts != st.Done+st.Redelivered || uint64(flagged) > st.Redelivered {
		t.Fatalf("stats %+v, handlers saw %d flagged", st, flagged)
	}
	t.Logf("stats %+v; runs by node %v", st, l.onNode)
	if err := q.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}
