package main

import (
	"context"
	"testing"
	"time"
)

// TestFailoverLosesNoRequest is the multi-process kill test: 200 Consumers
// with Addrs = two `loadtest serve` processes and Resend on keep requests
// in flight; the Provider holding most of them is SIGKILLed. Every request
// must end in its reply or its ctx error, and the survivor may see at most
// the requests that were in flight on the killed one again.
func TestFailoverLosesNoRequest(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := runFailover(ctx, nil, failoverConfig{Conns: 200, Inflight: 2, Size: 64,
		KillAfter: time.Second, After: 2 * time.Second, Timeout: 30 * time.Second, Interval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", *rep)
	switch {
	case rep.Lost != 0 || rep.Wrong != 0:
		t.Fatalf("%d requests lost, %d wrong replies: %v", rep.Lost, rep.Wrong, rep.LostErrors)
	case rep.Requests != rep.Replies+rep.CtxErrors:
		t.Fatalf("%d requests, %d replies, %d ctx errors", rep.Requests, rep.Replies, rep.CtxErrors)
	case rep.OnKilled == 0 || rep.Moved != 200:
		t.Fatalf("%d consumers on the killed provider, %d on the survivor at the end", rep.OnKilled, rep.Moved)
	case rep.Duplicates > rep.Resent || rep.Resent > uint64(2*rep.OnKilled):
		t.Fatalf("duplicates %d, resent %d, in flight on the killed provider at most %d", rep.Duplicates, rep.Resent, 2*rep.OnKilled)
	}
}
