package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/networkcluster/networkcluster/provider"
)

// serveURL is the URL that run --target takes for this Provider.
func serveURL(p *provider.Provider, tls bool, key string) string {
	host := "127.0.0.1"
	if a, ok := p.Addr().(*net.TCPAddr); ok && !a.IP.IsUnspecified() {
		host = a.IP.String()
	}
	u := url.URL{Scheme: "ws", Host: net.JoinHostPort(host, strconv.Itoa(p.Port())), Path: p.Path()}
	if tls {
		u.Scheme = "wss"
	}
	if key != "" {
		u.RawQuery = url.Values{"key": {key}}.Encode()
	}
	return u.String()
}

// The loadtest command is in the main module, which never requires
// prometheus/client_golang: serve --metrics writes the Prometheus text
// exposition format (version 0.0.4) by hand, with the names and help of
// the collector in metrics/prom.
type promMetric struct {
	name, typ, help string
	value           func(s *provider.Stats) uint64
}

var promMetrics = []promMetric{
	{"networkcluster_provider_connections", "gauge", "Connections held now (open or closing).",
		func(s *provider.Stats) uint64 { return uint64(s.Connections) }},
	{"networkcluster_provider_connections_opened_total", "counter", "Connections that completed the WebSocket upgrade.",
		func(s *provider.Stats) uint64 { return s.Opened }},
	{"networkcluster_provider_connections_closed_total", "counter", "Upgraded connections that have closed.",
		func(s *provider.Stats) uint64 { return s.Closed }},
	{"networkcluster_provider_messages_received_total", "counter", "Data messages received from Consumers.",
		func(s *provider.Stats) uint64 { return s.MessagesIn }},
	{"networkcluster_provider_received_bytes_total", "counter", "Payload bytes of the data messages received (after inflation).",
		func(s *provider.Stats) uint64 { return s.BytesIn }},
	{"networkcluster_provider_messages_sent_total", "counter", "Data messages queued for Consumers (a broadcast counts once per receiver).",
		func(s *provider.Stats) uint64 { return s.MessagesOut }},
	{"networkcluster_provider_sent_bytes_total", "counter", "Payload bytes of the data messages queued (before framing and compression).",
		func(s *provider.Stats) uint64 { return s.BytesOut }},
	{"networkcluster_provider_messages_compressed_total", "counter", "Messages sent compressed (a broadcast under the shared compressor counts once).",
		func(s *provider.Stats) uint64 { return s.FramesCompressed }},
	{"networkcluster_provider_backpressure_closes_total", "counter", "Connections closed by the backpressure policy.",
		func(s *provider.Stats) uint64 { return s.BackpressureCloses }},
	{"networkcluster_provider_backpressure_refusals_total", "counter", "Messages refused under the refuse-on-backpressure policy.",
		func(s *provider.Stats) uint64 { return s.BackpressureRefusals }},
	{"networkcluster_provider_heartbeat_closes_total", "counter", "Connections closed for not answering the heartbeat.",
		func(s *provider.Stats) uint64 { return s.HeartbeatKills }},
	{"networkcluster_provider_protocol_errors_total", "counter", "Connections failed for violating RFC 6455 or RFC 7692.",
		func(s *provider.Stats) uint64 { return s.ProtocolErrors }},
	{"networkcluster_provider_requests_sent_total", "counter", "Requests sent to Consumers with Connection.Request.",
		func(s *provider.Stats) uint64 { return s.RequestsSent }},
	{"networkcluster_provider_requests_pending", "gauge", "Requests sent to Consumers and not answered yet.",
		func(s *provider.Stats) uint64 { return uint64(max(s.PendingRequests, 0)) }},
	{"networkcluster_provider_late_replies_total", "counter", "Replies that came after their request had ended (dropped).",
		func(s *provider.Stats) uint64 { return s.LateReplies }},
	{"networkcluster_provider_requests_received_total", "counter", "Requests received from Consumers (resends included).",
		func(s *provider.Stats) uint64 { return s.RequestsReceived }},
	{"networkcluster_provider_requests_redelivered_total", "counter", "Requests received flagged as resent after a reconnect (included in requests_received_total).",
		func(s *provider.Stats) uint64 { return s.RequestsRedelivered }},
	{"networkcluster_provider_replies_sent_total", "counter", "Replies and error replies sent to Consumers.",
		func(s *provider.Stats) uint64 { return s.RepliesSent }},
	{"networkcluster_provider_duplicate_requests_total", "counter", "Resent requests recognised as already handled (answered again without running OnRequest).",
		func(s *provider.Stats) uint64 { return s.DedupHits }},
}

// writePromText writes s in the Prometheus text format.
func writePromText(b *strings.Builder, s provider.Stats) {
	for _, m := range promMetrics {
		fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s %s\n%s %d\n", m.name, m.help, m.name, m.typ, m.name, m.value(&s))
	}
	const rej = "networkcluster_provider_upgrades_rejected_total"
	fmt.Fprintf(b, "# HELP %s Refused upgrade requests, by reason.\n# TYPE %s counter\n", rej, rej)
	reasons := make([]string, 0, len(s.Rejected))
	for r := range s.Rejected {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		fmt.Fprintf(b, "%s{reason=%q} %d\n", rej, r, s.Rejected[r])
	}
	const done = "networkcluster_provider_requests_completed_total"
	fmt.Fprintf(b, "# HELP %s Requests sent to Consumers that have ended, by outcome.\n# TYPE %s counter\n", done, done)
	for _, o := range []struct {
		name string
		n    uint64
	}{{"answered", s.RequestsAnswered}, {"failed", s.RequestsFailed}, {"timed_out", s.RequestsTimedOut}, {"disconnected", s.RequestsDisconnected}} {
		fmt.Fprintf(b, "%s{outcome=%q} %d\n", done, o.name, o.n)
	}
}

// serveMetrics serves GET /metrics on addr until stop is called.
func serveMetrics(addr string, p *provider.Provider) (stop func(), bound string, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		var b strings.Builder
		writePromText(&b, p.Stats())
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = w.Write([]byte(b.String()))
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
	}, ln.Addr().String(), nil
}
