package provider

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/frame"
	"github.com/networkcluster/networkcluster/internal/wstest"
)

// openN dials n connections and returns the clients and, in the same order,
// the Provider's connections.
func openN(t testing.TB, p *Provider, e *events, addr string, n int) ([]*wstest.Client, []*Connection) {
	t.Helper()
	clients := make([]*wstest.Client, n)
	for i := range clients {
		clients[i] = dial(t, addr, fmt.Sprintf("/connect?i=%d", i))
	}
	e.wait(t, "opens", func(e *events) bool { return len(e.opened) >= n })
	conns := make([]*Connection, n)
	for _, c := range p.Connections() {
		var i int
		fmt.Sscan(c.Param("i"), &i)
		conns[i] = c
	}
	return clients, conns
}

func TestBroadcastAndTopics(t *testing.T) {
	p, e, addr := start(t, Options{})
	clients, conns := openN(t, p, e, addr, 6)
	// Topics: even connections on "even", 0 and 3 on "x".
	for i, c := range conns {
		if i%2 == 0 {
			c.Subscribe("even")
		}
	}
	conns[0].Subscribe("x")
	conns[3].Subscribe("x")
	conns[3].Subscribe("x") // twice is harmless
	if got := conns[0].Topics(); len(got) != 2 || got[0] != "even" || got[1] != "x" {
		t.Fatalf("topics %v", got)
	}
	if p.Subscribers("even") != 3 || p.Subscribers("x") != 2 || p.Subscribers("none") != 0 {
		t.Fatal("subscriber counts")
	}
	r, err := p.Broadcast(false, []byte("to all"))
	if err != nil || r.Sent != 6 || r.Refused != 0 {
		t.Fatalf("broadcast %+v %v", r, err)
	}
	r, _ = p.Publish("even", true, []byte{1, 2, 3})
	if r.Sent != 3 {
		t.Fatalf("publish even %+v", r)
	}
	conns[0].Unsubscribe("x")
	r, _ = p.Publish("x", false, []byte("x only"))
	if r.Sent != 1 {
		t.Fatalf("publish x %+v", r)
	}
	r, _ = p.BroadcastFilter(false, []byte("odd"), func(c *Connection) bool { return c.Param("i") == "1" || c.Param("i") == "5" })
	if r.Sent != 2 {
		t.Fatalf("filter %+v", r)
	}
	if _, err := p.Broadcast(false, []byte{0xff}); !errors.Is(err, ErrInvalidUTF8) {
		t.Fatalf("invalid text broadcast: %v", err)
	}
	// Each client receives exactly what it should, in order, then a marker.
	for _, c := range conns {
		c.Send("end")
	}
	for i, cl := range clients {
		var got []string
		for {
			_, data, err := cl.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			if string(data) == "end" {
				break
			}
			got = append(got, string(data))
		}
		want := []string{"to all"}
		if i%2 == 0 {
			want = append(want, "\x01\x02\x03")
		}
		if i == 3 {
			want = append(want, "x only")
		}
		if i == 1 || i == 5 {
			want = append(want, "odd")
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("client %d got %q, want %q", i, got, want)
		}
	}
	// A closed connection leaves its topics.
	clients[2].Close()
	e.wait(t, "close", func(e *events) bool { return len(e.closes) == 1 })
	if p.Subscribers("even") != 2 {
		t.Fatalf("closed connection still subscribed: %d", p.Subscribers("even"))
	}
	if err := conns[2].Subscribe("y"); !errors.Is(err, ErrClosed) {
		t.Fatalf("subscribe on closed: %v", err)
	}
	s := p.Stats()
	if s.MessagesOut != 6+3+1+2+6 {
		t.Fatalf("messages out %d", s.MessagesOut)
	}
}

