package poller

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/frame"
)

func pattern(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + seed)
	}
	return b
}

func TestEcho(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			checkLeaks(t)
			h := &testHandler{tb: t, data: echo}
			// No outbound limit: the echo has no flow control of its own.
			p := e.start(t, h, Options{})
			c := e.dial(t, p.Addr().String())
			defer c.Close()
			for _, n := range []int{1, 2, 125, 126, 511, 512, 513, 4095, 4096, 4097, 65535, 65536, 1 << 20, 3<<20 + 17} {
				msg := pattern(n, n)
				werr := make(chan error, 1)
				go func() { _, err := c.Write(msg); werr <- err }()
				got := make([]byte, n)
				readFull(t, c, got)
				if err := <-werr; err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, msg) {
					t.Fatalf("size %d: echo differs", n)
				}
			}
		})
	}
}

// lenPrefixed frames messages as a 2-byte big-endian length and a payload.
func lenPrefixed(msgs ...string) []byte {
	var b []byte
	for _, m := range msgs {
		b = binary.BigEndian.AppendUint16(b, uint16(len(m)))
		b = append(b, m...)
	}
	return b
}

// TestSplitEveryBoundary sends a stream of length-prefixed messages in two
// writes, split at every byte boundary, and waits for the server to have
// seen the first part before sending the second. It checks that each OnData
// is given exactly the unconsumed bytes followed by the new ones, and that
// every message is echoed whole.
func TestSplitEveryBoundary(t *testing.T) {
	stream := lenPrefixed("a", "", "hello, world", "xyz", "0123456789abcdef")
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			checkLeaks(t)
			type state struct {
				mu       sync.Mutex
				consumed int      // offset in stream of in[0]
				seen     chan int // stream offset of the end of each in
			}
			h := &testHandler{tb: t}
			h.data = func(c *Conn, in []byte) int {
				s := c.Context().(*state)
				s.mu.Lock()
				defer s.mu.Unlock()
				if !bytes.Equal(in, stream[s.consumed:s.consumed+len(in)]) {
					t.Errorf("OnData at offset %d given %q, want %q", s.consumed, in, stream[s.consumed:s.consumed+len(in)])
				}
				n := 0
				for len(in)-n >= 2 {
					l := int(binary.BigEndian.Uint16(in[n:]))
					if len(in)-n-2 < l {
						break
					}
					if err := c.Write(in[n+2:n+2+l], []byte{'|'}, false); err != nil {
						t.Error(err)
					}
					n += 2 + l
				}
				s.seen <- s.consumed + len(in)
				s.consumed += n
				return n
			}
			conns := make(chan *Conn, 1)
			h.open = func(c *Conn) {
				c.SetContext(&state{seen: make(chan int, 64)})
				conns <- c
			}
			p := e.start(t, h, Options{})
			want := []byte("a||hello, world|xyz|0123456789abcdef|")
			for k := 1; k < len(stream); k++ {
				c := e.dial(t, p.Addr().String())
				sc := recvConn(t, conns)
				s := sc.Context().(*state)
				if _, err := c.Write(stream[:k]); err != nil {
					t.Fatal(err)
				}
				for end := 0; end < k; {
					select {
					case end = <-s.seen:
					case <-time.After(waitLimit):
						t.Fatalf("split %d: server never saw the first part", k)
					}
				}
				if _, err := c.Write(stream[k:]); err != nil {
					t.Fatal(err)
				}
				got := make([]byte, len(want))
				readFull(t, c, got)
				if !bytes.Equal(got, want) {
					t.Fatalf("split %d: got %q, want %q", k, got, want)
				}
				c.Close()
			}
		})
	}
}

func TestPendingLimit(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			checkLeaks(t)
			for _, perConn := range []bool{false, true} {
				h := &testHandler{tb: t, closes: make(chan closeEvent, 1)}
				h.data = func(c *Conn, in []byte) int { return 0 } // never consumes
				o := Options{MaxPending: 100}
				if perConn {
					o.MaxPending = 1 << 20
					h.open = func(c *Conn) { c.SetMaxPending(100) }
				}
				p := e.start(t, h, o)
				c := e.dial(t, p.Addr().String())
				if _, err := c.Write(make([]byte, 100)); err != nil {
					t.Fatal(err)
				}
				if _, err := c.Write(make([]byte, 1)); err != nil {
					t.Fatal(err)
				}
				ev := recvClose(t, h.closes)
				if !errors.Is(ev.err, ErrPendingLimit) {
					t.Fatalf("OnClose err = %v, want ErrPendingLimit", ev.err)
				}
				if _, err := readToEOF(c); err != nil {
					t.Fatalf("client read: %v", err)
				}
				c.Close()
				p.Close()
			}
		})
	}
}

