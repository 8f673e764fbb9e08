package provider

import (
	"bufio"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/internal/wstest"
)

// wrapConn hides *net.TCPConn, as some middlewares' hijacked connections
// do: the Provider then serves the connection with a goroutine.
type wrapConn struct{ net.Conn }

type wrapHijack struct{ http.ResponseWriter }

func (w wrapHijack) Unwrap() http.ResponseWriter { return nil }

func (w wrapHijack) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	return wrapConn{c}, brw, err
}

// mountPaths are the three ways in that BenchmarkMount compares.
func mountPaths(b *testing.B, o Options) map[string]func() (*Provider, string, func()) {
	mk := func(mount, wrap bool) func() (*Provider, string, func()) {
		return func() (*Provider, string, func()) {
			o := o
			if !mount {
				o.Addr = "127.0.0.1:0"
				p, err := New(o)
				if err != nil {
					b.Fatal(err)
				}
				if err := p.Start(); err != nil {
					b.Fatal(err)
				}
				return p, p.Addr().String(), func() { p.Close() }
			}
			p, err := New(o)
			if err != nil {
				b.Fatal(err)
			}
			var h http.Handler = p.Handler()
			if wrap {
				inner := h
				h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { inner.ServeHTTP(wrapHijack{w}, r) })
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
			go hs.Serve(ln)
			return p, ln.Addr().String(), func() { hs.Close(); p.Close() }
		}
	}
	return map[string]func() (*Provider, string, func()){
		"start":             mk(false, false),
		"handler-netpoll":   mk(true, false),
		"handler-goroutine": mk(true, true),
	}
}

// BenchmarkMount measures each way a connection can reach the Provider:
// its own listener (Start), the http.Handler with the connection moved to
// the event loop, and the http.Handler with a connection it must serve
// with a goroutine. Per op: one upgrade (dial, request, 101) and its close.
// It also reports the memory (heap and stacks, both ends of the socket in
// this process) and goroutines each idle upgraded connection adds, over
// 1000 connections:
//
//	go test -run '^$' -bench BenchmarkMount -benchtime 2000x ./provider
func BenchmarkMount(b *testing.B) {
	for _, name := range []string{"start", "handler-netpoll", "handler-goroutine"} {
		b.Run(name, func(b *testing.B) {
			p, addr, stop := mountPaths(b, Options{})[name]()
			defer stop()
			// Idle cost.
			const idle = 1000
			runtime.GC()
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			g0 := runtime.NumGoroutine()
			conns := make([]net.Conn, 0, idle) // the raw sockets: the clients' buffers are dropped
			for range idle {
				c, err := wstest.Dial(addr, "/connect", nil, nil)
				if err != nil || c.Resp.StatusCode != 101 {
					b.Fatalf("upgrade: %v", err)
				}
				conns = append(conns, c.Conn)
			}
			for p.Len() < idle {
				time.Sleep(time.Millisecond)
			}
			time.Sleep(1100 * time.Millisecond) // let flusher goroutines idle out
			runtime.GC()
			runtime.ReadMemStats(&m1)
			g1 := runtime.NumGoroutine()
			idleB := float64(int64(m1.HeapInuse+m1.StackInuse)-int64(m0.HeapInuse+m0.StackInuse)) / idle
			idleG := float64(g1-g0) / idle
			for _, c := range conns {
				c.Close()
			}
			b.ResetTimer()
			for range b.N {
				c, err := wstest.Dial(addr, "/connect", nil, nil)
				if err != nil || c.Resp.StatusCode != 101 {
					b.Fatalf("upgrade: %v", err)
				}
				c.Close()
			}
			b.StopTimer()
			b.ReportMetric(idleB, "idle-B/conn")
			b.ReportMetric(idleG, "idle-goroutines/conn")
		})
	}
}