// One receiver that never reads must not stop a broadcast to the others,
// nor block the publisher: it meets its own backpressure limit and is
// closed, and everyone else receives every message.
func TestBroadcastSlowReceiver(t *testing.T) {
	const n = 1000
	// The readers do not answer pings: under load the test may outlast the
	// heartbeat's strikes, which would close them.
	o := Options{MaxBackpressure: 256 << 10, Heartbeat: Heartbeat{Mode: HeartbeatOff}}
	p, e, addr := start(t, o)
	// The slow receiver: a small receive buffer, and it never reads.
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
	}}
	raw, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	slowClient, err := wstest.Handshake(raw, addr, "/connect?i=slow", nil, nil)
	if err != nil || slowClient.Resp.StatusCode != 101 {
		t.Fatal(err)
	}
	defer slowClient.Close()
	clients, _ := openN(t, p, e, addr, n)
	e.wait(t, "opens", func(e *events) bool { return len(e.opened) == n+1 })
	var slow *Connection
	for _, c := range p.Connections() {
		if c.Param("i") == "slow" {
			slow = c
		}
	}
	var wg sync.WaitGroup
	counts := make([]atomic.Int64, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for {
				_, data, err := clients[i].ReadMessage()
				if err != nil {
					t.Errorf("client %d: %v", i, err)
					return
				}
				if string(data) == "end" {
					return
				}
				counts[i].Add(1)
			}
		}(i)
	}
	// The readers share two cores with the publisher: let them catch up
	// every 32 rounds, so that only the reader that never reads falls
	// behind (the others' queues stay far below their limit).
	catchUp := func(rounds int) {
		deadline := time.Now().Add(30 * time.Second)
		for i := range counts {
			for counts[i].Load() < int64(rounds) {
				if time.Now().After(deadline) {
					t.Fatalf("client %d stuck at %d of %d", i, counts[i].Load(), rounds)
				}
				time.Sleep(time.Millisecond)
			}
		}
	}
	msg := bytes.Repeat([]byte("b"), 1024)
	rounds, refused := 0, 0
	for rounds < 20000 && refused == 0 {
		res, err := p.Broadcast(true, msg)
		if err != nil {
			t.Fatal(err)
		}
		if res.Sent < n {
			t.Fatalf("round %d: sent to %d of %d: %+v", rounds, res.Sent, n, res)
		}
		refused += res.Refused
		rounds++
		if rounds%32 == 0 {
			catchUp(rounds)
		}
	}
	if refused != 1 {
		t.Fatalf("the slow receiver was never refused in %d rounds", rounds)
	}
	res, _ := p.Broadcast(false, []byte("end"))
	if res.Sent != n {
		t.Fatalf("end marker sent to %d", res.Sent)
	}
	wg.Wait()
	for i := range counts {
		if got := counts[i].Load(); got != int64(rounds) {
			t.Fatalf("client %d got %d of %d", i, got, rounds)
		}
	}
	if st := slow.State(); st != StateClosing && st != StateClosed {
		t.Fatalf("slow connection state %v", st)
	}
	if s := p.Stats(); s.BackpressureCloses != 1 {
		t.Fatalf("stats %+v", s)
	}
	t.Logf("%d broadcasts of 1 KiB to %d receivers before the slow one hit 256 KiB", rounds, n)
}

func TestPreparedMessageShared(t *testing.T) {
	p, e, addr := start(t, Options{})
	clients, conns := openN(t, p, e, addr, 3)
	m, err := p.Prepare(false, []byte("prepared"))
	if err != nil || m.Len() != 8 {
		t.Fatal(err)
	}
	for _, c := range conns {
		if err := c.SendPrepared(m); err != nil {
			t.Fatal(err)
		}
	}
	got := make([]string, 0, 3)
	for _, cl := range clients {
		_, data, err := cl.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(data))
	}
	sort.Strings(got)
	if fmt.Sprint(got) != "[prepared prepared prepared]" {
		t.Fatal(got)
	}
	_ = frame.OpText
}
