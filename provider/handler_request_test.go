package provider_test

import (
	"context"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/consumer"
	"github.com/networkcluster/networkcluster/provider"
)

// An OnMessage handler may make a request to its own Consumer and wait for
// the answer: replies are taken by the read side, not queued behind the
// handler that waits for them.
func TestHandlerWaitsForItsOwnRequest(t *testing.T) {
	p, err := provider.New(provider.Options{
		Addr: "127.0.0.1:0",
		OnMessage: func(c *provider.Connection, m provider.Message) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			answer, err := c.Request(ctx, false, []byte("details of "+m.Text()))
			if err != nil {
				_ = c.Send("request failed: " + err.Error())
				return
			}
			_ = c.Send("got " + answer.Text())
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	got := make(chan string, 1)
	w, err := consumer.New(consumer.Options{
		Host:      "127.0.0.1",
		Port:      p.Port(),
		OnRequest: func(r *consumer.Request) { _ = r.Reply(false, []byte("answer to "+r.Message().Text())) },
		OnMessage: func(m consumer.Message) { got <- m.Text() },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Send("job 1"); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if s != "got answer to details of job 1" {
			t.Fatalf("got %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer")
	}
}
