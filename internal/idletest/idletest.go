// Package idletest holds what the idle-memory benchmarks of the poller and
// the Provider share: a settled reading of the process's memory, and the
// child process that holds the idle client connections (so that their
// memory is not counted with the server's).
package idletest

import (
	"bufio"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
)

// Mem collects garbage, returns freed memory to the OS, and reports the
// heap in use and the resident set size in bytes (RSS from /proc/self/statm;
// 0 where there is none).
func Mem() (heap, rss int64) {
	runtime.GC()
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heap = int64(ms.HeapInuse)
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 1 {
			pages, _ := strconv.ParseInt(f[1], 10, 64)
			rss = pages * int64(os.Getpagesize())
		}
	}
	return heap, rss
}

// StartChild runs the test binary again with -test.run=run and env added to
// its environment (the child's TestMain or test finds its work there), and
// waits until the child prints "ready" on its standard output. stop closes
// the child's standard input, which tells it to exit, and waits for it.
func StartChild(tb testing.TB, run, env string) (stop func()) {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run="+run)
	cmd.Env = append(os.Environ(), env)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	stop = func() {
		stdin.Close()
		cmd.Wait()
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		stop()
		tb.Fatalf("client process: %q %v", line, err)
	}
	return stop
}
