package main

import (
	"bufio"
	"context"
	"io"
	"regexp"
	"testing"
	"time"
)

func TestRunBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--impl", "nope"},
		{"--impl", "gorilla", "--path", "x"},
		{"--impl", "gorilla", "extra"},
		{"--no-such-flag"},
	} {
		if code := run(context.Background(), args, io.Discard, io.Discard); code != 2 {
			t.Errorf("run(%q) = %d, want 2", args, code)
		}
	}
}

// TestRunPrintsPeerLineAndStops runs the command in-process: it must print
// the PEER line, then return 0 once its context (the signal) is done.
func TestRunPrintsPeerLineAndStops(t *testing.T) {
	for _, impl := range []string{"gorilla", "gobwas", "rawtcp"} { // nbio: see peers' race_test.go
		t.Run(impl, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			pr, pw := io.Pipe()
			code := make(chan int, 1)
			go func() {
				code <- run(ctx, []string{"--impl", impl}, pw, io.Discard)
				_ = pw.Close()
			}()
			line := make(chan string, 1)
			go func() {
				l, _ := bufio.NewReader(pr).ReadString('\n')
				line <- l
				_, _ = io.Copy(io.Discard, pr)
			}()
			timer := time.NewTimer(20 * time.Second)
			defer timer.Stop()
			select {
			case l := <-line:
				if !regexp.MustCompile(`^PEER ` + impl + ` pid=\d+ addr=127\.0\.0\.1:\d+\n$`).MatchString(l) {
					t.Fatalf("PEER line %q", l)
				}
			case <-timer.C:
				t.Fatal("no PEER line")
			}
			cancel()
			select {
			case c := <-code:
				if c != 0 {
					t.Fatalf("exit code %d", c)
				}
			case <-timer.C:
				t.Fatal("run did not return after cancel")
			}
		})
	}
}