func TestBadConsume(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			checkLeaks(t)
			h := &testHandler{tb: t, closes: make(chan closeEvent, 1)}
			h.data = func(c *Conn, in []byte) int { return len(in) + 1 }
			p := e.start(t, h, Options{})
			c := e.dial(t, p.Addr().String())
			defer c.Close()
			c.Write([]byte("x"))
			if ev := recvClose(t, h.closes); !errors.Is(ev.err, ErrBadConsume) {
				t.Fatalf("OnClose err = %v, want ErrBadConsume", ev.err)
			}
		})
	}
}

// TestWake holds input (OnData consumes nothing) until the test lets it
// go and calls Wake: OnData must then see the held bytes with no new input.
func TestWake(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			checkLeaks(t)
			var release atomic.Bool
			calls := make(chan int, 16)
			conns := make(chan *Conn, 1)
			h := &testHandler{tb: t}
			h.open = func(c *Conn) { conns <- c }
			h.data = func(c *Conn, in []byte) int {
				released := release.Load() // before the test can see this call
				calls <- len(in)
				if !released {
					return 0
				}
				return echo(c, in)
			}
			p := e.start(t, h, Options{})
			c := e.dial(t, p.Addr().String())
			defer c.Close()
			sc := recvConn(t, conns)

			// Wake with nothing pending: one OnData with empty input.
			sc.Wake()
			if n := <-calls; n != 0 {
				t.Fatalf("Wake with nothing pending: OnData got %d bytes", n)
			}
			c.Write([]byte("hello"))
			for n := 0; n < 5; {
				select {
				case n = <-calls:
				case <-time.After(waitLimit):
					t.Fatal("OnData never saw the input")
				}
			}
			release.Store(true)
			sc.Wake()
			got := make([]byte, 5)
			readFull(t, c, got)
			if string(got) != "hello" {
				t.Fatalf("got %q", got)
			}
			if n := <-calls; n != 5 {
				t.Fatalf("the woken OnData got %d bytes, want 5", n)
			}
		})
	}
}

// TestWakeThenPeerClose: input that arrives while a Wake-driven OnData
// runs, from a peer that then closes, is still given to OnData before
// OnClose, as it is without the Wake.
func TestWakeThenPeerClose(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			checkLeaks(t)
			conns := make(chan *Conn, 1)
			var woken atomic.Bool
			var got []byte
			h := &testHandler{tb: t, closes: make(chan closeEvent, 1)}
			h.open = func(c *Conn) { conns <- c }
			h.data = func(c *Conn, in []byte) int {
				if len(in) == 0 && !woken.Swap(true) {
					// The Wake's call: hold it until the peer's close has
					// been seen (an empty write fails once closed).
					waitFor(t, "the peer's close", func() bool { return errors.Is(c.Write(nil, nil, true), ErrClosed) })
					return 0
				}
				got = append(got, in...)
				return len(in)
			}
			p := e.start(t, h, Options{})
			c := e.dial(t, p.Addr().String())
			sc := recvConn(t, conns)
			// Wake once OnOpen's dispatch is over: a Wake during it runs its
			// OnData in that dispatch, on the Serve engine the reader
			// goroutine, which then cannot see the peer's close it waits for.
			waitFor(t, "OnOpen's end", func() bool {
				sc.mu.Lock()
				defer sc.mu.Unlock()
				return !sc.has(fDispatching)
			})
			sc.Wake()
			if _, err := c.Write([]byte("last words")); err != nil {
				t.Fatal(err)
			}
			c.Close()
			ev := recvClose(t, h.closes)
			if string(got) != "last words" {
				t.Fatalf("OnData got %q before OnClose(%v), want %q", got, ev.err, "last words")
			}
		})
	}
}

// TestWriteFromManyGoroutines writes numbered records from many goroutines
// to one connection and checks that the client gets every record whole and,
// per writer, in order.
func TestWriteFromManyGoroutines(t *testing.T) {
	const writers, records, size = 16, 400, 37
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			checkLeaks(t)
			conns := make(chan *Conn, 1)
			h := &testHandler{tb: t, open: func(c *Conn) { conns <- c }}
			p := e.start(t, h, Options{})
			c := e.dial(t, p.Addr().String())
			defer c.Close()
			sc := recvConn(t, conns)
			var wg sync.WaitGroup
			for w := 0; w < writers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rec := make([]byte, size)
					for i := 0; i < records; i++ {
						rec[0] = byte(w)
						binary.BigEndian.PutUint32(rec[1:], uint32(i))
						// header and payload in one Write: a record is never split.
						if err := sc.Write(rec[:5], rec[5:], false); err != nil {
							t.Error(err)
							return
						}
						if i%3 == 0 {
							sc.Flush()
						}
					}
					sc.Flush()
				}()
			}
			next := make([]uint32, writers)
			buf := make([]byte, writers*records*size)
			readFull(t, c, buf)
			wg.Wait()
			for off := 0; off < len(buf); off += size {
				w, i := buf[off], binary.BigEndian.Uint32(buf[off+1:])
				if int(w) >= writers || i != next[w] {
					t.Fatalf("record at %d: writer %d seq %d, want seq %d", off, w, i, next[w])
				}
				next[w]++
			}
		})
	}
}

