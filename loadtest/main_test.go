package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for the loadtest command: the
// harness re-executes its own binary as `loadtest serve`, and under `go
// test` that binary is this one, started with childEnv set. Otherwise it
// runs the tests and then fails if they left goroutines behind.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := realMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	before := ourGoroutines()
	code := m.Run()
	if code == 0 {
		if err := waitGoroutines(before, 5*time.Second); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// waitGoroutines waits, at most d, until no more than n of the
// goroutines that ourGoroutines counts run.
func waitGoroutines(n int, d time.Duration) error {
	end := time.Now().Add(d)
	for {
		if ourGoroutines() <= n {
			return nil
		}
		if time.Now().After(end) {
			return fmt.Errorf("leaked goroutines: %d running, %d before the tests\n%s",
				ourGoroutines(), n, strings.Join(goroutineStacks(), "\n\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ourGoroutines counts the goroutines that are not the testing package's
// own (test runner, fuzzing workers, signal handling).
func ourGoroutines() int { return len(goroutineStacks()) }

func goroutineStacks() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for g := range bytes.SplitSeq(buf, []byte("\n\n")) {
		s := string(g)
		if strings.Contains(s, "testing.(*M).") || strings.Contains(s, "testing.(*F).") ||
			strings.Contains(s, "testing.runFuzz") || strings.Contains(s, "internal/fuzz.") ||
			strings.Contains(s, "os/signal.") || strings.Contains(s, "loadtest.goroutineStacks") ||
			strings.Contains(s, "testing.tRunner") || strings.Contains(s, "testing.(*T).Run") ||
			strings.Contains(s, "netpoll.(*defaultPoll).Wait") { // process-wide poll loops of an in-process Provider
			continue
		}
		out = append(out, s)
	}
	return out
}

// startServe starts `loadtest serve` (this test binary as a child) with
// the extra flags and stops it when the test ends.
func startServe(t *testing.T, extra ...string) *serverProc {
	t.Helper()
	spec, err := selfServe(extra...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := startServer(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.stop(); err != nil {
			t.Errorf("stopping serve: %v", err)
		}
	})
	return p
}

// testCtx is a context bounded for one test.
func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
