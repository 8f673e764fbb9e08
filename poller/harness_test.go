package poller

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitLimit bounds every wait in the tests; reaching it is a failure, not
// a timing assertion.
const waitLimit = 20 * time.Second

func TestMain(m *testing.M) {
	if os.Getenv("POLLER_IDLE_CLIENT") != "" {
		idleClientMain() // the child process of BenchmarkIdleMemory
		return
	}
	// Start netpoll's process-wide goroutines (poll loops) before any test
	// takes a goroutine baseline.
	// POLLER_LINKBUFCAP sets the process-wide buffer size for a benchmark
	// run (see idle_test.go).
	var o Options
	o.LinkBufferCap, _ = strconv.Atoi(os.Getenv("POLLER_LINKBUFCAP"))
	h := &testHandler{}
	p, err := Listen(context.Background(), "tcp", "127.0.0.1:0", h, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "warm-up:", err)
		os.Exit(1)
	}
	if c, err := net.Dial("tcp", p.Addr().String()); err == nil {
		c.Close()
	}
	p.Close()
	os.Exit(m.Run())
}

// --- engines ---

type engineCase struct {
	name  string
	start func(tb testing.TB, h Handler, o Options) *Poller
	dial  func(tb testing.TB, addr string) net.Conn
}

var engines = []engineCase{
	{"netpoll", startNetpoll, dialTCP},
	{"serve-tcp", startServeTCP, dialTCP},
	{"serve-tls", startServeTLS, dialTLS},
	{"netpoll-tls", startNetpollTLS, dialTLS},
}

// startNetpollTLS serves TLS on the event loop (Options.TLS with Listen).
func startNetpollTLS(tb testing.TB, h Handler, o Options) *Poller {
	tb.Helper()
	o.TLS = serverTLS(tb)
	return startNetpoll(tb, h, o)
}

func startNetpoll(tb testing.TB, h Handler, o Options) *Poller {
	tb.Helper()
	p, err := Listen(context.Background(), "tcp", "127.0.0.1:0", h, o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Close() })
	return p
}

func startServeTCP(tb testing.TB, h Handler, o Options) *Poller {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p, err := Serve(ln, h, o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Close() })
	return p
}

func startServeTLS(tb testing.TB, h Handler, o Options) *Poller {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p, err := Serve(tls.NewListener(ln, serverTLS(tb)), h, o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Close() })
	return p
}

