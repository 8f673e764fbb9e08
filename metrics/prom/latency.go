package prom

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/networkcluster/networkcluster/consumer"
	"github.com/networkcluster/networkcluster/provider"
)

// DefaultLatencyBuckets are the buckets of a RequestHistogram, in seconds:
// 100 µs to about 26 s, doubling.
var DefaultLatencyBuckets = prometheus.ExponentialBuckets(0.0001, 2, 19)

// RequestHistogram is a histogram of request latency (from the call to its
// outcome), by outcome: answered, failed (an error reply), timed_out,
// disconnected, refused (nothing was sent: not supported, too many
// pending, a closed connection or backpressure). The Stats of the core
// count requests; their latency needs the call timed, which the Request
// methods of this type do around the core's. It is a prometheus.Collector.
type RequestHistogram struct {
	vec *prometheus.HistogramVec
}

// NewRequestHistogram returns a histogram named
// networkcluster_<side>_request_duration_seconds, side "provider" (requests
// the Provider sends) or "consumer". buckets nil means
// DefaultLatencyBuckets; constLabels may be nil.
func NewRequestHistogram(side string, buckets []float64, constLabels prometheus.Labels) *RequestHistogram {
	if buckets == nil {
		buckets = DefaultLatencyBuckets
	}
	return &RequestHistogram{vec: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:        "networkcluster_" + side + "_request_duration_seconds",
		Help:        "Time from sending a request to its outcome, by outcome (answered, failed, timed_out, disconnected, refused).",
		Buckets:     buckets,
		ConstLabels: constLabels,
	}, []string{"outcome"})}
}

// Describe implements prometheus.Collector.
func (h *RequestHistogram) Describe(ch chan<- *prometheus.Desc) { h.vec.Describe(ch) }

// Collect implements prometheus.Collector.
func (h *RequestHistogram) Collect(ch chan<- prometheus.Metric) { h.vec.Collect(ch) }

// Observe records a request that started at start and ended with err.
func (h *RequestHistogram) Observe(start time.Time, err error) {
	h.vec.WithLabelValues(outcomeOf(err)).Observe(time.Since(start).Seconds())
}

// ProviderRequest is c.Request, timed.
func (h *RequestHistogram) ProviderRequest(ctx context.Context, c *provider.Connection, binary bool, data []byte) (provider.Message, error) {
	start := time.Now()
	m, err := c.Request(ctx, binary, data)
	h.Observe(start, err)
	return m, err
}

// ConsumerRequest is c.Request, timed.
func (h *RequestHistogram) ConsumerRequest(ctx context.Context, c *consumer.Consumer, binary bool, data []byte) (consumer.Message, error) {
	start := time.Now()
	m, err := c.Request(ctx, binary, data)
	h.Observe(start, err)
	return m, err
}

func outcomeOf(err error) string {
	var pr *provider.RemoteError
	var cr *consumer.RemoteError
	switch {
	case err == nil:
		return "answered"
	case errors.As(err, &pr), errors.As(err, &cr):
		return "failed"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return "timed_out"
	case errors.Is(err, provider.ErrDisconnected), errors.Is(err, consumer.ErrDisconnected):
		return "disconnected"
	}
	return "refused"
}
