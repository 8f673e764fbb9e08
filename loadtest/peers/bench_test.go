package peers_test

import (
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/networkcluster/networkcluster/loadtest/peers"
)

// BenchmarkEcho64 is one 64-byte binary message echoed with one in flight,
// the server in this process (so allocs/op are the server's: the client
// writes a precompiled masked frame and reads into a fixed buffer). These are
// sanity figures for the peers; the comparison itself is `loadtest compare`.
//
//	cd loadtest/peers && go test -run '^$' -bench Echo64 -benchtime 20000x .
func BenchmarkEcho64(b *testing.B) {
	for _, impl := range peers.Impls() {
		b.Run(impl, func(b *testing.B) {
			srv := start(b, peers.Config{Impl: impl})
			p := payload(64, 1)
			var (
				nc    net.Conn
				frame []byte
				reply []byte
			)
			if impl == peers.ImplRawTCP {
				var err error
				nc, err = net.DialTimeout("tcp", srv.Addr(), ioTimeout)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = nc.Close() })
				frame, reply = p, make([]byte, len(p))
			} else {
				nc = dialAddr(b, srv.Addr(), "/connect").nc
				frame = ws.MustCompileFrame(ws.MaskFrameInPlace(ws.NewBinaryFrame(p)))
				reply = make([]byte, 2+len(p)) // unmasked server frame
			}
			_ = nc.SetDeadline(time.Now().Add(10 * time.Minute))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := nc.Write(frame); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(nc, reply); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBroadcast1K is one 1 KiB broadcast to 1 000 connections (plus the
// sender), every copy read by the client; it reports deliveries/s.
//
//	cd loadtest/peers && go test -run '^$' -bench Broadcast1K -benchtime 200x .
func BenchmarkBroadcast1K(b *testing.B) {
	const n = 1000
	for _, impl := range []string{peers.ImplGorilla, peers.ImplNbio, peers.ImplGobwas} {
		b.Run(impl, func(b *testing.B) {
			srv := start(b, peers.Config{Impl: impl})
			sender := dialAddr(b, srv.Addr(), "/connect")
			conns := dialMany(b, srv.Addr(), n, false)
			b.Cleanup(func() {
				for _, nc := range conns {
					_ = nc.Close()
				}
			})
			all := append(conns[:n:n], sender.nc)
			for _, nc := range all {
				_ = nc.SetDeadline(time.Now().Add(10 * time.Minute))
			}
			for i := 0; i < 500 && sender.stats().Conns != n+1; i++ {
				time.Sleep(10 * time.Millisecond) // until all are registered (bounded)
			}
			msg := append([]byte(peers.BroadcastPrefix), payload(1024-len(peers.BroadcastPrefix), 2)...)
			trigger := ws.MustCompileFrame(ws.MaskFrameInPlace(ws.NewBinaryFrame(msg)))
			reply := make([]byte, 4+len(msg)) // 2-byte header + 16-bit length
			runtime.GC()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := sender.nc.Write(trigger); err != nil {
					b.Fatal(err)
				}
				for _, nc := range all {
					if _, err := io.ReadFull(nc, reply); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.N)*(n+1)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}
