package prom_test

import (
	"log"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/networkcluster/networkcluster/metrics/prom"
	"github.com/networkcluster/networkcluster/provider"
)

// Expose a Provider's counters on /metrics, next to the WebSocket endpoint.
func ExampleNewProviderCollector() {
	p, err := provider.New(provider.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		log.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(prom.NewProviderCollector(p, nil))

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("/connect", p.Handler())
	_ = mux // serve it with http.ListenAndServe(addr, mux)
}

// Export a job queue's counters and latency, labelled with its name.
func ExampleNewQueueCollector() {
	p, err := provider.New(provider.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		log.Fatal(err)
	}
	q, err := p.NewQueue(provider.QueueOptions{Topic: "resize"})
	if err != nil {
		log.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(prom.NewQueueCollector(q, prometheus.Labels{"queue": "resize"}))

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	_ = mux // serve it with http.ListenAndServe(addr, mux)
}
