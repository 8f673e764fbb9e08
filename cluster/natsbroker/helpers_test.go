package natsbroker_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/networkcluster/networkcluster/cluster"
	"github.com/networkcluster/networkcluster/cluster/natsbroker"
	"github.com/networkcluster/networkcluster/cluster/natsbroker/internal/natsd"
	"github.com/networkcluster/networkcluster/cluster/natsbroker/internal/ncnode"
	"github.com/networkcluster/networkcluster/consumer"
	"github.com/networkcluster/networkcluster/provider"
)

// childEnv selects what a re-executed test binary runs: "natsd" (a
// nats-server) or "ncnode" (the node command).
const childEnv = "NATSBROKER_TEST_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "natsd":
		if err := natsd.Main(os.Args[1:], os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	case "ncnode":
		if err := ncnode.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// child is a process started from this test binary.
type child struct {
	cmd   *exec.Cmd
	done  chan struct{} // closed once it has exited (cmd.ProcessState is set)
	lines chan string
	mu    sync.Mutex
	out   strings.Builder // everything it printed
}

// startChild runs role with args and waits (10 s at most) for a line of
// its output starting with ready; it returns the child and that line.
func startChild(t *testing.T, role, ready string, args ...string) (*child, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), childEnv+"="+role)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, lines: make(chan string, 1024), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			c.mu.Lock()
			c.out.WriteString(sc.Text() + "\n")
			c.mu.Unlock()
			select {
			case c.lines <- sc.Text():
			default:
			}
		}
	}()
	go func() { cmd.Wait(); close(c.done); pw.Close() }()
	t.Cleanup(func() { c.kill() })
	deadline := time.After(20 * time.Second)
	for {
		select {
		case l := <-c.lines:
			if strings.HasPrefix(l, ready) || strings.Contains(l, ready) {
				return c, l
			}
		case <-deadline:
			c.kill()
			t.Fatalf("%s did not start:\n%s", role, c.output())
		}
	}
}

func (c *child) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

func (c *child) kill() {
	if c.cmd.Process != nil {
		c.cmd.Process.Signal(syscall.SIGKILL)
	}
}

// startNatsd runs a nats-server child on port (-1: random) and returns it
// and its client URL.
func startNatsd(t *testing.T, port int) (*child, string) {
	t.Helper()
	c, line := startChild(t, "natsd", natsd.ListenLine, "-p", strconv.Itoa(port))
	addr := strings.TrimSpace(line[strings.Index(line, natsd.ListenLine)+len(natsd.ListenLine):])
	return c, "nats://" + addr
}

// embedded starts an in-process nats-server on a random port.
func embedded(t *testing.T, maxPayload int32) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true, MaxPayload: maxPayload})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	t.Cleanup(s.Shutdown)
	return s
}

// member is an in-process Provider + Node over NATS.
type member struct {
	p      *provider.Provider
	n      *cluster.Node
	b      *natsbroker.Broker
	addr   string
	mu     sync.Mutex
	ups    map[string]int
	downs  map[string]int
	errs   []error
	opened chan *provider.Connection
}

func (m *member) counts(node string) (up, down int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ups[node], m.downs[node]
}

func (m *member) errors() []error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]error(nil), m.errs...)
}

type memberOpts struct {
	cluster.Options
	broker natsbroker.Options
	wrap   func(cluster.Broker) cluster.Broker
	po     provider.Options
}

// newMember starts a Provider whose connections with ?t=X subscribe to X,
// and its Node on the NATS server at url.
func newMember(t *testing.T, url, id string, mo memberOpts) *member {
	t.Helper()
	return newMemberURLs(t, []string{url}, id, mo)
}

