package prom_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/networkcluster/networkcluster/consumer"
	"github.com/networkcluster/networkcluster/metrics/prom"
	"github.com/networkcluster/networkcluster/provider"
)

// TestScrapeQueue runs a job Queue with a real Consumer as its worker,
// exposes a QueueCollector on a live /metrics endpoint and checks every
// metric through the text parser: a job refused while the queue is full,
// one waiting for a worker, one done after a redelivery, one failed.
func TestScrapeQueue(t *testing.T) {
	p, err := provider.New(provider.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	q, err := p.NewQueue(provider.QueueOptions{MaxQueued: 1})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(prom.NewQueueCollector(q, prometheus.Labels{"queue": "test"}))
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	began := time.Now()

	// No worker yet: the first job waits, the second finds the queue full.
	first := make(chan error, 1)
	if err := q.SubmitAsync(ctx, false, []byte("a"), func(_ provider.Message, err error) { first <- err }); err != nil {
		t.Fatal(err)
	}
	if err := q.SubmitAsync(ctx, false, []byte("b"), func(provider.Message, error) {}); !errors.Is(err, provider.ErrQueueFull) {
		t.Fatalf("second job on a full queue: %v, want ErrQueueFull", err)
	}
	fams := scrape(t, srv.URL)
	for name, want := range map[string]float64{
		"networkcluster_queue_workers":              0,
		"networkcluster_queue_jobs_waiting":         1,
		"networkcluster_queue_jobs_submitted_total": 1,
		"networkcluster_queue_jobs_refused_total":   1,
	} {
		if v := value(t, fams, name); v != want {
			t.Errorf("before the worker: %s = %v, want %v", name, v, want)
		}
	}

	// The worker fails "retry" retryably on its first attempt and "bad"
	// for good.
	c, err := consumer.New(consumer.Options{
		URL: "ws://127.0.0.1:" + strconv.Itoa(p.Port()) + "/connect",
		OnRequest: func(r *consumer.Request) {
			switch string(r.Message().Data) {
			case "retry":
				if !r.Redelivered() {
					_ = r.Fail(provider.CodeRetryMin, "busy")
					return
				}
			case "bad":
				_ = r.Fail(4000, "bad job")
				return
			}
			_ = r.Reply(false, []byte("ok"))
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-first; err != nil {
		t.Fatalf("the waiting job: %v", err)
	}
	if _, err := q.Submit(ctx, false, []byte("retry")); err != nil {
		t.Fatalf("the redelivered job: %v", err)
	}
	var je *provider.JobError
	if _, err := q.Submit(ctx, false, []byte("bad")); !errors.As(err, &je) {
		t.Fatalf("the bad job: %v, want a *JobError", err)
	}
	elapsed := time.Since(began).Seconds()

	fams = scrape(t, srv.URL)
	for _, m := range prom.QueueMetrics() {
		f := fams[m.Name]
		if f == nil {
			t.Errorf("%s missing from the scrape", m.Name)
			continue
		}
		if want := map[string]dto.MetricType{"counter": dto.MetricType_COUNTER, "gauge": dto.MetricType_GAUGE}[m.Type]; f.GetType() != want {
			t.Errorf("%s: type %v, want %s", m.Name, f.GetType(), m.Type)
		}
		if (m.Type == "counter") != strings.HasSuffix(m.Name, "_total") {
			t.Errorf("%s (%s): only counters end in _total", m.Name, m.Type)
		}
		if !strings.HasPrefix(m.Name, "networkcluster_queue_") {
			t.Errorf("%s lacks the networkcluster_queue_ prefix", m.Name)
		}
		for _, mm := range f.Metric {
			found := false
			for _, l := range mm.Label {
				found = found || l.GetName() == "queue" && l.GetValue() == "test"
			}
			if !found {
				t.Errorf("%s: no const label", m.Name)
			}
		}
	}
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"networkcluster_queue_workers", nil, 1},
		{"networkcluster_queue_jobs_waiting", nil, 0},
		{"networkcluster_queue_jobs_in_flight", nil, 0},
		{"networkcluster_queue_jobs_submitted_total", nil, 3},
		{"networkcluster_queue_jobs_completed_total", []string{"outcome", "done"}, 2},
		{"networkcluster_queue_jobs_completed_total", []string{"outcome", "failed"}, 1},
		{"networkcluster_queue_jobs_refused_total", nil, 1},
		{"networkcluster_queue_attempts_total", nil, 4}, // a, retry twice, bad
		{"networkcluster_queue_redeliveries_total", nil, 1},
		{"networkcluster_queue_duration_window_samples", []string{"kind", "job"}, 2},
		{"networkcluster_queue_duration_window_samples", []string{"kind", "attempt"}, 2},
	}
	for _, ck := range checks {
		if v := value(t, fams, ck.name, ck.labels...); v != ck.want {
			t.Errorf("%s%v = %v, want %v", ck.name, ck.labels, v, ck.want)
		}
	}
	for _, name := range []string{"networkcluster_queue_job_duration_seconds", "networkcluster_queue_attempt_duration_seconds"} {
		prev := 0.0
		for _, qt := range []string{"0.5", "0.9", "0.99", "1"} {
			v := value(t, fams, name, "quantile", qt)
			if v <= 0 || v > elapsed || v < prev {
				t.Errorf("%s{quantile=%s} = %v: want in (0, %v], not below the lower quantile %v", name, qt, v, elapsed, prev)
			}
			prev = v
		}
	}
	// The waiting job took longer than any attempt: it waited for the
	// worker to connect.
	if j, a := value(t, fams, "networkcluster_queue_job_duration_seconds", "quantile", "1"),
		value(t, fams, "networkcluster_queue_attempt_duration_seconds", "quantile", "1"); j < a {
		t.Errorf("job max %v < attempt max %v", j, a)
	}
}
