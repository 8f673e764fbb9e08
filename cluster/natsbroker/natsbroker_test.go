package natsbroker_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/networkcluster/networkcluster/cluster"
	"github.com/networkcluster/networkcluster/cluster/natsbroker"
	"github.com/networkcluster/networkcluster/consumer"
	"github.com/networkcluster/networkcluster/provider"
)

func three(t *testing.T, url string, mo memberOpts) []*member {
	return []*member{newMember(t, url, "a", mo), newMember(t, url, "b", mo), newMember(t, url, "c", mo)}
}

// A1: node A broadcasts and publishes 1000 numbered messages each; every
// Consumer on every node gets every broadcast, and the subscribers of T
// (only they) every publish, once, in order, with no gap.
func TestA1FanOutInOrder(t *testing.T) {
	s := embedded(t, 0)
	ms := three(t, s.ClientURL(), memberOpts{})
	const perNode, n = 100, 1000
	type rcv struct {
		in  *inbox
		sub bool
	}
	var rs []rcv
	for _, m := range ms {
		for i := range perNode {
			sub := i%2 == 0
			params := map[string]string{"t": "U"}
			if sub {
				params["t"] = "T"
			}
			_, in := newConsumer(t, params, time.Second, m.addr)
			rs = append(rs, rcv{in, sub})
		}
	}
	eventually(t, 10*time.Second, "presence", converged(ms, 3*perNode, "T", 3*perNode/2))
	for i := range n {
		if _, err := ms[0].n.Broadcast(false, []byte(fmt.Sprint("b", i))); err != nil {
			t.Fatal(err)
		}
		if _, err := ms[0].n.Publish("T", false, []byte(fmt.Sprint("p", i))); err != nil {
			t.Fatal(err)
		}
	}
	for k, r := range rs {
		want := n
		if r.sub {
			want = 2 * n
		}
		eventually(t, 30*time.Second, "delivery", func() error {
			if got := r.in.n.Load(); got < int64(want) {
				return fmt.Errorf("consumer %d: %d of %d", k, got, want)
			}
			return nil
		})
		var exp []string
		for i := range n {
			exp = append(exp, fmt.Sprint("b", i))
			if r.sub {
				exp = append(exp, fmt.Sprint("p", i))
			}
		}
		if got := r.in.all(); !slices.Equal(got, exp) {
			t.Fatalf("consumer %d (node %d): %d messages, not the expected sequence", k, k/perNode, len(got))
		}
	}
	for _, m := range ms[1:] {
		if st := m.n.Stats(); st.Gaps != 0 || st.Dropped != 0 {
			t.Fatalf("node %s: %+v", m.n.ID(), st)
		}
	}
}

