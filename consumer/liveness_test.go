package consumer

// Liveness against a real Provider: a handler that works longer than the
// Provider's heartbeat allows must not cost the connection, and a
// connection lost while a handler works must be seen as lost at once.

import (
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/networkcluster/networkcluster/frame"
	"github.com/networkcluster/networkcluster/provider"
)

// startProvider starts a Provider on a free port of 127.0.0.1, closed when
// the test ends.
func startProvider(t *testing.T, o provider.Options) *provider.Provider {
	t.Helper()
	o.Addr = "127.0.0.1:0"
	p, err := provider.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// TestSlowHandlerKeepsConnection: a worker that spends 1.5 s in OnMessage
// on a job, under a 200 ms heartbeat (the Provider drops a connection after
// about 600 ms without a pong), keeps its connection and delivers the
// result on it.
func TestSlowHandlerKeepsConnection(t *testing.T) {
	var provClosed atomic.Int64
	results := make(chan string, 1)
	p := startProvider(t, provider.Options{
		Heartbeat: provider.Heartbeat{Interval: 200 * time.Millisecond},
		OnOpen:    func(c *provider.Connection) { _ = c.Send("job") },
		OnMessage: func(c *provider.Connection, m provider.Message) { results <- m.Text() },
		OnClose:   func(*provider.Connection, provider.CloseCode, string) { provClosed.Add(1) },
	})
	var c *Consumer
	var sendErr atomic.Value
	c, ev := newConsumer(t, p.Port(), func(o *Options) {
		o.OnMessage = func(m Message) {
			time.Sleep(1500 * time.Millisecond) // the job
			if err := c.Send("result of " + m.Text()); err != nil {
				sendErr.Store(err)
			}
		}
	})
	if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-results:
		if r != "result of job" {
			t.Fatalf("result %q", r)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no result; send error %v", sendErr.Load())
	}
	opens, disc, _, _, _ := ev.snapshot()
	if opens != 1 || len(disc) != 0 || provClosed.Load() != 0 || !c.Connected() {
		t.Fatalf("opens %d, disconnects %v, Provider closes %d, connected %v: the slow handler cost the connection",
			opens, disc, provClosed.Load(), c.Connected())
	}
	if n := p.Stats().HeartbeatKills; n != 0 {
		t.Fatalf("%d heartbeat kills", n)
	}
}

// TestCloseHandshakeWhileHandlerRuns: the Provider closes a connection
// whose handler works for 3 s; the close handshake completes (the Provider
// sees the echo of its code, not a timeout) well before the handler ends,
// and OnDisconnect follows the handler.
func TestCloseHandshakeWhileHandlerRuns(t *testing.T) {
	type closeEv struct {
		code provider.CloseCode
		at   time.Time
	}
	provClosed := make(chan closeEv, 1)
	var conn atomic.Pointer[provider.Connection]
	p := startProvider(t, provider.Options{
		OnOpen: func(c *provider.Connection) { conn.Store(c); _ = c.Send("job") },
		OnClose: func(_ *provider.Connection, code provider.CloseCode, _ string) {
			provClosed <- closeEv{code, time.Now()}
		},
	})
	started := make(chan struct{})
	var handlerDone atomic.Int64 // unix ns
	var order []string
	var mu sync.Mutex
	c, _ := newConsumer(t, p.Port(), func(o *Options) {
		o.Reconnect.Interval = time.Hour
		o.OnMessage = func(Message) {
			close(started)
			time.Sleep(3 * time.Second)
			handlerDone.Store(time.Now().UnixNano())
			mu.Lock()
			order = append(order, "message")
			mu.Unlock()
		}
		o.OnDisconnect = func(code frame.CloseCode, _ string) {
			mu.Lock()
			order = append(order, "disconnect "+code.String())
			mu.Unlock()
		}
	})
	if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	<-started
	t0 := time.Now()
	if err := conn.Load().Close(4000, "bye"); err != nil {
		t.Fatal(err)
	}
	var ev closeEv
	select {
	case ev = <-provClosed:
	case <-time.After(20 * time.Second):
		t.Fatal("the Provider saw no close")
	}
	t.Logf("closed at +%v, handler done %v", time.Since(t0), handlerDone.Load())
	if ev.code != 4000 {
		t.Fatalf("the Provider's close: code %v, want its own 4000 echoed", ev.code)
	}
	if d := handlerDone.Load(); d != 0 && time.Unix(0, d).Before(ev.at) {
		t.Fatalf("the close handshake waited for the handler")
	}
	c.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(order) != 2 || order[0] != "message" || !strings.HasPrefix(order[1], "disconnect 4000") {
		t.Fatalf("events %q, want the message handled, then the disconnect with 4000", order)
	}
}

// TestLossSeenWhileHandlerRuns: the Provider ends the connection while a
// handler works, with a close frame or by dropping TCP without one (as its
// heartbeat does with a peer it gave up on). From inside the handler,
// Connected turns false and sends fail at once; OnDisconnect then reports
// the real cause, not the closed socket.
func TestLossSeenWhileHandlerRuns(t *testing.T) {
	for _, tc := range []struct {
		name   string
		end    func(nc net.Conn)
		code   frame.CloseCode
		reason string
	}{
		{"close frame", func(nc net.Conn) {
			_ = ws.WriteFrame(nc, ws.NewCloseFrame(ws.NewCloseFrameBody(4001, "going")))
			_, _ = io.Copy(io.Discard, nc)
		}, 4001, "going"},
		{"TCP dropped", func(nc net.Conn) { nc.Close() }, frame.CloseAbnormal, "EOF"},
		{"TCP reset", func(nc net.Conn) {
			if tc, ok := nc.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			nc.Close()
		}, frame.CloseAbnormal, "reset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			end := make(chan struct{})
			port, _ := rawListener(t, func(nc net.Conn) {
				if _, err := ws.Upgrade(nc); err != nil {
					return
				}
				go func() {
					_ = ws.WriteFrame(nc, ws.NewTextFrame([]byte("job")))
					<-end
					tc.end(nc)
				}()
			})
			type result struct {
				seen    time.Duration
				sendErr error
			}
			res := make(chan result, 1)
			var c *Consumer
			c, ev := newConsumer(t, port, func(o *Options) {
				o.Reconnect.Interval = time.Hour
				o.OnMessage = func(Message) {
					close(end)
					start := time.Now()
					for c.Connected() && time.Since(start) < 10*time.Second {
						time.Sleep(time.Millisecond)
					}
					res <- result{time.Since(start), c.Send("result")}
				}
			})
			if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
				t.Fatal(err)
			}
			r := <-res
			if r.seen >= 10*time.Second {
				t.Fatalf("Connected still true 10 s after the Provider ended the connection")
			}
			if !errors.Is(r.sendErr, ErrNotConnected) {
				t.Fatalf("Send on the lost connection = %v, want ErrNotConnected", r.sendErr)
			}
			waitFor(t, 10*time.Second, "the disconnect", func() bool { _, d, _, _, _ := ev.snapshot(); return len(d) == 1 })
			_, disc, _, _, _ := ev.snapshot()
			if disc[0].code != int(tc.code) || !strings.Contains(disc[0].reason, tc.reason) {
				t.Fatalf("OnDisconnect(%d, %q), want %d and a reason naming %q", disc[0].code, disc[0].reason, tc.code, tc.reason)
			}
			t.Logf("the loss was seen in the handler after %v; OnDisconnect(%d, %q)", r.seen, disc[0].code, disc[0].reason)
		})
	}
}

