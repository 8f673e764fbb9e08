package prom

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/networkcluster/networkcluster/provider"
)

// Metric describes one exported metric.
type Metric struct {
	Name string // full name
	Type string // "counter" or "gauge"
	Help string
}

// providerMetric is a Metric with the Stats field it reads.
type providerMetric struct {
	Metric
	value func(s *provider.Stats) float64
}

var providerMetrics = []providerMetric{
	{Metric{"networkcluster_provider_connections", "gauge",
		"Connections held now (open or closing)."},
		func(s *provider.Stats) float64 { return float64(s.Connections) }},
	{Metric{"networkcluster_provider_connections_opened_total", "counter",
		"Connections that completed the WebSocket upgrade."},
		func(s *provider.Stats) float64 { return float64(s.Opened) }},
	{Metric{"networkcluster_provider_connections_closed_total", "counter",
		"Upgraded connections that have closed."},
		func(s *provider.Stats) float64 { return float64(s.Closed) }},
	{Metric{"networkcluster_provider_messages_received_total", "counter",
		"Data messages received from Consumers."},
		func(s *provider.Stats) float64 { return float64(s.MessagesIn) }},
	{Metric{"networkcluster_provider_received_bytes_total", "counter",
		"Payload bytes of the data messages received (after inflation)."},
		func(s *provider.Stats) float64 { return float64(s.BytesIn) }},
	{Metric{"networkcluster_provider_messages_sent_total", "counter",
		"Data messages queued for Consumers (a broadcast counts once per receiver)."},
		func(s *provider.Stats) float64 { return float64(s.MessagesOut) }},
	{Metric{"networkcluster_provider_sent_bytes_total", "counter",
		"Payload bytes of the data messages queued (before framing and compression)."},
		func(s *provider.Stats) float64 { return float64(s.BytesOut) }},
	{Metric{"networkcluster_provider_messages_compressed_total", "counter",
		"Messages sent compressed (a broadcast under the shared compressor counts once)."},
		func(s *provider.Stats) float64 { return float64(s.FramesCompressed) }},
	{Metric{"networkcluster_provider_backpressure_closes_total", "counter",
		"Connections closed by the backpressure policy."},
		func(s *provider.Stats) float64 { return float64(s.BackpressureCloses) }},
	{Metric{"networkcluster_provider_backpressure_refusals_total", "counter",
		"Messages refused under the refuse-on-backpressure policy."},
		func(s *provider.Stats) float64 { return float64(s.BackpressureRefusals) }},
	{Metric{"networkcluster_provider_heartbeat_closes_total", "counter",
		"Connections closed for not answering the heartbeat."},
		func(s *provider.Stats) float64 { return float64(s.HeartbeatKills) }},
	{Metric{"networkcluster_provider_protocol_errors_total", "counter",
		"Connections failed for violating RFC 6455 or RFC 7692."},
		func(s *provider.Stats) float64 { return float64(s.ProtocolErrors) }},
}

var rejectedMetric = Metric{"networkcluster_provider_upgrades_rejected_total", "counter",
	"Refused upgrade requests, by reason (bad_request, not_found, method, upgrade, too_large, auth, timeout, busy)."}

// Metrics lists every metric the collectors export.
func Metrics() []Metric {
	out := make([]Metric, 0, len(providerMetrics)+1)
	for _, m := range providerMetrics {
		out = append(out, m.Metric)
	}
	return append(out, rejectedMetric)
}

// ProviderCollector is a prometheus.Collector for one Provider. It calls
// Stats once per scrape. Safe for concurrent use.
type ProviderCollector struct {
	p        *provider.Provider
	descs    []*prometheus.Desc
	rejected *prometheus.Desc
}

// NewProviderCollector returns a collector of p's Stats. constLabels (may
// be nil) are added to every metric, to tell several Providers of one
// process apart.
func NewProviderCollector(p *provider.Provider, constLabels prometheus.Labels) *ProviderCollector {
	c := &ProviderCollector{p: p}
	for _, m := range providerMetrics {
		c.descs = append(c.descs, prometheus.NewDesc(m.Name, m.Help, nil, constLabels))
	}
	c.rejected = prometheus.NewDesc(rejectedMetric.Name, rejectedMetric.Help, []string{"reason"}, constLabels)
	return c
}

// Describe implements prometheus.Collector.
func (c *ProviderCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
	ch <- c.rejected
}

// Collect implements prometheus.Collector.
func (c *ProviderCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.p.Stats()
	for i, m := range providerMetrics {
		t := prometheus.CounterValue
		if m.Type == "gauge" {
			t = prometheus.GaugeValue
		}
		ch <- prometheus.MustNewConstMetric(c.descs[i], t, m.value(&s))
	}
	reasons := make([]string, 0, len(s.Rejected))
	for r := range s.Rejected {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		ch <- prometheus.MustNewConstMetric(c.rejected, prometheus.CounterValue, float64(s.Rejected[r]), r)
	}
}
