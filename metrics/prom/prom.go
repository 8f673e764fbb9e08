package prom

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/networkcluster/networkcluster/consumer"
	"github.com/networkcluster/networkcluster/provider"
)

// Metric describes one exported metric family.
type Metric struct {
	Name  string // full name
	Type  string // "counter" or "gauge"
	Label string // the one variable label, or ""
	Help  string
}

// sample is one value of a family (label value "" without a label).
type sample struct {
	label string
	v     float64
}

// spec is a Metric with the function that reads it from a Stats value.
type spec[S any] struct {
	Metric
	read func(s *S) []sample
}

func one[S any](f func(s *S) float64) func(s *S) []sample {
	return func(s *S) []sample { return []sample{{v: f(s)}} }
}

// outcomes are the ends of the requests a side sent.
func outcomes(answered, failed, timedOut, disconnected uint64) []sample {
	return []sample{
		{"answered", float64(answered)}, {"failed", float64(failed)},
		{"timed_out", float64(timedOut)}, {"disconnected", float64(disconnected)},
	}
}

const outcomeHelp = " outcome: answered (a reply), failed (an error reply), timed_out, disconnected (the connection ended first)."

var providerSpecs = []spec[provider.Stats]{
	{Metric{"networkcluster_provider_connections", "gauge", "", "Connections held now (open or closing)."},
		one(func(s *provider.Stats) float64 { return float64(s.Connections) })},
	{Metric{"networkcluster_provider_connections_opened_total", "counter", "", "Connections that completed the WebSocket upgrade."},
		one(func(s *provider.Stats) float64 { return float64(s.Opened) })},
	{Metric{"networkcluster_provider_connections_closed_total", "counter", "", "Upgraded connections that have closed."},
		one(func(s *provider.Stats) float64 { return float64(s.Closed) })},
	{Metric{"networkcluster_provider_messages_received_total", "counter", "", "Data messages received from Consumers."},
		one(func(s *provider.Stats) float64 { return float64(s.MessagesIn) })},
	{Metric{"networkcluster_provider_received_bytes_total", "counter", "", "Payload bytes of the data messages received (after inflation)."},
		one(func(s *provider.Stats) float64 { return float64(s.BytesIn) })},
	{Metric{"networkcluster_provider_messages_sent_total", "counter", "", "Data messages queued for Consumers (a broadcast counts once per receiver)."},
		one(func(s *provider.Stats) float64 { return float64(s.MessagesOut) })},
	{Metric{"networkcluster_provider_sent_bytes_total", "counter", "", "Payload bytes of the data messages queued (before framing and compression)."},
		one(func(s *provider.Stats) float64 { return float64(s.BytesOut) })},
	{Metric{"networkcluster_provider_messages_compressed_total", "counter", "", "Messages sent compressed (a broadcast under the shared compressor counts once)."},
		one(func(s *provider.Stats) float64 { return float64(s.FramesCompressed) })},
	{Metric{"networkcluster_provider_backpressure_closes_total", "counter", "", "Connections closed by the backpressure policy."},
		one(func(s *provider.Stats) float64 { return float64(s.BackpressureCloses) })},
	{Metric{"networkcluster_provider_backpressure_refusals_total", "counter", "", "Messages refused under the refuse-on-backpressure policy."},
		one(func(s *provider.Stats) float64 { return float64(s.BackpressureRefusals) })},
	{Metric{"networkcluster_provider_heartbeat_closes_total", "counter", "", "Connections closed for not answering the heartbeat."},
		one(func(s *provider.Stats) float64 { return float64(s.HeartbeatKills) })},
	{Metric{"networkcluster_provider_protocol_errors_total", "counter", "", "Connections failed for violating RFC 6455 or RFC 7692."},
		one(func(s *provider.Stats) float64 { return float64(s.ProtocolErrors) })},
	{Metric{"networkcluster_provider_upgrades_rejected_total", "counter", "reason",
		"Refused upgrade requests, by reason (bad_request, not_found, method, upgrade, too_large, auth, timeout, busy)."},
		func(s *provider.Stats) []sample {
			out := make([]sample, 0, len(s.Rejected))
			for r, n := range s.Rejected {
				out = append(out, sample{r, float64(n)})
			}
			sort.Slice(out, func(i, j int) bool { return out[i].label < out[j].label })
			return out
		}},
	{Metric{"networkcluster_provider_requests_sent_total", "counter", "", "Requests sent to Consumers with Connection.Request."},
		one(func(s *provider.Stats) float64 { return float64(s.RequestsSent) })},
	{Metric{"networkcluster_provider_requests_completed_total", "counter", "outcome", "Requests sent to Consumers that have ended, by" + outcomeHelp},
		func(s *provider.Stats) []sample {
			return outcomes(s.RequestsAnswered, s.RequestsFailed, s.RequestsTimedOut, s.RequestsDisconnected)
		}},
	{Metric{"networkcluster_provider_requests_pending", "gauge", "", "Requests sent to Consumers and not answered yet."},
		one(func(s *provider.Stats) float64 { return float64(s.PendingRequests) })},
	{Metric{"networkcluster_provider_late_replies_total", "counter", "", "Replies that came after their request had ended (dropped)."},
		one(func(s *provider.Stats) float64 { return float64(s.LateReplies) })},
	{Metric{"networkcluster_provider_requests_received_total", "counter", "", "Requests received from Consumers (resends included)."},
		one(func(s *provider.Stats) float64 { return float64(s.RequestsReceived) })},
	{Metric{"networkcluster_provider_requests_redelivered_total", "counter", "", "Requests received flagged as resent after a reconnect (included in requests_received_total)."},
		one(func(s *provider.Stats) float64 { return float64(s.RequestsRedelivered) })},
	{Metric{"networkcluster_provider_replies_sent_total", "counter", "", "Replies and error replies sent to Consumers."},
		one(func(s *provider.Stats) float64 { return float64(s.RepliesSent) })},
	{Metric{"networkcluster_provider_duplicate_requests_total", "counter", "", "Resent requests recognised as already handled (answered again without running OnRequest)."},
		one(func(s *provider.Stats) float64 { return float64(s.DedupHits) })},
}

