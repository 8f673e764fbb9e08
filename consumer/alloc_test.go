package consumer

import (
	"bytes"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"github.com/networkcluster/networkcluster/frame"
)

// rawServer is a zero-allocation WebSocket peer for the allocation guards
// and benchmarks: after the upgrade it parses frames with the frame package
// into a fixed buffer and, when echo is set, writes each data frame back.
type rawServer struct {
	ln      net.Listener
	port    int
	echo    bool
	deflate bool // accept permessage-deflate; frames are not inflated
	wg      sync.WaitGroup
	mu      sync.Mutex
	nc      []net.Conn
}

func newRawServer(t testing.TB, echo, deflate bool) *rawServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln, port: ln.Addr().(*net.TCPAddr).Port, echo: echo, deflate: deflate}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.nc = append(s.nc, nc)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer nc.Close()
				s.serve(nc)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.nc {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *rawServer) serve(nc net.Conn) {
	ext := wsflate.Extension{Parameters: wsflate.Parameters{ServerNoContextTakeover: true, ClientNoContextTakeover: true}}
	up := ws.Upgrader{}
	if s.deflate {
		up.Negotiate = ext.Negotiate
	}
	if _, err := up.Upgrade(nc); err != nil {
		return
	}
	buf := make([]byte, 4<<20)
	out := make([]byte, 0, 4<<20)
	r, w := 0, 0
	opts := frame.ParseOptions{Role: frame.RoleServer, AllowRSV1: s.deflate}
	for {
		for {
			h, n, need, err := frame.ParseHeader(buf[r:w], opts)
			if err != nil {
				return
			}
			if need > 0 || int64(w-r) < int64(n)+h.Length {
				break
			}
			p := buf[r+n : r+n+int(h.Length)]
			r += n + int(h.Length)
			frame.Mask(p, h.Mask, 0)
			if h.Op == frame.OpClose {
				_, _ = nc.Write(frame.AppendFrame(out[:0], true, frame.OpClose, false, p))
				return
			}
			if s.echo && h.Op.IsData() {
				out = frame.AppendFrame(out, true, h.Op, h.Rsv1(), p) // a compressed payload goes back compressed
			}
		}
		if len(out) > 0 {
			if _, err := nc.Write(out); err != nil {
				return
			}
			out = out[:0]
		}
		if r == w {
			r, w = 0, 0
		} else if r > len(buf)/2 {
			w = copy(buf, buf[r:w])
			r = 0
		}
		n, err := nc.Read(buf[w:])
		if err != nil {
			return
		}
		w += n
	}
}

func TestSendAllocatesNothing(t *testing.T) {
	s := newRawServer(t, false, false)
	c, _ := newConsumer(t, s.port, nil)
	if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	small := []byte("a small message of some 40 bytes .......")
	large := bytes.Repeat([]byte("x"), 150<<10) // written in 64 KiB pieces
	str := string(small)
	cases := map[string]func(){
		"SendText":     func() { _ = c.SendText(small) },
		"Send(string)": func() { _ = c.Send(str) },
		"SendBinary":   func() { _ = c.SendBinary(small) },
	}
	if !raceEnabled {
		cases["SendBinary 150KB"] = func() { _ = c.SendBinary(large) }
	}
	for name, f := range cases {
		if n := testing.AllocsPerRun(50, f); n != 0 {
			t.Errorf("%s: %v allocations per message, want 0", name, n)
		}
	}
}

func TestReceiveAllocatesNothing(t *testing.T) {
	s := newRawServer(t, true, false)
	got := make(chan int, 1)
	c, _ := newConsumer(t, s.port, func(o *Options) {
		o.OnMessage = func(m Message) { got <- len(m.Data) }
	})
	if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if raceEnabled {
		// Every received message is copied into a pooled buffer for the
		// dispatcher, and the race detector makes sync.Pool drop items.
		t.Skip("sync.Pool drops items under the race detector")
	}
	// In the read buffer and the small write buffer; pooled write chunks;
	// streamed into a pooled read buffer.
	sizes := []int{40, 2000, 3000, 100 << 10}
	for _, size := range sizes {
		msg := bytes.Repeat([]byte("y"), size)
		n := testing.AllocsPerRun(50, func() {
			if err := c.SendBinary(msg); err != nil {
				t.Fatal(err)
			}
			if n := <-got; n != size {
				t.Fatalf("echo of %d bytes", n)
			}
		})
		if n != 0 {
			t.Errorf("%d-byte round trip: %v allocations, want 0", size, n)
		}
	}
}

func BenchmarkSend(b *testing.B) {
	for _, size := range []int{64, 1 << 10, 64 << 10} {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			s := newRawServer(b, false, false)
			c, _ := newConsumer(b, s.port, nil)
			if err := c.Connect(ctxT(b, 5*time.Second)); err != nil {
				b.Fatal(err)
			}
			msg := bytes.Repeat([]byte("z"), size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := c.SendBinary(msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSendParallel(b *testing.B) {
	s := newRawServer(b, false, false)
	c, _ := newConsumer(b, s.port, nil)
	if err := c.Connect(ctxT(b, 5*time.Second)); err != nil {
		b.Fatal(err)
	}
	msg := bytes.Repeat([]byte("z"), 64)
	b.SetBytes(64)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := c.SendBinary(msg); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkEcho measures a round trip (send, server echo, OnMessage), one
// message in flight.
func BenchmarkEcho(b *testing.B) {
	for _, size := range []int{64, 16 << 10} {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			s := newRawServer(b, true, false)
			got := make(chan struct{}, 1)
			c, _ := newConsumer(b, s.port, func(o *Options) {
				o.OnMessage = func(Message) { got <- struct{}{} }
			})
			if err := c.Connect(ctxT(b, 5*time.Second)); err != nil {
				b.Fatal(err)
			}
			msg := bytes.Repeat([]byte("z"), size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := c.SendBinary(msg); err != nil {
					b.Fatal(err)
				}
				<-got
			}
		})
	}
}

// BenchmarkReceive measures the inbound path alone: the server pipelines
// echoes of a burst of messages and the Consumer counts them.
func BenchmarkReceive(b *testing.B) {
	s := newRawServer(b, true, false)
	const burst = 100
	got := make(chan struct{}, burst)
	c, _ := newConsumer(b, s.port, func(o *Options) {
		o.OnMessage = func(Message) { got <- struct{}{} }
	})
	if err := c.Connect(ctxT(b, 5*time.Second)); err != nil {
		b.Fatal(err)
	}
	msg := bytes.Repeat([]byte("z"), 64)
	b.SetBytes(64)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += burst {
		for j := 0; j < burst; j++ {
			if err := c.SendBinary(msg); err != nil {
				b.Fatal(err)
			}
		}
		for j := 0; j < burst; j++ {
			<-got
		}
	}
}

// BenchmarkRawWrite is the floor for BenchmarkSend/64: one write of a
// 70-byte frame to the same kind of connection, no WebSocket work.
func BenchmarkRawWrite(b *testing.B) {
	s := newRawServer(b, false, false)
	nc, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(s.port))
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 4096)
	if _, err := nc.Read(buf); err != nil { // the 101 response
		b.Fatal(err)
	}
	f := frame.AppendMaskedFrame(nil, true, frame.OpBinary, false, bytes.Repeat([]byte("z"), 64), [4]byte{1, 2, 3, 4})
	b.SetBytes(64)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := nc.Write(f); err != nil {
			b.Fatal(err)
		}
	}
}
