package natsbroker_test

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// routed starts a nats-server on 127.0.0.1 (port, clusterPort: -1 for
// random) routed to the given cluster address (nil: none).
// With noAdvertise, clients do not learn the other servers' URLs (a
// client then only knows the URLs it was given).
func routed(t *testing.T, port, clusterPort int, route *net.TCPAddr, noAdvertise bool) *server.Server {
	t.Helper()
	o := &server.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true,
		Cluster: server.ClusterOpts{Name: "c", Host: "127.0.0.1", Port: clusterPort, NoAdvertise: noAdvertise}}
	if route != nil {
		o.Routes = []*url.URL{{Scheme: "nats", Host: route.String()}}
	}
	s, err := server.NewServer(o)
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

func waitRoutes(t *testing.T, ss ...*server.Server) {
	t.Helper()
	eventually(t, 10*time.Second, "routes", func() error {
		for _, s := range ss {
			if s.NumRoutes() == 0 {
				return errors.New("not routed yet")
			}
		}
		return nil
	})
}

// A9: two routed nats-servers (not advertising each other to clients);
// A on nats-1 (with nats-2 as a second URL), B and C on nats-2. When nats-1 dies, A fails over to nats-2 and
// cross-node delivery resumes, nobody declared down. If A lists only
// nats-1, A and {B, C} mark each other down after NodeTimeout and heal
// through snapshots when nats-1 returns.
func TestA9Partition(t *testing.T) {
	s1 := routed(t, -1, -1, nil, true)
	s2 := routed(t, -1, -1, s1.ClusterAddr(), true)
	waitRoutes(t, s1, s2)
	mo := memberOpts{}
	mo.Heartbeat = 200 * time.Millisecond
	mo.NodeTimeout = time.Second
	withBoth := mo
	withBoth.broker.URLs = nil
	a := newMemberURLs(t, []string{s1.ClientURL(), s2.ClientURL()}, "a", withBoth)
	b := newMember(t, s2.ClientURL(), "b", mo)
	c := newMember(t, s2.ClientURL(), "c", mo)
	ms := []*member{a, b, c}
	_, inB := newConsumer(t, nil, time.Second, b.addr)
	newConsumer(t, nil, time.Second, a.addr)
	eventually(t, 10*time.Second, "presence", converged(ms, 2, "", 0))

	s1.Shutdown()
	killed := time.Now()
	resumed := probeUntil(t, a, inB, "failover", 10*time.Second)
	t.Logf("A failed over to nats-2: cross-node delivery resumed %v after nats-1 died", resumed.Sub(killed))
	for _, m := range ms {
		for _, o := range ms {
			if _, down := m.counts(o.n.ID()); down != 0 {
				t.Fatalf("%s declared %s down", m.n.ID(), o.n.ID())
			}
		}
	}
}

// A9, second part: A lists only nats-1.
func TestA9PartitionHeals(t *testing.T) {
	s1 := routed(t, -1, -1, nil, true)
	p1, cp1 := s1.Addr().(*net.TCPAddr).Port, s1.ClusterAddr().Port
	s2 := routed(t, -1, -1, s1.ClusterAddr(), true)
	waitRoutes(t, s1, s2)
	mo := memberOpts{}
	mo.Heartbeat = 200 * time.Millisecond
	mo.NodeTimeout = time.Second
	a := newMember(t, s1.ClientURL(), "a", mo)
	b := newMember(t, s2.ClientURL(), "b", mo)
	c := newMember(t, s2.ClientURL(), "c", mo)
	ms := []*member{a, b, c}
	_, inB := newConsumer(t, nil, time.Second, b.addr)
	newConsumer(t, nil, time.Second, a.addr)
	eventually(t, 10*time.Second, "presence", converged(ms, 2, "", 0))

	s1.Shutdown()
	s1.WaitForShutdown()
	// B and C (their link is up) declare A down after NodeTimeout; A, whose
	// link is down, freezes them.
	eventually(t, 10*time.Second, "a down on b and c", func() error {
		for _, m := range []*member{b, c} {
			if _, down := m.counts("a"); down != 1 {
				return fmt.Errorf("%s: %d downs of a", m.n.ID(), down)
			}
		}
		return nil
	})
	if got := b.n.Len(); got != 1 {
		t.Fatalf("b still counts a's connection: Len %d", got)
	}
	if _, down := a.counts("b"); down != 0 {
		t.Fatal("a declared b down while its own link was down")
	}
	// A change on A during the partition.
	newConsumerNoWait(t, time.Second, a.addr)
	s1b := routed(t, p1, cp1, s2.ClusterAddr(), true)
	waitRoutes(t, s1b, s2)
	probeUntil(t, a, inB, "healed", 15*time.Second)
	eventually(t, 10*time.Second, "presence healed", converged(ms, 3, "", 0))
	if up, _ := b.counts("a"); up != 2 {
		t.Fatalf("b saw a come up %d times", up)
	}
}

// probeUntil broadcasts probes from a until in receives one; it returns
// when.
func probeUntil(t *testing.T, a *member, in *inbox, what string, d time.Duration) time.Time {
	t.Helper()
	start := time.Now()
	for i := 0; ; i++ {
		probe := fmt.Sprint(what, "-", i)
		a.n.Broadcast(false, []byte(probe))
		deadline := time.Now().Add(50 * time.Millisecond)
		for time.Now().Before(deadline) {
			if in.has(probe) {
				return time.Now()
			}
			time.Sleep(2 * time.Millisecond)
		}
		if time.Since(start) > d {
			t.Fatalf("%s: cross-node delivery did not resume", what)
		}
	}
}