// TestFullQueuePausesReading: with a queue of 2 messages and a handler that
// is held, the Consumer reads no further than the queue allows (the rest
// waits in TCP), drops nothing, and delivers every message in order once the
// handler goes on.
func TestFullQueuePausesReading(t *testing.T) {
	const n = 50
	msg := make([]byte, 1000)
	wrote := make(chan struct{})
	port, _ := rawListener(t, func(nc net.Conn) {
		if _, err := ws.Upgrade(nc); err != nil {
			return
		}
		go func() {
			defer close(wrote)
			for i := 0; i < n; i++ {
				msg[0] = byte(i)
				if err := ws.WriteFrame(nc, ws.NewBinaryFrame(msg)); err != nil {
					return
				}
			}
		}()
	})
	release := make(chan struct{})
	var mu sync.Mutex
	var got []byte
	c, _ := newConsumer(t, port, func(o *Options) {
		o.QueueLength = 2
		o.QueueBytes = 1500 // one 1000-byte message at a time
		o.OnMessage = func(m Message) {
			<-release
			mu.Lock()
			got = append(got, m.Data[0])
			mu.Unlock()
		}
	})
	if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	<-wrote // all 50 frames are in the socket buffers or read
	time.Sleep(50 * time.Millisecond)
	c.disp.mu.Lock()
	q, p := c.disp.queued, c.disp.n
	c.disp.mu.Unlock()
	if q > 1000 || p > 0 {
		t.Fatalf("%d bytes, %d messages queued behind a held handler, want only the running one's 1000", q, p)
	}
	close(release)
	waitFor(t, 10*time.Second, "every message", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == n })
	mu.Lock()
	defer mu.Unlock()
	for i, b := range got {
		if int(b) != i {
			t.Fatalf("message %d arrived as number %d: out of order", i, b)
		}
	}
}

// TestSlowRequestHandlerKeepsConnection: OnRequest runs off the read loop
// like OnMessage: a 1.5 s request handler under a 200 ms heartbeat keeps
// its connection, and its reply reaches the Provider's Request.
func TestSlowRequestHandlerKeepsConnection(t *testing.T) {
	conns := make(chan *provider.Connection, 1)
	p := startProvider(t, provider.Options{
		Heartbeat: provider.Heartbeat{Interval: 200 * time.Millisecond},
		OnOpen:    func(c *provider.Connection) { conns <- c },
	})
	c, ev := newConsumer(t, p.Port(), func(o *Options) {
		o.OnRequest = func(r *Request) {
			time.Sleep(1500 * time.Millisecond)
			_ = r.Reply(false, append([]byte("done "), r.Message().Data...))
		}
	})
	if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	pc := <-conns
	if !pc.SupportsRequests() {
		t.Fatal("requests not negotiated")
	}
	m, err := pc.Request(ctxT(t, 20*time.Second), false, []byte("job"))
	if err != nil || string(m.Data) != "done job" {
		t.Fatalf("Request = %q, %v", m.Data, err)
	}
	if opens, disc, _, _, _ := ev.snapshot(); opens != 1 || len(disc) != 0 || p.Stats().HeartbeatKills != 0 {
		t.Fatalf("opens %d, disconnects %v, heartbeat kills %d", opens, disc, p.Stats().HeartbeatKills)
	}
}
