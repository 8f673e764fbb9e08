package provider_test

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/networkcluster/networkcluster/consumer"
	"github.com/networkcluster/networkcluster/provider"
)

// A job queue: the Provider hands each job to one of the workers subscribed
// to "squares" and returns its reply. A worker lost mid-job, one that does
// not answer within AttemptTimeout, or one that fails the job with a
// retryable code would see the job go to another worker, flagged
// redelivered.
func ExampleProvider_NewQueue() {
	p, err := provider.New(provider.Options{
		Addr: "127.0.0.1:0",
		// Workers choose their topics; the Provider decides.
		AuthorizeSubscribe: func(c *provider.Connection, topic string) bool { return topic == "squares" },
	})
	if err != nil {
		panic(err)
	}
	if err := p.Start(); err != nil {
		panic(err)
	}
	defer p.Close()
	q, err := p.NewQueue(provider.QueueOptions{Topic: "squares", MaxInFlight: 2, AttemptTimeout: 5 * time.Second})
	if err != nil {
		panic(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for range 2 {
		w, err := consumer.New(consumer.Options{
			Host: "127.0.0.1",
			Port: p.Port(),
			OnRequest: func(r *consumer.Request) {
				n, err := strconv.Atoi(string(r.Message().Data))
				if err != nil {
					_ = r.Fail(1000, "not a number") // final: not retried
					return
				}
				_ = r.Reply(false, []byte(strconv.Itoa(n*n)))
			},
		})
		if err != nil {
			panic(err)
		}
		defer w.Close()
		if err := w.Connect(ctx); err != nil {
			panic(err)
		}
		if err := w.Subscribe(ctx, "squares"); err != nil {
			panic(err)
		}
	}

	for _, job := range []string{"3", "4", "x"} {
		m, err := q.Submit(ctx, false, []byte(job))
		if err != nil {
			fmt.Println(job, "failed:", err.(*provider.JobError).Err)
			continue
		}
		fmt.Println(job, "squared is", m.Text())
	}
	_ = q.Close(ctx)
	fmt.Println("done:", q.Stats().Done)
	// Output:
	// 3 squared is 9
	// 4 squared is 16
	// x failed: network-cluster: remote error 1000: not a number
	// done: 2
}
