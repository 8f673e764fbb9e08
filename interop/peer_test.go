package interop

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// peer is a peer server running as a child process. It prints
// "PEER <impl> pid=<pid> addr=<host:port>" once listening, then one line
// per event.
type peer struct {
	t     testing.TB
	cmd   *exec.Cmd
	stdin io.WriteCloser
	port  int

	mu    sync.Mutex
	lines []string
	done  chan struct{} // closed when stdout ends
}

// requireNode skips the test when Node.js or the peer's node_modules are
// missing, except under CI (CI=true), where that is a failure: setup.sh
// must have installed them.
func requireNode(t testing.TB, module string) {
	t.Helper()
	_, errNode := exec.LookPath("node")
	_, errMod := os.Stat(filepath.Join("node", "node_modules", module))
	if errNode == nil && errMod == nil {
		return
	}
	msg := "node or node/node_modules/" + module + " missing: run interop/setup.sh"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// startNodePeer runs node/<script> with args and waits until it listens.
func startNodePeer(t testing.TB, script string, args ...string) *peer {
	t.Helper()
	cmd := exec.Command("node", append([]string{filepath.Join("node", script)}, args...)...)
	cmd.Stderr = os.Stderr
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
	p := &peer{t: t, cmd: cmd, stdin: stdin, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
		}
	}()
	t.Cleanup(p.stop)
	line := p.wait("PEER ", 20*time.Second)
	i := strings.LastIndex(line, ":")
	if p.port, err = strconv.Atoi(line[i+1:]); err != nil {
		t.Fatalf("bad peer line %q", line)
	}
	return p
}

// stop ends the peer (SIGTERM, then SIGKILL after 5 s) and waits for it.
func (p *peer) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.stdin.Close()
	exited := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-exited
	}
}

// wait returns the first line starting with prefix, waiting up to d.
func (p *peer) wait(prefix string, d time.Duration) string {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for {
		p.mu.Lock()
		for _, l := range p.lines {
			if strings.HasPrefix(l, prefix) {
				p.mu.Unlock()
				return l
			}
		}
		p.mu.Unlock()
		select {
		case <-p.done:
			p.t.Fatalf("peer exited before printing %q; output:\n%s", prefix, strings.Join(p.output(), "\n"))
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("no %q line from the peer within %v; output:\n%s", prefix, d, strings.Join(p.output(), "\n"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// count returns how many lines start with prefix.
func (p *peer) count(prefix string) int {
	n := 0
	for _, l := range p.output() {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

func (p *peer) output() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// waitFor polls cond every 5 ms for at most d; it fails the test on timeout.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
