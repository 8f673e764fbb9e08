// Package prom exports the counters of network-cluster to Prometheus. It is
// a module of its own, so that the core never downloads client_golang.
//
// A [ProviderCollector] reads [provider.Provider.Stats] at each scrape (no
// per-message cost), a [ConsumerCollector] [consumer.Consumer.Stats], a
// [QueueCollector] a job queue's [provider.Queue.Stats]; register them with
// a prometheus.Registerer:
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(prom.NewProviderCollector(p, nil))
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// Request latency needs each call timed: a [RequestHistogram] wraps
// Connection.Request and Consumer.Request ([RequestHistogram.ProviderRequest],
// [RequestHistogram.ConsumerRequest]) and exports
// networkcluster_<side>_request_duration_seconds by outcome.
//
// Names follow the Prometheus conventions: the networkcluster_ prefix, the
// side (provider_, consumer_, queue_), base units (bytes, seconds), and
// _total on counters. [ProviderMetrics], [ConsumerMetrics] and
// [QueueMetrics] list them.
package prom
