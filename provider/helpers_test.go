package provider

import (
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/frame"
	"github.com/networkcluster/networkcluster/internal/wstest"
)

// events records a Provider's callbacks for tests.
type events struct {
	mu       sync.Mutex
	opened   []*Connection
	messages []recvd
	closes   []closed
	errs     []error
	notify   chan struct{}
}

type recvd struct {
	c    *Connection
	bin  bool
	data string
}

type closed struct {
	c      *Connection
	code   CloseCode
	reason string
}

func newEvents() *events { return &events{notify: make(chan struct{}, 1)} }

func (e *events) poke() {
	select {
	case e.notify <- struct{}{}:
	default:
	}
}

// hook installs the recorder's callbacks in o.
func (e *events) hook(o *Options) {
	o.OnOpen = func(c *Connection) {
		e.mu.Lock()
		e.opened = append(e.opened, c)
		e.mu.Unlock()
		e.poke()
	}
	if o.OnMessage == nil {
		o.OnMessage = func(c *Connection, m Message) {
			e.mu.Lock()
			e.messages = append(e.messages, recvd{c, m.Binary, string(m.Data)})
			e.mu.Unlock()
			e.poke()
		}
	}
	o.OnClose = func(c *Connection, code CloseCode, reason string) {
		e.mu.Lock()
		e.closes = append(e.closes, closed{c, code, reason})
		e.mu.Unlock()
		e.poke()
	}
	o.OnError = func(err error) {
		e.mu.Lock()
		e.errs = append(e.errs, err)
		e.mu.Unlock()
		e.poke()
	}
}

// wait polls cond until it holds or 10 s pass.
func (e *events) wait(t testing.TB, what string, cond func(e *events) bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		e.mu.Lock()
		ok := cond(e)
		e.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-e.notify:
		case <-time.After(5 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (e *events) nOpened() int { e.mu.Lock(); defer e.mu.Unlock(); return len(e.opened) }

// start runs a Provider on 127.0.0.1 with o and the recorder installed, and
// closes it (checking for leaked goroutines) when the test ends.
func start(t testing.TB, o Options) (*Provider, *events, string) {
	t.Helper()
	e := newEvents()
	e.hook(&o)
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, e, p.Addr().String()
}

// dial opens a WebSocket to the Provider at addr and fails the test unless
// it is upgraded.
func dial(t testing.TB, addr, target string, extra ...string) *wstest.Client {
	t.Helper()
	c, err := wstest.Dial(addr, target, extra, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if c.Resp.StatusCode != 101 {
		t.Fatalf("upgrade %s: status %d", target, c.Resp.StatusCode)
	}
	return c
}

// rawHTTP sends a raw request and returns the status line and the whole
// response, reading until the server closes.
// sendUpgradeRequest dials addr and writes a valid upgrade request for
// /connect without reading the answer; the connection is closed when the
// test ends.
func sendUpgradeRequest(t testing.TB, addr string) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.Write(wstest.Request(addr, "/connect")); err != nil {
		t.Fatal(err)
	}
	return conn
}

func rawHTTP(t testing.TB, addr, req string) (string, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		b.WriteString(string(buf[:n]))
		if err != nil {
			break
		}
	}
	resp := b.String()
	line, _, _ := strings.Cut(resp, "\r\n")
	return line, resp
}

// goroutines counts the goroutines of the process except netpoll's poll
// loops, which are process-wide and live as long as the process.
func goroutines() (int, string) {
	buf := make([]byte, 4<<20)
	all := string(buf[:runtime.Stack(buf, true)])
	n := 0
	var kept []string
	for _, g := range strings.Split(all, "\n\n") {
		if strings.Contains(g, "netpoll.(*defaultPoll).Wait") || strings.TrimSpace(g) == "" {
			continue
		}
		n++
		kept = append(kept, g)
	}
	return n, strings.Join(kept, "\n\n")
}

// checkNoLeak fails if goroutines started during the test outlive it.
func checkNoLeak(t testing.TB, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, stacks := goroutines()
		if n <= before {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines leaked:\n%s", n-before, stacks)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mustEcho(o *Options) {
	o.OnMessage = func(c *Connection, m Message) {
		if m.Binary {
			_ = c.SendBinary(m.Data)
		} else {
			_ = c.SendText(m.Data)
		}
	}
}

var _ = frame.OpText
