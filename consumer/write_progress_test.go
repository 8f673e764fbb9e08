package consumer

import (
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// TestWriteTimeoutIsNoProgress: WriteTimeout cuts a send only when no byte
// moves for that long. A 16 MiB message to a Provider that reads it at
// about 3 MB/s takes seconds, far over the 1.5 s WriteTimeout, and goes
// through whole because bytes keep moving. (With 400 ms, a loaded CI
// machine once starved the reader that long under the race detector.)
func TestWriteTimeoutIsNoProgress(t *testing.T) {
	// 16 MiB at most 64 KiB per 20 ms takes well over WriteTimeout even when
	// the kernel's send buffer (4 MiB at most here) takes a quarter of it.
	const size = 16 << 20
	const timeout = 1500 * time.Millisecond
	got := make(chan int64, 1)
	port, _ := rawListener(t, func(nc net.Conn) {
		if tc, ok := nc.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(64 << 10) // a small window: the pace is ours
		}
		if _, err := ws.Upgrade(nc); err != nil {
			return
		}
		go func() {
			h, err := ws.ReadHeader(nc)
			if err != nil {
				got <- -1
				return
			}
			buf := make([]byte, 64<<10)
			var n int64
			for n < h.Length {
				k, err := nc.Read(buf[:min(int64(len(buf)), h.Length-n)])
				n += int64(k)
				if err != nil {
					break
				}
				time.Sleep(20 * time.Millisecond) // at most 64 KiB per 20 ms: ~3 MB/s
			}
			got <- n
		}()
	})
	c, ev := newConsumer(t, port, func(o *Options) {
		o.WriteTimeout = timeout
		o.Reconnect.Interval = time.Hour
	})
	if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := c.SendBinary(make([]byte, size)); err != nil {
		t.Fatalf("a send to a slow but reading Provider failed after %v: %v", time.Since(start), err)
	}
	took := time.Since(start)
	if n := <-got; n != size {
		t.Fatalf("the Provider read %d of %d bytes", n, size)
	}
	if _, disc, _, _, _ := ev.snapshot(); len(disc) != 0 || !c.Connected() {
		t.Fatalf("disconnects %v", disc)
	}
	if took <= timeout {
		t.Fatalf("the send took %v, not more than WriteTimeout %v: the reader's pace did not hold it back, so the test proves nothing", took, timeout)
	}
	t.Logf("16 MiB sent in %v with a %v WriteTimeout", took, timeout)
}
