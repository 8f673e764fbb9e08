package prom_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/networkcluster/networkcluster/consumer"
	"github.com/networkcluster/networkcluster/metrics/prom"
	"github.com/networkcluster/networkcluster/provider"
)

// scrape GETs url and parses the text exposition format with the client
// library's parser.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing the scrape: %v", err)
	}
	return fams
}

func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("metric %s missing", name)
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.Label {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			return m.Counter.GetValue()
		case dto.MetricType_GAUGE:
			return m.Gauge.GetValue()
		}
	}
	t.Fatalf("metric %s%v missing", name, labels)
	return 0
}

// TestScrapeProvider runs a Provider with a real Consumer, exposes the
// collector on a live /metrics endpoint and checks every metric through
// the text parser: names, types and values.
func TestScrapeProvider(t *testing.T) {
	p, err := provider.New(provider.Options{
		Addr: "127.0.0.1:0",
		Auth: provider.Auth{Parameters: map[string]string{"key": "k"}},
		OnMessage: func(c *provider.Connection, m provider.Message) {
			_ = c.SendText(m.Data)
		},
		OnRequest: func(c *provider.Connection, r *provider.Request) {
			_ = r.Reply(false, []byte("done"))
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(prom.NewProviderCollector(p, prometheus.Labels{"provider": "test"}))
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()

	got := make(chan string, 1)
	c, err := consumer.New(consumer.Options{
		Host:       "127.0.0.1",
		Port:       p.Port(),
		Parameters: map[string]string{"key": "k"},
		OnMessage:  func(m consumer.Message) { got <- m.Text() },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Send("hello"); err != nil {
		t.Fatal(err)
	}
	<-got
	if _, err := c.Request(ctx, false, []byte("job")); err != nil {
		t.Fatalf("request: %v", err)
	}
	reg.MustRegister(prom.NewConsumerCollector(c, prometheus.Labels{"provider": "test"}))
	bad, _ := consumer.New(consumer.Options{Host: "127.0.0.1", Port: p.Port(), Parameters: map[string]string{"key": "no"}})
	_ = bad.Connect(ctx) // 403
	bad.Close()

	fams := scrape(t, srv.URL)
	for _, m := range append(prom.ProviderMetrics(), prom.ConsumerMetrics()...) {
		f := fams[m.Name]
		if f == nil {
			t.Errorf("%s missing from the scrape", m.Name)
			continue
		}
		if want := map[string]dto.MetricType{"counter": dto.MetricType_COUNTER, "gauge": dto.MetricType_GAUGE}[m.Type]; f.GetType() != want {
			t.Errorf("%s: type %v, want %s", m.Name, f.GetType(), m.Type)
		}
		if m.Type == "counter" && !strings.HasSuffix(m.Name, "_total") {
			t.Errorf("counter %s does not end in _total", m.Name)
		}
		if !strings.HasPrefix(m.Name, "networkcluster_") {
			t.Errorf("%s lacks the networkcluster_ prefix", m.Name)
		}
		for _, mm := range f.Metric {
			if mm.Label[0].GetName() != "provider" && mm.Label[len(mm.Label)-1].GetName() != "provider" {
				t.Errorf("%s: no const label", m.Name)
			}
		}
	}
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"networkcluster_provider_connections", nil, 1},
		{"networkcluster_provider_connections_opened_total", nil, 1},
		{"networkcluster_provider_messages_received_total", nil, 1},
		{"networkcluster_provider_received_bytes_total", nil, 5},
		{"networkcluster_provider_messages_sent_total", nil, 2}, // the echo and the reply
		{"networkcluster_provider_sent_bytes_total", nil, 9},
		{"networkcluster_provider_upgrades_rejected_total", []string{"reason", "auth"}, 1},
		{"networkcluster_provider_upgrades_rejected_total", []string{"reason", "timeout"}, 0},
		{"networkcluster_provider_requests_received_total", nil, 1},
		{"networkcluster_provider_replies_sent_total", nil, 1},
		{"networkcluster_provider_requests_pending", nil, 0},
		{"networkcluster_consumer_connections_opened_total", nil, 1},
		{"networkcluster_consumer_messages_sent_total", nil, 1},
		{"networkcluster_consumer_messages_received_total", nil, 1},
		{"networkcluster_consumer_requests_sent_total", nil, 1},
		{"networkcluster_consumer_requests_completed_total", []string{"outcome", "answered"}, 1},
		{"networkcluster_consumer_requests_completed_total", []string{"outcome", "timed_out"}, 0},
	}
	for _, ck := range checks {
		if v := value(t, fams, ck.name, ck.labels...); v != ck.want {
			t.Errorf("%s%v = %v, want %v", ck.name, ck.labels, v, ck.want)
		}
	}

	c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for p.Len() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	fams = scrape(t, srv.URL)
	if v := value(t, fams, "networkcluster_provider_connections_closed_total"); v != 1 {
		t.Errorf("closed_total = %v after the Consumer closed, want 1", v)
	}
	if v := value(t, fams, "networkcluster_provider_connections"); v != 0 {
		t.Errorf("connections = %v, want 0", v)
	}
}

// TestRegisterTwice: two Providers in one registry need telling apart.
func TestRegisterTwice(t *testing.T) {
	p1, _ := provider.New(provider.Options{})
	p2, _ := provider.New(provider.Options{})
	reg := prometheus.NewRegistry()
	reg.MustRegister(prom.NewProviderCollector(p1, prometheus.Labels{"provider": "a"}))
	if err := reg.Register(prom.NewProviderCollector(p2, prometheus.Labels{"provider": "a"})); err == nil {
		t.Error("a second collector with the same labels was accepted")
	}
	if err := reg.Register(prom.NewProviderCollector(p2, prometheus.Labels{"provider": "b"})); err != nil {
		t.Errorf("a second collector with other labels: %v", err)
	}
}

// TestLoadtestNamesAgree: loadtest serve --metrics (in the main module,
// which cannot import client_golang) writes the Provider's metrics by
// hand; its names must be the collector's.
func TestLoadtestNamesAgree(t *testing.T) {
	src, err := os.ReadFile("../../loadtest/metrics.go")
	if err != nil {
		t.Fatal(err)
	}
	hand := map[string]bool{}
	for _, m := range regexp.MustCompile(`"(networkcluster_[a-z_]+)"`).FindAllStringSubmatch(string(src), -1) {
		hand[m[1]] = true
	}
	for _, m := range prom.ProviderMetrics() {
		if !hand[m.Name] {
			t.Errorf("loadtest serve --metrics lacks %s", m.Name)
		}
		delete(hand, m.Name)
	}
	for n := range hand {
		t.Errorf("loadtest serve --metrics has %s, which the collector does not", n)
	}
}

// TestRequestHistogram times real requests both ways and scrapes the
// histograms: the answered count and a sum within the test's duration.
func TestRequestHistogram(t *testing.T) {
	p, err := provider.New(provider.Options{
		Addr: "127.0.0.1:0",
		OnRequest: func(c *provider.Connection, r *provider.Request) {
			if string(r.Message().Data) == "fail" {
				_ = r.Fail(4000, "no")
				return
			}
			_ = r.Reply(false, []byte("ok"))
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := consumer.New(consumer.Options{URL: "ws://127.0.0.1:" + strconv.Itoa(p.Port()) + "/connect",
		OnRequest: func(r *consumer.Request) { _ = r.Reply(false, []byte("done")) }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	ch := prom.NewRequestHistogram("consumer", nil, nil)
	ph := prom.NewRequestHistogram("provider", nil, nil)
	reg := prometheus.NewRegistry()
	reg.MustRegister(ch, ph)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()

	began := time.Now()
	for range 3 {
		if _, err := ch.ConsumerRequest(ctx, c, false, []byte("job")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ch.ConsumerRequest(ctx, c, false, []byte("fail")); err == nil {
		t.Fatal("the failed request succeeded")
	}
	if err := p.WaitLen(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := ph.ProviderRequest(ctx, p.Connections()[0], false, []byte("status?")); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(began).Seconds()

	fams := scrape(t, srv.URL)
	hist := func(name, outcome string) *dto.Histogram {
		for _, m := range fams[name].GetMetric() {
			for _, l := range m.Label {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					return m.Histogram
				}
			}
		}
		t.Fatalf("%s{outcome=%q} missing", name, outcome)
		return nil
	}
	h := hist("networkcluster_consumer_request_duration_seconds", "answered")
	if h.GetSampleCount() != 3 || h.GetSampleSum() <= 0 || h.GetSampleSum() > elapsed {
		t.Errorf("consumer answered: count %d sum %v (elapsed %v)", h.GetSampleCount(), h.GetSampleSum(), elapsed)
	}
	if n := hist("networkcluster_consumer_request_duration_seconds", "failed").GetSampleCount(); n != 1 {
		t.Errorf("consumer failed: count %d", n)
	}
	if n := hist("networkcluster_provider_request_duration_seconds", "answered").GetSampleCount(); n != 1 {
		t.Errorf("provider answered: count %d", n)
	}
	if f := fams["networkcluster_provider_request_duration_seconds"]; f.GetType() != dto.MetricType_HISTOGRAM {
		t.Errorf("type %v", f.GetType())
	}
}
