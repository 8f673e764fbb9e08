package consumer

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/internal/testcert"
)

// TestURLOption: Options.URL is split into the fields it replaces.
func TestURLOption(t *testing.T) {
	for _, tc := range []struct {
		url        string
		params     map[string]string
		host       string
		port       int
		path       string
		tls        bool
		wantParams map[string]string
	}{
		{url: "ws://example.com:9000/connect?key=s3", host: "example.com", port: 9000, path: "/connect", wantParams: map[string]string{"key": "s3"}},
		{url: "wss://example.com/ws", host: "example.com", port: 443, path: "/ws", tls: true},
		{url: "WS://example.com", host: "example.com", port: 80, path: "/"},
		{url: "ws://[::1]:8080/a/b?x=1&y=a+b", host: "::1", port: 8080, path: "/a/b", wantParams: map[string]string{"x": "1", "y": "a b", "team": "t"},
			params: map[string]string{"team": "t"}},
	} {
		o := Options{URL: tc.url, Parameters: tc.params}
		got, err := withURL(o)
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		if got.Host != tc.host || got.Port != tc.port || got.Path != tc.path || got.TLS != tc.tls {
			t.Errorf("%s: host %q port %d path %q tls %v", tc.url, got.Host, got.Port, got.Path, got.TLS)
		}
		if fmt.Sprint(got.Parameters) != fmt.Sprint(tc.wantParams) && !(len(tc.wantParams) == 0 && len(got.Parameters) == 0) {
			t.Errorf("%s: parameters %v, want %v", tc.url, got.Parameters, tc.wantParams)
		}
		if _, err := New(o); err != nil {
			t.Errorf("New with %s: %v", tc.url, err)
		}
	}
	// The caller's map is not modified.
	mine := map[string]string{"a": "1"}
	if _, err := withURL(Options{URL: "ws://h/p?b=2", Parameters: mine}); err != nil || len(mine) != 1 {
		t.Errorf("withURL: %v; caller's map %v", err, mine)
	}
}

func TestURLOptionInvalid(t *testing.T) {
	for _, o := range []Options{
		{URL: "http://example.com/"},
		{URL: "example.com:8080"},
		{URL: "ws:///path"},
		{URL: "ws://user:secret@example.com/"},
		{URL: "ws://example.com/#frag"},
		{URL: "ws://example.com:port/"},
		{URL: "ws://example.com/?k=1&k=2"},
		{URL: "ws://example.com/?k=1", Parameters: map[string]string{"k": "2"}},
		{URL: "ws://example.com/", Host: "other"},
		{URL: "ws://example.com/", Port: 1},
		{URL: "ws://example.com/", Path: "/x"},
		{URL: "ws://example.com/", TLS: true},
		{URL: "ws://example.com/", Addrs: []string{"a:1"}},
		{URL: "ws://example.com:70000/"},
		{URL: "ws://example.com/a?b", Parameters: map[string]string{"b": ""}},
	} {
		_, err := New(o)
		if !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%+v: error %v, want ErrInvalidOptions", o.URL, err)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("the error shows the credentials: %v", err)
		}
	}
}

// TestURLConnect connects with a URL, over ws and wss, and the upgrade
// request carries its path and query.
func TestURLConnect(t *testing.T) {
	s := newTestServer(t, srvOpts{mode: hbHeader, interval: time.Second})
	c, err := New(Options{URL: fmt.Sprintf("ws://127.0.0.1:%d/jobs?key=s3", s.port)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	uri := s.lastURI
	s.mu.Unlock()
	if uri != "/jobs?key=s3" {
		t.Errorf("request URI %q, want /jobs?key=s3", uri)
	}

	cert := testcert.New(t)
	st := newTestServer(t, srvOpts{tls: cert.ServerConfig(), mode: hbHeader, interval: time.Second})
	c2, err := New(Options{URL: fmt.Sprintf("wss://127.0.0.1:%d/", st.port), TLSConfig: cert.ClientConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if err := c2.Connect(ctxT(t, 5*time.Second)); err != nil {
		t.Fatalf("wss: %v", err)
	}
}

// FuzzURLOption: any string given as Options.URL is accepted or refused
// with ErrInvalidOptions, never a panic; an accepted one yields a host, a
// port in range and a path that New accepts.
func FuzzURLOption(f *testing.F) {
	for _, s := range []string{"ws://h:1/p?k=v", "wss://[::1]/", "ws://h/%zz", "ws://h:99999", "ws://u@h/", "ws://h/#x", "ws://h/?a=1&a=2", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := withURL(Options{URL: s})
		if err != nil {
			if !errors.Is(err, ErrInvalidOptions) {
				t.Fatalf("%q: %v", s, err)
			}
			return
		}
		if s == "" {
			return
		}
		if o.Host == "" || o.Port < 0 || o.Path == "" {
			t.Fatalf("%q: host %q port %d path %q", s, o.Host, o.Port, o.Path)
		}
		if _, err := New(Options{URL: s}); err != nil && !errors.Is(err, ErrInvalidOptions) {
			t.Fatalf("New(%q): %v", s, err)
		}
	})
}
