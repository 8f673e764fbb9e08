//go:build linux

package poller

import (
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The whole engine suite also runs with OnData on the poll loop.
func init() {
	engines = append(engines, engineCase{"netpoll-inline", startNetpollInline, dialTCP})
}

// inlineHandler asks for OnData on the poll loop from OnOpen on, and
// counts the OnData calls that ran there.
type inlineHandler struct {
	Handler
	onLoop, elsewhere atomic.Int64
}

func (h *inlineHandler) OnOpen(c *Conn) {
	c.SetInline(true)
	h.Handler.OnOpen(c)
}

func (h *inlineHandler) OnData(c *Conn, in []byte) int {
	if onPollLoop() {
		h.onLoop.Add(1)
	} else {
		h.elsewhere.Add(1)
	}
	return h.Handler.OnData(c, in)
}

func startNetpollInline(tb testing.TB, h Handler, o Options) *Poller {
	tb.Helper()
	return startNetpoll(tb, &inlineHandler{Handler: h}, o)
}

// onPollLoop reports whether the caller runs on a netpoll poll loop: its
// stack goes through netpoll's event handler.
func onPollLoop() bool {
	pcs := make([]uintptr, 64)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs)])
	for {
		f, more := frames.Next()
		if strings.Contains(f.Function, "netpoll.(*defaultPoll).handler") {
			return true
		}
		if !more {
			return false
		}
	}
}

// TestInlineRunsOnLoop checks that OnData of an inline connection runs on
// the poll loop (and that of a connection that did not ask, on a worker),
// and that the echo is intact either way.
func TestInlineRunsOnLoop(t *testing.T) {
	checkLeaks(t)
	for _, inline := range []bool{true, false} {
		var onLoop, elsewhere atomic.Int64
		h := &testHandler{tb: t,
			open: func(c *Conn) {
				c.SetInline(inline)
				_ = c.Write([]byte("hi"), nil, false)
			},
			data: func(c *Conn, in []byte) int {
				if onPollLoop() {
					onLoop.Add(1)
				} else {
					elsewhere.Add(1)
				}
				return echo(c, in)
			}}
		p := startNetpoll(t, h, Options{})
		c := dialTCP(t, p.Addr().String())
		// Input sent before OnOpen returned is read by the OnOpen task, on
		// a worker: wait for OnOpen's greeting first.
		readFull(t, c, make([]byte, 2))
		for i := 0; i < 20; i++ {
			msg := pattern(100, i)
			if _, err := c.Write(msg); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(msg))
			readFull(t, c, got)
			if !bytes.Equal(got, msg) {
				t.Fatal("echo differs")
			}
		}
		c.Close()
		waitFor(t, "closed", func() bool { return h.closed.Load() == 1 })
		p.Close()
		// One read in every inlineRelease bytes goes to a worker, and the
		// next message may be read by that worker's task too: the echo
		// leaves before the task ends, and netpoll's task reads what
		// arrived meanwhile.
		if inline && (onLoop.Load() <= elsewhere.Load() || elsewhere.Load() > 2*(20*100/inlineRelease+1)) {
			t.Fatalf("inline: %d OnData on the poll loop, %d elsewhere", onLoop.Load(), elsewhere.Load())
		}
		if !inline && onLoop.Load() != 0 {
			t.Fatalf("not inline: %d OnData on the poll loop", onLoop.Load())
		}
	}
}