var consumerSpecs = []spec[consumer.Stats]{
	{Metric{"networkcluster_consumer_connections_opened_total", "counter", "", "Connections to a Provider opened (reconnections included)."},
		one(func(s *consumer.Stats) float64 { return float64(s.Opens) })},
	{Metric{"networkcluster_consumer_disconnects_total", "counter", "", "Opened connections lost or closed since."},
		one(func(s *consumer.Stats) float64 { return float64(s.Disconnects) })},
	{Metric{"networkcluster_consumer_messages_sent_total", "counter", "", "Data messages sent (requests and replies not included)."},
		one(func(s *consumer.Stats) float64 { return float64(s.MessagesSent) })},
	{Metric{"networkcluster_consumer_messages_received_total", "counter", "", "Data messages received (requests and replies not included)."},
		one(func(s *consumer.Stats) float64 { return float64(s.MessagesReceived) })},
	{Metric{"networkcluster_consumer_requests_sent_total", "counter", "", "Requests sent to the Provider (the first time)."},
		one(func(s *consumer.Stats) float64 { return float64(s.RequestsSent) })},
	{Metric{"networkcluster_consumer_requests_completed_total", "counter", "outcome", "Requests sent to the Provider that have ended, by" + outcomeHelp},
		func(s *consumer.Stats) []sample {
			return outcomes(s.RequestsAnswered, s.RequestsFailed, s.RequestsTimedOut, s.RequestsDisconnected)
		}},
	{Metric{"networkcluster_consumer_requests_resent_total", "counter", "", "Requests sent again after a reconnection."},
		one(func(s *consumer.Stats) float64 { return float64(s.Resent) })},
	{Metric{"networkcluster_consumer_requests_pending", "gauge", "", "Requests sent to the Provider and not answered yet."},
		one(func(s *consumer.Stats) float64 { return float64(s.PendingRequests) })},
	{Metric{"networkcluster_consumer_late_replies_total", "counter", "", "Replies that came after their request had ended (dropped)."},
		one(func(s *consumer.Stats) float64 { return float64(s.LateReplies) })},
	{Metric{"networkcluster_consumer_requests_received_total", "counter", "", "Requests received from the Provider."},
		one(func(s *consumer.Stats) float64 { return float64(s.RequestsReceived) })},
	{Metric{"networkcluster_consumer_replies_sent_total", "counter", "", "Replies and error replies sent to the Provider."},
		one(func(s *consumer.Stats) float64 { return float64(s.RepliesSent) })},
}

