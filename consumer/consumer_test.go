package consumer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/networkcluster/networkcluster/compress"
	"github.com/networkcluster/networkcluster/frame"
	"github.com/networkcluster/networkcluster/internal/proto"
)

// TestMain fails the run when a Consumer goroutine outlives the tests.
func TestMain(m *testing.M) {
	if os.Getenv(childServerEnv) != "" {
		runChildServer() // the server process of BenchmarkIdleMemory
		return
	}
	code := m.Run()
	if code == 0 {
		if leaked := consumerGoroutines(2 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "leaked Consumer goroutines:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// consumerGoroutines waits up to d for every goroutine running Consumer
// code to exit, and returns the stacks of those left.
func consumerGoroutines(d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var left []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "consumer.(*Consumer).run") || strings.Contains(g, "consumer.(*dispatcher).loop") {
				left = append(left, g)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return strings.Join(left, "\n\n")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestEchoTextAndBinary(t *testing.T) {
	s := newTestServer(t, srvOpts{mode: hbHeader, interval: time.Second})
	c, ev := newConsumer(t, s.port, nil)
	if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if !c.Connected() || c.InFlight() {
		t.Fatalf("Connected=%v InFlight=%v after Connect", c.Connected(), c.InFlight())
	}
	if got := c.HeartbeatInterval(); got != time.Second {
		t.Fatalf("HeartbeatInterval = %v, want 1s (from %s)", got, proto.HeartbeatHeader)
	}
	if got := c.HeartbeatCutoff(); got != 2*time.Second {
		t.Fatalf("HeartbeatCutoff = %v", got)
	}
	if err := c.Send("héllo"); err != nil {
		t.Fatal(err)
	}
	if err := c.SendBinary([]byte{0, 1, 2, 255}); err != nil {
		t.Fatal(err)
	}
	if err := c.SendText(nil); err != nil {
		t.Fatal(err)
	}
	if err := c.SendText([]byte{0xff}); !errors.Is(err, ErrInvalidUTF8) {
		t.Fatalf("SendText(invalid UTF-8) = %v", err)
	}
	waitFor(t, 5*time.Second, "3 echoes", func() bool { _, _, _, _, m := ev.snapshot(); return len(m) == 3 })
	_, _, _, _, msgs := ev.snapshot()
	want := []string{`false:"héllo"`, `true:"\x00\x01\x02\xff"`, `false:""`}
	for i, m := range msgs {
		if msgText(m) != want[i] {
			t.Errorf("message %d = %s, want %s", i, msgText(m), want[i])
		}
	}
	if msgs[0].Text() != "héllo" {
		t.Errorf("Text() = %q", msgs[0].Text())
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	opens, disc, closes, _, _ := ev.snapshot()
	if opens != 1 || len(disc) != 1 || disc[0].code != 1000 || len(closes) != 1 || closes[0].code != 1000 {
		t.Fatalf("events: opens=%d disconnects=%v closes=%v", opens, disc, closes)
	}
	waitFor(t, 5*time.Second, "server to see the close", func() bool { return len(s.closeCodes()) == 1 })
	if got := s.closeCodes()[0]; got != ws.StatusNormalClosure {
		t.Fatalf("server got close %d, want 1000", got)
	}
	if err := c.Send("x"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close = %v, want ErrClosed", err)
	}
	if err := c.Connect(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Connect after Close = %v, want ErrClosed", err)
	}
}

func TestLargeAndFragmentedMessages(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	s := newTestServer(t, srvOpts{
		handler: func(sc *srvConn, op ws.OpCode, p []byte) {
			if string(p) != "fragments" {
				_ = sc.write(op, p)
				return
			}
			// A text message in three fragments with a ping between them;
			// "é" is split across the fragment boundary.
			var b []byte
			b = append(b, rawFrame(false, 0, 1, false, []byte("ab\xc3"))...)
			b = append(b, rawFrame(true, 0, 9, false, []byte("hb"))...)
			b = append(b, rawFrame(false, 0, 0, false, []byte("\xa9cd"))...)
			b = append(b, rawFrame(true, 0, 0, false, bytes.Repeat([]byte("z"), 5000))...)
			_ = sc.writeRaw(b)
		},
	})
	c, ev := newConsumer(t, s.port, func(o *Options) { o.ReadBufferSize = 512 })
	if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := c.SendBinary(big); err != nil {
		t.Fatal(err)
	}
	if err := c.Send("fragments"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "2 messages", func() bool { _, _, _, _, m := ev.snapshot(); return len(m) == 2 })
	_, _, _, _, msgs := ev.snapshot()
	if !msgs[0].Binary || !bytes.Equal(msgs[0].Data, big) {
		t.Errorf("1 MiB echo differs (len %d)", len(msgs[0].Data))
	}
	if want := "ab\xc3\xa9cd" + strings.Repeat("z", 5000); msgs[1].Binary || string(msgs[1].Data) != want {
		t.Errorf("fragmented message = %.40q…", msgs[1].Data)
	}
	waitFor(t, 5*time.Second, "the pong", func() bool { return s.pongs.Load() == 1 })
}

func TestReconnectAfterServerRestart(t *testing.T) {
	s := newTestServer(t, srvOpts{mode: hbHeader, interval: 10 * time.Second})
	c, ev := newConsumer(t, s.port, nil)
	if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	s.stop()
	waitFor(t, 5*time.Second, "the disconnect", func() bool { _, d, _, _, _ := ev.snapshot(); return len(d) == 1 })
	if err := c.Send("lost"); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("Send while disconnected = %v, want ErrNotConnected", err)
	}
	s = s.restart()
	if err := c.Ready(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := c.Send("back"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the echo", func() bool { _, _, _, _, m := ev.snapshot(); return len(m) == 1 })
	opens, disc, closes, _, _ := ev.snapshot()
	if opens != 2 || disc[0].code != int(frame.CloseAbnormal) || len(closes) != 0 {
		t.Fatalf("opens=%d disconnects=%v closes=%v", opens, disc, closes)
	}
}

func TestGiveUpAfterMaxAttempts(t *testing.T) {
	port := freePort(t)
	var closes atomic.Int64
	c, ev := newConsumer(t, port, func(o *Options) {
		o.Reconnect = Reconnect{Interval: 5 * time.Millisecond, MaxAttempts: 3}
		o.OnClose = func(frame.CloseCode, string) { closes.Add(1) }
	})
	// Several waiters, started before and after Connect: all released.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = c.Ready(ctxT(t, 10*time.Second)) }()
	}
	err := c.Connect(ctxT(t, 10*time.Second))
	wg.Wait()
	if !errors.Is(err, ErrGaveUp) {
		t.Fatalf("Connect = %v, want ErrGaveUp", err)
	}
	var ne *net.OpError
	if !errors.As(err, &ne) {
		t.Fatalf("Connect error %v does not wrap the last dial error", err)
	}
	for i, e := range errs {
		if !errors.Is(e, ErrGaveUp) {
			t.Errorf("waiter %d got %v", i, e)
		}
	}
	_, _, _, failures, _ := ev.snapshot()
	if len(failures) != 3 {
		t.Errorf("%d failed attempts reported, want 3", len(failures))
	}
	if err := c.Ready(context.Background()); !errors.Is(err, ErrGaveUp) {
		t.Errorf("Ready after giving up = %v", err)
	}
	if err := c.Connect(context.Background()); !errors.Is(err, ErrGaveUp) {
		t.Errorf("Connect after giving up = %v", err)
	}
	c.Close()
	c.Destroy()
	if n := closes.Load(); n != 1 {
		t.Fatalf("close event %d times, want once", n)
	}
}

func TestForbiddenIsFinal(t *testing.T) {
	s := newTestServer(t, srvOpts{reject: func(int) int { return 403 }})
	c, ev := newConsumer(t, s.port, nil)
	err := c.Connect(ctxT(t, 5*time.Second))
	var he *HandshakeError
	if !errors.As(err, &he) || he.StatusCode != 403 || !he.Final() || he.Body != "Unauthorized" || he.Status != "Forbidden" {
		t.Fatalf("Connect = %#v (%v), want a final 403 HandshakeError", he, err)
	}
	if n := s.upgrades(); n != 1 {
		t.Fatalf("%d handshakes, want 1: a 403 must not be retried", n)
	}
	_, _, closes, _, _ := ev.snapshot()
	if len(closes) != 1 || closes[0].code != int(frame.CloseAbnormal) {
		t.Fatalf("close events %v", closes)
	}
}

func TestOtherStatusRetried(t *testing.T) {
	s := newTestServer(t, srvOpts{reject: func(n int) int {
		if n <= 2 {
			return 503
		}
		return 0
	}})
	c, ev := newConsumer(t, s.port, nil)
	if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	_, _, _, errs, _ := ev.snapshot()
	var he *HandshakeError
	if len(errs) != 2 || !errors.As(errs[0], &he) || he.StatusCode != 503 {
		t.Fatalf("errors reported: %v", errs)
	}
}

func TestHeartbeatCutoffReconnects(t *testing.T) {
	// The server announces 30 ms but never pings: the Consumer must drop
	// the connection after 60 ms and connect again.
	s := newTestServer(t, srvOpts{mode: hbHeader, interval: 30 * time.Millisecond, pingEvery: -1})
	c, ev := newConsumer(t, s.port, nil)
	if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	first := c.LastHeartbeat()
	waitFor(t, 10*time.Second, "a reconnect after the cutoff", func() bool {
		opens, _, _, _, _ := ev.snapshot()
		return opens >= 2
	})
	_, disc, _, errs, _ := ev.snapshot()
	if disc[0].code != int(frame.CloseAbnormal) || !strings.Contains(disc[0].reason, "heartbeat") {
		t.Fatalf("disconnect %v", disc[0])
	}
	if !errors.Is(errs[0], ErrHeartbeatCutoff) {
		t.Fatalf("error %v, want ErrHeartbeatCutoff", errs[0])
	}
	waitFor(t, 5*time.Second, "a fresh LastHeartbeat", func() bool { return c.LastHeartbeat().After(first) })
}

func TestControlHeartbeat(t *testing.T) {
	// Pings every 10 ms with a 40 ms interval announced: the connection
	// stays up, every ping is answered.
	s := newTestServer(t, srvOpts{mode: hbHeader, interval: 500 * time.Millisecond, pingEvery: 10 * time.Millisecond})
	c, ev := newConsumer(t, s.port, nil)
	if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	start := c.LastHeartbeat()
	// 150 pings take at least 1.5 s, more than the 1 s cutoff, so the
	// deadline must have been re-armed.
	waitFor(t, 20*time.Second, "150 pongs", func() bool { return s.pongs.Load() >= 150 })
	if !c.LastHeartbeat().After(start) {
		t.Fatal("LastHeartbeat did not advance")
	}
	if c.HeartbeatInterval() != 500*time.Millisecond {
		t.Fatalf("interval %v", c.HeartbeatInterval())
	}
	opens, disc, _, _, msgs := ev.snapshot()
	if opens != 1 || len(msgs) != 0 {
		t.Fatalf("opens=%d (disconnects %v) messages=%d: pings must neither drop the connection nor reach OnMessage", opens, disc, len(msgs))
	}
}

func TestTextHeartbeat(t *testing.T) {
	s := newTestServer(t, srvOpts{mode: hbText, interval: 500 * time.Millisecond, pingEvery: 10 * time.Millisecond})
	c, ev := newConsumer(t, s.port, nil)
	if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "150 PONGs", func() bool { return s.textPongs.Load() >= 150 })
	if c.HeartbeatInterval() != 500*time.Millisecond || c.HeartbeatCutoff() != time.Second {
		t.Fatalf("interval %v cutoff %v", c.HeartbeatInterval(), c.HeartbeatCutoff())
	}
	if err := c.Send("PING"); err != nil { // a user message: echoed back, then swallowed as a heartbeat
		t.Fatal(err)
	}
	if err := c.Send("work"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the echo", func() bool { _, _, _, _, m := ev.snapshot(); return len(m) == 1 })
	opens, disc, _, _, msgs := ev.snapshot()
	if opens != 1 || string(msgs[0].Data) != "work" {
		t.Fatalf("opens=%d (disconnects %v) messages=%v", opens, disc, msgs)
	}
}

func TestTextHeartbeatCutoff(t *testing.T) {
	s := newTestServer(t, srvOpts{mode: hbText, interval: 20 * time.Millisecond, pingEvery: -1})
	c, ev := newConsumer(t, s.port, nil)
	if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a reconnect", func() bool { o, _, _, _, _ := ev.snapshot(); return o >= 2 })
}

func TestNoHeartbeatNoCutoff(t *testing.T) {
	// A plain server: "PROVIDER_HEARTBEAT|…" after the first message and
	// "PING" are ordinary messages.
	s := newTestServer(t, srvOpts{onOpen: func(sc *srvConn) {
		_ = sc.write(ws.OpText, []byte("hello"))
		_ = sc.write(ws.OpText, []byte("PROVIDER_HEARTBEAT|10"))
		_ = sc.write(ws.OpText, []byte("PING"))
	}})
	c, ev := newConsumer(t, s.port, nil)
	if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "3 messages", func() bool { _, _, _, _, m := ev.snapshot(); return len(m) == 3 })
	if c.HeartbeatInterval() != 0 || c.HeartbeatCutoff() != 0 {
		t.Fatalf("interval %v", c.HeartbeatInterval())
	}
}

func TestJitterSpreadsReconnects(t *testing.T) {
	// 16 Consumers lose their server at the same instant; with a 200 ms
	// interval and ±50 % jitter their reconnects spread over up to 200 ms.
	const n = 16
	s := newTestServer(t, srvOpts{})
	var cs []*Consumer
	for i := 0; i < n; i++ {
		c, _ := newConsumer(t, s.port, func(o *Options) {
			o.Reconnect = Reconnect{Interval: 200 * time.Millisecond, Jitter: 0.5}
		})
		if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	s.stop()
	waitFor(t, 5*time.Second, "every disconnect", func() bool {
		for _, c := range cs {
			if c.Connected() {
				return false
			}
		}
		return true
	})
	s = newTestServerOn(t, s.o, s.port)
	for _, c := range cs {
		if err := c.Ready(ctxT(t, 10*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	s.mu.Lock()
	times := slices.Clone(s.accepts)
	s.mu.Unlock()
	if len(times) < n {
		t.Fatalf("%d reconnects", len(times))
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	spread := times[len(times)-1].Sub(times[0])
	// Uniform over 200 ms: 16 draws all within 40 ms has probability < 1e-9.
	if spread < 40*time.Millisecond {
		t.Fatalf("reconnects spread over %v only", spread)
	}
	t.Logf("16 reconnects spread over %v", spread)
}

func TestBackoffPolicy(t *testing.T) {
	c, err := New(Options{Reconnect: Reconnect{Interval: 100 * time.Millisecond, Backoff: 2, MaxInterval: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	var lo, hi time.Duration = time.Hour, 0
	for i := 0; i < 1000; i++ {
		d := c.backoff(0)
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo < 80*time.Millisecond || hi > 120*time.Millisecond || hi-lo < 20*time.Millisecond {
		t.Fatalf("jittered waits in [%v, %v], want spread within [80ms, 120ms]", lo, hi)
	}
	for n, want := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		d := c.backoff(n)
		want *= time.Millisecond
		if d < want*8/10 || d > want*12/10 {
			t.Errorf("backoff(%d) = %v, want %v ±20%%", n, d, want)
		}
	}
	c2, _ := New(Options{Reconnect: Reconnect{Interval: 100 * time.Millisecond, Backoff: 1, NoJitter: true}})
	for n := 0; n < 5; n++ {
		if d := c2.backoff(n); d != 100*time.Millisecond {
			t.Errorf("NoJitter fixed backoff(%d) = %v", n, d)
		}
	}
	// The default: doubling from 1 s up to 10 s, never giving up.
	c3, _ := New(Options{Reconnect: Reconnect{NoJitter: true}})
	for n, want := range []time.Duration{1, 2, 4, 8, 10, 10, 10} {
		if d := c3.backoff(n); d != want*time.Second {
			t.Errorf("default backoff(%d) = %v, want %v", n, d, want*time.Second)
		}
	}
	if c3.cfg.Reconnect.MaxAttempts > 0 {
		t.Errorf("default MaxAttempts %d, want never to give up", c3.cfg.Reconnect.MaxAttempts)
	}
	// The Node policy is one option away.
	c4, _ := New(Options{Reconnect: NodeReconnect()})
	if r := c4.cfg.Reconnect; r.MaxAttempts != 10 || r.Interval != time.Second || c4.backoff(5) < 800*time.Millisecond || c4.backoff(5) > 1200*time.Millisecond {
		t.Errorf("NodeReconnect: %+v, backoff(5) = %v", r, c4.backoff(5))
	}
}

func TestCloseBeforeConnect(t *testing.T) {
	for _, destroy := range []bool{false, true} {
		c, ev := newConsumer(t, freePort(t), nil)
		if destroy {
			c.Destroy()
		} else if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		c.Close()
		if err := c.Connect(context.Background()); !errors.Is(err, ErrClosed) {
			t.Fatalf("Connect after Close = %v", err)
		}
		if err := c.Send("x"); !errors.Is(err, ErrClosed) {
			t.Fatalf("Send = %v", err)
		}
		_, _, closes, _, _ := ev.snapshot()
		if len(closes) != 1 {
			t.Fatalf("close events %v", closes)
		}
	}
}

func TestSendBeforeConnect(t *testing.T) {
	c, _ := newConsumer(t, freePort(t), nil)
	if err := c.Send("x"); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("Send = %v", err)
	}
	if err := c.Ready(ctxT(t, 20*time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ready before Connect = %v, want the context's error", err)
	}
}

func TestCloseWhileDialing(t *testing.T) {
	port, accepted := silentListener(t)
	for _, destroy := range []bool{false, true} {
		c, ev := newConsumer(t, port, func(o *Options) { o.DialTimeout = time.Minute })
		res := make(chan error, 1)
		go func() { res <- c.Connect(context.Background()) }()
		waitFor(t, 5*time.Second, "the dial", func() bool { return c.InFlight() && accepted.Load() > 0 })
		if destroy {
			c.Destroy()
		} else {
			c.Close()
		}
		if err := <-res; !errors.Is(err, ErrClosed) {
			t.Fatalf("Connect = %v, want ErrClosed", err)
		}
		if c.InFlight() || c.Connected() {
			t.Fatal("still in flight after Close")
		}
		_, _, closes, _, _ := ev.snapshot()
		if len(closes) != 1 {
			t.Fatalf("close events %v", closes)
		}
	}
}

func TestCloseWhileReconnecting(t *testing.T) {
	c, ev := newConsumer(t, freePort(t), func(o *Options) { o.Reconnect.Interval = time.Hour })
	res := make(chan error, 1)
	go func() { res <- c.Connect(context.Background()) }()
	waitFor(t, 5*time.Second, "the first failure", func() bool { _, _, _, e, _ := ev.snapshot(); return len(e) == 1 })
	c.Close()
	if err := <-res; !errors.Is(err, ErrClosed) {
		t.Fatalf("Connect = %v, want ErrClosed", err)
	}
	c.Close()
}

func TestConnectTwiceWhileConnected(t *testing.T) {
	s := newTestServer(t, srvOpts{})
	c, ev := newConsumer(t, s.port, nil)
	for i := 0; i < 3; i++ {
		if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.upgrades(); n != 1 {
		t.Fatalf("%d handshakes, want 1", n)
	}
	if o, _, _, _, _ := ev.snapshot(); o != 1 {
		t.Fatalf("%d opens", o)
	}
}

func TestConnectContextOnlyBoundsTheWait(t *testing.T) {
	port, _ := silentListener(t)
	c, _ := newConsumer(t, port, func(o *Options) { o.DialTimeout = time.Minute })
	if err := c.Connect(ctxT(t, 30*time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Connect = %v", err)
	}
	if !c.InFlight() {
		t.Fatal("the cycle should go on after the context ended")
	}
	c.Destroy()
}

func TestSendFromManyGoroutines(t *testing.T) {
	const workers, each = 8, 200
	s := newTestServer(t, srvOpts{})
	var got sync.Map
	var n atomic.Int64
	c, _ := newConsumer(t, s.port, func(o *Options) {
		o.OnMessage = func(m Message) {
			if _, dup := got.LoadOrStore(string(m.Data), true); dup {
				t.Errorf("duplicate %q", m.Data)
			}
			n.Add(1)
		}
	})
	if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pad := strings.Repeat("x", w*100) // sizes differ, so interleaving would show
			for i := 0; i < each; i++ {
				var err error
				if i%2 == 0 {
					err = c.Send(fmt.Sprintf("%d/%d/%s", w, i, pad))
				} else {
					err = c.SendBinary([]byte(fmt.Sprintf("%d/%d/%s", w, i, pad)))
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	waitFor(t, 10*time.Second, "every echo", func() bool { return n.Load() == workers*each })
}

func TestServerCloseIsEchoed(t *testing.T) {
	s := newTestServer(t, srvOpts{onOpen: func(sc *srvConn) {
		_ = sc.write(ws.OpClose, ws.NewCloseFrameBody(4001, "bye"))
	}})
	c, ev := newConsumer(t, s.port, func(o *Options) { o.Reconnect.Interval = time.Hour })
	if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the disconnect", func() bool { _, d, _, _, _ := ev.snapshot(); return len(d) == 1 })
	_, disc, _, _, _ := ev.snapshot()
	if disc[0] != (closeEv{4001, "bye"}) {
		t.Fatalf("disconnect %v", disc[0])
	}
	waitFor(t, 5*time.Second, "the echoed close", func() bool { return len(s.closeCodes()) == 1 })
	if s.closeCodes()[0] != 4001 {
		t.Fatalf("echoed %v", s.closeCodes())
	}
}

func TestProtocolViolations(t *testing.T) {
	long := bytes.Repeat([]byte("a"), 2048)
	cases := []struct {
		name  string
		frame []byte
		code  frame.CloseCode
	}{
		{"invalid UTF-8", rawFrame(true, 0, 1, false, []byte("ok\xff")), frame.CloseInvalidPayload},
		{"truncated UTF-8", rawFrame(true, 0, 1, false, []byte("ok\xc3")), frame.CloseInvalidPayload},
		{"masked frame", rawFrame(true, 0, 2, true, []byte("x")), frame.CloseProtocolError},
		{"reserved opcode", rawFrame(true, 0, 3, false, nil), frame.CloseProtocolError},
		{"RSV1 not negotiated", rawFrame(true, 4, 1, false, []byte("x")), frame.CloseProtocolError},
		{"RSV2", rawFrame(true, 2, 1, false, []byte("x")), frame.CloseProtocolError},
		{"fragmented ping", rawFrame(false, 0, 9, false, nil), frame.CloseProtocolError},
		{"continuation first", rawFrame(true, 0, 0, false, []byte("x")), frame.CloseProtocolError},
		{"text inside a message", append(rawFrame(false, 0, 1, false, []byte("a")), rawFrame(true, 0, 1, false, []byte("b"))...), frame.CloseProtocolError},
		{"too big", rawFrame(true, 0, 2, false, long), frame.CloseTooBig},
		{"too big fragmented", append(rawFrame(false, 0, 2, false, long[:600]), rawFrame(true, 0, 0, false, long[:600])...), frame.CloseTooBig},
		{"close with 1 byte", rawFrame(true, 0, 8, false, []byte{3}), frame.CloseProtocolError},
		{"close code 1005", rawFrame(true, 0, 8, false, []byte{0x03, 0xed}), frame.CloseProtocolError},
		{"close reason not UTF-8", rawFrame(true, 0, 8, false, []byte{0x03, 0xe8, 0xff}), frame.CloseInvalidPayload},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, srvOpts{onOpen: func(sc *srvConn) { _ = sc.writeRaw(tc.frame) }})
			c, ev := newConsumer(t, s.port, func(o *Options) {
				o.MaxPayloadLength = 1024
				o.Reconnect.Interval = time.Hour
			})
			if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
				o, d, cl, e, _ := ev.snapshot()
				t.Fatalf("Connect: %v (opens %d, disconnects %v, closes %v, errors %v)", err, o, d, cl, e)
			}
			waitFor(t, 5*time.Second, "the disconnect", func() bool { _, d, _, _, _ := ev.snapshot(); return len(d) == 1 })
			_, disc, _, errs, msgs := ev.snapshot()
			if disc[0].code != int(tc.code) {
				t.Fatalf("disconnect %v, want code %d", disc[0], tc.code)
			}
			if len(msgs) != 0 {
				t.Fatalf("delivered %v", msgs)
			}
			if len(errs) == 0 || frame.CloseStatus(errs[0]) != tc.code {
				t.Fatalf("errors %v", errs)
			}
			waitFor(t, 5*time.Second, "the close frame", func() bool { return len(s.closeCodes()) == 1 })
			if got := s.closeCodes()[0]; int(got) != int(tc.code) {
				t.Fatalf("server got close %d, want %d", got, tc.code)
			}
		})
	}
}

func TestParametersAndHeaders(t *testing.T) {
	s := newTestServer(t, srvOpts{})
	c, _ := newConsumer(t, s.port, func(o *Options) {
		o.Path = "/cluster/connect"
		o.Parameters = map[string]string{"key": "SECRET&x=1", "name with space": "é/?#"}
		o.Header = map[string][]string{"Authorization": {"Bearer t0ken"}, "x-custom": {"a", "b"}}
	})
	if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	uri, hdr := s.lastURI, s.lastHdr
	s.mu.Unlock()
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Path != "/cluster/connect" || q.Get("key") != "SECRET&x=1" || q.Get("name with space") != "é/?#" || len(q) != 2 {
		t.Fatalf("request URI %q", uri)
	}
	if hdr.Get("Authorization") != "Bearer t0ken" || strings.Join(hdr.Values("X-Custom"), ",") != "a,b" {
		t.Fatalf("headers %v", hdr)
	}
}

func TestOptionsValidation(t *testing.T) {
	bad := []Options{
		{Port: -1}, {Port: 70000}, {Path: "connect"}, {Path: "/a?b"}, {Host: "a/b"},
		{MaxPayloadLength: -1}, {MaxPayloadLength: MaxMaxPayloadLength + 1}, {CompressionThreshold: -1}, {ReadBufferSize: 10}, {DialTimeout: -1}, {QueueLength: -1}, {QueueBytes: -1},
		{Reconnect: Reconnect{Jitter: 1.5}}, {Reconnect: Reconnect{Backoff: 0.5}}, {Reconnect: Reconnect{Interval: -1}},
		{Header: map[string][]string{"Sec-WebSocket-Key": {"x"}}},
		{Header: map[string][]string{"sec-websocket-extensions": {"x"}}},
		{Header: map[string][]string{"Host": {"x"}}},
		{Header: map[string][]string{"Connection": {"x"}}},
		{Header: map[string][]string{"Content-Length": {"1"}}},
		{Header: map[string][]string{"Transfer-Encoding": {"chunked"}}},
		{Header: map[string][]string{"X-A": {"a\r\nb: c"}}},
		{Header: map[string][]string{"bad name": {"x"}}},
	}
	for i, o := range bad {
		if _, err := New(o); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("case %d (%+v): err = %v, want ErrInvalidOptions", i, o, err)
		}
	}
	c, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.cfg.url != "ws://localhost:8080/connect" || c.cfg.Reconnect.MaxAttempts != -1 ||
		c.cfg.Reconnect.Interval != time.Second || c.cfg.MaxPayloadLength != 16<<20 || c.cfg.DialTimeout != 10*time.Second {
		t.Fatalf("defaults: %+v", c.cfg)
	}
	// The rest of the defaults the README's table states.
	if c.cfg.WriteTimeout != 10*time.Second || c.cfg.CloseTimeout != time.Second ||
		c.cfg.ReadBufferSize != 4<<10 || c.cfg.Reconnect.Jitter != 0.2 ||
		c.cfg.Reconnect.MaxInterval != 10*time.Second || c.cfg.Reconnect.Backoff != 2 ||
		c.cfg.QueueLength != 32 || c.cfg.QueueBytes != 1<<20 ||
		c.cfg.Compressor != compress.Disabled || c.cfg.CompressionThreshold != compress.DefaultThreshold {
		t.Fatalf("defaults: %+v", c.cfg)
	}
	c, _ = New(Options{Host: "::1", Port: 9, TLS: true, Parameters: map[string]string{"a b": "c&d"}})
	if c.cfg.url != "wss://[::1]:9/connect?a+b=c%26d" {
		t.Fatalf("url %q", c.cfg.url)
	}
}

func TestCloseFromHandler(t *testing.T) {
	s := newTestServer(t, srvOpts{})
	var c *Consumer
	closed := make(chan struct{})
	c, ev := newConsumer(t, s.port, func(o *Options) {
		o.OnMessage = func(m Message) {
			if err := c.Close(); err != nil {
				t.Error(err)
			}
			close(closed)
		}
	})
	if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := c.Send("bye"); err != nil {
		t.Fatal(err)
	}
	<-closed
	c.Close() // waits for the goroutine now
	_, disc, closes, _, _ := ev.snapshot()
	if len(closes) != 1 || len(disc) != 1 || disc[0].code != 1000 {
		t.Fatalf("disconnects %v closes %v", disc, closes)
	}
}

func TestNoGoroutineLeftAfterClose(t *testing.T) {
	s := newTestServer(t, srvOpts{mode: hbHeader, interval: time.Second})
	before := runtime.NumGoroutine()
	var cs []*Consumer
	for i := 0; i < 20; i++ {
		c, _ := newConsumer(t, s.port, nil)
		if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	if n := runtime.NumGoroutine() - before; n < 20 {
		t.Fatalf("only %d more goroutines for 20 Consumers (and their server side)", n)
	}
	for i, c := range cs {
		if i%2 == 0 {
			c.Close()
		} else {
			c.Destroy()
		}
	}
	if left := consumerGoroutines(time.Second); left != "" {
		t.Fatalf("goroutines left after Close:\n%s", left)
	}
}

func TestDestroyDuringBlockedSend(t *testing.T) {
	// The server never reads: a large send blocks in write until Destroy.
	port, _ := silentHandshake(t)
	c, _ := newConsumer(t, port, func(o *Options) { o.WriteTimeout = time.Minute })
	if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	go func() {
		big := make([]byte, 64<<20)
		res <- c.SendBinary(big)
	}()
	time.Sleep(20 * time.Millisecond)
	c.Destroy()
	if err := <-res; err == nil {
		t.Fatal("a send cut short by Destroy returned nil")
	}
}

func TestWriteTimeoutFailsSend(t *testing.T) {
	port, _ := silentHandshake(t)
	c, ev := newConsumer(t, port, func(o *Options) {
		o.WriteTimeout = 50 * time.Millisecond
		o.Reconnect.Interval = time.Hour
	})
	if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	err := c.SendBinary(make([]byte, 64<<20))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("SendBinary = %v, want a deadline error", err)
	}
	waitFor(t, 5*time.Second, "the disconnect", func() bool { _, d, _, _, _ := ev.snapshot(); return len(d) == 1 })
}

// silentHandshake is a server that completes the upgrade, then never reads.
func silentHandshake(t *testing.T) (int, *atomic.Int64) {
	return rawListener(t, func(nc net.Conn) { _, _ = ws.Upgrade(nc) })
}

func TestReadyFromHandlerDoesNotBlock(t *testing.T) {
	s := newTestServer(t, srvOpts{})
	var c *Consumer
	results := make(chan error, 2)
	c, _ = newConsumer(t, s.port, func(o *Options) {
		o.OnOpen = func() { results <- c.Ready(context.Background()) }
		o.OnDisconnect = func(frame.CloseCode, string) { results <- c.Connect(context.Background()) }
	})
	if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := <-results; err != nil {
		t.Fatalf("Ready from OnOpen = %v", err)
	}
	s.stop()
	if err := <-results; !errors.Is(err, ErrNotConnected) {
		t.Fatalf("Connect from OnDisconnect = %v", err)
	}
}

func TestCloseFromOnClose(t *testing.T) {
	var c *Consumer
	c, _ = newConsumer(t, freePort(t), func(o *Options) {
		o.OnClose = func(frame.CloseCode, string) { c.Close(); c.Destroy() }
	})
	c.Close() // before Connect: OnClose runs here, and its Close must not wait for itself

	c2, _ := newConsumer(t, freePort(t), func(o *Options) {
		o.Reconnect = Reconnect{Interval: time.Millisecond, MaxAttempts: 1}
	})
	c2.cfg.OnClose = func(frame.CloseCode, string) { c2.Close() } // from the cycle goroutine
	if err := c2.Connect(ctxT(t, 5*time.Second)); !errors.Is(err, ErrGaveUp) {
		t.Fatal(err)
	}
	c2.Close()
}

// TestSecretsStayOutOfLogs: the parameters (the Provider's key) travel in
// the request URL, but neither the log nor the errors a failing Consumer
// reports repeat them.
func TestSecretsStayOutOfLogs(t *testing.T) {
	const secret = "s3cret-value"
	port := freePort(t)
	var logBuf bytes.Buffer
	var mu sync.Mutex
	var reported []error
	c, _ := newConsumer(t, port, func(o *Options) {
		o.Parameters = map[string]string{"key": secret}
		o.Reconnect = Reconnect{Interval: time.Millisecond, MaxAttempts: 2}
		o.Logger = slog.New(slog.NewTextHandler(&lockedWriter{w: &logBuf, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
		o.OnError = func(err error) { mu.Lock(); reported = append(reported, err); mu.Unlock() }
	})
	if !strings.Contains(c.cfg.url, secret) {
		t.Fatalf("the request URL %q lacks the parameter", c.cfg.url)
	}
	err := c.Connect(ctxT(t, 10*time.Second))
	if !errors.Is(err, ErrGaveUp) {
		t.Fatalf("Connect = %v, want ErrGaveUp", err)
	}
	mu.Lock()
	defer mu.Unlock()
	texts := []string{logBuf.String(), err.Error()}
	for _, e := range reported {
		texts = append(texts, e.Error())
	}
	if len(reported) == 0 || !strings.Contains(logBuf.String(), "/connect") {
		t.Fatalf("nothing reported or logged: errors %v, log %q", reported, logBuf.String())
	}
	for _, s := range texts {
		if strings.Contains(s, secret) {
			t.Errorf("the secret leaks into %q", s)
		}
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestDestroyInOnMessageStopsDelivery: Destroy stops at once, so messages
// already read in the same packet are not delivered after it.
func TestDestroyInOnMessageStopsDelivery(t *testing.T) {
	var burst []byte
	for i := range 5 {
		burst = append(burst, rawFrame(true, 0, byte(ws.OpText), false, []byte{'0' + byte(i)})...)
	}
	s := newTestServer(t, srvOpts{onOpen: func(sc *srvConn) { _ = sc.writeRaw(burst) }})
	var c *Consumer
	var got atomic.Int64
	c, _ = newConsumer(t, s.port, func(o *Options) {
		o.OnMessage = func(Message) {
			got.Add(1)
			c.Destroy()
		}
	})
	if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the first message", func() bool { return got.Load() > 0 })
	c.Destroy() // waits for the goroutine: every delivery is done
	if n := got.Load(); n != 1 {
		t.Fatalf("%d messages delivered, want 1 (none after Destroy)", n)
	}
}

// A send the Provider does not take within WriteTimeout fails with the write
// error, and the connection is dropped (OnDisconnect 1006) and reconnected
// (Options.WriteTimeout).
func TestWriteTimeoutDropsAndReconnects(t *testing.T) {
	release := make(chan struct{})
	var stalled atomic.Bool
	s := newTestServer(t, srvOpts{handler: func(sc *srvConn, op ws.OpCode, p []byte) {
		if stalled.CompareAndSwap(false, true) {
			<-release // the first connection stops reading here
		}
	}})
	t.Cleanup(func() { close(release) })
	c, ev := newConsumer(t, s.port, func(o *Options) { o.WriteTimeout = 200 * time.Millisecond })
	if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := c.Send("stop reading"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the server to stall", stalled.Load)
	msg := make([]byte, 256<<10)
	var err error
	for i := 0; i < 4096 && err == nil; i++ { // at most 1 GiB: far above any socket buffer
		err = c.SendBinary(msg)
	}
	if err == nil || errors.Is(err, ErrNotConnected) || errors.Is(err, ErrClosed) {
		t.Fatalf("send to a stalled Provider: %v, want the write error", err)
	}
	waitFor(t, 10*time.Second, "the reconnect", func() bool { opens, _, _, _, _ := ev.snapshot(); return opens == 2 })
	_, disc, _, _, _ := ev.snapshot()
	if len(disc) != 1 || disc[0].code != int(frame.CloseAbnormal) {
		t.Fatalf("disconnects %v, want one 1006", disc)
	}
	// The reason is the cause, the write error, not the socket the failed
	// write closed under the reader.
	if !strings.Contains(disc[0].reason, "i/o timeout") || strings.Contains(disc[0].reason, "closed network connection") {
		t.Fatalf("disconnect reason %q, want the write timeout", disc[0].reason)
	}
	if n := s.upgrades(); n != 2 {
		t.Fatalf("%d upgrades, want 2", n)
	}
}
