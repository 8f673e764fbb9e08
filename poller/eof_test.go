package poller

import (
	"net"
	"testing"
	"time"
)

// A connection kept writable after the peer's half-close (netpoll engine)
// still delivers an answer written later, then closes once it is flushed;
// OnClose reports a clean close. Without KeepWritableAfterEOF the same
// half-close ends the connection at once.
func TestKeepWritableAfterEOF(t *testing.T) {
	for _, keep := range []bool{true, false} {
		conns := make(chan *Conn, 1)
		h := &testHandler{tb: t, closes: make(chan closeEvent, 1)}
		h.open = func(c *Conn) { c.KeepWritableAfterEOF(keep) }
		h.data = func(c *Conn, in []byte) int {
			conns <- c
			return len(in)
		}
		p := startNetpoll(t, h, Options{})
		client := dialTCP(t, p.Addr().String())
		if _, err := client.Write([]byte("request")); err != nil {
			t.Fatal(err)
		}
		c := recvConn(t, conns)
		if err := client.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		if !keep {
			if e := recvClose(t, h.closes); e.c != c {
				t.Fatal("OnClose for another connection")
			}
			continue
		}
		waitFor(t, "PeerEOF", c.PeerEOF)
		time.Sleep(50 * time.Millisecond) // the answer comes late
		if err := c.Write([]byte("answer"), nil, false); err != nil {
			t.Fatalf("write after the peer's half-close: %v", err)
		}
		c.Flush()
		c.CloseAfterFlush(0)
		got, err := readToEOF(client)
		if err != nil || string(got) != "answer" {
			t.Fatalf("client read %q, %v", got, err)
		}
		if e := recvClose(t, h.closes); e.err != nil {
			t.Fatalf("OnClose: %v", e.err)
		}
	}
}
