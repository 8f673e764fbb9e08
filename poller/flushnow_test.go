package poller

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestFlushNow checks FlushNow on every engine: bytes written from outside
// a handler reach the peer; on the netpoll engines a small write has left
// the queue when FlushNow returns (it wrote on the caller's goroutine, where
// Flush hands the connection to a flusher); a write larger than the socket
// takes returns at once and the rest follows on write readiness; inside
// OnData it defers to the flush made when OnData returns; after Close it
// does nothing.
func TestFlushNow(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			checkLeaks(t)
			netpollEngine := strings.HasPrefix(e.name, "netpoll")
			conns := make(chan *Conn, 1)
			inData := make(chan int, 1)
			h := &testHandler{tb: t, closes: make(chan closeEvent, 1)}
			h.open = func(c *Conn) { conns <- c }
			h.data = func(c *Conn, in []byte) int {
				// Inside OnData: FlushNow leaves the bytes to the flush
				// made when OnData returns, after what it writes next.
				if err := c.Write([]byte("a"), nil, false); err != nil {
					t.Error(err)
				}
				c.FlushNow()
				inData <- c.Buffered()
				if err := c.Write([]byte("b"), nil, false); err != nil {
					t.Error(err)
				}
				return len(in)
			}
			p := e.start(t, h, Options{})
			c := e.dial(t, p.Addr().String())
			defer c.Close()
			sc := recvConn(t, conns)

			// A small write from outside any handler.
			if err := sc.Write([]byte("hello"), nil, false); err != nil {
				t.Fatal(err)
			}
			sc.FlushNow()
			if n := sc.Buffered(); netpollEngine && n != 0 {
				t.Fatalf("netpoll engine: %d bytes still queued when FlushNow returned", n)
			}
			got := make([]byte, 5)
			readFull(t, c, got)
			if string(got) != "hello" {
				t.Fatalf("got %q, want %q", got, "hello")
			}

			// Inside OnData.
			if _, err := c.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			select {
			case n := <-inData:
				// The Serve engine's flusher may still count "hello" as a
				// write in progress; the netpoll engines wrote it above.
				if n < 1 || (netpollEngine && n != 1) {
					t.Fatalf("FlushNow inside OnData: %d bytes queued after it, want 1 (left for OnData's return)", n)
				}
			case <-time.After(waitLimit):
				t.Fatal("OnData never ran")
			}
			got = got[:2]
			readFull(t, c, got)
			if string(got) != "ab" {
				t.Fatalf("got %q, want %q", got, "ab")
			}

			// More than the socket takes while the peer does not read:
			// FlushNow returns, the rest goes out as the peer reads.
			const big = 16 << 20
			want := pattern(big, 7)
			if err := sc.Write(want, nil, false); err != nil {
				t.Fatal(err)
			}
			returned := make(chan struct{})
			go func() {
				sc.FlushNow()
				close(returned)
			}()
			select {
			case <-returned:
			case <-time.After(waitLimit):
				t.Fatal("FlushNow blocked on a peer that does not read")
			}
			if netpollEngine && sc.Buffered() == 0 {
				t.Fatal("16 MiB left the queue while the peer did not read")
			}
			got = make([]byte, big)
			readFull(t, c, got)
			if !bytes.Equal(got, want) {
				t.Fatal("the 16 MiB arrived changed")
			}

			// After Close: nothing to write, nothing happens.
			if err := sc.Close(nil); err != nil {
				t.Fatal(err)
			}
			sc.FlushNow()
			if err := sc.Write([]byte("late"), nil, false); !errors.Is(err, ErrClosed) {
				t.Fatalf("Write after Close: %v, want ErrClosed", err)
			}
			recvClose(t, h.closes)
		})
	}
}
