//go:build linux

package provider

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/internal/idletest"
	"github.com/networkcluster/networkcluster/internal/wstest"
)

// What an idle connection costs the Provider, by allocation site:
//
//	go test ./provider -run '^$' -bench IdleMemory -benchtime 1x
//	PROVIDER_IDLE_CONNS=2000 PROVIDER_IDLE_HEAPPROFILE=/tmp/idle.pprof go test ./provider -run '^$' -bench IdleMemory -benchtime 1x
//	PROVIDER_IDLE_QUERY='token=s3cret&worker=w1' go test ./provider -run '^$' -bench IdleMemory -benchtime 1x
//
// The clients (plain ws, no extension, no parameter unless
// PROVIDER_IDLE_QUERY gives a query) live in a child
// process, this test binary re-run as TestIdleClient, so that N client and
// N server descriptors each fit under the open-file limit. Once every
// connection is open and the Provider has settled, the heap profile (at
// MemProfileRate 1, set when the process starts, so that every allocation
// is attributed exactly) is compared with the one taken before the
// connections: the bytes still in use are split by owner, the nearest
// caller of the allocation outside the standard library. Reported per
// connection:
//
//	ours-B/conn     this module and what it calls (gobwas/ws, uuid, maps, ...)
//	netpoll-B/conn  cloudwego/netpoll and bytedance/gopkg: the engine's floor
//	heapB/conn      growth of HeapInuse (both, plus size-class rounding)
//	rssB/conn       growth of the process's resident memory
//
// The sites of each owner are logged (-v, or always with -bench).

const (
	idleClientEnv  = "PROVIDER_IDLE_CLIENT" // "addr path count" for the child
	idleConnsEnv   = "PROVIDER_IDLE_CONNS"
	idleProfileEnv = "PROVIDER_IDLE_HEAPPROFILE"
	idleQueryEnv   = "PROVIDER_IDLE_QUERY"
)

func init() {
	// Exact attribution needs every allocation sampled from the start; only
	// when the idle benchmark is asked for (it slows everything else).
	for _, a := range os.Args[1:] {
		if strings.HasPrefix(a, "-test.bench=") && strings.Contains(a, "IdleMemory") {
			runtime.MemProfileRate = 1
		}
	}
}

func idleConnCount() int {
	if n, err := strconv.Atoi(os.Getenv(idleConnsEnv)); err == nil && n > 0 {
		return n
	}
	return 10000
}

func BenchmarkIdleMemory(b *testing.B) {
	for i := 0; i < b.N; i++ {
		measureIdleMemory(b)
	}
}

