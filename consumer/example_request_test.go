package consumer_test

import (
	"context"
	"fmt"
	"time"

	"github.com/networkcluster/networkcluster/consumer"
)

// A worker that must not lose its results across a Provider restart or a
// failover: several Providers in Addrs, and Resend, so that a request left
// unanswered by a lost connection is sent again on the next one (flagged
// redelivered: the Provider answers a resend it has handled from its
// de-duplication window; another Provider handles it again, so handlers are
// idempotent).
func ExampleOptions_resend() {
	w, err := consumer.New(consumer.Options{
		Addrs:     []string{"provider-1.example:8080", "provider-2.example:8080", "provider-3.example:8080"},
		Resend:    true,
		Reconnect: consumer.Reconnect{Interval: time.Second},
	})
	if err != nil {
		panic(err)
	}
	defer w.Close()
	_ = func(ctx context.Context) error {
		if err := w.Connect(ctx); err != nil {
			return err
		}
		// A nil error means the Provider's handler has the result.
		_, err := w.Request(ctx, false, []byte(`{"job":42,"result":"ok"}`))
		return err
	}
	fmt.Println(w.RemoteAddr() != "")
	// Output: true
}
