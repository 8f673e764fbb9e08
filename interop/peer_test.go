package interop

import (
	"bufio"
	"fmt"
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

// The Python interpreter of the Debian packages (python3-autobahn is
// installed for it, not for a pyenv or venv python that may come first in
// PATH).
const python = "/usr/bin/python3"

// chromiumPath is Debian's chromium, driven by playwright-core.
const chromiumPath = "/usr/bin/chromium"

// peerRequired reports whether a missing peer fails the test instead of
// skipping it: NC_INTEROP_REQUIRED=1 (set by .ci/run), or CI=true.
func peerRequired() bool {
	return os.Getenv("NC_INTEROP_REQUIRED") == "1" || os.Getenv("CI") == "true"
}

// requirePeer fails or skips the test (see peerRequired) when a peer is
// missing; why says what is missing.
func requirePeer(t testing.TB, why string) {
	t.Helper()
	msg := why + ": run interop/setup.sh (NC_INTEROP_REQUIRED=1 makes this a failure)"
	if peerRequired() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// requireNode skips the test when Node.js or the peer's node_modules are
// missing (fails under NC_INTEROP_REQUIRED=1 or CI=true).
func requireNode(t testing.TB, module string) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		requirePeer(t, "node is not installed")
	}
	if _, err := os.Stat(filepath.Join("node", "node_modules", module)); err != nil {
		requirePeer(t, "node/node_modules/"+module+" is missing")
	}
}

var autobahnCheck = sync.OnceValue(func() error {
	out, err := exec.Command(python, "-c", "import autobahn, autobahn.asyncio.websocket; print(autobahn.__version__)").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s cannot import autobahn (Debian's python3-autobahn): %v: %s", python, err, out)
	}
	return nil
})

// requireAutobahn skips the test when Debian's python3-autobahn is missing
// (fails under NC_INTEROP_REQUIRED=1 or CI=true).
func requireAutobahn(t testing.TB) {
	t.Helper()
	if err := autobahnCheck(); err != nil {
		requirePeer(t, err.Error())
	}
}

// requireChromium skips the test when Debian's chromium or playwright-core
// is missing (fails under NC_INTEROP_REQUIRED=1 or CI=true).
func requireChromium(t testing.TB) {
	t.Helper()
	requireNode(t, "playwright-core")
	if _, err := os.Stat(chromiumPath); err != nil {
		requirePeer(t, chromiumPath+" (Debian's chromium) is missing")
	}
}

// peer is an independent implementation running as a child process (in its
// own process group, so that a browser it starts dies with it). It prints
// one line per event; a server peer first prints
// "PEER <impl> pid=<pid> addr=<host:port>" once listening.
type peer struct {
	t     testing.TB
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	port  int

	mu    sync.Mutex
	lines []string
	done  chan struct{} // closed when stdout ends
	exit  chan struct{} // closed when the process has been waited for
	err   error         // the exit status, once exit is closed

	stopOnce sync.Once
}

// spawn starts prog with args and collects its standard output; it is
// stopped when the test ends.
func spawn(t testing.TB, prog string, args ...string) *peer {
	t.Helper()
	cmd := exec.Command(prog, args...)
	cmd.Stderr = os.Stderr
	// Pdeathsig: a test binary that dies (a -timeout panic) takes the peer along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Env = append(os.Environ(), "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1", "PYTHONUNBUFFERED=1")
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
	name := filepath.Base(prog)
	if len(args) > 0 {
		name = filepath.Base(args[0])
	}
	p := &peer{t: t, name: name, cmd: cmd, stdin: stdin, done: make(chan struct{}), exit: make(chan struct{})}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		<-p.done // Wait closes stdout: let the reader finish first
		p.err = cmd.Wait()
		close(p.exit)
	}()
	t.Cleanup(p.stop)
	return p
}

// startPeer spawns a server peer and waits until it listens.
func startPeer(t testing.TB, prog string, args ...string) *peer {
	t.Helper()
	p := spawn(t, prog, args...)
	line := p.wait("PEER ", 30*time.Second)
	i := strings.LastIndex(line, ":")
	var err error
	if p.port, err = strconv.Atoi(line[i+1:]); err != nil {
		t.Fatalf("bad peer line %q", line)
	}
	return p
}

// startNodePeer runs node/<script> with args and waits until it listens.
func startNodePeer(t testing.TB, script string, args ...string) *peer {
	t.Helper()
	return startPeer(t, "node", append([]string{filepath.Join("node", script)}, args...)...)
}

// send writes one line to the peer's standard input.
func (p *peer) send(line string) {
	p.t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		p.t.Fatalf("%s: writing %q: %v", p.name, line, err)
	}
}

// stop ends the peer's process group (SIGTERM, then SIGKILL after 5 s) and
// waits for it. Safe to call more than once.
func (p *peer) stop() {
	p.stopOnce.Do(func() {
		pgid := p.cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		_ = p.stdin.Close()
		select {
		case <-p.exit:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-p.exit
		}
		// Whatever the peer started (a browser) goes with it.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	})
}

// waitExit waits up to d for the peer to exit by itself and returns its
// exit status; on timeout it fails the test (the peer is killed at cleanup).
func (p *peer) waitExit(d time.Duration) error {
	p.t.Helper()
	select {
	case <-p.exit:
		return p.err
	case <-time.After(d):
		p.t.Fatalf("%s did not exit within %v; output:\n%s", p.name, d, strings.Join(p.output(), "\n"))
		return nil
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
			p.t.Fatalf("%s exited before printing %q; output:\n%s", p.name, prefix, strings.Join(p.output(), "\n"))
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("no %q line from %s within %v; output:\n%s", prefix, p.name, d, strings.Join(p.output(), "\n"))
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

// matching returns the lines that start with prefix.
func (p *peer) matching(prefix string) []string {
	var out []string
	for _, l := range p.output() {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
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