func measureIdleMemory(b *testing.B) {
	if runtime.MemProfileRate != 1 {
		b.Logf("MemProfileRate %d: the split by site is an estimate (run with -bench IdleMemory for exact figures)", runtime.MemProfileRate)
	}
	n := idleConnCount()
	p, err := New(Options{Addr: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Start(); err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	addr := p.Addr().String()
	// One connection opened and closed first, so that the pools and
	// goroutines any connection needs exist before the baseline.
	if c, err := wstest.Dial(addr, p.Path(), nil, nil); err != nil {
		b.Fatal(err)
	} else {
		c.Close()
	}
	waitCond(b, "the warm-up connection to close", func() bool { return p.Len() == 0 && p.liveConns() == 0 })
	time.Sleep(200 * time.Millisecond)
	heap0, rss0 := idletest.Mem()
	prof0 := inuseByStack()

	target := p.Path()
	if q := os.Getenv(idleQueryEnv); q != "" {
		target += "?" + q
	}
	defer idletest.StartChild(b, "^TestIdleClient$", fmt.Sprintf("%s=%s %s %d", idleClientEnv, addr, target, n))()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.WaitLen(ctx, n); err != nil {
		b.Fatalf("%d connections open of %d: %v", p.Len(), n, err)
	}
	// Let the handler pool, the poller's workers and flushers go idle.
	time.Sleep(1500 * time.Millisecond)
	heap1, rss1 := idletest.Mem()
	prof1 := inuseByStack()
	if got := p.Len(); got != n {
		b.Fatalf("Len = %d after settling, want %d", got, n)
	}

	sites := map[idleSite]int64{}
	for stk, v := range prof1 {
		if d := v - prof0[stk]; d != 0 {
			sites[classifyStack(stk)] += d
		}
	}
	for stk, v := range prof0 {
		if _, ok := prof1[stk]; !ok {
			sites[classifyStack(stk)] -= v
		}
	}
	delete(sites, idleSite{owner: ownerMeasure})
	var owners [4]int64
	keys := make([]idleSite, 0, len(sites))
	for s, v := range sites {
		owners[s.owner] += v
		keys = append(keys, s)
	}
	slices.SortFunc(keys, func(x, y idleSite) int {
		if x.owner != y.owner {
			return int(x.owner) - int(y.owner)
		}
		return int(sites[y] - sites[x])
	})
	per := func(v int64) float64 { return float64(v) / float64(n) }
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d idle connections: heap +%.0f B/conn, RSS +%.0f B/conn; in use by owner: ours %.1f, netpoll %.1f, runtime/std %.1f B/conn\n",
		n, per(heap1-heap0), per(rss1-rss0), per(owners[ownerOurs]), per(owners[ownerNetpoll]), per(owners[ownerStd]))
	for _, s := range keys {
		if v := per(sites[s]); v >= 0.5 || v <= -0.5 {
			fmt.Fprintf(&sb, "  %-7s %8.1f B/conn  %s\n", ownerNames[s.owner], v, s.where)
		}
	}
	b.Log(sb.String())
	b.ReportMetric(per(owners[ownerOurs]+owners[ownerStd]), "ours-B/conn")
	b.ReportMetric(per(owners[ownerNetpoll]), "netpoll-B/conn")
	b.ReportMetric(per(heap1-heap0), "heapB/conn")
	b.ReportMetric(per(rss1-rss0), "rssB/conn")
	if path := os.Getenv(idleProfileEnv); path != "" {
		// go tool pprof -sample_index=inuse_space -base <none>: the whole heap.
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.WriteHeapProfile(f); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}

func waitCond(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// idleMemNow collects (twice: the heap profile lags a cycle) and returns
// HeapInuse and the resident set.
// inuseByStack returns the heap profile's bytes in use by allocation stack,
// as of the last collection.
func inuseByStack() map[[32]uintptr]int64 {
	var recs []runtime.MemProfileRecord
	n, _ := runtime.MemProfile(nil, false)
	for {
		recs = make([]runtime.MemProfileRecord, n+100)
		var ok bool
		if n, ok = runtime.MemProfile(recs, false); ok {
			recs = recs[:n]
			break
		}
	}
	m := make(map[[32]uintptr]int64, len(recs))
	for i := range recs {
		m[recs[i].Stack0] += recs[i].InUseBytes()
	}
	return m
}

type idleOwner uint8

const (
	ownerOurs    idleOwner = iota // this module, and the libraries it calls
	ownerNetpoll                  // cloudwego/netpoll, bytedance/gopkg
	ownerStd                      // no caller outside the standard library
	ownerMeasure                  // this measurement's own profile records
)

var ownerNames = [...]string{"ours", "netpoll", "std", "measure"}

type idleSite struct {
	owner idleOwner
	where string // the owning function and, if another, the allocating one
}

// classifyStack names the owner of an allocation: the innermost caller
// outside the standard library (the runtime included), and the innermost
// function outside the runtime, which allocated.
func classifyStack(stk [32]uintptr) idleSite {
	pcs := stk[:]
	if i := slices.Index(pcs, 0); i >= 0 {
		pcs = pcs[:i]
	}
	frames := runtime.CallersFrames(pcs)
	alloc, owner := "", ""
	for {
		f, more := frames.Next()
		fn := f.Function
		if strings.HasSuffix(fn, "provider.inuseByStack") {
			return idleSite{owner: ownerMeasure}
		}
		if alloc == "" && !strings.HasPrefix(fn, "runtime.") && !strings.HasPrefix(fn, "internal/") {
			alloc = fn
		}
		if !stdFunc(fn) {
			owner = fn
			break
		}
		if !more {
			break
		}
	}
	s := idleSite{owner: ownerStd, where: alloc}
	switch {
	case owner == "":
		if s.where == "" {
			s.where = "(runtime)"
		}
		return s
	case strings.HasPrefix(owner, "github.com/cloudwego/") || strings.HasPrefix(owner, "github.com/bytedance/"):
		s.owner = ownerNetpoll
	default:
		s.owner = ownerOurs
	}
	s.where = shortFunc(owner)
	if alloc != owner && alloc != "" {
		s.where += " ← " + shortFunc(alloc)
	}
	return s
}

// stdFunc reports whether fn is in the standard library: the first element
// of its import path has no dot.
func stdFunc(fn string) bool {
	first, _, found := strings.Cut(fn, "/")
	if !found {
		return true // "runtime.mallocgc", "sync.(*Pool).Get"
	}
	return !strings.Contains(first, ".")
}

func shortFunc(fn string) string {
	fn = strings.TrimPrefix(fn, "github.com/networkcluster/networkcluster/")
	fn = strings.TrimPrefix(fn, "github.com/")
	return fn
}

// TestIdleClient is the child process of BenchmarkIdleMemory: it opens the
// connections, says "ready" and holds them, reading nothing, until its
// stdin closes.
func TestIdleClient(t *testing.T) {
	env := os.Getenv(idleClientEnv)
	if env == "" {
		t.Skip("the child process of BenchmarkIdleMemory")
	}
	f := strings.Fields(env)
	if len(f) != 3 {
		t.Fatalf("bad %s %q", idleClientEnv, env)
	}
	addr, path := f[0], f[1]
	n, _ := strconv.Atoi(f[2])
	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 16 {
				c, err := idleDial(addr, path)
				if err != nil {
					errs <- err
					return
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
}

// idleDial opens one upgraded connection and reads the whole response.
func idleDial(addr, path string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 20*time.Second)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write(wstest.Request(addr, path)); err != nil {
		c.Close()
		return nil, err
	}
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	var resp []byte
	buf := make([]byte, 512)
	for !bytes.Contains(resp, []byte("\r\n\r\n")) {
		k, err := c.Read(buf)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("reading the upgrade response: %w", err)
		}
		resp = append(resp, buf[:k]...)
	}
	if !bytes.HasPrefix(resp, []byte("HTTP/1.1 101 ")) {
		c.Close()
		return nil, fmt.Errorf("upgrade refused: %q", resp)
	}
	c.SetReadDeadline(time.Time{})
	return c, nil
}