// newMemberURLs is newMember with several NATS URLs.
func newMemberURLs(t *testing.T, urls []string, id string, mo memberOpts) *member {
	t.Helper()
	m := &member{ups: map[string]int{}, downs: map[string]int{}, opened: make(chan *provider.Connection, 8192)}
	po := mo.po
	po.Addr = "127.0.0.1:0"
	po.OnOpen = func(c *provider.Connection) {
		for _, topic := range c.Parameters()["t"] {
			c.Subscribe(topic)
		}
		select {
		case m.opened <- c:
		default:
		}
	}
	p, err := provider.New(po)
	if err != nil {
		t.Fatal(err)
	}
	bo := mo.broker
	bo.URLs = urls
	b, err := natsbroker.New(bo)
	if err != nil {
		t.Fatal(err)
	}
	o := mo.Options
	o.Broker, o.NodeID = b, id
	if mo.wrap != nil {
		o.Broker = mo.wrap(b)
	}
	if o.Heartbeat == 0 {
		o.Heartbeat = 200 * time.Millisecond
	}
	if o.NodeTimeout == 0 {
		o.NodeTimeout = time.Second
	}
	if o.PresenceBatch == 0 {
		o.PresenceBatch = 10 * time.Millisecond
	}
	o.OnNodeUp = func(node string) { m.mu.Lock(); m.ups[node]++; m.mu.Unlock() }
	o.OnNodeDown = func(node string) { m.mu.Lock(); m.downs[node]++; m.mu.Unlock() }
	o.OnError = func(err error) { m.mu.Lock(); m.errs = append(m.errs, err); m.mu.Unlock() }
	n, err := cluster.New(p, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	m.p, m.n, m.b, m.addr = p, n, b, p.Addr().String()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		n.Shutdown(ctx)
		p.Close()
	})
	return m
}

// inbox records what a Consumer receives.
type inbox struct {
	mu   sync.Mutex
	msgs []string
	n    atomic.Int64
}

func (b *inbox) add(s string) {
	b.mu.Lock()
	b.msgs = append(b.msgs, s)
	b.mu.Unlock()
	b.n.Add(1)
}

func (b *inbox) all() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.msgs...)
}

func (b *inbox) has(s string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.msgs {
		if m == s {
			return true
		}
	}
	return false
}

// newConsumer connects a Consumer to addrs (one: Host/Port; more: Addrs)
// and records its messages.
func newConsumer(t *testing.T, params map[string]string, interval time.Duration, addrs ...string) (*consumer.Consumer, *inbox) {
	t.Helper()
	in := &inbox{}
	o := consumer.Options{
		Parameters: params,
		OnMessage:  func(m consumer.Message) { in.add(string(m.Data)) },
		Reconnect:  consumer.Reconnect{Interval: interval, MaxAttempts: -1},
	}
	if len(addrs) == 1 {
		host, port, _ := net.SplitHostPort(addrs[0])
		o.Host = host
		o.Port, _ = strconv.Atoi(port)
	} else {
		o.Addrs = addrs
	}
	c, err := consumer.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Destroy() })
	return c, in
}

// eventually polls cond every 5 ms for up to d.
func eventually(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// converged checks every member's Len and Subscribers(topic).
func converged(ms []*member, want int, topic string, subs int) func() error {
	return func() error {
		for _, m := range ms {
			if got := m.n.Len(); got != want {
				return fmt.Errorf("node %s: Len %d, want %d", m.n.ID(), got, want)
			}
			if topic != "" {
				if got := m.n.Subscribers(topic); got != subs {
					return fmt.Errorf("node %s: Subscribers(%s) %d, want %d", m.n.ID(), topic, got, subs)
				}
			}
		}
		return nil
	}
}

func splitHostPort(t *testing.T, addr string) (string, int) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	return host, p
}

// rawUpgrade opens a WebSocket that never reads.
func rawUpgrade(t *testing.T, addr string) net.Conn { return rawUpgradePath(t, addr, "/connect") }

// rawUpgradePath opens a WebSocket on target (path and query) that never
// reads.
func rawUpgradePath(t *testing.T, addr, target string) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	req := "GET " + target + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetReadBuffer(4096)
	}
	return conn
}

// newConsumerNoWait starts a Consumer on addrs without waiting for it to
// connect (the caller waits on presence).
func newConsumerNoWait(t *testing.T, interval time.Duration, addrs ...string) (*consumer.Consumer, *inbox) {
	t.Helper()
	in := &inbox{}
	o := consumer.Options{
		OnMessage: func(m consumer.Message) { in.add(string(m.Data)) },
		Reconnect: consumer.Reconnect{Interval: interval, MaxAttempts: -1},
		Addrs:     addrs,
	}
	if len(addrs) == 1 {
		host, port, _ := net.SplitHostPort(addrs[0])
		o.Addrs, o.Host = nil, host
		o.Port, _ = strconv.Atoi(port)
	}
	c, err := consumer.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Destroy() })
	return c, in
}
