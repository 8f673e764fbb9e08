package provider

import (
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/networkcluster/networkcluster/frame"
	"github.com/networkcluster/networkcluster/internal/wstest"
)

// openConn starts a Provider and returns its side of one open connection
// and the client.
func openConn(t testing.TB, o Options) (*Provider, *Connection, *wstest.Client) {
	t.Helper()
	p, e, addr := start(t, o)
	c := dial(t, addr, "/connect")
	e.wait(t, "open", func(e *events) bool { return len(e.opened) == 1 })
	return p, e.opened[0], c
}

// TestAllocsReceive guards the receive-and-dispatch path: parsing, unmasking,
// validating and delivering a message allocates nothing.
func TestAllocsReceive(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	var delivered atomic.Int64
	o := Options{OnMessage: func(c *Connection, m Message) { delivered.Add(1) }}
	_, conn, _ := openConn(t, o)
	one := wstest.Frame(true, frame.OpText, 0, []byte("hello, provider: a small text message"))
	frag := append(wstest.Frame(false, frame.OpBinary, 0, make([]byte, 300)),
		wstest.Frame(true, frame.OpContinuation, 0, make([]byte, 200))...)
	in := make([]byte, 0, 1024)
	for name, stream := range map[string][]byte{"single": one, "fragmented": frag} {
		// The handler unmasks in place, so feed a fresh copy each run. Each
		// run waits for its message to reach OnMessage, so that the handler
		// side (queue, worker, delivery) is measured too.
		allocs := testing.AllocsPerRun(1000, func() {
			in = append(in[:0], stream...)
			want := delivered.Load() + 1
			if n := conn.onFrames(in); n != len(in) {
				t.Fatalf("consumed %d of %d", n, len(in))
			}
			for delivered.Load() < want {
				runtime.Gosched()
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %.1f allocations per message", name, allocs)
		}
	}
	if delivered.Load() == 0 {
		t.Fatal("nothing delivered")
	}
}

// TestAllocsSend guards the send path: framing and queueing a message
// allocates nothing.
func TestAllocsSend(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	_, conn, client := openConn(t, Options{})
	go func() { // keep reading so the queue drains
		for {
			if _, _, err := client.ReadFrame(); err != nil {
				return
			}
		}
	}()
	msg := []byte("a message for the consumer")
	for name, f := range map[string]func(){
		"SendBinary": func() { _ = conn.SendBinary(msg) },
		"SendText":   func() { _ = conn.SendText(msg) },
		"Send":       func() { _ = conn.Send("a string message") },
	} {
		if allocs := testing.AllocsPerRun(1000, f); allocs != 0 {
			t.Errorf("%s: %.1f allocations per message", name, allocs)
		}
	}
}

// TestAllocsBroadcastPrepared guards the per-receiver part of a broadcast:
// queueing a prepared message on every open connection allocates nothing
// (Broadcast itself allocates only the frame it encodes once).
func TestAllocsBroadcastPrepared(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	p, e, addr := start(t, Options{Heartbeat: Heartbeat{Mode: HeartbeatOff}})
	const receivers = 3
	for i := 0; i < receivers; i++ {
		c := dial(t, addr, "/connect")
		go func() { // keep reading so the queues drain
			for {
				if _, _, err := c.ReadFrame(); err != nil {
					return
				}
			}
		}()
	}
	e.wait(t, "open", func(e *events) bool { return len(e.opened) == receivers })
	m, err := p.Prepare(false, []byte("a broadcast"))
	if err != nil {
		t.Fatal(err)
	}
	var res BroadcastResult
	allocs := testing.AllocsPerRun(1000, func() { res = p.BroadcastPrepared(m, nil) })
	if allocs != 0 {
		t.Errorf("%.1f allocations per broadcast to %d receivers", allocs, receivers)
	}
	if res.Sent != receivers {
		t.Fatalf("last broadcast: %+v", res)
	}
}

func BenchmarkReceive(b *testing.B) {
	o := Options{OnMessage: func(c *Connection, m Message) {}}
	_, conn, _ := openConn(b, o)
	stream := wstest.Frame(true, frame.OpText, 0, make([]byte, 64))
	in := make([]byte, len(stream))
	b.ReportAllocs()
	b.SetBytes(64)
	for b.Loop() {
		copy(in, stream)
		conn.onFrames(in)
	}
}

func BenchmarkSend(b *testing.B) {
	_, conn, client := openConn(b, Options{MaxBackpressure: 64 << 20})
	go func() {
		for {
			if _, err := client.R.Discard(1 << 16); err != nil {
				return
			}
		}
	}()
	msg := make([]byte, 64)
	b.ReportAllocs()
	b.SetBytes(64)
	for b.Loop() {
		if err := conn.SendBinary(msg); err != nil {
			b.Fatal(err)
		}
	}
}
