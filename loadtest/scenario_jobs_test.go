package main

import (
	"testing"
	"time"
)

// TestJobsScenario runs the jobs scenario at a tiny size against `loadtest
// serve`, plain and with a fifth of the workers dropped halfway: jobs
// flow, and none is lost.
func TestJobsScenario(t *testing.T) {
	srv := startServe(t)
	ctx := testCtx(t, time.Minute)
	e := srv.env(nil, 2, baseClient())
	for _, kill := range []float64{0, 0.2} {
		sc := tiny(scJobs, 10)
		sc.Inflight, sc.KillShare = 2, kill
		rs, err := e.run(ctx, sc)
		if err != nil {
			t.Fatal(err)
		}
		r := rs[0]
		if mustMetric(t, r, "msgs_per_s") <= 0 || r.Latency == nil {
			t.Fatalf("%+v", r)
		}
		if lost := mustMetric(t, r, "lost_jobs"); lost != 0 {
			t.Fatalf("%s: %v jobs lost: %v", r.Label, lost, r.Notes)
		}
		mustMetric(t, r, "redelivered")
		mustMetric(t, r, "job_p99_us")
		if _, ok := r.get("bad_jobs"); ok {
			t.Fatalf("%s: malformed jobs", r.Label)
		}
	}
	if err := (&scenarioConfig{Scenario: scEcho, Conns: 1, Duration: time.Second, Inflight: 1, Size: 1, Parallel: 1, KillShare: 0.1}).validate(); err == nil {
		t.Fatal("--kill-share accepted for echo")
	}
}
