//go:build linux

package poller

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/internal/idletest"
)

// The idle-memory measurement: the clients live in a child process (this
// test binary, re-executed with idleClientEnv set), so that 10 000 client
// and 10 000 server descriptors each fit under a 20 000 open-file limit.
//
//	go test ./poller -run '^$' -bench IdleMemory -benchtime 1x
//	POLLER_IDLE_CONNS=10000 POLLER_LINKBUFCAP=256 go test ./poller -run '^$' -bench IdleMemory -benchtime 1x
//	POLLER_IDLE_CONNS=5000 go test ./poller -run '^$' -bench 'IdleMemory/.*tls' -benchtime 1x
//
// Each client sends a 256-byte request and reads a 129-byte reply (a
// WebSocket handshake's sizes), then stays idle (netpoll-tls: for long
// enough that the record layer's idle sweep released its AEAD states). Reported per connection:
// heap growth (HeapInuse after GC) and RSS growth of the server process.

const (
	idleClientEnv = "POLLER_IDLE_CLIENT" // "addr count" for the child
	idleReqSize   = 256
	idleRespSize  = 129
)

func idleConns() int {
	if n, err := strconv.Atoi(os.Getenv("POLLER_IDLE_CONNS")); err == nil && n > 0 {
		return n
	}
	return 10000
}

func BenchmarkIdleMemory(b *testing.B) {
	for _, e := range []struct {
		name  string
		start func(tb testing.TB, h Handler, o Options) *Poller
	}{{"netpoll", startNetpoll}, {"serve-tcp", startServeTCP},
		{"netpoll-tls", startNetpollTLS}, {"serve-tls", startServeTLS}} {
		b.Run(e.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				measureIdle(b, e.start)
			}
		})
	}
}

func measureIdle(b *testing.B, start func(tb testing.TB, h Handler, o Options) *Poller) {
	n := idleConns()
	resp := bytes.Repeat([]byte{'r'}, idleRespSize)
	var seen atomic.Int64
	h := &benchHandler{} // no per-connection state of the test's own
	h.data = func(c *Conn, in []byte) int {
		if len(in) < idleReqSize {
			return 0 // wait for the whole request, as a handshake parser does
		}
		c.Write(resp, nil, true)
		seen.Add(1)
		return len(in)
	}
	p := start(b, h, Options{})
	heap0, rss0 := idletest.Mem()

	mode := "tcp"
	if p.o.TLS != nil || fmt.Sprintf("%T", p.sln) == "*tls.listener" {
		mode = "tls"
	}
	defer idletest.StartChild(b, "^$", fmt.Sprintf("%s=%s %d %s", idleClientEnv, p.Addr(), n, mode))()
	waitFor(b, "every request", func() bool { return seen.Load() == int64(n) })
	time.Sleep(flusherIdle + 500*time.Millisecond) // let flushers and pool workers go idle and exit
	if p.o.TLS != nil {
		// TLS 1.3 on the event loop: idle connections give up their AEAD
		// states after one to two sweeps of the record layer.
		time.Sleep(2*aeadIdle + 500*time.Millisecond)
	}
	heap1, rss1 := idletest.Mem()
	b.ReportMetric(float64(heap1-heap0)/float64(n), "heapB/conn")
	b.ReportMetric(float64(rss1-rss0)/float64(n), "rssB/conn")
	b.ReportMetric(float64(runtime.NumGoroutine()), "goroutines")
	b.Logf("%d idle connections (LinkBufferCap %d): heap +%d KB, RSS +%d KB, %d goroutines",
		n, npConfig.bufCap, (heap1-heap0)>>10, (rss1-rss0)>>10, runtime.NumGoroutine())
	if p.Len() != n {
		b.Fatalf("Len = %d, want %d", p.Len(), n)
	}
	if path := os.Getenv("POLLER_IDLE_HEAPPROFILE"); path != "" {
		// What the idle connections hold: go tool pprof -sample_index=inuse_space
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		pprof.WriteHeapProfile(f)
		f.Close()
	}
}

// idleClientMain is the child process: it opens the connections, does the
// request/reply on each, says "ready" and holds them until stdin closes.
func idleClientMain() {
	f := strings.Fields(os.Getenv(idleClientEnv))
	if len(f) != 3 {
		fmt.Fprintln(os.Stderr, "bad", idleClientEnv)
		os.Exit(2)
	}
	n, _ := strconv.Atoi(f[1])
	req := bytes.Repeat([]byte{'q'}, idleReqSize)
	conns := make([]net.Conn, 0, n)
	buf := make([]byte, idleRespSize)
	for i := 0; i < n; i++ {
		var c net.Conn
		var err error
		if f[2] == "tls" {
			c, err = tls.DialWithDialer(&net.Dialer{Timeout: waitLimit}, "tcp", f[0], &tls.Config{InsecureSkipVerify: true})
		} else {
			c, err = net.DialTimeout("tcp", f[0], waitLimit)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "dial:", err)
			os.Exit(1)
		}
		if _, err := c.Write(req); err != nil {
			fmt.Fprintln(os.Stderr, "write:", err)
			os.Exit(1)
		}
		c.SetReadDeadline(time.Now().Add(waitLimit))
		if _, err := io.ReadFull(c, buf); err != nil {
			fmt.Fprintln(os.Stderr, "read:", err)
			os.Exit(1)
		}
		conns = append(conns, c)
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
}