// A2: a Consumer on B is subscribed to a fresh topic (B's Subscribed hook
// runs); 1 ms later A publishes to it: delivered in every trial, because
// every node receives every publish (no per-topic interest to propagate).
func TestA2SubscribeThenPublish(t *testing.T) {
	s := embedded(t, 0)
	ms := three(t, s.ClientURL(), memberOpts{})
	a, b := ms[0], ms[1]
	_, in := newConsumer(t, nil, time.Second, b.addr)
	var conn *provider.Connection
	select {
	case conn = <-b.opened:
	case <-time.After(10 * time.Second):
		t.Fatal("not opened")
	}
	eventually(t, 10*time.Second, "a knows b", func() error {
		for _, ni := range a.n.Nodes() {
			if ni.ID == "b" && ni.Synced {
				return nil
			}
		}
		return errors.New("not yet")
	})
	const trials = 1000
	for i := range trials {
		topic := fmt.Sprint("topic-", i)
		if err := conn.Subscribe(topic); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
		if _, err := a.n.Publish(topic, false, []byte(topic)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 20*time.Second, "deliveries", func() error {
		if got := in.n.Load(); got < trials {
			return fmt.Errorf("%d of %d", got, trials)
		}
		return nil
	})
	got := in.all()
	for i := range trials {
		if got[i] != fmt.Sprint("topic-", i) {
			t.Fatalf("trial %d: got %q", i, got[i])
		}
	}
}

// A3 (in process): Send and Request to a connection on another node; to an
// unknown id; to a node whose NATS connection is gone (no responders, not
// a timeout); the owner's backpressure and closed errors cross back.
func TestA3Directed(t *testing.T) {
	s := embedded(t, 0)
	ms := three(t, s.ClientURL(), memberOpts{po: provider.Options{Backpressure: provider.RefuseOnBackpressure, MaxBackpressure: 64 << 10}})
	a, b, c := ms[0], ms[1], ms[2]
	host, port := splitHostPort(t, b.addr)
	cons, err := consumer.New(consumer.Options{Host: host, Port: port, OnRequest: func(r *consumer.Request) {
		r.Reply(false, append([]byte("re:"), r.Message().Data...))
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := cons.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer cons.Destroy()
	bconn := <-b.opened
	_, inC := newConsumer(t, nil, time.Second, c.addr)
	cconn := <-c.opened
	eventually(t, 10*time.Second, "presence", converged(ms, 2, "", 0))
	if err := a.n.Send(ctx, cconn.ID(), false, []byte("hello c")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "send", func() error {
		if !inC.has("hello c") {
			return errors.New("not received")
		}
		return nil
	})
	m, err := a.n.Request(ctx, bconn.ID(), false, []byte("q"))
	if err != nil || string(m.Data) != "re:q" {
		t.Fatalf("request: %+v %v", m, err)
	}
	if err := a.n.Send(ctx, "unknown", false, []byte("x")); !errors.Is(err, cluster.ErrUnknownConnection) {
		t.Fatalf("unknown: %v", err)
	}
	if _, err := a.n.Request(ctx, "unknown", false, []byte("x")); !errors.Is(err, cluster.ErrUnknownConnection) {
		t.Fatalf("unknown: %v", err)
	}
	// Closed on the owner.
	cconn.Close(provider.CloseCode(1000), "bye")
	if err := a.n.Send(ctx, cconn.ID(), false, []byte("x")); !errors.Is(err, provider.ErrClosed) && !errors.Is(err, cluster.ErrUnknownConnection) {
		t.Fatalf("closed: %v", err)
	}
	// The owner's NATS connection is gone: unreachable at once.
	b.b.Conn().Close()
	// (Once the server has noticed: a request sent before that is
	// forwarded to the dead subscriber and times out.)
	eventually(t, 5*time.Second, "server noticed", func() error {
		if k := s.NumClients(); k != 2 {
			return fmt.Errorf("%d clients", k)
		}
		return nil
	})
	best := time.Hour
	for range 3 {
		start := time.Now()
		err := a.n.Send(ctx, bconn.ID(), false, []byte("x"))
		if !errors.Is(err, cluster.ErrNodeUnreachable) {
			t.Fatalf("unreachable: %v", err)
		}
		best = min(best, time.Since(start))
		_, err = a.n.Request(ctx, bconn.ID(), false, []byte("x"))
		if !errors.Is(err, cluster.ErrNodeUnreachable) {
			t.Fatalf("unreachable request: %v", err)
		}
	}
	t.Logf("ErrNodeUnreachable after %v", best)
	if best > 50*time.Millisecond {
		t.Fatalf("ErrNodeUnreachable after %v", best)
	}
}

// The owner's backpressure crosses back through NATS.
func TestA3Backpressure(t *testing.T) {
	s := embedded(t, 0)
	ms := three(t, s.ClientURL(), memberOpts{po: provider.Options{Backpressure: provider.RefuseOnBackpressure, MaxBackpressure: 32 << 10}})
	a, b := ms[0], ms[1]
	// A raw TCP client that upgrades and never reads.
	conn := rawUpgrade(t, b.addr)
	defer conn.Close()
	pc := <-b.opened
	eventually(t, 10*time.Second, "presence", converged(ms, 1, "", 0))
	big := make([]byte, 16<<10)
	var err error
	for i := 0; i < 100000 && err == nil; i++ {
		err = a.n.Send(context.Background(), pc.ID(), true, big)
	}
	if !errors.Is(err, provider.ErrBackpressure) {
		t.Fatalf("backpressure: %v", err)
	}
}

// A11: a Broadcast over max_payload fails synchronously with ErrTooLarge,
// after local delivery.
func TestA11Oversize(t *testing.T) {
	const max = 64 << 10
	s := embedded(t, max)
	ms := three(t, s.ClientURL(), memberOpts{})
	_, in := newConsumer(t, nil, time.Second, ms[0].addr)
	eventually(t, 10*time.Second, "presence", converged(ms, 1, "", 0))
	if got := ms[0].b.MaxMessage(); got != max-2 {
		t.Fatalf("MaxMessage %d", got)
	}
	big := strings.Repeat("x", max+1)
	r, err := ms[0].n.Broadcast(false, []byte(big))
	if !errors.Is(err, cluster.ErrTooLarge) || r.Sent != 1 {
		t.Fatalf("broadcast: %+v %v", r, err)
	}
	// Directly on the broker too.
	if err := ms[0].b.Broadcast([]byte(big)); !errors.Is(err, cluster.ErrTooLarge) {
		t.Fatalf("broker: %v", err)
	}
	eventually(t, 5*time.Second, "local delivery", func() error {
		if in.n.Load() != 1 {
			return errors.New("not delivered locally")
		}
		return nil
	})
	if _, err := ms[0].n.Broadcast(false, []byte(big[:max-100])); err != nil {
		t.Fatalf("under the limit: %v", err)
	}
}

func TestOptionsValidation(t *testing.T) {
	if _, err := natsbroker.New(natsbroker.Options{Prefix: "a.b"}); !errors.Is(err, cluster.ErrInvalidOptions) {
		t.Fatal(err)
	}
	b, err := natsbroker.New(natsbroker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Broadcast([]byte("x")); !errors.Is(err, cluster.ErrBroker) {
		t.Fatalf("before Open: %v", err)
	}
}

// A4: 3 × 1000 connections open (subscribed to T), then half of them
// close: every node's Len, Subscribers and Lookup converge shortly after
// the last change, and Range equals the union of the local views.
func TestA4Presence(t *testing.T) {
	s := embedded(t, 0)
	mo := memberOpts{}
	mo.PresenceBatch = 50 * time.Millisecond // the default
	ms := three(t, s.ClientURL(), mo)
	const per = 1000
	var conns [3][]net.Conn
	for i, m := range ms {
		for range per {
			conns[i] = append(conns[i], rawUpgradePath(t, m.addr, "/connect?t=T"))
		}
	}
	defer func() {
		for _, cs := range conns {
			for _, c := range cs {
				c.Close()
			}
		}
	}()
	last := time.Now()
	waitLocal := func(want int) {
		eventually(t, 20*time.Second, "local opens and closes", func() error {
			for _, m := range ms {
				if got := m.p.Len(); got != want {
					return fmt.Errorf("node %s holds %d", m.n.ID(), got)
				}
			}
			return nil
		})
		last = time.Now()
	}
	check := func(want int) {
		eventually(t, 20*time.Second, "presence", converged(ms, 3*want, "T", 3*want))
		took := time.Since(last)
		t.Logf("presence of %d connections converged %v after the last local change", 3*want, took)
		// The design's bound is PresenceBatch + 100 ms; allow a loaded
		// 2-core CI box running -race a second.
		if took > time.Second {
			t.Fatalf("presence converged %v after the last change", took)
		}
		union := map[string]string{}
		for _, m := range ms {
			for _, c := range m.p.Connections() {
				union[c.ID()] = m.n.ID()
			}
		}
		for _, m := range ms {
			seen := 0
			m.n.Range(func(ci cluster.ConnInfo) bool {
				if union[ci.ID] != ci.Node || !slices.Equal(ci.Topics, []string{"T"}) {
					t.Fatalf("node %s: Range gives %+v, owner %q", m.n.ID(), ci, union[ci.ID])
				}
				seen++
				return true
			})
			if seen != len(union) {
				t.Fatalf("node %s: Range gives %d of %d", m.n.ID(), seen, len(union))
			}
			for id, owner := range union {
				if node, ok := m.n.Lookup(id); !ok || node != owner {
					t.Fatalf("node %s: Lookup(%s) = %q, %v; want %s", m.n.ID(), id, node, ok, owner)
				}
			}
		}
	}
	waitLocal(per)
	check(per)
	for i := range conns {
		for _, c := range conns[i][:per/2] {
			c.Close()
		}
	}
	waitLocal(per / 2)
	check(per / 2)
}

// A connection given in Options.Conn carries the cluster; Close leaves it
// open.
func TestGivenConn(t *testing.T) {
	s := embedded(t, 0)
	nc, err := nats.Connect(s.ClientURL(), nats.NoEcho())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	a := newMember(t, s.ClientURL(), "a", memberOpts{})
	b := newMember(t, s.ClientURL(), "b", memberOpts{broker: natsbroker.Options{Conn: nc}})
	_, in := newConsumer(t, nil, time.Second, b.addr)
	eventually(t, 10*time.Second, "presence", converged([]*member{a, b}, 1, "", 0))
	probeUntil(t, a, in, "given", 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.n.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if nc.IsClosed() {
		t.Fatal("Close closed a connection it was given")
	}
}
