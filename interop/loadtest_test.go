package interop

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// loadtestBin builds the harness of the main module once per test binary.
var loadtestBin = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "interop-loadtest-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "loadtest")
	out, err := exec.Command("go", "build", "-C", "..", "-o", bin, "./loadtest").CombinedOutput()
	if err != nil {
		return "", &buildError{err: err, out: string(out)}
	}
	return bin, nil
})

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return "building loadtest: " + e.err.Error() + "\n" + e.out }

// TestLoadtestRunAgainstPeers runs `loadtest run` against independent
// WebSocket echo servers that know nothing of the harness protocol (Node's
// ws 8 and python3-autobahn), for every scenario an echo server can take:
// connect, idle, echo and compress. Server CPU and memory come from
// --server-pid.
func TestLoadtestRunAgainstPeers(t *testing.T) {
	peers := []struct {
		name  string
		check func(t *testing.T)
		start func(t *testing.T) *peer
	}{
		{"node ws 8 server", func(t *testing.T) { requireNode(t, "ws") },
			func(t *testing.T) *peer { return startNodePeer(t, "ws-server.js", "--deflate", "on") }},
		{"python3-autobahn server", func(t *testing.T) { requireAutobahn(t) },
			func(t *testing.T) *peer {
				return startPeer(t, python, filepath.Join("python", "ab_server.py"), "--deflate", "on")
			}},
	}
	for _, pc := range peers {
		t.Run(pc.name, func(t *testing.T) {
			pc.check(t)
			track(t, pc.name)
			bin, err := loadtestBin()
			if err != nil {
				t.Fatal(err)
			}
			p := pc.start(t)
			pid := itoa(p.cmd.Process.Pid)
			target := "ws://127.0.0.1:" + itoa(p.port) + "/connect"
			for _, sc := range []string{"connect", "idle", "echo", "compress"} {
				args := []string{"run", "--target", target, "--scenario", sc, "--conns", "8",
					"--duration", "500ms", "--warmup", "200ms", "--svg", "none", "-q", "--server-pid", pid}
				cmd := exec.Command(bin, args...)
				done := make(chan struct{})
				var out []byte
				go func() { out, err = cmd.CombinedOutput(); close(done) }()
				select {
				case <-done:
				case <-time.After(2 * time.Minute):
					_ = cmd.Process.Kill()
					<-done
					t.Fatalf("%s: loadtest run did not finish", sc)
				}
				s := string(out)
				if err != nil {
					t.Errorf("%s: %v\n%s", sc, err, s)
					continue
				}
				want := map[string]string{
					"connect":  "upgrades/s",
					"idle":     "server RSS/conn",
					"echo":     "server CPU/msg",
					"compress": "wire vs uncompressed",
				}[sc]
				if !strings.Contains(s, want) {
					t.Errorf("%s: no %q in\n%s", sc, want, s)
				}
				if sc == "compress" && !strings.Contains(s, "negotiated: permessage-deflate") {
					t.Errorf("compress: deflate not negotiated:\n%s", s)
				}
			}
		})
	}
}
