package provider

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/frame"
	"github.com/networkcluster/networkcluster/internal/testcert"
	"github.com/networkcluster/networkcluster/internal/wstest"
)

// newMounted returns a Provider that is not started, with the recorder and
// an echo installed, closed when the test ends.
func newMounted(t *testing.T, o Options) (*Provider, *events) {
	t.Helper()
	e := newEvents()
	mustEcho(&o)
	e.hook(&o)
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, e
}

// echoOnce sends a masked text frame and expects it back.
func echoOnce(t *testing.T, c *wstest.Client, msg string) {
	t.Helper()
	if err := c.WriteFrame(true, frame.OpText, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	op, data, err := c.ReadMessage()
	if err != nil || op != frame.OpText || string(data) != msg {
		t.Fatalf("echo: %v, %d bytes, %v; want the %d bytes sent", op, len(data), err, len(msg))
	}
}

// TestHandlerHTTPTest mounts the Provider's Handler on an httptest server:
// an upgrade with a frame sent right behind the request (read ahead by
// net/http) is echoed, required parameters still apply, the refusals before
// the hijack come from net/http, and Close closes the hijacked connection.
func TestHandlerHTTPTest(t *testing.T) {
	before, _ := goroutines()
	p, e := newMounted(t, Options{Auth: Auth{Parameters: map[string]string{"token": "s3"}}})
	srv := httptest.NewServer(p.Handler())
	defer srv.Close()
	addr := srv.Listener.Addr().String()

	first := wstest.Frame(true, frame.OpText, 0, []byte("early"))
	c, err := wstest.Dial(addr, "/anything?token=s3&team=a", nil, first)
	if err != nil || c.Resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", c, err)
	}
	defer c.Close()
	if c.Resp.Header.Get("X-Network-Cluster-Heartbeat") == "" {
		t.Error("the upgrade response lacks the heartbeat header")
	}
	op, data, err := c.ReadMessage()
	if err != nil || op != frame.OpText || string(data) != "early" {
		t.Fatalf("frame sent with the request: %v %q %v", op, data, err)
	}
	echoOnce(t, c, "hello")
	if p.Len() != 1 {
		t.Errorf("Len = %d, want 1", p.Len())
	}
	conn := p.Connections()[0]
	if conn.Parameters().Get("team") != "a" {
		t.Errorf("Parameters = %v", conn.Parameters())
	}
	if conn.RemoteAddr().String() != c.Conn.LocalAddr().String() {
		t.Errorf("RemoteAddr = %v, want %v", conn.RemoteAddr(), c.Conn.LocalAddr())
	}

	bad, err := wstest.Dial(addr, "/x?token=nope", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	bad.Close()
	if bad.Resp.StatusCode != http.StatusForbidden {
		t.Errorf("wrong token: status %d, want 403", bad.Resp.StatusCode)
	}
	for _, tc := range []struct {
		method string
		hdr    string
		want   int
	}{
		{"POST", "Upgrade", http.StatusMethodNotAllowed},
		{"GET", "", http.StatusUpgradeRequired},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+"/x", nil)
		if tc.hdr != "" {
			req.Header.Set("Upgrade", "websocket")
			req.Header.Set("Connection", "Upgrade")
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: status %d, want %d", tc.method, resp.StatusCode, tc.want)
		}
	}
	st := p.Stats()
	if st.Rejected["auth"] != 1 || st.Rejected["method"] != 1 || st.Rejected["upgrade"] != 1 {
		t.Errorf("Rejected = %v, want auth, method and upgrade 1 each", st.Rejected)
	}

	p.Close()
	if !c.WaitEOF() {
		t.Error("the hijacked connection is still open after Close")
	}
	e.wait(t, "OnClose", func(e *events) bool { return len(e.closes) == 1 })
	if code := e.closes[0].code; code != frame.CloseAbnormal {
		t.Errorf("OnClose code %d, want 1006", code)
	}
	// A request after Close is refused by the handler itself.
	resp, err := srv.Client().Get(srv.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("after Close: status %d, want 503", resp.StatusCode)
	}
	if err := p.Start(); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Start after Close = %v", err)
	}
	srv.Close()
	checkNoLeak(t, before)
}

