package provider

import (
	"bytes"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/frame"
	"github.com/networkcluster/networkcluster/internal/wstest"
)

// peer is a test client that answers every ping and counts the replies to
// its messages, until its connection ends.
type peer struct {
	c       *wstest.Client
	mu      sync.Mutex // orders writes: the reader answers pings
	replies atomic.Int32
	closed  atomic.Bool // the Provider sent a close frame or dropped TCP
	done    chan struct{}
}

func newPeer(t *testing.T, addr string) *peer {
	t.Helper()
	pr := &peer{c: dial(t, addr, "/connect"), done: make(chan struct{})}
	go func() {
		defer close(pr.done)
		for {
			h, payload, err := pr.c.ReadFrame()
			if err != nil {
				pr.closed.Store(true)
				return
			}
			switch h.Op {
			case frame.OpPing:
				pr.write(frame.OpPong, payload)
			case frame.OpClose:
				pr.closed.Store(true)
				return
			case frame.OpText:
				pr.replies.Add(1)
			}
		}
	}()
	return pr
}

func (pr *peer) write(op frame.Opcode, p []byte) {
	pr.mu.Lock()
	_ = pr.c.WriteFrame(true, op, p)
	pr.mu.Unlock()
}

// An OnMessage that blocks for 2 s on 300 busy connections, with a 250 ms
// heartbeat (2 strikes: dead after 750 ms without an answer), kills neither
// them nor an unrelated idle connection: their pongs are taken while the
// handlers block. With fewer handler workers than busy connections, the
// handlers wait their turn, still without a heartbeat kill.
func TestSlowHandlersKillNoHealthyPeer(t *testing.T) {
	for _, tc := range []struct {
		name           string
		workers, conns int
		block          time.Duration
	}{
		{"default workers, 300 connections", 0, 300, 2 * time.Second},
		{"16 workers, 48 connections", 16, 48, 700 * time.Millisecond}, // 3 rounds of handlers
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{
				Heartbeat:      Heartbeat{Interval: 250 * time.Millisecond},
				HandlerWorkers: tc.workers,
				OnMessage: func(c *Connection, m Message) {
					if bytes.Equal(m.Data, []byte("block")) {
						time.Sleep(tc.block)
					}
					_ = c.Send("done")
				},
			}
			p, e, addr := start(t, o)
			idle := newPeer(t, addr)
			busy := make([]*peer, tc.conns)
			for i := range busy {
				busy[i] = newPeer(t, addr)
			}
			e.wait(t, "all open", func(e *events) bool { return len(e.opened) == tc.conns+1 })
			for _, pr := range busy {
				pr.write(frame.OpText, []byte("block"))
			}
			// Keep the busy connections busy: a message every 100 ms, which
			// waits behind the blocked handler.
			const ticks = 5
			for range ticks {
				time.Sleep(100 * time.Millisecond)
				for _, pr := range busy {
					pr.write(frame.OpText, []byte("tick"))
				}
			}
			workers := tc.workers
			if workers == 0 {
				workers = DefaultHandlerWorkers
			}
			rounds := (tc.conns + workers - 1) / workers
			deadline := time.Now().Add(time.Duration(rounds)*tc.block + 20*time.Second)
			for _, pr := range busy {
				for pr.replies.Load() < 1+ticks && !pr.closed.Load() && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
			}
			time.Sleep(600 * time.Millisecond) // more heartbeat rounds after the handlers
			st := p.Stats()
			if st.HeartbeatKills != 0 || st.Closed != 0 || idle.closed.Load() {
				t.Fatalf("heartbeat kills %d, closed %d, idle connection closed: %v", st.HeartbeatKills, st.Closed, idle.closed.Load())
			}
			for i, pr := range busy {
				if n := pr.replies.Load(); n != 1+ticks || pr.closed.Load() {
					t.Fatalf("busy connection %d: %d replies of %d, closed %v", i, n, 1+ticks, pr.closed.Load())
				}
			}
			if n := p.Len(); n != tc.conns+1 {
				t.Fatalf("%d connections left of %d", n, tc.conns+1)
			}
		})
	}
}