// TestSlowReader: one client never reads. Its queue grows to the limit and
// writes to it fail with the backpressure error, while another connection
// fed by the same publisher gets everything, and the publisher never
// blocks (its loop runs to the end).
func TestSlowReader(t *testing.T) {
	const limit, msgSize, msgs = 256 << 10, 16 << 10, 2000 // 32 MB in all
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			checkLeaks(t)
			conns := make(chan *Conn, 2)
			h := &testHandler{tb: t, open: func(c *Conn) {
				c.SetMaxBuffered(limit)
				conns <- c
			}}
			p := e.start(t, h, Options{})
			slow := e.dial(t, p.Addr().String())
			defer slow.Close()
			slowSrv := recvConn(t, conns)
			fast := e.dial(t, p.Addr().String())
			defer fast.Close()
			fastSrv := recvConn(t, conns)

			got := make(chan int64, 1)
			go func() {
				n, _ := io.CopyN(io.Discard, fast, msgSize*msgs)
				got <- n
			}()
			msg := pattern(msgSize, 1)
			var refused, fastRefused int
			for i := 0; i < msgs; i++ {
				if err := slowSrv.WriteShared(msg, false); err != nil {
					if !errors.Is(err, ErrBackpressure) || !errors.Is(err, frame.ErrBackpressure) {
						t.Fatalf("slow write: %v", err)
					}
					refused++
				}
				if b := slowSrv.Buffered(); b > limit {
					t.Fatalf("slow connection buffers %d bytes, over the limit %d", b, limit)
				}
				slowSrv.Flush()
				for {
					err := fastSrv.WriteShared(msg, false)
					if err == nil {
						break
					}
					if !errors.Is(err, ErrBackpressure) {
						t.Fatal(err)
					}
					// The fast reader is behind: a real publisher would drop or
					// close; here, yield and retry (bounded by the reader).
					fastRefused++
					fastSrv.Flush()
					time.Sleep(50 * time.Microsecond)
				}
				fastSrv.Flush()
			}
			if refused == 0 {
				t.Fatal("the slow connection never hit its limit")
			}
			select {
			case n := <-got:
				if n != msgSize*msgs {
					t.Fatalf("fast reader got %d bytes, want %d", n, msgSize*msgs)
				}
			case <-time.After(waitLimit):
				t.Fatal("fast reader did not get everything")
			}
			t.Logf("slow: %d of %d writes refused, %d bytes buffered; fast: %d retries", refused, msgs, slowSrv.Buffered(), fastRefused)
		})
	}
}

// TestCloseAfterFlush queues 4 MB then CloseAfterFlush: the client reads
// every byte, then EOF; OnClose gets nil; writes after it fail.
func TestCloseAfterFlush(t *testing.T) {
	const total = 4 << 20
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			checkLeaks(t)
			data := pattern(total, 3)
			h := &testHandler{tb: t, closes: make(chan closeEvent, 1)}
			h.open = func(c *Conn) {
				for off := 0; off < total; off += 64 << 10 {
					if err := c.Write(data[off:off+64<<10], nil, true); err != nil {
						t.Error(err)
					}
				}
				c.CloseAfterFlush(waitLimit)
				if err := c.Write([]byte("late"), nil, true); !errors.Is(err, ErrClosed) {
					t.Errorf("write after CloseAfterFlush: %v, want ErrClosed", err)
				}
			}
			p := e.start(t, h, Options{})
			c := e.dial(t, p.Addr().String())
			got, err := readToEOF(c)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("got %d bytes, want %d (equal prefix: %v)", len(got), len(data), bytes.HasPrefix(data, got))
			}
			c.Close()
			if ev := recvClose(t, h.closes); ev.err != nil {
				t.Fatalf("OnClose err = %v, want nil", ev.err)
			}
		})
	}
}

