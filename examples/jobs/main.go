// Command jobs is a small job-distribution cluster: a coordinator (the
// Provider) hands jobs to workers (Consumers) as they report ready and
// collects the results.
//
//	go run ./examples/jobs                      # coordinator and 4 workers in one process
//	go run ./examples/jobs -role coordinator -addr :8080 -jobs 100
//	go run ./examples/jobs -role worker -host 10.0.0.5 -port 8080 -name w7
//
// The coordinator requires the parameter key=SECRET_KEY (use -key to change
// it); each worker sends "READY", receives a job, answers "RESULT <job>
// <value>" and is given the next job.
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
	workers := flag.Int("workers", 4, "both: number of workers")
	name := flag.String("name", "worker", "worker: name")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	switch *role {
	case "coordinator":
		p, done := coordinator(*addr, *key, *jobs)
		log.Printf("coordinator listening on %s", p.Addr())
		select {
		case <-done:
		case <-ctx.Done():
		}
		shutdown(p)
	case "worker":
		if err := worker(ctx, *host, *port, *key, *name); err != nil {
			log.Fatal(err)
		}
	case "both":
		p, done := coordinator(*addr, *key, *jobs)
		var wg sync.WaitGroup
		for i := 0; i < *workers; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				wctx, cancel := context.WithCancel(ctx)
				defer cancel()
				go func() { <-done; cancel() }()
				if err := worker(wctx, "127.0.0.1", p.Port(), *key, "w"+strconv.Itoa(i)); err != nil {
					log.Print(err)
				}
			}(i)
		}
		<-done
		shutdown(p)
		wg.Wait()
	default:
		log.Fatalf("unknown role %q", *role)
	}
}

// coordinator starts a Provider that deals out jobs 1..n and closes done
// when every result is in.
func coordinator(addr, key string, n int) (*provider.Provider, chan struct{}) {
	var mu sync.Mutex
	next, results := 1, 0
	done := make(chan struct{})
	give := func(c *provider.Connection) {
		mu.Lock()
		job := next
		if job <= n {
			next++
		}
		mu.Unlock()
		if job <= n {
			_ = c.Send("JOB " + strconv.Itoa(job))
		}
	}
	p, err := provider.New(provider.Options{
		Addr: addr,
		Auth: provider.Auth{Parameters: map[string]string{"key": key}},
		OnMessage: func(c *provider.Connection, m provider.Message) {
			switch f := strings.Fields(m.Text()); {
			case len(f) == 1 && f[0] == "READY":
				give(c)
			case len(f) == 3 && f[0] == "RESULT":
				fmt.Printf("job %s = %s (by %s)\n", f[1], f[2], c.Param("name"))
				mu.Lock()
				results++
				all := results == n
				mu.Unlock()
				if all {
					close(done)
					return
				}
				give(c)
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := p.Start(); err != nil {
		log.Fatal(err)
	}
	return p, done
}

func shutdown(p *provider.Provider) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = p.Shutdown(ctx)
}

// worker connects, says READY, and answers each job with the square of its
// number until ctx ends or the coordinator goes away.
func worker(ctx context.Context, host string, port int, key, name string) error {
	var w *consumer.Consumer
	w, err := consumer.New(consumer.Options{
		Host:       host,
		Port:       port,
		Parameters: map[string]string{"key": key, "name": name},
		OnOpen:     func() { _ = w.Send("READY") },
		OnMessage: func(m consumer.Message) {
			job, ok := strings.CutPrefix(m.Text(), "JOB ")
			if !ok {
				return
			}
			n, _ := strconv.Atoi(job)
			_ = w.Send(fmt.Sprintf("RESULT %d %d", n, n*n))
		},
	})
	if err != nil {
		return err
	}
	defer w.Close()
	if err := w.Connect(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}