func dialTCP(tb testing.TB, addr string) net.Conn {
	tb.Helper()
	c, err := net.DialTimeout("tcp", addr, waitLimit)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func dialTLS(tb testing.TB, addr string) net.Conn {
	tb.Helper()
	d := &net.Dialer{Timeout: waitLimit}
	c, err := tls.DialWithDialer(d, "tcp", addr, clientTLS(tb))
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

var tlsOnce struct {
	sync.Once
	server, client *tls.Config
	err            error
}

func makeTLS() {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tlsOnce.err = err
		return
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true,

		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tlsOnce.err = err
		return
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tlsOnce.err = err
		return
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	tlsOnce.server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	tlsOnce.client = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}

func serverTLS(tb testing.TB) *tls.Config {
	tlsOnce.Do(makeTLS)
	if tlsOnce.err != nil {
		tb.Fatal(tlsOnce.err)
	}
	return tlsOnce.server
}

func clientTLS(tb testing.TB) *tls.Config {
	tlsOnce.Do(makeTLS)
	if tlsOnce.err != nil {
		tb.Fatal(tlsOnce.err)
	}
	return tlsOnce.client
}

// --- a handler that checks the contract ---

// testHandler calls the optional functions and checks, for every
// connection, that OnOpen comes first, OnClose exactly once and last, and
// that no two callbacks overlap.
type testHandler struct {
	tb    testing.TB
	open  func(c *Conn)
	data  func(c *Conn, in []byte) int
	close func(c *Conn, err error)

	states sync.Map // *Conn -> *connState
	opened atomic.Int64
	closed atomic.Int64
	closes chan closeEvent // if not nil, every OnClose is sent here
}

type closeEvent struct {
	c   *Conn
	err error
}

type connState struct {
	inside atomic.Int32
	open   atomic.Bool
	closed atomic.Bool
}

func (h *testHandler) errorf(format string, args ...any) {
	if h.tb != nil {
		h.tb.Errorf(format, args...)
	} else {
		panic(fmt.Sprintf(format, args...))
	}
}

func (h *testHandler) enter(c *Conn, what string) *connState {
	v, _ := h.states.LoadOrStore(c, &connState{})
	s := v.(*connState)
	if !s.inside.CompareAndSwap(0, 1) {
		h.errorf("%s overlaps another callback of the same connection", what)
	}
	if s.closed.Load() {
		h.errorf("%s after OnClose", what)
	}
	return s
}

func (h *testHandler) OnOpen(c *Conn) {
	s := h.enter(c, "OnOpen")
	if s.open.Swap(true) {
		h.errorf("OnOpen twice")
	}
	h.opened.Add(1)
	if h.open != nil {
		h.open(c)
	}
	s.inside.Store(0)
}

func (h *testHandler) OnData(c *Conn, in []byte) int {
	s := h.enter(c, "OnData")
	if !s.open.Load() {
		h.errorf("OnData before OnOpen")
	}
	n := len(in)
	if h.data != nil {
		n = h.data(c, in)
	}
	s.inside.Store(0)
	return n
}

func (h *testHandler) OnClose(c *Conn, err error) {
	s := h.enter(c, "OnClose")
	if !s.open.Load() {
		h.errorf("OnClose without OnOpen")
	}
	s.closed.Store(true)
	if h.close != nil {
		h.close(c, err)
	}
	h.closed.Add(1)
	s.inside.Store(0)
	if h.closes != nil {
		h.closes <- closeEvent{c, err}
	}
}

// echo is an OnData that writes back what it is given.
func echo(c *Conn, in []byte) int {
	if err := c.Write(in, nil, false); err != nil {
		_ = c.Close(err)
	}
	return len(in)
}

// --- waiting ---

// waitFor polls cond until it holds or waitLimit passes.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func recvConn(tb testing.TB, ch <-chan *Conn) *Conn {
	tb.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(waitLimit):
		tb.Fatal("timed out waiting for a connection")
		return nil
	}
}

func recvClose(tb testing.TB, ch <-chan closeEvent) closeEvent {
	tb.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(waitLimit):
		tb.Fatal("timed out waiting for OnClose")
		return closeEvent{}
	}
}

// readFull reads len(b) bytes with a deadline.
func readFull(tb testing.TB, c net.Conn, b []byte) {
	tb.Helper()
	c.SetReadDeadline(time.Now().Add(waitLimit))
	if _, err := io.ReadFull(c, b); err != nil {
		tb.Fatalf("read: %v", err)
	}
}

// readToEOF reads until EOF (or a reset) with a deadline and returns the
// bytes.
func readToEOF(c net.Conn) ([]byte, error) {
	c.SetReadDeadline(time.Now().Add(waitLimit))
	b, err := io.ReadAll(c)
	if err != nil && isReset(err) {
		err = nil
	}
	return b, err
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") ||
		strings.Contains(err.Error(), "broken pipe"))
}

// --- goroutine leaks ---

// checkLeaks fails the test if, once its cleanups ran, more goroutines are
// left than when it started (with a bounded wait for exiting ones). Call it
// first so that its cleanup runs last.
func checkLeaks(tb testing.TB) {
	base := runtime.NumGoroutine()
	tb.Cleanup(func() {
		deadline := time.Now().Add(waitLimit)
		for {
			n := runtime.NumGoroutine()
			if n <= base {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				tb.Errorf("goroutine leak: %d at start, %d now\n%s", base, n, buf)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}