// TestCloseAfterFlushTimeout: the client never reads, so the queue cannot
// drain; the timeout closes with ErrFlushTimeout.
func TestCloseAfterFlushTimeout(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			checkLeaks(t)
			h := &testHandler{tb: t, closes: make(chan closeEvent, 1)}
			chunk := make([]byte, 1<<20)
			h.open = func(c *Conn) {
				for i := 0; i < 48; i++ { // more than loopback socket buffers hold
					c.WriteShared(chunk, true)
				}
				c.CloseAfterFlush(50 * time.Millisecond)
			}
			p := e.start(t, h, Options{})
			c := e.dial(t, p.Addr().String())
			defer c.Close()
			if ev := recvClose(t, h.closes); !errors.Is(ev.err, ErrFlushTimeout) {
				t.Fatalf("OnClose err = %v, want ErrFlushTimeout", ev.err)
			}
		})
	}
}

func TestPeerClose(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			checkLeaks(t)
			h := &testHandler{tb: t, data: echo, closes: make(chan closeEvent, 1)}
			p := e.start(t, h, Options{})
			c := e.dial(t, p.Addr().String())
			c.Write([]byte("ping"))
			readFull(t, c, make([]byte, 4))
			c.Close()
			ev := recvClose(t, h.closes)
			if !errors.Is(ev.err, io.EOF) {
				t.Fatalf("OnClose err = %v, want io.EOF", ev.err)
			}
			if err := ev.c.Write([]byte("x"), nil, true); !errors.Is(err, ErrClosed) {
				t.Fatalf("write after close: %v", err)
			}
			if err := ev.c.Close(nil); !errors.Is(err, ErrClosed) {
				t.Fatalf("second close: %v", err)
			}
			waitFor(t, "Len 0", func() bool { return p.Len() == 0 })
		})
	}
}

func TestServerClose(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			checkLeaks(t)
			myErr := errors.New("mine")
			h := &testHandler{tb: t, closes: make(chan closeEvent, 1)}
			h.data = func(c *Conn, in []byte) int {
				c.Write([]byte("queued, then dropped"), nil, false)
				c.Close(myErr)
				c.Close(nil) // twice is harmless
				return len(in)
			}
			p := e.start(t, h, Options{})
			c := e.dial(t, p.Addr().String())
			defer c.Close()
			c.Write([]byte("x"))
			if ev := recvClose(t, h.closes); ev.err != myErr {
				t.Fatalf("OnClose err = %v, want %v", ev.err, myErr)
			}
			if _, err := readToEOF(c); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestPollerClose closes a Poller with live connections: each gets OnClose
// with ErrPollerClosed, the clients see the close, nothing is left running.
func TestPollerClose(t *testing.T) {
	const n = 20
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			checkLeaks(t)
			h := &testHandler{tb: t, data: echo, closes: make(chan closeEvent, n)}
			p := e.start(t, h, Options{})
			var clients []net.Conn
			for i := 0; i < n; i++ {
				c := e.dial(t, p.Addr().String())
				defer c.Close()
				c.Write([]byte("hi"))
				readFull(t, c, make([]byte, 2))
				clients = append(clients, c)
			}
			if p.Len() != n {
				t.Fatalf("Len = %d, want %d", p.Len(), n)
			}
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			if h.closed.Load() != n || p.Len() != 0 {
				t.Fatalf("after Close: %d OnClose, Len %d", h.closed.Load(), p.Len())
			}
			for i := 0; i < n; i++ {
				if ev := <-h.closes; !errors.Is(ev.err, ErrPollerClosed) {
					t.Fatalf("OnClose err = %v", ev.err)
				}
			}
			for _, c := range clients {
				if _, err := readToEOF(c); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.Close(); !errors.Is(err, ErrPollerClosed) {
				t.Fatalf("second Close = %v", err)
			}
			if _, err := net.DialTimeout("tcp", p.Addr().String(), time.Second); err == nil {
				t.Fatal("dial after Close succeeded")
			}
		})
	}
}

func TestStopAccepting(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			checkLeaks(t)
			h := &testHandler{tb: t, data: echo}
			p := e.start(t, h, Options{})
			c := e.dial(t, p.Addr().String())
			defer c.Close()
			c.Write([]byte("a"))
			readFull(t, c, make([]byte, 1))
			if err := p.StopAccepting(); err != nil {
				t.Fatal(err)
			}
			p.StopAccepting()
			if c2, err := net.DialTimeout("tcp", p.Addr().String(), time.Second); err == nil {
				c2.Close()
				t.Fatal("dial after StopAccepting succeeded")
			}
			c.Write([]byte("still here"))
			readFull(t, c, make([]byte, 10))
			if p.Len() != 1 {
				t.Fatalf("Len = %d", p.Len())
			}
		})
	}
}

