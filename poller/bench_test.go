package poller

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkEcho is a round trip: the client writes a message, the server's
// OnData writes it back (flushed when OnData returns), the client reads it.
// allocs/op counts the whole process: client, engine and netpoll.
//
//	go test ./poller -run '^$' -bench Echo -benchmem
func BenchmarkEcho(b *testing.B) {
	for _, e := range engines {
		for _, size := range []int{64, 1024, 16 << 10} {
			b.Run(fmt.Sprintf("%s/%d", e.name, size), func(b *testing.B) {
				h := &benchHandler{data: echo}
				p := e.start(b, h, Options{})
				c := e.dial(b, p.Addr().String())
				defer c.Close()
				msg := pattern(size, 1)
				got := make([]byte, size)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := c.Write(msg); err != nil {
						b.Fatal(err)
					}
					if _, err := io.ReadFull(c, got); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkEchoPipelined: the client writes 64 messages of 64 bytes at
// once and reads the 64 echoes; the server gets them in one or a few
// OnData calls and flushes once per call. ns/op is per message.
func BenchmarkEchoPipelined(b *testing.B) {
	const batch, size = 64, 64
	for _, e := range engines {
		b.Run(e.name, func(b *testing.B) {
			h := &benchHandler{data: echo}
			p := e.start(b, h, Options{})
			c := e.dial(b, p.Addr().String())
			defer c.Close()
			msg := pattern(batch*size, 1)
			got := make([]byte, len(msg))
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, got); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFanout queues one shared 256-byte frame on every connection and
// flushes each, as a broadcast does; clients (in this process) read and
// count. ns/op is one broadcast delivered to all connections: the timer
// stops when every client has received every byte.
func BenchmarkFanout(b *testing.B) {
	for _, e := range engines {
		for _, n := range []int{100, 1000} {
			b.Run(fmt.Sprintf("%s/conns=%d", e.name, n), func(b *testing.B) {
				var mu sync.Mutex
				var conns []*Conn
				all := make(chan struct{})
				h := &benchHandler{open: func(c *Conn) {
					mu.Lock()
					conns = append(conns, c)
					if len(conns) == n {
						close(all)
					}
					mu.Unlock()
				}}
				p := e.start(b, h, Options{MaxBuffered: 8 << 20})
				var wg sync.WaitGroup
				var received atomic.Int64
				clients := make([]net.Conn, n)
				for i := range clients {
					clients[i] = e.dial(b, p.Addr().String())
					wg.Add(1)
					go func(c net.Conn) {
						defer wg.Done()
						buf := make([]byte, 32<<10)
						for {
							k, err := c.Read(buf)
							received.Add(int64(k))
							if err != nil {
								return
							}
						}
					}(clients[i])
				}
				<-all
				frame := pattern(256, 2)
				refused := 0
				b.SetBytes(int64(len(frame) * n))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					for _, c := range conns {
						if err := c.WriteShared(frame, false); err != nil {
							if !errors.Is(err, ErrBackpressure) {
								b.Fatal(err)
							}
							refused++
						}
						c.Flush()
					}
				}
				want := int64(len(frame)) * int64(n*b.N-refused)
				waitFor(b, "delivery", func() bool { return received.Load() >= want })
				b.StopTimer()
				if refused > 0 {
					b.ReportMetric(float64(refused)/float64(b.N*n), "refused/write")
				}
				for _, c := range clients {
					c.Close()
				}
				wg.Wait()
			})
		}
	}
}

// benchHandler is a Handler without the contract checks of testHandler
// (which allocate), so that allocs/op shows the engine's own.
type benchHandler struct {
	open func(c *Conn)
	data func(c *Conn, in []byte) int
}

func (h *benchHandler) OnOpen(c *Conn) {
	if h.open != nil {
		h.open(c)
	}
}

func (h *benchHandler) OnData(c *Conn, in []byte) int {
	if h.data != nil {
		return h.data(c, in)
	}
	return len(in)
}

func (h *benchHandler) OnClose(*Conn, error) {}