// quantiles are the points of a provider.Latency, as the label values of
// the queue's latency gauges.
func quantiles(l provider.Latency) []sample {
	return []sample{
		{"0.5", l.P50.Seconds()}, {"0.9", l.P90.Seconds()},
		{"0.99", l.P99.Seconds()}, {"1", l.Max.Seconds()},
	}
}

const latencyHelp = ", over the last 2048 jobs done (0 while none), by quantile (0.5, 0.9, 0.99, and 1 for the maximum)."

var queueSpecs = []spec[provider.QueueStats]{
	{Metric{"networkcluster_queue_workers", "gauge", "", "Connections that take this queue's jobs now."},
		one(func(s *provider.QueueStats) float64 { return float64(s.Workers) })},
	{Metric{"networkcluster_queue_jobs_waiting", "gauge", "", "Jobs waiting for a worker now."},
		one(func(s *provider.QueueStats) float64 { return float64(s.Queued) })},
	{Metric{"networkcluster_queue_jobs_in_flight", "gauge", "", "Jobs with a worker now."},
		one(func(s *provider.QueueStats) float64 { return float64(s.InFlight) })},
	{Metric{"networkcluster_queue_jobs_submitted_total", "counter", "", "Jobs accepted by Submit and SubmitAsync."},
		one(func(s *provider.QueueStats) float64 { return float64(s.Submitted) })},
	{Metric{"networkcluster_queue_jobs_completed_total", "counter", "outcome",
		"Accepted jobs that have ended, by outcome: done (a worker's result), failed (a JobError, the Submit ctx's error, or the Provider or queue closed)."},
		func(s *provider.QueueStats) []sample {
			return []sample{{"done", float64(s.Done)}, {"failed", float64(s.Failed)}}
		}},
	{Metric{"networkcluster_queue_jobs_refused_total", "counter", "", "Submit and SubmitAsync calls refused with ErrQueueFull."},
		one(func(s *provider.QueueStats) float64 { return float64(s.Refused) })},
	{Metric{"networkcluster_queue_attempts_total", "counter", "", "Jobs sent to a worker (redeliveries included)."},
		one(func(s *provider.QueueStats) float64 { return float64(s.Attempts) })},
	{Metric{"networkcluster_queue_redeliveries_total", "counter", "", "Jobs sent again, flagged redelivered, after a worker was lost, timed out or failed them retryably."},
		one(func(s *provider.QueueStats) float64 { return float64(s.Redelivered) })},
	{Metric{"networkcluster_queue_job_duration_seconds", "gauge", "quantile", "Time from Submit to the result of a job done" + latencyHelp},
		func(s *provider.QueueStats) []sample { return quantiles(s.JobLatency) }},
	{Metric{"networkcluster_queue_attempt_duration_seconds", "gauge", "quantile", "Time from sending a job done to the worker that did it to its result" + latencyHelp},
		func(s *provider.QueueStats) []sample { return quantiles(s.AttemptLatency) }},
	{Metric{"networkcluster_queue_duration_window_samples", "gauge", "kind", "Samples in the latency windows: job (job_duration_seconds) and attempt (attempt_duration_seconds)."},
		func(s *provider.QueueStats) []sample {
			return []sample{{"attempt", float64(s.AttemptLatency.N)}, {"job", float64(s.JobLatency.N)}}
		}},
}

func metricsOf[S any](specs []spec[S]) []Metric {
	out := make([]Metric, len(specs))
	for i, s := range specs {
		out[i] = s.Metric
	}
	return out
}

// ProviderMetrics lists the metrics of a ProviderCollector.
func ProviderMetrics() []Metric { return metricsOf(providerSpecs) }

// ConsumerMetrics lists the metrics of a ConsumerCollector.
func ConsumerMetrics() []Metric { return metricsOf(consumerSpecs) }

