package peers_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/loadtest/peers"
)

// testServer is a peer under test: in this process (*peers.Server) or a
// child process running cmd/peer (*procServer).
type testServer interface {
	Addr() string
	// Conns is the open-connection count, or -1 where the test cannot see it.
	Conns() int
	Shutdown(ctx context.Context) error
}

type inProc struct{ *peers.Server }

func (s inProc) Addr() string { return s.Server.Addr().String() }

// start runs cfg in this process, or in a child process for nbio under -race.
func start(t testing.TB, cfg peers.Config) testServer {
	t.Helper()
	if cfg.Impl == peers.ImplNbio && raceEnabled {
		args := []string{"--impl", cfg.Impl}
		if cfg.Path != "" {
			args = append(args, "--path", cfg.Path)
		}
		if cfg.TLSCert != "" {
			args = append(args, "--tls-cert", cfg.TLSCert, "--tls-key", cfg.TLSKey)
		}
		return startProc(t, args...)
	}
	srv, err := peers.Start(cfg)
	if err != nil {
		t.Fatalf("Start(%+v): %v", cfg, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return inProc{srv}
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// peerBinary builds cmd/peer once per test run (without -race) and returns
// its path.
func peerBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "peer-bin-")
		if buildErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(buildDir, "peer"), "./cmd/peer").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/peer: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, "peer")
}

// procServer is cmd/peer running as a child process.
type procServer struct {
	cmd    *exec.Cmd
	impl   string
	pid    int
	addr   string
	exited chan struct{}
	err    error // cmd.Wait's result, set before exited is closed
	stderr *syncBuffer
}

func (p *procServer) Addr() string { return p.addr }
func (p *procServer) Conns() int   { return -1 }

// Shutdown sends SIGTERM and waits for a clean exit.
func (p *procServer) Shutdown(ctx context.Context) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if p.err != nil {
			return fmt.Errorf("peer exited: %w; stderr:\n%s", p.err, p.stderr.String())
		}
		return nil
	case <-ctx.Done():
		_ = p.cmd.Process.Kill()
		<-p.exited
		return ctx.Err()
	}
}

var peerLine = regexp.MustCompile(`^PEER (\S+) pid=(\d+) addr=(\S+)\n$`)

// startProc starts cmd/peer with args, parses its PEER line and kills it at
// cleanup if it is still running.
func startProc(t testing.TB, args ...string) *procServer {
	t.Helper()
	lines := &firstLine{ch: make(chan string, 1)}
	p := &procServer{
		cmd:    exec.Command(peerBinary(t), args...),
		exited: make(chan struct{}),
		stderr: &syncBuffer{},
	}
	p.cmd.Stdout = lines
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	})
	timer := time.NewTimer(ioTimeout)
	defer timer.Stop()
	var line string
	select {
	case line = <-lines.ch:
	case <-p.exited:
		t.Fatalf("peer %q exited before listening: %v\n%s", args, p.err, p.stderr.String())
	case <-timer.C:
		t.Fatalf("peer %q printed no PEER line", args)
	}
	m := peerLine.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("PEER line %q does not match %s", line, peerLine)
	}
	p.impl, p.addr = m[1], m[3]
	p.pid, _ = strconv.Atoi(m[2])
	if p.pid != p.cmd.Process.Pid {
		t.Fatalf("PEER line pid %d, process pid %d", p.pid, p.cmd.Process.Pid)
	}
	return p
}

// firstLine is an io.Writer that sends the first line written to it on ch
// and discards the rest.
type firstLine struct {
	mu   sync.Mutex
	buf  []byte
	sent bool
	ch   chan string
}

func (w *firstLine) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sent {
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	if i := bytes.IndexByte(w.buf, '\n'); i >= 0 {
		w.sent = true
		w.ch <- string(w.buf[:i+1])
	}
	return len(p), nil
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestPeerCommand starts each implementation as the harness does, checks the
// PEER line, one echo (or raw echo), and a clean exit on SIGTERM and SIGINT.
func TestPeerCommand(t *testing.T) {
	for _, impl := range peers.Impls() {
		for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
			t.Run(impl+"/"+sig.String(), func(t *testing.T) {
				p := startProc(t, "--impl", impl, "--addr", "127.0.0.1:0", "--path", "/connect")
				if p.impl != impl {
					t.Fatalf("PEER line impl %q, want %q", p.impl, impl)
				}
				if impl == peers.ImplRawTCP {
					rawEcho(t, p.addr, []byte("ping"))
				} else {
					c := dialAddr(t, p.addr, "/connect")
					c.send(1, []byte("hello"))
					if got, _ := c.recv(); string(got) != "hello" {
						t.Fatalf("echo %q", got)
					}
				}
				_ = p.cmd.Process.Signal(sig)
				timer := time.NewTimer(ioTimeout)
				defer timer.Stop()
				select {
				case <-p.exited:
				case <-timer.C:
					t.Fatalf("no exit after %v", sig)
				}
				if p.err != nil {
					t.Fatalf("exit after %v: %v\n%s", sig, p.err, p.stderr.String())
				}
			})
		}
	}
}

func TestPeerCommandBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--impl", "nope"},
		{},
		{"--impl", "gorilla", "--path", "noslash"},
		{"--impl", "gorilla", "extra"},
	} {
		cmd := exec.Command(peerBinary(t), args...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("peer %q: %v, want exit status 2\n%s", args, err, out)
		}
	}
}
