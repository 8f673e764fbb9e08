package provider_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/networkcluster/networkcluster/consumer"
	"github.com/networkcluster/networkcluster/provider"
)

// BenchmarkQueue compares jobs through a Queue with plain Connection.Request
// calls spread by hand over the same workers at the same concurrency (16
// workers, 32 in flight, 64-byte jobs answered at once), in one run:
// compare the ns/op of the two sub-benchmarks.
//
//	go test -run '^$' -bench Queue -benchtime 20000x ./provider
func BenchmarkQueue(b *testing.B) {
	const workers, inFlight = 16, 32
	p := startProvider(b, provider.Options{})
	payload := make([]byte, 64)
	for range workers {
		startWorker(b, p, func(r *consumer.Request) { _ = r.Reply(true, r.Message().Data) }, consumer.Options{})
	}
	waitFor(b, "workers", func() bool { return p.Len() == workers })
	conns := p.Connections()
	ctx := context.Background()
	run := func(b *testing.B, op func(i int) error) {
		b.ReportAllocs()
		var next atomic.Int64
		var wg sync.WaitGroup
		b.ResetTimer()
		for range inFlight {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1))
					if i > b.N {
						return
					}
					if err := op(i); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	b.Run("request", func(b *testing.B) {
		run(b, func(i int) error {
			_, err := conns[i%workers].Request(ctx, true, payload)
			return err
		})
	})
	b.Run("queue", func(b *testing.B) {
		q := newQueue(b, p, provider.QueueOptions{MaxInFlight: inFlight / workers})
		run(b, func(int) error {
			_, err := q.Submit(ctx, true, payload)
			return err
		})
	})
}

// The Provider's side of a job, Submit to result, allocates a bounded
// number of times (the job, its copy of the data, the waiter channel, the
// reply's copy); the figure includes the in-process worker's allocations.
func TestQueueSubmitAllocs(t *testing.T) {
	if provider.RaceEnabled {
		t.Skip("the race detector allocates")
	}
	p := startProvider(t, provider.Options{})
	startWorker(t, p, func(r *consumer.Request) { _ = r.Reply(true, r.Message().Data) }, consumer.Options{})
	q := newQueue(t, p, provider.QueueOptions{})
	waitFor(t, "worker", func() bool { return q.Stats().Workers == 1 })
	ctx := context.Background()
	payload := make([]byte, 64)
	allocs := testing.AllocsPerRun(2000, func() {
		if _, err := q.Submit(ctx, true, payload); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%.1f allocations per job", allocs)
	if allocs > 12 {
		t.Fatalf("%.1f allocations per job, want at most 12", allocs)
	}
}
