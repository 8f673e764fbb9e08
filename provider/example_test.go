package provider_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/networkcluster/networkcluster/consumer"
	"github.com/networkcluster/networkcluster/provider"
)

// A Provider that authenticates workers by a key parameter and answers each
// message, and one Consumer (a worker) talking to it.
func Example() {
	p, err := provider.New(provider.Options{
		Addr: "127.0.0.1:0", // a free port; the Node default is :8080
		Auth: provider.Auth{Parameters: map[string]string{"key": "SECRET_KEY"}},
		OnMessage: func(c *provider.Connection, m provider.Message) {
			// m.Data is only valid during the call; Send copies it.
			_ = c.Send("done: " + m.Text())
		},
	})
	if err != nil {
		panic(err)
	}
	if err := p.Start(); err != nil {
		panic(err)
	}
	defer p.Close()

	reply := make(chan string, 1)
	w, err := consumer.New(consumer.Options{
		Host:       "127.0.0.1",
		Port:       p.Port(),
		Parameters: map[string]string{"key": "SECRET_KEY", "worker": "w1"},
		OnMessage:  func(m consumer.Message) { reply <- m.Text() },
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
	_ = w.Send("job 42")
	fmt.Println(<-reply)
	// Output: done: job 42
}

// Broadcast frames a message once and queues the same bytes on every
// connection; a slow receiver meets its own backpressure limit instead of
// slowing the others.
func ExampleProvider_Broadcast() {
	p, _ := provider.New(provider.Options{Addr: "127.0.0.1:0"})
	_ = p.Start()
	defer p.Close()

	got := make(chan string, 3)
	for i := 0; i < 3; i++ {
		w, _ := consumer.New(consumer.Options{Host: "127.0.0.1", Port: p.Port(),
			OnMessage: func(m consumer.Message) { got <- m.Text() }})
		defer w.Close()
		_ = w.Connect(context.Background())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.WaitLen(ctx, 3); err != nil {
		fmt.Println(err)
		return
	}
	r, _ := p.Broadcast(false, []byte(`{"state":"go"}`))
	fmt.Println("sent to", r.Sent)
	for i := 0; i < 3; i++ {
		fmt.Println(<-got)
	}
	// Output:
	// sent to 3
	// {"state":"go"}
	// {"state":"go"}
	// {"state":"go"}
}

// Connections subscribe to topics; Publish reaches only the subscribers.
func ExampleProvider_Publish() {
	p, _ := provider.New(provider.Options{
		Addr: "127.0.0.1:0",
		OnOpen: func(c *provider.Connection) {
			// Workers say which queue they serve in a parameter.
			_ = c.Subscribe("queue:" + c.Param("queue"))
		},
	})
	_ = p.Start()
	defer p.Close()

	got := make(chan string, 2)
	for _, q := range []string{"video", "audio"} {
		w, _ := consumer.New(consumer.Options{Host: "127.0.0.1", Port: p.Port(),
			Parameters: map[string]string{"queue": q},
			OnMessage:  func(m consumer.Message) { got <- q + " worker got " + m.Text() }})
		defer w.Close()
		_ = w.Connect(context.Background())
	}
	// Connect returned once the Provider answered the upgrade, which it
	// does after OnOpen has run: both workers are subscribed.
	r, _ := p.Publish("queue:video", false, []byte("transcode clip-7"))
	fmt.Println("sent to", r.Sent)
	fmt.Println(<-got)
	// Output:
	// sent to 1
	// video worker got transcode clip-7
}

// An auth handler sees the request and its parameters; it may block (it runs
// off the event loop). Rejected requests get 403 Unauthorized.
func ExampleAuthHandler() {
	p, _ := provider.New(provider.Options{
		Addr: "127.0.0.1:0",
		Auth: provider.Auth{
			Parameters: map[string]string{"key": "SECRET_KEY"},
			Handler: func(ctx context.Context, r *provider.Handshake, params url.Values) (bool, error) {
				return strings.HasPrefix(r.Header.Get("Authorization"), "Bearer "), nil
			},
		},
	})
	_ = p.Start()
	defer p.Close()

	w, _ := consumer.New(consumer.Options{Host: "127.0.0.1", Port: p.Port(),
		Parameters: map[string]string{"key": "SECRET_KEY"}})
	defer w.Close()
	err := w.Connect(context.Background())
	fmt.Println(err)
	// Output: consumer: handshake rejected: HTTP 403 Forbidden: "Unauthorized"
}
