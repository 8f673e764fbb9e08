package provider_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/consumer"
	"github.com/networkcluster/networkcluster/frame"
	"github.com/networkcluster/networkcluster/provider"
)

const slowEnv = "PROVIDER_SLOW_SERVER"

// TestSlowServer is the child of TestFaultSlowHandlers: a Provider with a
// 250 ms heartbeat whose OnMessage blocks for 2 s on "slow", until its
// stdin closes; then it prints its counters.
func TestSlowServer(t *testing.T) {
	if os.Getenv(slowEnv) == "" {
		t.Skip("the child process of TestFaultSlowHandlers")
	}
	p, err := provider.New(provider.Options{
		Addr:      "127.0.0.1:0",
		Heartbeat: provider.Heartbeat{Interval: 250 * time.Millisecond},
		OnMessage: func(c *provider.Connection, m provider.Message) {
			if m.Text() == "slow" {
				time.Sleep(2 * time.Second)
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
	fmt.Printf("PORT %d\n", p.Port())
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	st := p.Stats()
	fmt.Printf("STATS heartbeat_kills=%d closed=%d messages=%d\n", st.HeartbeatKills, st.Closed, st.MessagesIn)
}

// Slow handlers in a Provider process kill no healthy peer, as seen from
// the Consumers in another process: 200 Consumers each send a message whose
// handler blocks for 2 s (8 heartbeat intervals) and keep sending, while an
// idle Consumer only answers heartbeats; none is disconnected, and the
// Provider counts no heartbeat kill.
func TestFaultSlowHandlers(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestSlowServer$")
	cmd.Env = append(os.Environ(), slowEnv+"=1")
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
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	out := bufio.NewReader(stdout)
	var port int
	for port == 0 {
		line, err := out.ReadString('\n')
		if err != nil {
			t.Fatalf("child: %v", err)
		}
		fmt.Sscanf(line, "PORT %d", &port)
	}

	const n, ticks = 200, 25
	var disconnects atomic.Int32
	var reasons atomic.Value
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	all := make([]*consumer.Consumer, n+1)
	for i := range all {
		w, err := consumer.New(consumer.Options{
			Host: "127.0.0.1",
			Port: port,
			OnDisconnect: func(code frame.CloseCode, reason string) {
				disconnects.Add(1)
				reasons.Store(fmt.Sprintf("%v %s", code, reason))
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Destroy()
		if err := w.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		all[i] = w
	}
	idle, busy := all[0], all[1:]
	for _, w := range busy {
		if err := w.Send("slow"); err != nil {
			t.Fatal(err)
		}
	}
	for range ticks { // 2.5 s of traffic behind the blocked handlers
		time.Sleep(100 * time.Millisecond)
		for _, w := range busy {
			_ = w.Send("tick")
		}
	}
	time.Sleep(time.Second) // the handlers are done; a few more heartbeats
	if d := disconnects.Load(); d != 0 {
		t.Fatalf("%d disconnects, the last: %v", d, reasons.Load())
	}
	for i, w := range all {
		if !w.Connected() {
			t.Fatalf("consumer %d (idle: %v) not connected", i, w == idle)
		}
	}
	stdin.Close()
	for {
		line, err := out.ReadString('\n')
		if err != nil {
			t.Fatal("child ended without its counters")
		}
		if rest, ok := strings.CutPrefix(line, "STATS "); ok {
			t.Logf("Provider: %s", strings.TrimSpace(rest))
			if !strings.Contains(rest, "heartbeat_kills=0 ") || !strings.Contains(rest, fmt.Sprintf("messages=%d", n*(1+ticks))) {
				t.Fatalf("Provider counters: %s", rest)
			}
			return
		}
	}
}
