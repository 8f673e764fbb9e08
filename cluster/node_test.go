package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/provider"
)

// Node A broadcasts and publishes numbered messages: every connection of
// every node gets every broadcast, the subscribers of T (and only they)
// every publish, once, in order.
func TestNodeFanOutInOrder(t *testing.T) {
	hub := NewMemHub(0)
	ms := cluster3(t, hub, provider.Options{}, Options{})
	type cl struct {
		sub bool
		c   interface{ Close() error }
	}
	var all [][]string
	var subs []bool
	var readers []func() []string
	for _, m := range ms {
		for i, q := range []string{"t=T", "x=1", "t=T", "t=U"} {
			cs, _ := dialN(t, m, 1, q)
			sub := q == "t=T"
			subs = append(subs, sub)
			_ = i
			c := cs[0]
			n := 300
			if sub {
				n = 600
			}
			readers = append(readers, func() []string { return readN(t, c, n) })
		}
	}
	eventually(t, "presence", converged(ms, 12, "T", 6))
	a := ms[0]
	for i := range 300 {
		r, err := a.n.Broadcast(false, []byte(fmt.Sprint("b", i)))
		if err != nil || r.Sent != 4 {
			t.Fatalf("broadcast %d: %+v %v", i, r, err)
		}
		if r, err = a.n.Publish("T", true, []byte(fmt.Sprint("p", i))); err != nil || r.Sent != 2 {
			t.Fatalf("publish %d: %+v %v", i, r, err)
		}
	}
	for k, read := range readers {
		got := read()
		all = append(all, got)
		var want []string
		for i := range 300 {
			want = append(want, fmt.Sprint("b", i))
			if subs[k] {
				want = append(want, fmt.Sprint("p", i))
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("client %d: got %d messages, first difference in %v", k, len(got), firstDiff(got, want))
		}
	}
	s := a.n.Stats()
	if s.Sent < 600 || s.BrokerErrors != 0 || s.NodesUp != 2 {
		t.Fatalf("stats %+v", s)
	}
	if b := ms[1].n.Stats(); b.Gaps != 0 || b.Received < 600 {
		t.Fatalf("stats of b %+v", b)
	}
}

func firstDiff(a, b []string) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("at %d: %q vs %q", i, a[i], b[i])
		}
	}
	return fmt.Sprintf("lengths %d vs %d", len(a), len(b))
}

// Presence converges on every node: Len, Subscribers, Lookup, Range, Nodes;
// and again after closes and unsubscribes.
func TestNodePresence(t *testing.T) {
	hub := NewMemHub(0)
	ms := cluster3(t, hub, provider.Options{}, Options{PresenceParams: []string{"worker"}})
	var clients [][]interface{ Close() error }
	var conns [][]*provider.Connection
	for i, m := range ms {
		cs, cn := dialN(t, m, 20, fmt.Sprintf("t=T&worker=w%d&secret=s", i))
		var cc []interface{ Close() error }
		for _, c := range cs {
			cc = append(cc, c)
		}
		clients = append(clients, cc)
		conns = append(conns, cn)
	}
	eventually(t, "presence", converged(ms, 60, "T", 60))
	for _, m := range ms {
		for i, cn := range conns {
			for _, c := range cn {
				if node, ok := m.n.Lookup(c.ID()); !ok || node != ms[i].n.ID() {
					t.Fatalf("node %s: Lookup %s = %q %v, want %s", m.n.ID(), c.ID(), node, ok, ms[i].n.ID())
				}
			}
		}
		var infos []ConnInfo
		m.n.Range(func(ci ConnInfo) bool { infos = append(infos, ci); return true })
		if len(infos) != 60 {
			t.Fatalf("Range: %d", len(infos))
		}
		for _, ci := range infos {
			want := "w" + strings.TrimPrefix(map[string]string{"a": "0", "b": "1", "c": "2"}[ci.Node], "")
			if ci.Params["worker"] != want || ci.Params["secret"] != "" || len(ci.Params) != 1 {
				t.Fatalf("params of %+v", ci)
			}
			if !slices.Equal(ci.Topics, []string{"T"}) {
				t.Fatalf("topics of %+v", ci)
			}
		}
		nodes := m.n.Nodes()
		if len(nodes) != 3 || !nodes[0].Self || nodes[0].ID != m.n.ID() {
			t.Fatalf("nodes %+v", nodes)
		}
		for _, ni := range nodes {
			if !ni.Up || !ni.Synced || ni.Connections != 20 {
				t.Fatalf("node info %+v", ni)
			}
		}
	}
	// Changes: b closes 10, c unsubscribes 5 and subscribes 7 to U.
	for _, c := range clients[1][:10] {
		c.Close()
	}
	for i, c := range conns[2] {
		if i < 5 {
			c.Unsubscribe("T")
		}
		if i < 7 {
			c.Subscribe("U")
		}
	}
	eventually(t, "presence after changes", converged(ms, 50, "T", 45))
	eventually(t, "topic U", converged(ms, 50, "U", 7))
	closed := conns[1][0].ID()
	for _, m := range ms {
		if _, ok := m.n.Lookup(closed); ok {
			t.Fatalf("node %s still finds a closed connection", m.n.ID())
		}
	}
	// A node that joins late gets everyone's presence by snapshots.
	d := newMember(t, hub, "d", provider.Options{}, Options{})
	dialN(t, d, 3, "t=T")
	ms = append(ms, d)
	eventually(t, "late joiner", converged(ms, 53, "T", 48))
}

