// Command jobs is a small job-distribution cluster on provider.Queue: a
// coordinator (the Provider) hands each job to one worker (a Consumer) and
// collects the results. A job whose worker is lost, times out or fails it
// retryably goes to another worker, flagged redelivered; nothing is lost.
//
//	go run ./examples/jobs                      # coordinator and 4 workers in one process; w0 crashes mid-job
//	go run ./examples/jobs -role coordinator -addr :8080 -jobs 100
//	go run ./examples/jobs -role worker -host 10.0.0.5 -port 8080 -name w7
//
// The coordinator requires the parameter key=SECRET_KEY (use -key to change
// it) and lets authenticated workers subscribe to the topic "jobs", whose
// subscribers are the queue's workers. A job is a number; its result is the
// square.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/networkcluster/networkcluster/consumer"
	"github.com/networkcluster/networkcluster/provider"
)

func main() {
	role := flag.String("role", "both", "coordinator, worker or both")
	addr := flag.String("addr", "127.0.0.1:0", "coordinator listen address")
	host := flag.String("host", "127.0.0.1", "worker: coordinator host")
	port := flag.Int("port", 8080, "worker: coordinator port")
	key := flag.String("key", "SECRET_KEY", "shared key")
	jobs := flag.Int("jobs", 20, "coordinator: number of jobs")
	inFlight := flag.Int("inflight", 2, "coordinator: jobs per worker at once")
	workers := flag.Int("workers", 4, "both: number of workers")
	name := flag.String("name", "worker", "worker: name")
	work := flag.Duration("work", 20*time.Millisecond, "worker: time a job takes")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	switch *role {
	case "coordinator":
		p, q := coordinator(*addr, *key, *inFlight)
		log.Printf("coordinator listening on %s", p.Addr())
		submit(ctx, q, *jobs)
		shutdown(p, q)
	case "worker":
		if err := worker(ctx, *host, *port, *key, *name, *work, 0); err != nil {
			log.Fatal(err)
		}
	case "both":
		p, q := coordinator(*addr, *key, *inFlight)
		wctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for i := 0; i < *workers; i++ {
			crashAt := 0
			if i == 0 {
				crashAt = 2 // w0 dies while it holds its second job
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := worker(wctx, "127.0.0.1", p.Port(), *key, "w"+strconv.Itoa(i), *work, crashAt); err != nil {
					log.Print(err)
				}
			}()
		}
		submit(ctx, q, *jobs)
		shutdown(p, q)
		cancel()
		wg.Wait()
	default:
		log.Fatalf("unknown role %q", *role)
	}
}

// coordinator starts a Provider whose job queue's workers are the
// connections subscribed to "jobs".
func coordinator(addr, key string, inFlight int) (*provider.Provider, *provider.Queue) {
	p, err := provider.New(provider.Options{
		Addr: addr,
		Auth: provider.Auth{Parameters: map[string]string{"key": key}},
		// Only authenticated connections get this far; let them work.
		AuthorizeSubscribe: func(c *provider.Connection, topic string) bool { return topic == "jobs" },
	})
	if err != nil {
		log.Fatal(err)
	}
	q, err := p.NewQueue(provider.QueueOptions{
		Topic:          "jobs",
		MaxInFlight:    inFlight,
		AttemptTimeout: 10 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := p.Start(); err != nil {
		log.Fatal(err)
	}
	return p, q
}

// submit hands out jobs 1..n at once (the queue holds them until a worker
// is free) and prints each result as it comes.
func submit(ctx context.Context, q *provider.Queue, n int) {
	var wg sync.WaitGroup
	for job := 1; job <= n; job++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := q.Submit(ctx, false, []byte(strconv.Itoa(job)))
			if err != nil {
				fmt.Printf("job %d failed: %v\n", job, err)
				return
			}
			result, by, _ := strings.Cut(m.Text(), " ")
			fmt.Printf("job %d = %s (by %s)\n", job, result, by)
		}()
	}
	wg.Wait()
	s := q.Stats()
	fmt.Printf("%d jobs done, %d failed, %d redelivered; latency p50 %v p99 %v\n",
		s.Done, s.Failed, s.Redelivered, s.JobLatency.P50.Round(time.Millisecond), s.JobLatency.P99.Round(time.Millisecond))
}

func shutdown(p *provider.Provider, q *provider.Queue) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = q.Close(ctx)
	_ = p.Shutdown(ctx)
}

// worker connects, subscribes to "jobs" and answers each job with the
// square of its number, after work, until ctx ends. With crashAt > 0 it
// drops its connection (as a crash would) while it holds its crashAt-th job.
func worker(ctx context.Context, host string, port int, key, name string, work time.Duration, crashAt int) error {
	var w *consumer.Consumer
	var taken atomic.Int32
	w, err := consumer.New(consumer.Options{
		Host:       host,
		Port:       port,
		Parameters: map[string]string{"key": key, "name": name},
		OnRequest: func(r *consumer.Request) {
			n, err := strconv.Atoi(string(r.Message().Data))
			if err != nil {
				_ = r.Fail(1000, "not a number") // not retried: the job is bad
				return
			}
			if r.Redelivered() {
				log.Printf("%s: job %d again (an earlier worker may have run it)", name, n)
			}
			if int(taken.Add(1)) == crashAt {
				log.Printf("%s: crashing with job %d", name, n)
				go w.Destroy()
				return
			}
			go func() { // the handler returns at once: the connection stays responsive
				time.Sleep(work)
				_ = r.Reply(false, fmt.Appendf(nil, "%d %s", n*n, name))
			}()
		},
	})
	if err != nil {
		return err
	}
	defer w.Close()
	if err := w.Connect(ctx); err != nil {
		return err
	}
	// Renewed by the Consumer after every reconnect.
	if err := w.Subscribe(ctx, "jobs"); err != nil {
		return fmt.Errorf("%s: subscribe: %w", name, err)
	}
	<-ctx.Done()
	return nil
}
