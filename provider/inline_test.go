package provider

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/frame"
	"github.com/networkcluster/networkcluster/internal/wstest"
)

// The read side of an open connection runs on netpoll's poll loop (one
// loop, on machines with fewer than 20 cores, which is netpoll's default
// here): an OnMessage blocked forever on one connection must hold up
// neither that loop nor its own connection's pings, nor any other
// connection; the blocked connection's later messages are handled in
// order once it returns, and Close does not hang.
func TestBlockedHandlerLeavesLoopFree(t *testing.T) {
	before, _ := goroutines()
	release := make(chan struct{})
	blocked := make(chan struct{}, 1)
	o := Options{
		OnMessage: func(c *Connection, m Message) {
			if string(m.Data) == "block" {
				blocked <- struct{}{}
				<-release
			}
			_ = c.SendText(m.Data)
		},
	}
	p, e, addr := start(t, o)
	stuck := dial(t, addr, "/connect")
	e.wait(t, "open", func(e *events) bool { return len(e.opened) == 1 })
	if err := stuck.WriteFrame(true, frame.OpText, []byte("block")); err != nil {
		t.Fatal(err)
	}
	<-blocked
	// Messages behind the blocked one wait; pings are answered at once.
	for i := 0; i < 3; i++ {
		if err := stuck.WriteFrame(true, frame.OpText, fmt.Appendf(nil, "after %d", i)); err != nil {
			t.Fatal(err)
		}
		ping := fmt.Appendf(nil, "ping %d", i)
		if err := stuck.WriteFrame(true, frame.OpPing, ping); err != nil {
			t.Fatal(err)
		}
		stuck.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		h, payload, err := stuck.ReadFrame()
		if err != nil || h.Op != frame.OpPong || !bytes.Equal(payload, ping) {
			t.Fatalf("ping %d: got %v %q %v, want its pong", i, h.Op, payload, err)
		}
	}
	// Other connections, on the same loop, are served meanwhile.
	echoClients(t, addr, 20, 10)
	close(release)
	for _, want := range []string{"block", "after 0", "after 1", "after 2"} {
		_, got, err := stuck.ReadMessage()
		if err != nil || string(got) != want {
			t.Fatalf("after release: %q %v, want %q", got, err, want)
		}
	}
	closeWithin(t, p.Close)
	checkNoLeak(t, before)
}

// echoClients dials clients connections to addr's /connect at once; each
// sends msgs text messages, one at a time, and checks every echo.
func echoClients(t *testing.T, addr string, clients, msgs int) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := wstest.Dial(addr, "/connect", nil, nil)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			c.Conn.SetDeadline(time.Now().Add(20 * time.Second))
			for j := range msgs {
				msg := fmt.Appendf(nil, "%d/%d", i, j)
				if err := c.WriteFrame(true, frame.OpText, msg); err != nil {
					t.Error(err)
					return
				}
				_, got, err := c.ReadMessage()
				if err != nil || !bytes.Equal(got, msg) {
					t.Errorf("echo %s: %q %v", msg, got, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// closeWithin runs close and fails the test, with every goroutine's stack,
// if it has not returned within 20 s.
func closeWithin(t *testing.T, close func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		buf := make([]byte, 4<<20)
		t.Fatalf("close hung\n%s", buf[:runtime.Stack(buf, true)])
	}
}

// Close and Shutdown while every connection keeps sending, its read side
// running on the poll loop, and handlers keep replying: both return, and
// every connection gets its OnClose.
func TestCloseUnderInputOnLoop(t *testing.T) {
	for _, graceful := range []bool{false, true} {
		t.Run(fmt.Sprintf("graceful=%v", graceful), func(t *testing.T) {
			before, _ := goroutines()
			const n = 40
			var handled atomic.Int64
			o := Options{OnMessage: func(c *Connection, m Message) {
				handled.Add(1)
				_ = c.SendBinary(m.Data)
			}}
			p, e, addr := start(t, o)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for i := 0; i < n; i++ {
				c := dial(t, addr, "/connect")
				c.Conn.SetDeadline(time.Now().Add(40 * time.Second))
				wg.Add(2)
				go func() { // send until stopped or the connection fails
					defer wg.Done()
					msg := bytes.Repeat([]byte{byte(i)}, 64)
					for {
						select {
						case <-stop:
							return
						default:
						}
						if err := c.WriteFrame(true, frame.OpBinary, msg); err != nil {
							return
						}
					}
				}()
				go func() { // read until the connection ends
					defer wg.Done()
					for {
						h, _, err := c.ReadFrame()
						if err != nil || h.Op == frame.OpClose {
							return
						}
					}
				}()
			}
			e.wait(t, "open", func(e *events) bool { return len(e.opened) == n })
			deadline := time.Now().Add(20 * time.Second)
			for handled.Load() < 20*n && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if graceful {
				closeWithin(t, func() error {
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
					defer cancel()
					err := p.Shutdown(ctx)
					if err == context.DeadlineExceeded {
						err = nil // clients still sending may not answer in time
					}
					return err
				})
			} else {
				closeWithin(t, p.Close)
			}
			close(stop)
			e.wait(t, "all closed", func(e *events) bool { return len(e.closes) == n })
			wg.Wait()
			checkNoLeak(t, before)
		})
	}
}

// A handler's reply is written while the handler still runs: the last
// queued message's handler writes it at once (FlushNow), the ones before
// it through a flusher; neither waits for the handler to return.
func TestReplyLeavesBeforeHandlerReturns(t *testing.T) {
	release := make(chan struct{})
	o := Options{
		OnMessage: func(c *Connection, m Message) {
			_ = c.SendText(m.Data)
			if bytes.HasPrefix(m.Data, []byte("hold")) {
				<-release
			}
		},
	}
	_, e, addr := start(t, o)
	defer close(release)
	c := dial(t, addr, "/connect")
	e.wait(t, "open", func(e *events) bool { return len(e.opened) == 1 })
	c.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	// One message at a time (the last queued), then two in one write (the
	// first of which is not the last), each handler held after its reply.
	for _, batch := range [][]string{{"hold 1"}, {"x", "hold 2"}} {
		var b []byte
		for _, m := range batch {
			b = append(b, wstest.Frame(true, frame.OpText, 0, []byte(m))...)
		}
		if _, err := c.Conn.Write(b); err != nil {
			t.Fatal(err)
		}
		for _, m := range batch {
			_, got, err := c.ReadMessage()
			if err != nil || string(got) != m {
				t.Fatalf("got %q %v, want %q while its handler is held", got, err, m)
			}
		}
		release <- struct{}{}
	}
}
