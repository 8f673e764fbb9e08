package provider_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/consumer"
	"github.com/networkcluster/networkcluster/provider"
)

// The worker process of TestQueueWorkerProcesses: this test binary run
// again with NC_QUEUE_WORKER_ADDR set. It connects NC_QUEUE_WORKERS
// Consumers that answer every job after a short random delay, prints
// "READY", then "H <job> <redelivered>" for every job it takes, and exits
// when its stdin closes (the parent is gone) or after a minute.
func TestQueueWorkerProcess(t *testing.T) {
	addr := os.Getenv("NC_QUEUE_WORKER_ADDR")
	if addr == "" {
		t.Skip("the worker process of TestQueueWorkerProcesses")
	}
	n, _ := strconv.Atoi(os.Getenv("NC_QUEUE_WORKERS"))
	proc := os.Getenv("NC_QUEUE_PROC")
	port, _ := strconv.Atoi(addr[strings.LastIndexByte(addr, ':')+1:])
	var out sync.Mutex
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range n {
		c, err := consumer.New(consumer.Options{Host: "127.0.0.1", Port: port,
			Parameters: map[string]string{"proc": proc, "w": fmt.Sprint(proc, "-", i)},
			OnRequest: func(r *consumer.Request) {
				out.Lock()
				fmt.Printf("H %s %v\n", r.Message().Data, r.Redelivered())
				out.Unlock()
				reply := laterEcho(r)
				go func() {
					time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
					reply()
				}()
			}})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Connect(ctx); err != nil {
			t.Fatal(err)
		}
	}
	out.Lock()
	fmt.Println("READY")
	out.Unlock()
	done := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	os.Exit(0) // at once: no Consumer closes gracefully
}

// workerProc is a running worker process.
type workerProc struct {
	cmd   *exec.Cmd
	stdin io.Closer
	ready chan struct{}
	done  chan struct{} // its output is read to the end
}

// The proof across processes: 1 000 jobs over 5 worker processes of 10
// Consumers each (MaxInFlight 2); one process (10 % of the workers) is
// SIGKILLed mid-run. Every job ends once with its result, none ran more
// than MaxAttempts times, and the redeliveries are exactly the jobs the
// killed process held. To know that number the process is stopped
// (SIGSTOP) first until the queue has filled its workers' slots: a
// stopped process answers nothing, so those jobs are all it holds.
func TestQueueWorkerProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 5 processes")
	}
	const (
		procs       = 5
		perProc     = 10
		jobs        = 1000
		maxInFlight = 2
		maxAttempts = 5
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
	q, err := p.NewQueue(provider.QueueOptions{MaxInFlight: maxInFlight, MaxAttempts: maxAttempts,
		MaxQueued: 100, AttemptTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	runs := make([]atomic.Int32, jobs)
	var seenRedelivered atomic.Int64
	var ps []*workerProc
	for i := range procs {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestQueueWorkerProcess$")
		cmd.Env = append(os.Environ(), "NC_QUEUE_WORKER_ADDR="+p.Addr().String(),
			"NC_QUEUE_WORKERS="+strconv.Itoa(perProc), "NC_QUEUE_PROC="+strconv.Itoa(i))
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		w := &workerProc{cmd: cmd, stdin: stdin, ready: make(chan struct{}), done: make(chan struct{})}
		ps = append(ps, w)
		go func() {
			defer close(w.done)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				line := sc.Text()
				switch {
				case line == "READY":
					close(w.ready)
				case strings.HasPrefix(line, "H job-"):
					f := strings.Fields(line)
					runs[jobID([]byte(f[1]))].Add(1)
					if f[2] == "true" {
						seenRedelivered.Add(1)
					}
				}
			}
		}()
	}
	defer func() {
		for _, w := range ps {
			w.stdin.Close()
			_ = w.cmd.Wait()
			<-w.done
		}
	}()
	for _, w := range ps {
		select {
		case <-w.ready:
		case <-w.done:
			t.Fatal("a worker process ended before it was ready")
		case <-ctx.Done():
			t.Fatal("worker processes not ready")
		}
	}
	waitFor(t, "50 workers", func() bool { return q.Stats().Workers == procs*perProc })

	outcomes := make([]atomic.Int32, jobs)
	var finished atomic.Int64
	var badMu sync.Mutex
	var bad []string
	submitted := make(chan struct{})
	go func() {
		defer close(submitted)
		for i := 0; i < jobs; {
			payload := []byte(fmt.Sprint("job-", i))
			err := q.SubmitAsync(ctx, false, payload, func(m provider.Message, err error) {
				id := jobID(payload)
				outcomes[id].Add(1)
				if err != nil || string(m.Data) != "done:job-"+strconv.Itoa(id) {
					badMu.Lock()
					bad = append(bad, fmt.Sprintf("job %d: %q %v", id, m.Data, err))
					badMu.Unlock()
				}
				finished.Add(1)
			})
			if errors.Is(err, provider.ErrQueueFull) {
				time.Sleep(time.Millisecond)
				continue
			}
			if err != nil {
				badMu.Lock()
				bad = append(bad, fmt.Sprintf("submit %d: %v", i, err))
				badMu.Unlock()
				return
			}
			i++
		}
	}()

	waitFor(t, "300 jobs done", func() bool { return finished.Load() >= 300 })
	victim := ps[0]
	if err := victim.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	held := func() (n int, full bool) {
		full = true
		k := 0
		for _, w := range q.Workers() {
			if w.Conn.Param("proc") == "0" {
				k++
				n += w.InFlight
				full = full && w.InFlight == maxInFlight
			}
		}
		return n, full && k == perProc
	}
	var lost int
	waitFor(t, "the stopped process's slots full", func() bool {
		n, full := held()
		if !full {
			return false
		}
		time.Sleep(50 * time.Millisecond) // answers it sent before the stop have arrived
		m, full := held()
		lost = m
		return full && m == n
	})
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = victim.cmd.Wait()

	<-submitted
	waitFor(t, "every outcome", func() bool { return finished.Load() == jobs })
	closeCtx, closeCancel := context.WithTimeout(ctx, 10*time.Second)
	defer closeCancel()
	if err := q.Close(closeCtx); err != nil {
		t.Fatal(err)
	}
	for _, w := range ps[1:] {
		w.stdin.Close()
		_ = w.cmd.Wait()
	}
	for _, w := range ps {
		<-w.done
	}
	if len(bad) > 0 {
		t.Fatalf("%d jobs without their result, first: %s", len(bad), bad[0])
	}
	for i := range jobs {
		if n := outcomes[i].Load(); n != 1 {
			t.Fatalf("job %d ended %d times", i, n)
		}
		if n := runs[i].Load(); n < 1 || n > maxAttempts {
			t.Fatalf("job %d ran %d times", i, n)
		}
	}
	s := q.Stats()
	t.Logf("stats %+v; held by the killed process %d", s, lost)
	if s.Redelivered != uint64(lost) || uint64(seenRedelivered.Load()) != s.Redelivered {
		t.Fatalf("redelivered %d (seen by handlers %d), want the %d jobs the killed process held", s.Redelivered, seenRedelivered.Load(), lost)
	}
	if s.Done != jobs || s.Failed != 0 {
		t.Fatalf("stats %+v", s)
	}
	p.Close()
	waitGoroutines(t, before)
}