// TestManyConns runs 1 000 concurrent connections, each exchanging
// messages with the server.
func TestManyConns(t *testing.T) {
	const conns, rounds = 1000, 5
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			checkLeaks(t)
			h := &testHandler{tb: t, data: echo}
			p := e.start(t, h, Options{})
			var wg, connected sync.WaitGroup
			errs := make(chan error, conns)
			// Dials (TLS handshakes, slow under the race detector) go a few
			// at a time; the exchanges start once all 1 000 are open.
			dials := make(chan struct{}, 32)
			connected.Add(conns)
			for i := 0; i < conns; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var c net.Conn
					var err error
					dials <- struct{}{}
					if strings.HasSuffix(e.name, "-tls") {
						c, err = tlsDial(p.Addr().String())
					} else {
						c, err = net.DialTimeout("tcp", p.Addr().String(), waitLimit)
					}
					<-dials
					connected.Done()
					if err != nil {
						errs <- err
						return
					}
					defer c.Close()
					connected.Wait()
					c.SetDeadline(time.Now().Add(2 * waitLimit))
					msg := pattern(100+i%300, i)
					got := make([]byte, len(msg))
					for r := 0; r < rounds; r++ {
						if _, err := c.Write(msg); err != nil {
							errs <- err
							return
						}
						if _, err := io.ReadFull(c, got); err != nil {
							errs <- err
							return
						}
						if !bytes.Equal(got, msg) {
							errs <- errors.New("echo differs")
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if h.opened.Load() != conns {
				t.Fatalf("%d opened", h.opened.Load())
			}
			waitFor(t, "all closed", func() bool { return h.closed.Load() == conns && p.Len() == 0 })
		})
	}
}

func tlsDial(addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: waitLimit}
	return tls.DialWithDialer(d, "tcp", addr, tlsOnce.client)
}

func TestIPv6(t *testing.T) {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback on this machine: %v", err)
	}
	ln.Close()
	checkLeaks(t)
	h := &testHandler{tb: t, data: echo}
	p, err := Listen(context.Background(), "tcp6", "[::1]:0", h, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	sl, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	ps, err := Serve(sl, h, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	for _, pl := range []*Poller{p, ps} {
		a := pl.Addr().(*net.TCPAddr)
		if a.IP.To4() != nil || a.Port == 0 {
			t.Fatalf("Addr = %v", a)
		}
		c := dialTCP(t, a.String())
		c.Write([]byte("six"))
		got := make([]byte, 3)
		readFull(t, c, got)
		if string(got) != "six" {
			t.Fatalf("got %q", got)
		}
		var remote net.Addr
		waitFor(t, "a conn", func() bool {
			pl.mu.Lock()
			defer pl.mu.Unlock()
			for _, sc := range pl.slots {
				if sc != nil {
					remote = sc.RemoteAddr()
					return true
				}
			}
			return false
		})
		if ra := remote.(*net.TCPAddr); !ra.IP.Equal(net.IPv6loopback) {
			t.Fatalf("RemoteAddr = %v", ra)
		}
		c.Close()
	}
}

func TestOptions(t *testing.T) {
	h := &testHandler{tb: t}
	for _, o := range []Options{{Loops: -1}, {MaxPending: -1}, {MaxBuffered: -2}, {Workers: -1}, {LinkBufferCap: -1}, {ReadBufferSize: -1}} {
		if _, err := Listen(context.Background(), "tcp", "127.0.0.1:0", h, o); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("Listen(%+v) = %v, want ErrInvalidOptions", o, err)
		}
	}
	if _, err := Listen(context.Background(), "udp", "127.0.0.1:0", h, Options{}); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("udp: %v", err)
	}
	if _, err := Listen(context.Background(), "tcp", "127.0.0.1:0", nil, Options{}); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("nil handler: %v", err)
	}
	if _, err := Serve(nil, h, Options{}); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("nil listener: %v", err)
	}
	// netpoll's settings are process-wide: TestMain's Listen applied the
	// defaults, so an explicit different value conflicts.
	if _, err := Listen(context.Background(), "tcp", "127.0.0.1:0", h, Options{LinkBufferCap: 1 << 16}); !errors.Is(err, ErrConfigConflict) {
		t.Errorf("conflicting LinkBufferCap: %v", err)
	}
	p, err := Listen(context.Background(), "tcp", "127.0.0.1:0", h, Options{LinkBufferCap: DefaultLinkBufferCap, Workers: DefaultWorkers})
	if err != nil {
		t.Fatalf("same process-wide values: %v", err)
	}
	p.Close()
}
