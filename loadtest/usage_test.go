package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/provider"
)

// TestUsage: loadtest -h lists every command with a line each, and every
// command's -h exits 0 with its flags, no doubled prefix and no flag help
// garbled by backquotes (which the flag package reads as a value name).
func TestUsage(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}} {
		var out, errb bytes.Buffer
		if code := realMain(context.Background(), args, &out, &errb); code != 0 {
			t.Errorf("%v: exit %d", args, code)
		}
		for _, cmd := range []string{"suite", "serve", "run", "compare"} {
			if !strings.Contains(out.String(), "\n  "+cmd+" ") {
				t.Errorf("%v: no line for %s in\n%s", args, cmd, out.String())
			}
		}
	}
	for _, cmd := range []string{"suite", "serve", "run", "compare"} {
		var out, errb bytes.Buffer
		if code := realMain(context.Background(), []string{cmd, "-h"}, &out, &errb); code != 0 {
			t.Errorf("%s -h: exit %d\n%s", cmd, code, errb.String())
		}
		help := errb.String()
		if strings.Contains(help, "loadtest: loadtest:") || strings.Contains(help, "`") {
			t.Errorf("%s -h: %s", cmd, help)
		}
		if !strings.Contains(help, "-") {
			t.Errorf("%s -h printed no flags", cmd)
		}
	}
	var out, errb bytes.Buffer
	if code := realMain(context.Background(), []string{"run", "--bogus"}, &out, &errb); code != 2 {
		t.Errorf("bad flag: exit %d, want 2", code)
	}
	if strings.Contains(errb.String(), "loadtest: loadtest:") {
		t.Errorf("doubled prefix: %s", errb.String())
	}
}

// flagsOf returns the flags a command defines, by parsing its -h output.
func flagsOf(t *testing.T, cmd string) map[string]string {
	var out, errb bytes.Buffer
	realMain(context.Background(), []string{cmd, "-h"}, &out, &errb)
	fl := map[string]string{}
	var name string
	for _, line := range strings.Split(errb.String(), "\n") {
		if strings.HasPrefix(line, "  -") {
			name = strings.Fields(line)[0][1:]
			fl[name] = ""
		} else if name != "" {
			fl[name] += line
		}
	}
	return fl
}

// TestFlagsAgree: a flag that suite and run share has the same name, the
// same default and the same unit.
func TestFlagsAgree(t *testing.T) {
	suite, run := flagsOf(t, "suite"), flagsOf(t, "run")
	for _, name := range []string{"scenario", "scenarios", "duration", "warmup", "slow-fill", "parallel", "sources", "json", "svg", "q"} {
		s, ok1 := suite[name]
		r, ok2 := run[name]
		if !ok1 || !ok2 {
			t.Errorf("-%s: in suite %v, in run %v", name, ok1, ok2)
			continue
		}
		ds, dr := defaultOf(s), defaultOf(r)
		if ds != dr && !strings.HasPrefix(name, "scenario") { // one scenario against a list
			t.Errorf("-%s: default %q in suite, %q in run", name, ds, dr)
		}
	}
	if d := defaultOf(suite["slow-fill"]); d != "128KiB" {
		t.Errorf("slow-fill default shown as %q, want 128KiB", d)
	}
}

func defaultOf(help string) string {
	_, after, ok := strings.Cut(help, "(default ")
	if !ok {
		return ""
	}
	d, _, _ := strings.Cut(after, ")")
	return d
}

// TestServePrintsTarget: serve prints the URL that run --target takes,
// and that URL works; --metrics serves the counters in the Prometheus
// text format.
func TestServePrintsTarget(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- realMain(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--key", "s e", "--metrics", "127.0.0.1:0"}, pw, io.Discard)
		pw.Close()
	}()
	defer func() {
		cancel()
		io.Copy(io.Discard, pr)
		if code := <-done; code != 0 {
			t.Errorf("serve exited %d", code)
		}
	}()
	var lines []string
	buf := make([]byte, 4096)
	var acc string
	for len(lines) < 3 {
		n, err := pr.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		acc += string(buf[:n])
		lines = strings.Split(strings.TrimSpace(acc), "\n")
		if !strings.HasSuffix(acc, "\n") {
			lines = lines[:len(lines)-1]
		}
	}
	target, ok := strings.CutPrefix(lines[1], "target for run: loadtest run --target '")
	if !ok {
		t.Fatalf("second line %q", lines[1])
	}
	target = strings.TrimSuffix(target, "'")
	if !strings.HasPrefix(target, "ws://127.0.0.1:") || !strings.HasSuffix(target, "/connect?key=s+e") {
		t.Errorf("target %q", target)
	}
	var out bytes.Buffer
	if code := realMain(testCtx(t, 60*time.Second), []string{"run", "--target", target, "--scenario", "echo",
		"--conns", "4", "--duration", "300ms", "--warmup", "100ms", "--svg", "none", "-q"}, &out, &out); code != 0 {
		t.Fatalf("run against the printed target: exit %d\n%s", code, out.String())
	}
	murl, ok := strings.CutPrefix(lines[2], "metrics: ")
	if !ok {
		t.Fatalf("third line %q", lines[2])
	}
	resp, err := http.Get(murl)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"# TYPE networkcluster_provider_messages_received_total counter\n",
		"networkcluster_provider_connections_opened_total ",
		`networkcluster_provider_upgrades_rejected_total{reason="auth"} 0`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
}

// TestRunAgainstPlainEchoServer: run works against a WebSocket echo server
// that does not speak the harness's stats query (here a Provider that
// only echoes): connect, idle, echo and compress succeed, with server
// figures from /proc when --server-pid is given.
func TestRunAgainstPlainEchoServer(t *testing.T) {
	p, err := provider.New(provider.Options{
		Addr:       "127.0.0.1:0",
		Compressor: 0,
		OnMessage: func(c *provider.Connection, m provider.Message) {
			if m.Binary {
				_ = c.SendBinary(m.Data)
			} else {
				_ = c.SendText(m.Data)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	target := "ws://" + p.Addr().String() + "/connect"
	for _, sc := range []string{"connect", "idle", "echo", "compress"} {
		var out bytes.Buffer
		args := []string{"run", "--target", target, "--scenario", sc, "--conns", "4",
			"--duration", "300ms", "--warmup", "100ms", "--svg", "none", "-q"}
		if code := realMain(testCtx(t, 60*time.Second), args, &out, &out); code != 0 {
			t.Errorf("%s: exit %d\n%s", sc, code, out.String())
		}
	}
	// Without --server-pid the server's figures are said to be missing.
	var noPid bytes.Buffer
	if code := realMain(testCtx(t, 60*time.Second), []string{"run", "--target", target, "--scenario", "echo", "--conns", "2",
		"--duration", "200ms", "--warmup", "100ms", "--svg", "none", "-q"}, &noPid, &noPid); code != 0 ||
		!strings.Contains(noPid.String(), "server CPU and memory not available: give --server-pid") {
		t.Errorf("echo without --server-pid: exit %d\n%s", code, noPid.String())
	}
	// The offer of --compressor in a scenario other than compress.
	var out bytes.Buffer
	args := []string{"run", "--target", target, "--scenario", "echo", "--conns", "2", "--compressor", "SHARED_COMPRESSOR",
		"--duration", "200ms", "--warmup", "100ms", "--svg", "none", "-q"}
	if code := realMain(testCtx(t, 60*time.Second), args, &out, &out); code != 0 {
		t.Errorf("echo with --compressor: exit %d\n%s", code, out.String())
	}
}
