package poller

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
)

// nopConn stands in for a transport in tests that drive a Conn directly.
type nopConn struct{ net.Conn }

func (nopConn) Close() error         { return nil }
func (nopConn) RemoteAddr() net.Addr { return &net.TCPAddr{} }

// dataHandler is a Handler that only consumes.
type dataHandler func(in []byte) int

func (dataHandler) OnOpen(*Conn)                    {}
func (f dataHandler) OnData(_ *Conn, in []byte) int { return f(in) }
func (dataHandler) OnClose(*Conn, error)            {}

// detachedConn returns a Conn with no socket, for driving deliver directly.
func detachedConn(h Handler, maxPending int) *Conn {
	r, _ := Options{MaxPending: maxPending}.resolve()
	p := newPoller(h, r)
	c := newConn(p)
	c.ext = &connExt{sc: nopConn{}}
	c.set(fOpened)
	return c
}

// records consumes complete [len][payload] records (one length byte).
func records(in []byte) int {
	n := 0
	for n < len(in) && n+1+int(in[n]) <= len(in) {
		n += 1 + int(in[n])
	}
	return n
}

// TestAllocsDispatch: handing input to OnData allocates nothing per
// message, whether it is consumed whole or a tail is carried over.
func TestAllocsDispatch(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	c := detachedConn(dataHandler(records), 1<<20)
	whole := []byte{3, 'a', 'b', 'c', 2, 'd', 'e'}
	if a := testing.AllocsPerRun(1000, func() { c.deliver(whole) }); a != 0 {
		t.Errorf("whole records: %.1f allocs per delivery, want 0", a)
	}
	// 10 bytes per delivery against 7-byte records: tails are carried over.
	stream := []byte{6, 1, 2, 3, 4, 5, 6, 6, 1, 2, 3, 4, 5, 6}
	i := 0
	chunk := make([]byte, 0, 10)
	if a := testing.AllocsPerRun(1000, func() {
		chunk = chunk[:0]
		for len(chunk) < 10 {
			chunk = append(chunk, stream[i%len(stream)])
			i++
		}
		c.deliver(chunk)
	}); a != 0 {
		t.Errorf("split records: %.1f allocs per delivery, want 0", a)
	}
	if c.has(fClosed) {
		t.Fatalf("closed: %v", c.cause())
	}
}

// TestAllocsWriteFlush: queueing a frame and flushing it allocates nothing
// in steady state, on both TCP engines and on TLS on the event loop
// (encryption included).
func TestAllocsWriteFlush(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	for _, e := range engines {
		if e.name == "serve-tls" {
			continue // crypto/tls under a blocking flusher: not ours to guard
		}
		t.Run(e.name, func(t *testing.T) {
			checkLeaks(t)
			conns := make(chan *Conn, 1)
			h := &testHandler{tb: t, open: func(c *Conn) { conns <- c }}
			p := e.start(t, h, Options{})
			c := e.dial(t, p.Addr().String())
			done := make(chan struct{})
			go func() { io.Copy(io.Discard, c); close(done) }()
			sc := recvConn(t, conns)
			hdr := []byte{0x82, 125}
			payload := make([]byte, 125)
			shared := make([]byte, 300)
			if a := testing.AllocsPerRun(5000, func() {
				binary.BigEndian.PutUint16(payload, 7)
				sc.Write(hdr, payload, false)
				sc.Flush()
			}); a != 0 {
				t.Errorf("Write+Flush: %.2f allocs per run, want 0", a)
			}
			if a := testing.AllocsPerRun(5000, func() {
				sc.WriteShared(shared, false)
				sc.Flush()
			}); a != 0 {
				t.Errorf("WriteShared+Flush: %.2f allocs per run, want 0", a)
			}
			c.Close()
			<-done
		})
	}
}
