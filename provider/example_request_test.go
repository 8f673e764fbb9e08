package provider_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/networkcluster/networkcluster/consumer"
	"github.com/networkcluster/networkcluster/provider"
)

// Requests both ways: a worker's result is confirmed by the Provider's
// reply, and the Provider hands out work and hears the worker's answer.
func ExampleConnection_Request() {
	conns := make(chan *provider.Connection, 1)
	p, err := provider.New(provider.Options{
		Addr:   "127.0.0.1:0",
		OnOpen: func(c *provider.Connection) { conns <- c },
		// The Provider's answer to a worker's request: the receipt.
		OnRequest: func(c *provider.Connection, r *provider.Request) {
			_ = r.Reply(false, []byte("stored "+r.Message().Text()))
		},
	})
	if err != nil {
		panic(err)
	}
	if err := p.Start(); err != nil {
		panic(err)
	}
	defer p.Close()

	w, err := consumer.New(consumer.Options{
		Host: "127.0.0.1",
		Port: p.Port(),
		// The worker's answer to the Provider's request, given later from
		// another goroutine, as a long job would.
		OnRequest: func(r *consumer.Request) {
			job := r.Message().Text()
			go func() { _ = r.Reply(false, []byte(job+": done")) }()
		},
	})
	if err != nil {
		panic(err)
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.Connect(ctx); err != nil {
		panic(err)
	}
	c := <-conns

	answer, err := c.Request(ctx, false, []byte("job 7"))
	if err != nil {
		panic(err)
	}
	fmt.Println(answer.Text())

	receipt, err := w.Request(ctx, false, []byte("result of job 7"))
	if err != nil {
		panic(err)
	}
	fmt.Println(receipt.Text())
	// Output:
	// job 7: done
	// stored result of job 7
}

// A handler that cannot do the work fails the request; the requester gets a
// *RemoteError with the code and reason.
func ExampleRequest_Fail() {
	p, _ := provider.New(provider.Options{
		Addr: "127.0.0.1:0",
		OnRequest: func(c *provider.Connection, r *provider.Request) {
			_ = r.Fail(4004, "no such job")
		},
	})
	_ = p.Start()
	defer p.Close()
	w, _ := consumer.New(consumer.Options{Host: "127.0.0.1", Port: p.Port()})
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = w.Connect(ctx)

	_, err := w.Request(ctx, false, []byte("result of job 9"))
	var re *consumer.RemoteError
	if errors.As(err, &re) {
		fmt.Println(re.Code, re.Reason)
	}
	// Output: 4004 no such job
}