// QueueMetrics lists the metrics of a QueueCollector.
func QueueMetrics() []Metric { return metricsOf(queueSpecs) }

// collector reads a Stats snapshot once per scrape.
type collector[S any] struct {
	stats func() S
	specs []spec[S]
	descs []*prometheus.Desc
}

func newCollector[S any](stats func() S, specs []spec[S], constLabels prometheus.Labels) *collector[S] {
	c := &collector[S]{stats: stats, specs: specs}
	for _, s := range specs {
		var labels []string
		if s.Label != "" {
			labels = []string{s.Label}
		}
		c.descs = append(c.descs, prometheus.NewDesc(s.Name, s.Help, labels, constLabels))
	}
	return c
}

func (c *collector[S]) describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *collector[S]) collect(ch chan<- prometheus.Metric) {
	st := c.stats()
	for i, s := range c.specs {
		t := prometheus.CounterValue
		if s.Type == "gauge" {
			t = prometheus.GaugeValue
		}
		for _, smp := range s.read(&st) {
			if s.Label == "" {
				ch <- prometheus.MustNewConstMetric(c.descs[i], t, smp.v)
			} else {
				ch <- prometheus.MustNewConstMetric(c.descs[i], t, smp.v, smp.label)
			}
		}
	}
}

// ProviderCollector is a prometheus.Collector for one Provider: it calls
// Provider.Stats once per scrape (nothing on the message path). Safe for
// concurrent use.
type ProviderCollector struct{ c *collector[provider.Stats] }

// NewProviderCollector returns a collector of p's Stats. constLabels (may
// be nil) are added to every metric, to tell several Providers of one
// process apart.
func NewProviderCollector(p *provider.Provider, constLabels prometheus.Labels) *ProviderCollector {
	return &ProviderCollector{newCollector(p.Stats, providerSpecs, constLabels)}
}

// Describe implements prometheus.Collector.
func (c *ProviderCollector) Describe(ch chan<- *prometheus.Desc) { c.c.describe(ch) }

// Collect implements prometheus.Collector.
func (c *ProviderCollector) Collect(ch chan<- prometheus.Metric) { c.c.collect(ch) }

// ConsumerCollector is a prometheus.Collector for one Consumer: it calls
// Consumer.Stats once per scrape. Safe for concurrent use.
type ConsumerCollector struct{ c *collector[consumer.Stats] }

// NewConsumerCollector returns a collector of c's Stats; constLabels as
// for NewProviderCollector.
func NewConsumerCollector(c *consumer.Consumer, constLabels prometheus.Labels) *ConsumerCollector {
	return &ConsumerCollector{newCollector(c.Stats, consumerSpecs, constLabels)}
}

// Describe implements prometheus.Collector.
func (c *ConsumerCollector) Describe(ch chan<- *prometheus.Desc) { c.c.describe(ch) }

// Collect implements prometheus.Collector.
func (c *ConsumerCollector) Collect(ch chan<- prometheus.Metric) { c.c.collect(ch) }

// QueueCollector is a prometheus.Collector for one job queue
// (provider.Queue): it calls Queue.Stats once per scrape (nothing on the
// job path). Safe for concurrent use.
//
// Its latency metrics are gauges of the quantiles Queue.Stats computes
// over its window of recent jobs, not a histogram: for a histogram of
// every job, time the Submit calls.
type QueueCollector struct {
	c *collector[provider.QueueStats]
}

// NewQueueCollector returns a collector of q's Stats. constLabels (may be
// nil) are added to every metric: give each queue of a process its own,
// e.g. prometheus.Labels{"queue": "resize"}.
func NewQueueCollector(q *provider.Queue, constLabels prometheus.Labels) *QueueCollector {
	return &QueueCollector{newCollector(q.Stats, queueSpecs, constLabels)}
}

// Describe implements prometheus.Collector.
func (c *QueueCollector) Describe(ch chan<- *prometheus.Desc) { c.c.describe(ch) }

// Collect implements prometheus.Collector.
func (c *QueueCollector) Collect(ch chan<- prometheus.Metric) { c.c.collect(ch) }
