package provider

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/compress"
	"github.com/networkcluster/networkcluster/frame"
	"github.com/networkcluster/networkcluster/internal/testdeflate"
	"github.com/networkcluster/networkcluster/internal/wstest"
)

// The memory test runs the Provider in a child process (this test binary,
// re-run as TestMemoryServer) so that its resident memory is measured from
// outside, alone.
const (
	memEnv      = "PROVIDER_MEMORY_SERVER"
	memPayload  = 16 << 20
	memBudget   = 64 << 20
	memBombs    = 20
	memBombCopy = 64 // 64 copies of a 16 MiB stream of zeros: ~1 MB compressed, 1 GiB inflated
)

// TestMemoryServer is the child: a Provider that answers "ok" to every
// message, until its stdin closes.
func TestMemoryServer(t *testing.T) {
	if os.Getenv(memEnv) == "" {
		t.Skip("the child process of TestMemoryBudget")
	}
	p, err := New(Options{
		Addr:             "127.0.0.1:0",
		MaxPayloadLength: memPayload,
		MemoryBudget:     memBudget,
		Compressor:       compress.SharedCompressor,
		Heartbeat:        Heartbeat{Mode: HeartbeatOff},
		OnMessage:        func(c *Connection, m Message) { _ = c.Send("ok") },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	fmt.Printf("ADDR %s\n", p.Addr())
	in := bufio.NewReader(os.Stdin)
	for {
		line, err := in.ReadString('\n')
		if err != nil {
			break
		}
		if line == "gc\n" {
			// Two collections (sync.Pool keeps its items for one, as do
			// netpoll's buffer caches), as the runtime makes on its own at
			// the latest every 2 minutes each.
			runtime.GC()
			debug.FreeOSMemory()
			fmt.Println("GC")
		}
	}
	st := p.Stats()
	fmt.Printf("STATS budget_closes=%d memory_in_use=%d\n", st.BudgetCloses, st.MemoryInUse)
}

// procStatus reads a "Vm..." field of /proc/pid/status, in bytes.
func procStatus(t *testing.T, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// A 16 MiB message, then 20 concurrent ~1 MB deflate bombs: the Provider's
// peak resident memory stays within its memory budget (plus a fixed
// allowance for the runtime and netpoll's input buffers), each bomb gets a
// clear close (1009 or 1013), an unrelated connection goes on, and the
// memory goes back down after each.
func TestMemoryBudget(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs /proc")
	}
	if testing.Short() {
		t.Skip("short")
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestMemoryServer$")
	cmd.Env = append(os.Environ(), memEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	defer func() {
		stdin.Close()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
		}
	}()
	out := bufio.NewReader(stdout)
	var addr string
	for addr == "" {
		line, err := out.ReadString('\n')
		if err != nil {
			t.Fatalf("child: %v", err)
		}
		addr, _ = strings.CutPrefix(strings.TrimSpace(line), "ADDR ")
	}
	var rest bytes.Buffer
	gcDone := make(chan struct{}, 4)
	go func() {
		for {
			line, err := out.ReadString('\n')
			if err != nil {
				break
			}
			if line == "GC\n" {
				gcDone <- struct{}{}
				continue
			}
			rest.WriteString(line)
		}
		_ = cmd.Wait()
		close(done)
	}()
	pid := cmd.Process.Pid
	rss := func() int { return procStatus(t, pid, "VmRSS") }
	settle := func(limit int) int { // waits up to 5 s for RSS to fall to limit
		var r int
		for i := 0; i < 50; i++ {
			if r = rss(); r <= limit {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		return r
	}
	collect := func() int { // RSS after a collection in the child
		if _, err := stdin.Write([]byte("gc\n")); err != nil {
			t.Fatal(err)
		}
		<-gcDone
		return rss()
	}

	idle := dial(t, addr, "/connect")
	time.Sleep(200 * time.Millisecond)
	base := rss()

	// One 16 MiB message.
	big := dial(t, addr, "/connect")
	if err := big.WriteFrame(true, frame.OpBinary, make([]byte, memPayload)); err != nil {
		t.Fatal(err)
	}
	if _, data, err := big.ReadMessage(); err != nil || string(data) != "ok" {
		t.Fatalf("16 MiB message: %q %v", data, err)
	}
	peakBig := procStatus(t, pid, "VmHWM")
	afterBig := settle(base + 8<<20)
	gcBig := collect()

	// 20 concurrent deflate bombs.
	unit := append(testdeflate.Deflate(9, nil, make([]byte, 16<<20)), 0, 0, 0xff, 0xff)
	bomb := bytes.TrimSuffix(bytes.Repeat(unit, memBombCopy), []byte{0, 0, 0xff, 0xff})
	ext := "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_no_context_takeover"
	clients := make([]*wstest.Client, memBombs)
	for i := range clients {
		clients[i] = dial(t, addr, "/connect", ext)
	}
	codes := make([]frame.CloseCode, memBombs)
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Write(wstest.Frame(true, frame.OpBinary, 4, bomb)); err != nil {
				t.Errorf("bomb %d: %v", i, err)
				return
			}
			_, _, err := c.ReadMessage()
			var ce *frame.CloseError
			if errors.As(err, &ce) {
				codes[i] = ce.Code
			}
		}()
	}
	wg.Wait()
	peakBombs := procStatus(t, pid, "VmHWM")
	afterBombs := settle(base + 8<<20)
	gcBombs := collect()
	for i, code := range codes {
		if code != frame.CloseTooBig && code != frame.CloseTryAgainLater {
			t.Errorf("bomb %d: close code %v, want 1009 or 1013", i, code)
		}
	}
	// The unrelated connection is still served.
	if err := idle.WriteFrame(true, frame.OpText, []byte("still there?")); err != nil {
		t.Fatal(err)
	}
	if _, data, err := idle.ReadMessage(); err != nil || string(data) != "ok" {
		t.Fatalf("idle connection: %q %v", data, err)
	}
	mib := func(n int) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
	t.Logf("Provider RSS %s at rest (race detector: %v); one 16 MiB message: peak %s, %s 5 s after, %s after a collection; "+
		"%d concurrent bombs of %d KiB (closes %v): peak %s, %s 5 s after, %s after a collection; budget %s",
		mib(base), raceEnabled, mib(peakBig), mib(afterBig), mib(gcBig), memBombs, len(bomb)>>10, codes,
		mib(peakBombs), mib(afterBombs), mib(gcBombs), mib(memBudget))
	if raceEnabled {
		// The race detector's shadow memory makes RSS meaningless; .ci/run
		// runs this test without it too.
		return
	}
	// The allowance over the budget: netpoll's input buffers (the bombs'
	// bytes as they arrive), the Go runtime's own growth, goroutine stacks.
	const allowance = 64 << 20
	if peakBombs-base > memBudget+allowance {
		t.Errorf("peak RSS %s over the start, budget %s + allowance %s", mib(peakBombs-base), mib(memBudget), mib(allowance))
	}
	// Nothing of it is kept: what is not given back at once (netpoll's
	// buffers, the heap) goes at the next collection.
	if gcBig > base+8<<20 || gcBombs > base+8<<20 {
		t.Errorf("RSS did not come back down: %s at rest, %s after the 16 MiB message, %s after the bombs", mib(base), mib(gcBig), mib(gcBombs))
	}
	stdin.Close()
	<-done
	if s := rest.String(); !strings.Contains(s, "memory_in_use=0") {
		t.Errorf("child: %s", s)
	}
}
