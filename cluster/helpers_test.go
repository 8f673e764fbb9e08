package cluster

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/internal/wstest"
	"github.com/networkcluster/networkcluster/provider"
)

// member is one Provider + Node of a test cluster.
type member struct {
	p      *provider.Provider
	n      *Node
	b      *MemBroker
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

// newMember starts a Provider (connections with ?t=X subscribe to X) and
// its Node on hub.
func newMember(t testing.TB, hub *MemHub, id string, po provider.Options, o Options) *member {
	t.Helper()
	m := &member{ups: map[string]int{}, downs: map[string]int{}, opened: make(chan *provider.Connection, 4096)}
	po.Addr = "127.0.0.1:0"
	onOpen := po.OnOpen
	po.OnOpen = func(c *provider.Connection) {
		for _, topic := range c.Parameters()["t"] {
			c.Subscribe(topic)
		}
		if onOpen != nil {
			onOpen(c)
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
	m.b = hub.Broker()
	o.Broker, o.NodeID = m.b, id
	if o.Heartbeat == 0 {
		o.Heartbeat = 50 * time.Millisecond
	}
	if o.NodeTimeout == 0 {
		o.NodeTimeout = 300 * time.Millisecond
	}
	if o.PresenceBatch == 0 {
		o.PresenceBatch = 5 * time.Millisecond
	}
	// The callbacks call the Node back: they run with no lock of its held.
	poke := func() { m.n.Len(); m.n.Nodes(); m.n.Lookup("x"); m.n.Stats() }
	o.OnNodeUp = func(node string) { m.mu.Lock(); m.ups[node]++; m.mu.Unlock(); poke() }
	o.OnNodeDown = func(node string) { m.mu.Lock(); m.downs[node]++; m.mu.Unlock(); poke() }
	o.OnError = func(err error) { m.mu.Lock(); m.errs = append(m.errs, err); m.mu.Unlock(); poke() }
	n, err := New(p, o)
	if err != nil {
		t.Fatal(err)
	}
	m.n = n
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	m.p, m.addr = p, p.Addr().String()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.Shutdown(ctx)
		p.Close()
	})
	return m
}

// cluster3 starts three members a, b, c on one hub.
func cluster3(t testing.TB, hub *MemHub, po provider.Options, o Options) []*member {
	return []*member{
		newMember(t, hub, "a", po, o),
		newMember(t, hub, "b", po, o),
		newMember(t, hub, "c", po, o),
	}
}

// dialN opens n raw WebSocket clients on m with the given query, and waits
// until the Provider has opened them; it returns the clients and the
// provider connections, in order.
func dialN(t testing.TB, m *member, n int, query string) ([]*wstest.Client, []*provider.Connection) {
	t.Helper()
	clients := make([]*wstest.Client, n)
	conns := make([]*provider.Connection, n)
	for i := range clients {
		c, err := wstest.Dial(m.addr, "/connect?"+query, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.Resp.StatusCode != 101 {
			t.Fatalf("upgrade: %d", c.Resp.StatusCode)
		}
		t.Cleanup(func() { c.Close() })
		clients[i] = c
		select {
		case conns[i] = <-m.opened:
		case <-time.After(10 * time.Second):
			t.Fatal("connection not opened")
		}
	}
	return clients, conns
}

// eventually polls cond for up to 10 s.
func eventually(t testing.TB, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
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

// converged checks that every member sees want connections and subs
// subscribers of topic.
func converged(ms []*member, want int, topic string, subs int) func() error {
	return func() error {
		for _, m := range ms {
			if got := m.n.Len(); got != want {
				return fmt.Errorf("node %s: Len %d, want %d", m.n.ID(), got, want)
			}
			if got := m.n.Subscribers(topic); got != subs {
				return fmt.Errorf("node %s: Subscribers(%s) %d, want %d", m.n.ID(), topic, got, subs)
			}
		}
		return nil
	}
}

// readN reads n messages from c with a deadline.
func readN(t testing.TB, c *wstest.Client, n int) []string {
	t.Helper()
	c.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	out := make([]string, 0, n)
	for range n {
		_, data, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("after %d messages: %v", len(out), err)
		}
		out = append(out, string(data))
	}
	return out
}