// Send reaches a connection on another node; the owner's errors cross back.
func TestNodeSend(t *testing.T) {
	hub := NewMemHub(0)
	po := provider.Options{Backpressure: provider.RefuseOnBackpressure, MaxBackpressure: 64 << 10}
	ms := cluster3(t, hub, po, Options{})
	a, b, c := ms[0], ms[1], ms[2]
	bc, bconns := dialN(t, b, 3, "x=1")
	_, cconns := dialN(t, c, 1, "x=1")
	eventually(t, "presence", converged(ms, 4, "", 0))
	ctx := context.Background()
	if err := a.n.Send(ctx, bconns[0].ID(), false, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := a.n.Send(ctx, bconns[0].ID(), true, []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, bc[0], 2); got[0] != "hello" || got[1] != "\x01\x02" {
		t.Fatalf("got %q", got)
	}
	// Unknown id.
	if err := a.n.Send(ctx, "nope", false, []byte("x")); !errors.Is(err, ErrUnknownConnection) {
		t.Fatalf("unknown: %v", err)
	}
	// Invalid UTF-8 is refused by the owner.
	if err := a.n.Send(ctx, bconns[0].ID(), false, []byte{0xff}); !errors.Is(err, provider.ErrInvalidUTF8) {
		t.Fatalf("utf8: %v", err)
	}
	// Closing on the owner: provider.ErrClosed crosses back.
	bconns[1].Close(provider.CloseCode(1000), "bye")
	if err := a.n.Send(ctx, bconns[1].ID(), false, []byte("x")); !errors.Is(err, provider.ErrClosed) {
		t.Fatalf("closing: %v", err)
	}
	// Backpressure: client 2 does not read.
	big := make([]byte, 32<<10)
	var err error
	for i := 0; i < 10000 && err == nil; i++ {
		err = a.n.Send(ctx, bconns[2].ID(), true, big)
	}
	if !errors.Is(err, provider.ErrBackpressure) {
		t.Fatalf("backpressure: %v", err)
	}
	// A stale replica: the owner no longer holds it.
	bc[0].Close()
	eventually(t, "owner closed it", func() error {
		if _, ok := b.p.Connection(bconns[0].ID()); ok {
			return errors.New("still open")
		}
		return nil
	})
	if err := a.n.Send(ctx, bconns[0].ID(), false, []byte("x")); !errors.Is(err, ErrUnknownConnection) && !errors.Is(err, provider.ErrClosed) {
		t.Fatalf("closed on owner: %v", err)
	}
	// The owner's broker vanished (no leave): unreachable at once.
	c.b.Close(ctx)
	start := time.Now()
	if err := a.n.Send(ctx, cconns[0].ID(), false, []byte("x")); !errors.Is(err, ErrNodeUnreachable) {
		t.Fatalf("unreachable: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("unreachable after %v", d)
	}
	// Local ids take the local path.
	if err := b.n.Send(ctx, bconns[2].ID(), false, []byte{0xff}); !errors.Is(err, provider.ErrInvalidUTF8) {
		t.Fatalf("local: %v", err)
	}
	s := a.n.Stats()
	if s.RemoteSends == 0 || s.RemoteSendErrors == 0 {
		t.Fatalf("stats %+v", s)
	}
}

// A node whose link is lost is declared down by the others after
// NodeTimeout (once), while it freezes their presence; when the link
// returns, it comes up again and presence heals through snapshots.
func TestNodeDownAndBack(t *testing.T) {
	hub := NewMemHub(0)
	ms := cluster3(t, hub, provider.Options{}, Options{})
	for _, m := range ms {
		dialN(t, m, 5, "t=T")
	}
	eventually(t, "presence", converged(ms, 15, "T", 15))
	a, c := ms[0], ms[2]
	c.b.SetLink(false)
	// Changes on c while it is cut off: its deltas are lost.
	dialN(t, c, 2, "t=T")
	eventually(t, "a declares c down", func() error {
		if _, down := a.counts("c"); down != 1 {
			return fmt.Errorf("downs %d", down)
		}
		if a.n.Len() != 10 {
			return fmt.Errorf("Len %d", a.n.Len())
		}
		return nil
	})
	// c, whose own link is down, froze the others.
	time.Sleep(400 * time.Millisecond)
	if _, down := c.counts("a"); down != 0 || c.n.Len() != 17 {
		t.Fatalf("c: downs of a %d, Len %d", down, c.n.Len())
	}
	if s := c.n.Stats(); s.LinkUp || s.LinkDowns != 1 {
		t.Fatalf("c stats %+v", s)
	}
	c.b.SetLink(true)
	eventually(t, "healed", converged(ms, 17, "T", 17))
	if up, down := a.counts("c"); up != 2 || down != 1 {
		t.Fatalf("a saw c up %d down %d times", up, down)
	}
	if _, down := c.counts("a"); down != 0 {
		t.Fatalf("c declared a down")
	}
}

// Shutdown sends a leave: the others drop the node's presence at once, not
// after NodeTimeout; what Broadcast accepted before arrives.
func TestNodeShutdownLeaves(t *testing.T) {
	hub := NewMemHub(0)
	ms := cluster3(t, hub, provider.Options{CloseTimeout: 200 * time.Millisecond}, Options{NodeTimeout: time.Hour})
	ac, _ := dialN(t, ms[0], 1, "x=1")
	dialN(t, ms[1], 4, "x=1")
	eventually(t, "presence", converged(ms, 5, "", 0))
	for i := range 50 {
		if _, err := ms[1].n.Broadcast(false, []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ms[1].n.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, ac[0], 50); got[49] != "49" {
		t.Fatalf("got %q", got)
	}
	eventually(t, "left", converged([]*member{ms[0], ms[2]}, 1, "", 0))
	if _, down := ms[0].counts("b"); down != 1 {
		t.Fatalf("downs %d", down)
	}
	if _, err := ms[1].n.Broadcast(false, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("after shutdown: %v", err)
	}
}

// Over the broker's size limit: ErrTooLarge, synchronously, after local
// delivery.
func TestNodeTooLarge(t *testing.T) {
	hub := NewMemHub(4096)
	ms := cluster3(t, hub, provider.Options{}, Options{})
	ac, _ := dialN(t, ms[0], 1, "t=T")
	eventually(t, "presence", converged(ms, 1, "T", 1))
	big := strings.Repeat("x", 4096)
	r, err := ms[0].n.Broadcast(false, []byte(big))
	if !errors.Is(err, ErrTooLarge) || r.Sent != 1 {
		t.Fatalf("broadcast: %+v %v", r, err)
	}
	if _, err := ms[0].n.Publish("T", false, []byte(big)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("publish: %v", err)
	}
	if got := readN(t, ac[0], 2); got[0] != big || got[1] != big {
		t.Fatal("local delivery")
	}
	if _, err := ms[0].n.Broadcast(false, []byte(big[:4000])); err != nil {
		t.Fatal(err)
	}
	if s := ms[0].n.Stats(); s.TooLarge != 2 {
		t.Fatalf("stats %+v", s)
	}
}

// Messages the broker client drops are counted, reported, and presence
// is resynchronised.
func TestNodeDroppedResync(t *testing.T) {
	hub := NewMemHub(0)
	a := newMember(t, hub, "a", provider.Options{}, Options{})
	bb := hub.Broker()
	bb.MaxQueue = 1
	// b's handler is slow: a member built by hand on bb.
	p, _ := provider.New(provider.Options{Addr: "127.0.0.1:0"})
	n, err := New(p, Options{Broker: bb, NodeID: "b", Heartbeat: 50 * time.Millisecond, NodeTimeout: time.Hour, PresenceBatch: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	p.Start()
	defer p.Close()
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(context.Background())
	for i := range 200 {
		a.n.Broadcast(false, []byte(fmt.Sprint(i)))
		if i%50 == 0 {
			dialN(t, a, 1, "t=T")
		}
	}
	eventually(t, "drops", func() error {
		if s := n.Stats(); s.Dropped == 0 {
			return fmt.Errorf("stats %+v", s)
		}
		return nil
	})
	eventually(t, "resynced", func() error {
		if got := n.Len(); got != 4 {
			return fmt.Errorf("Len %d", got)
		}
		return nil
	})
}

func TestOptions(t *testing.T) {
	p, _ := provider.New(provider.Options{Addr: "127.0.0.1:0"})
	defer p.Close()
	for _, o := range []Options{
		{},
		{Broker: NewMemHub(0).Broker(), NodeID: "a.b"},
		{Broker: NewMemHub(0).Broker(), NodeID: "a b"},
		{Broker: NewMemHub(0).Broker(), NodeTimeout: time.Second, Heartbeat: time.Second},
	} {
		if _, err := New(p, o); !errors.Is(err, ErrInvalidOptions) {
			t.Fatalf("%+v: %v", o, err)
		}
	}
	n, err := New(p, Options{Broker: NewMemHub(0).Broker()})
	if err != nil || len(n.ID()) != 12 {
		t.Fatalf("%v %q", err, n.ID())
	}
	if _, err := n.Broadcast(false, nil); !errors.Is(err, ErrNotStarted) {
		t.Fatal(err)
	}
}

// Presence larger than one broker message travels in several batches and
// snapshot chunks.
func TestNodeSnapshotChunks(t *testing.T) {
	hub := NewMemHub(700)
	o := Options{PresenceParams: []string{"worker"}}
	a := newMember(t, hub, "a", provider.Options{}, o)
	long := strings.Repeat("w", 150)
	dialN(t, a, 30, "t=T&worker="+long)
	b := newMember(t, hub, "b", provider.Options{}, o)
	eventually(t, "snapshot", converged([]*member{a, b}, 30, "T", 30))
	if s := b.n.Stats(); s.SnapshotsRequested < 5 {
		t.Fatalf("%d snapshot chunks for 30 × 150 bytes under a 700-byte limit", s.SnapshotsRequested)
	}
	b.n.Range(func(ci ConnInfo) bool {
		if ci.Params["worker"] != long {
			t.Fatalf("params %+v", ci.Params)
		}
		return true
	})
	// And batches: 30 more at once.
	dialN(t, a, 30, "t=T&worker="+long)
	eventually(t, "batches", converged([]*member{a, b}, 60, "T", 60))
}