// statusRecorder is a logging middleware's ResponseWriter: it hides
// http.Hijacker but offers Unwrap, as http.ResponseController expects.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// TestHandlerMuxMiddleware mounts the Provider on a real http.Server's
// ServeMux, next to another handler, behind an auth middleware that adds a
// header and a logging middleware that wraps the ResponseWriter. The
// middleware's refusal never reaches the Provider; its header reaches the
// auth handler; the other route keeps working.
func TestHandlerMuxMiddleware(t *testing.T) {
	var sawUser atomic.Value
	p, _ := newMounted(t, Options{
		Path: "/ignored-when-mounted",
		Auth: Auth{Handler: func(_ context.Context, r *Handshake, params url.Values) (bool, error) {
			sawUser.Store(r.Header.Get("X-User") + " " + r.Path + " " + params.Get("q"))
			return r.Header.Get("X-User") == "alice", nil
		}},
	})
	var logged atomic.Int64
	logging := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := &statusRecorder{ResponseWriter: w}
			next.ServeHTTP(rec, r)
			logged.Add(1)
		})
	}
	auth := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer alice-token" {
				http.Error(w, "no", http.StatusUnauthorized)
				return
			}
			r.Header.Set("X-User", "alice")
			next.ServeHTTP(w, r)
		})
	}
	mux := http.NewServeMux()
	mux.Handle("GET /ws/", logging(auth(p.Handler())))
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "fine") })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second}
	go hs.Serve(ln)
	defer hs.Close()
	addr := ln.Addr().String()

	c, err := wstest.Dial(addr, "/ws/jobs?q=1", []string{"Authorization: Bearer alice-token"}, nil)
	if err != nil || c.Resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade through the middleware: %v %v", c, err)
	}
	defer c.Close()
	echoOnce(t, c, "one")
	// The http.Server's read and write deadlines (1 s) no longer apply.
	time.Sleep(1200 * time.Millisecond)
	echoOnce(t, c, "two")
	if got := sawUser.Load(); got != "alice /ignored-when-mounted 1" {
		t.Errorf("auth handler saw %q", got)
	}
	if logged.Load() != 1 {
		t.Errorf("logging middleware ran %d times, want 1", logged.Load())
	}

	anon, err := wstest.Dial(addr, "/ws/jobs", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	anon.Close()
	if anon.Resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without a token: status %d, want 401 from the middleware", anon.Resp.StatusCode)
	}
	resp, err := http.Get("http://" + addr + "/health")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "fine" {
		t.Errorf("/health: %q", b)
	}
	if p.Len() != 1 || p.Stats().Rejected["auth"] != 0 {
		t.Errorf("Len %d, Rejected %v", p.Len(), p.Stats().Rejected)
	}
	// Shutdown of the Provider sends 1001 to the hijacked connection.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Shutdown(ctx) }()
	code, _, err := c.ExpectClose()
	if err != nil || code != frame.CloseGoingAway {
		t.Errorf("close on Shutdown: %d %v, want 1001", code, err)
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// TestHandlerTLS mounts the Provider on an httptest TLS server: the
// hijacked *tls.Conn is served by a goroutine and works the same.
func TestHandlerTLS(t *testing.T) {
	before, _ := goroutines()
	p, _ := newMounted(t, Options{Compressor: 0})
	srv := httptest.NewUnstartedServer(p.Handler())
	cert := testcert.New(t)
	srv.TLS = cert.ServerConfig()
	srv.StartTLS()
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	conn, err := tls.Dial("tcp", addr, cert.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	c, err := wstest.Handshake(conn, addr, "/", nil, wstest.Frame(true, frame.OpText, 0, []byte("early")))
	if err != nil || c.Resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade over TLS: %v %v", c, err)
	}
	if _, data, err := c.ReadMessage(); err != nil || string(data) != "early" {
		t.Fatalf("early frame: %q %v", data, err)
	}
	echoOnce(t, c, strings.Repeat("x", 20000))
	if err := c.WriteClose(frame.CloseNormal, "bye"); err != nil {
		t.Fatal(err)
	}
	if code, _, err := c.ExpectClose(); err != nil || code != frame.CloseNormal {
		t.Errorf("close: %d %v", code, err)
	}
	c.Close()
	p.Close()
	srv.Close()
	checkNoLeak(t, before)
}

// TestOptionsListener: Start serves a listener the caller bound.
func TestOptionsListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Listener: ln}
	mustEcho(&o)
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if p.Port() != ln.Addr().(*net.TCPAddr).Port {
		t.Errorf("Port %d, want the listener's %d", p.Port(), ln.Addr().(*net.TCPAddr).Port)
	}
	c := dial(t, ln.Addr().String(), "/connect")
	echoOnce(t, c, "via the caller's listener")
}

// newHTTPServer serves p's Handler on a real http.Server on 127.0.0.1 and
// returns its address.
func newHTTPServer(t *testing.T, p *Provider) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: p.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return ln.Addr().String()
}

// TestHandlerWithStart: a started Provider serves its own port and a mux
// at once; a Provider first used through its Handler cannot Start after.
func TestHandlerWithStart(t *testing.T) {
	o := Options{}
	mustEcho(&o)
	p, _, addr := start(t, o)
	mux := newHTTPServer(t, p)
	own := dial(t, addr, "/connect")
	mounted, err := wstest.Dial(mux, "/anywhere", nil, nil)
	if err != nil || mounted.Resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade through the mux: %v", err)
	}
	defer mounted.Close()
	echoOnce(t, own, "own port")
	echoOnce(t, mounted, "mounted")
	if p.Len() != 2 {
		t.Errorf("Len %d, want 2", p.Len())
	}

	q, _ := newMounted(t, Options{})
	qmux := newHTTPServer(t, q)
	c, err := wstest.Dial(qmux, "/", nil, nil)
	if err != nil || c.Resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v", err)
	}
	c.Close()
	if err := q.Start(); !errors.Is(err, ErrAlreadyStarted) {
		t.Errorf("Start after serving through Handler = %v, want ErrAlreadyStarted", err)
	}
}
