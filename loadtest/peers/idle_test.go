package peers_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/networkcluster/networkcluster/loadtest/peers"
)

// TestIdleConnections opens PEERS_IDLE_CONNS (default 2000) idle connections
// from this process to each peer running as a child process, reports the
// peer's RSS and heap growth per connection, then checks that every
// connection still works (a broadcast reaches all of them; rawtcp: each
// echoes a byte). Figures are logged (go test -v), never asserted.
//
//	cd loadtest/peers && PEERS_IDLE_CONNS=9000 go test -run TestIdleConnections -v .
func TestIdleConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("thousands of connections")
	}
	n := 2000
	if v := os.Getenv("PEERS_IDLE_CONNS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > 15000 {
			t.Fatalf("PEERS_IDLE_CONNS=%q: want 1..15000 (one process, 20 000 fds)", v)
		}
	}
	// PEERS_IDLE_IMPLS picks implementations (comma-separated); it also
	// knows "gobwas-nobuf": gobwas with --gobwas-read-buffer -1.
	impls := peers.Impls()
	if v := os.Getenv("PEERS_IDLE_IMPLS"); v != "" {
		impls = strings.Split(v, ",")
	}
	for _, impl := range impls {
		t.Run(impl, func(t *testing.T) { idleRun(t, impl, n) })
	}
}

func idleRun(t *testing.T, impl string, n int) {
	args := []string{"--impl", impl}
	if impl == "gobwas-nobuf" {
		args = []string{"--impl", peers.ImplGobwas, "--gobwas-read-buffer", "-1"}
	}
	p := startProc(t, args...)
	raw := impl == peers.ImplRawTCP

	// The probe connection is open for the baseline, so the figures are the
	// growth from 1 to n+1 connections.
	var probe *client
	var st0 peers.Stats
	if raw {
		rawEcho(t, p.addr, []byte("x"))
	} else {
		probe = dialAddr(t, p.addr, "/connect")
		st0 = probe.stats()
	}
	rss0 := procRSS(t, p.pid)

	conns := dialMany(t, p.addr, n, raw)
	defer func() {
		for _, nc := range conns {
			_ = nc.Close()
		}
	}()

	var st1 peers.Stats
	if !raw { // wait (bounded) until the server has registered them all
		for i := 0; i < 500; i++ {
			if st1 = probe.stats(); st1.Conns == n+1 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if st1.Conns != n+1 {
			t.Fatalf("server reports %d connections, want %d", st1.Conns, n+1)
		}
	}
	time.Sleep(500 * time.Millisecond) // let the server settle; no assertion on time
	if !raw {
		st1 = probe.stats()
	}
	rss1 := procRSS(t, p.pid)

	perConn := func(a, b uint64) string {
		return fmt.Sprintf("%.0f", (float64(b)-float64(a))/float64(n))
	}
	if raw {
		t.Logf("IDLE %-7s conns=%d rss/conn=%s B rss=%.1f MiB",
			impl, n, perConn(rss0, rss1), float64(rss1)/(1<<20))
	} else {
		t.Logf("IDLE %-7s conns=%d rss/conn=%s B heap_inuse/conn=%s B goroutines=%d->%d rss=%.1f MiB",
			impl, n, perConn(rss0, rss1), perConn(st0.HeapInuse, st1.HeapInuse),
			st0.Goroutines, st1.Goroutines, float64(rss1)/(1<<20))
	}

	// Every connection still works.
	if raw {
		checkAll(t, conns, func(nc net.Conn) error {
			if _, err := nc.Write([]byte{'k'}); err != nil {
				return err
			}
			var b [1]byte
			_, err := io.ReadFull(nc, b[:])
			return err
		})
		return
	}
	msg := []byte(peers.BroadcastPrefix + "idle-check")
	probe.send(ws.OpBinary, msg)
	if got, _ := probe.recv(); !bytes.Equal(got, msg) {
		t.Fatalf("probe got %q", got)
	}
	checkAll(t, conns, func(nc net.Conn) error {
		got, op, err := wsutil.ReadServerData(nc)
		if err == nil && (op != ws.OpBinary || !bytes.Equal(got, msg)) {
			err = fmt.Errorf("got op %v %q", op, got)
		}
		return err
	})
}

// dialMany opens n connections with a few parallel dialers, each step bounded
// by ioTimeout. WebSocket connections are upgraded; raw ones are plain TCP.
func dialMany(t testing.TB, addr string, n int, raw bool) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	const workers = 8
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += workers {
				ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
				if raw {
					var d net.Dialer
					conns[i], errs[i] = d.DialContext(ctx, "tcp", addr)
				} else {
					// br is non-nil only if the server sent data right
					// after the 101, which no peer does.
					nc, br, _, err := ws.Dialer{}.Dial(ctx, "ws://"+addr+"/connect")
					if err == nil && br != nil {
						err = fmt.Errorf("unexpected data after the handshake")
					}
					conns[i], errs[i] = nc, err
				}
				cancel()
				if errs[i] != nil {
					return
				}
			}
		}(w)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			for _, nc := range conns {
				if nc != nil {
					_ = nc.Close()
				}
			}
			t.Fatalf("connection %d of %d: %v", i, n, err)
		}
	}
	return conns
}

// checkAll runs check on every connection (a few at a time, each bounded by
// ioTimeout) and fails the test on the first error.
func checkAll(t *testing.T, conns []net.Conn, check func(net.Conn) error) {
	t.Helper()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	const workers = 8
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(conns); i += workers {
				_ = conns[i].SetDeadline(time.Now().Add(ioTimeout))
				if err := check(conns[i]); err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("connection %d: %w", i, err)
					}
					mu.Unlock()
					return
				}
			}
		}(w)
	}
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
}

// procRSS reads VmRSS of pid from /proc, in bytes.
func procRSS(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			kb, err := strconv.ParseUint(f[0], 10, 64)
			if err != nil || len(f) != 2 || f[1] != "kB" {
				t.Fatalf("VmRSS line %q", line)
			}
			return kb * 1024
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}