// TestInlineCloseFromOnData closes connections from OnData on the poll
// loop, in every way a handler can: the close must not run netpoll's close
// callbacks inside the loop's task (they would wait for the loop forever),
// and every connection must still get its OnClose.
func TestInlineCloseFromOnData(t *testing.T) {
	checkLeaks(t)
	const n = 30
	errBye := errors.New("bye")
	h := &testHandler{tb: t, closes: make(chan closeEvent, n),
		open: func(c *Conn) { c.SetInline(true) },
		data: func(c *Conn, in []byte) int {
			// The command may come in one read with the "x" before it.
			i := bytes.IndexAny(in, "cfp")
			if i < 0 {
				return len(in)
			}
			switch in[i] {
			case 'c':
				_ = c.Close(errBye)
			case 'f':
				_ = c.Write([]byte("bye"), nil, false)
				c.CloseAfterFlush(0)
			case 'p':
				c.SetMaxPending(1)
				return 0 // over the cap: closed with ErrPendingLimit
			}
			return len(in)
		}}
	p := startNetpoll(t, h, Options{})
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", p.Addr().String(), waitLimit)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(waitLimit))
			// Some input first, so that the close comes on a connection
			// that has been served on the loop.
			if _, err := c.Write([]byte("x")); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(time.Millisecond)
			if _, err := c.Write([]byte{"cfp"[i%3], 'y', 'z'}); err != nil {
				t.Error(err)
				return
			}
			b, err := io.ReadAll(c)
			if err != nil && !isReset(err) {
				t.Error(err)
			}
			if i%3 == 1 && string(b) != "bye" {
				t.Errorf("CloseAfterFlush: read %q", b)
			}
		}()
	}
	wg.Wait()
	for i := 0; i < n; i++ {
		ev := recvClose(t, h.closes)
		if !errors.Is(ev.err, errBye) && ev.err != nil && !errors.Is(ev.err, ErrPendingLimit) && !errors.Is(ev.err, io.EOF) {
			t.Errorf("OnClose err = %v", ev.err)
		}
	}
	done := make(chan struct{})
	go func() { p.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatal("Close hung")
	}
}

// TestInlineCloseUnderInput closes the Poller while every connection keeps
// exchanging small messages (each read handled on the poll loop): closes
// from another goroutine meet tasks running on the loop. Close must return
// with every OnClose called (this is what hung when closes ran inside the
// loop's task). Five rounds: the close must meet a task on the loop.
func TestInlineCloseUnderInput(t *testing.T) {
	checkLeaks(t)
	for round := 0; round < 5; round++ {
		inlineCloseUnderInput(t)
	}
}

func inlineCloseUnderInput(t *testing.T) {
	const n = 50
	var served, onLoop atomic.Int64
	h := &testHandler{tb: t,
		open: func(c *Conn) { c.SetInline(true) },
		data: func(c *Conn, in []byte) int {
			served.Add(1)
			if onPollLoop() {
				onLoop.Add(1)
			}
			return echo(c, in)
		}}
	p := startNetpoll(t, h, Options{})
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		c := dialTCP(t, p.Addr().String())
		defer c.Close()
		wg.Add(1)
		go func() { // small exchanges until the server closes
			defer wg.Done()
			c.SetDeadline(time.Now().Add(2 * waitLimit))
			msg := pattern(16, i)
			got := make([]byte, len(msg))
			for {
				if _, err := c.Write(msg); err != nil {
					return
				}
				if _, err := io.ReadFull(c, got); err != nil {
					return
				}
			}
		}()
	}
	waitFor(t, "input served", func() bool { return h.opened.Load() == n && onLoop.Load() > 10*n })
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitLimit):
		buf := make([]byte, 1<<20)
		t.Fatalf("Close hung\n%s", buf[:runtime.Stack(buf, true)])
	}
	if h.opened.Load() != n || h.closed.Load() != n {
		t.Fatalf("%d opened, %d closed", h.opened.Load(), h.closed.Load())
	}
	wg.Wait()
}

// TestInlineNotTLS checks that a TLS connection's OnData stays on the
// workers (decryption is not done on the poll loop) even when asked.
func TestInlineNotTLS(t *testing.T) {
	checkLeaks(t)
	var onLoop atomic.Int64
	h := &testHandler{tb: t,
		open: func(c *Conn) { c.SetInline(true) },
		data: func(c *Conn, in []byte) int {
			if onPollLoop() {
				onLoop.Add(1)
			}
			return echo(c, in)
		}}
	p := startNetpollTLS(t, h, Options{})
	c := dialTLS(t, p.Addr().String())
	for i := 0; i < 5; i++ {
		if _, err := c.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		readFull(t, c, make([]byte, 5))
	}
	c.Close()
	waitFor(t, "closed", func() bool { return h.closed.Load() == 1 })
	if onLoop.Load() != 0 {
		t.Fatalf("TLS: %d OnData on the poll loop", onLoop.Load())
	}
}
