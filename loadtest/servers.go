package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// childEnv marks a process started by the harness as its own child (the
// test binary's TestMain looks for it to act as the loadtest command).
const childEnv = "NC_LOADTEST_CHILD"

// Timeouts of server processes.
const (
	serverStartTimeout = 30 * time.Second
	serverStopTimeout  = 10 * time.Second
)

// serverSpec says how to start one server process.
type serverSpec struct {
	Name string   // "networkcluster", "gorilla", ...
	Bin  string   // executable
	Args []string // arguments
	Raw  bool     // a raw TCP mirror, not WebSocket
	Path string   // WebSocket path
}

// selfServe is the spec of `loadtest serve` run by re-executing this binary.
func selfServe(extra ...string) (serverSpec, error) {
	exe, err := os.Executable()
	if err != nil {
		return serverSpec{}, fmt.Errorf("%w: cannot find my own executable: %v", ErrServer, err)
	}
	args := append([]string{"serve", "--addr", "127.0.0.1:0"}, extra...)
	return serverSpec{Name: ours, Bin: exe, Args: args, Path: "/connect"}, nil
}

// peerSpec is the spec of one peer from a built cmd/peer binary.
func peerSpec(bin, impl string) serverSpec {
	return serverSpec{Name: impl, Bin: bin, Args: []string{"--impl", impl, "--addr", "127.0.0.1:0"},
		Raw: impl == "rawtcp", Path: "/connect"}
}

// serverProc is a running server process.
type serverProc struct {
	spec serverSpec
	cmd  *exec.Cmd
	PID  int
	Addr string
	Impl string

	done    chan struct{} // closed when the process has exited
	waitErr error
	logMu   sync.Mutex
	log     bytes.Buffer // the tail of its stderr and later stdout
}

// tailWriter keeps the last 8 KiB written to it.
type tailWriter struct{ p *serverProc }

func (t tailWriter) Write(b []byte) (int, error) {
	t.p.logMu.Lock()
	defer t.p.logMu.Unlock()
	t.p.log.Write(b)
	if n := t.p.log.Len(); n > 8<<10 {
		t.p.log.Next(n - 8<<10)
	}
	return len(b), nil
}

func (p *serverProc) logTail() string {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	return strings.TrimSpace(p.log.String())
}

// startServer starts the process and waits for its PEER line.
func startServer(ctx context.Context, spec serverSpec) (*serverProc, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrServer, err)
	}
	p := &serverProc{spec: spec, done: make(chan struct{})}
	cmd := exec.Command(spec.Bin, spec.Args...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stdout = pw
	cmd.Stderr = tailWriter{p}
	childDiesWithUs(cmd)
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("%w: start %s: %v", ErrServer, spec.Name, err)
	}
	pw.Close()
	p.cmd = cmd
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	lines := make(chan string, 1)
	go func() {
		defer pr.Close()
		br := bufio.NewReader(pr)
		line, err := br.ReadString('\n')
		if err == nil {
			lines <- line
		} else {
			close(lines)
		}
		_, _ = br.WriteTo(tailWriter{p}) // until the process exits
	}()
	t := time.NewTimer(serverStartTimeout)
	defer t.Stop()
	select {
	case line, ok := <-lines:
		if !ok {
			<-p.done
			return nil, fmt.Errorf("%w: %s exited before listening (%v): %s", ErrServer, spec.Name, p.waitErr, p.logTail())
		}
		impl, pid, addr, err := parsePeerLine(line)
		if err != nil {
			p.kill()
			return nil, fmt.Errorf("%w: %s: %v", ErrServer, spec.Name, err)
		}
		p.Impl, p.PID, p.Addr = impl, pid, addr
		return p, nil
	case <-t.C:
		p.kill()
		return nil, fmt.Errorf("%w: %s did not print its PEER line within %v: %s", ErrServer, spec.Name, serverStartTimeout, p.logTail())
	case <-ctx.Done():
		p.kill()
		return nil, ctx.Err()
	}
}

// parsePeerLine parses "PEER <impl> pid=<pid> addr=<host:port>".
func parsePeerLine(line string) (impl string, pid int, addr string, err error) {
	f := strings.Fields(line)
	if len(f) != 4 || f[0] != "PEER" {
		return "", 0, "", fmt.Errorf("bad PEER line %q", clip(line))
	}
	impl = f[1]
	ps, ok1 := strings.CutPrefix(f[2], "pid=")
	addr, ok2 := strings.CutPrefix(f[3], "addr=")
	if !ok1 || !ok2 {
		return "", 0, "", fmt.Errorf("bad PEER line %q", clip(line))
	}
	pid, err = strconv.Atoi(ps)
	if err != nil || pid <= 0 {
		return "", 0, "", fmt.Errorf("bad pid in PEER line %q", clip(line))
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return "", 0, "", fmt.Errorf("bad addr in PEER line %q", clip(line))
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return "", 0, "", fmt.Errorf("bad port in PEER line %q", clip(line))
	}
	return impl, pid, addr, nil
}

// stop sends SIGTERM and waits for the exit; after serverStopTimeout it
// kills the process.
func (p *serverProc) stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(serverStopTimeout)
	defer t.Stop()
	select {
	case <-p.done:
		var ee *exec.ExitError
		if p.waitErr != nil && !errors.As(p.waitErr, &ee) {
			return fmt.Errorf("%w: %s: %v", ErrServer, p.spec.Name, p.waitErr)
		}
		if p.waitErr != nil {
			return fmt.Errorf("%w: %s exited with %v after SIGTERM: %s", ErrServer, p.spec.Name, p.waitErr, p.logTail())
		}
		return nil
	case <-t.C:
		p.kill()
		return fmt.Errorf("%w: %s did not stop within %v of SIGTERM; killed", ErrServer, p.spec.Name, serverStopTimeout)
	}
}

func (p *serverProc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// env returns the scenario environment for this server: base with its
// address, connections spread over nsources source addresses.
func (p *serverProc) env(prog *progress, nsources int, base clientOptions) *env {
	o := base
	o.Addr = p.Addr
	o.Host = p.Addr
	o.RequestURI = p.spec.Path
	o.Raw = p.spec.Raw
	host, _, _ := net.SplitHostPort(p.Addr)
	return &env{Name: p.spec.Name, Opts: &o, PID: p.PID, Sources: sourceIPs(net.ParseIP(host), nsources), Prog: prog}
}

// findPeersDir locates loadtest/peers (the nested module of the peer
// servers) from the working directory upwards.
func findPeersDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		for _, c := range []string{filepath.Join(dir, "loadtest", "peers"), filepath.Join(dir, "peers")} {
			if st, err := os.Stat(filepath.Join(c, "go.mod")); err == nil && !st.IsDir() {
				if _, err := os.Stat(filepath.Join(c, "cmd", "peer")); err == nil {
					return c, nil
				}
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%w: cannot find loadtest/peers from the working directory; pass --peers-dir", ErrServer)
		}
		dir = parent
	}
}

// buildPeers builds cmd/peer of the nested peers module into dir and
// returns the binary. The peers module is built on its own (GOWORK=off), so
// it never becomes a dependency of the library's module.
func buildPeers(ctx context.Context, peersDir, outDir string) (string, error) {
	bin := filepath.Join(outDir, "peer")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/peer")
	cmd.Dir = peersDir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%w: go build ./cmd/peer in %s: %v\n%s", ErrServer, peersDir, err, out)
	}
	return bin, nil
}
