//go:build linux

package faulttest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/consumer"
	"github.com/networkcluster/networkcluster/frame"
	"github.com/networkcluster/networkcluster/provider"
)

// The child processes are this test binary, run with roleEnv set.
const (
	roleEnv = "FAULTTEST_ROLE" // "provider" or "consumers"
	addrEnv = "FAULTTEST_ADDR" // the Provider's listen address, or the Consumers' target port
	nEnv    = "FAULTTEST_N"    // how many Consumers
	jobEnv  = "FAULTTEST_JOB"  // how long each Consumer's OnMessage works (a duration), then answers
)

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "provider":
		runProvider(os.Getenv(addrEnv))
		return
	case "consumers":
		n, _ := strconv.Atoi(os.Getenv(nEnv))
		job, _ := time.ParseDuration(os.Getenv(jobEnv))
		runConsumers(os.Getenv(addrEnv), n, job)
		return
	}
	os.Exit(m.Run())
}

// out serialises the children's report lines on stdout.
var out sync.Mutex

func say(format string, a ...any) {
	out.Lock()
	fmt.Printf(format+"\n", a...)
	out.Unlock()
}

// runProvider is the Provider process: default options on addr. It prints
// "PORT p" once listening, then "CONNS n" after each open and close.
func runProvider(addr string) {
	var conns atomic.Int64
	p, err := provider.New(provider.Options{
		Addr:    addr,
		OnOpen:  func(*provider.Connection) { say("CONNS %d", conns.Add(1)) },
		OnClose: func(*provider.Connection, provider.CloseCode, string) { say("CONNS %d", conns.Add(-1)) },
	})
	if err == nil {
		err = p.Start()
	}
	if err != nil {
		say("ERROR %v", err)
		os.Exit(1)
	}
	say("PORT %d", p.Port())
	select {} // until killed
}

// runConsumers is the fleet process: n Consumers of 127.0.0.1:port with
// default options. It prints "OPEN n" (Consumers connected) after each open
// and disconnect, and "GAVEUP reason" when one stops for good. With job > 0
// each Consumer's OnMessage works for job, then answers "done <message>".
func runConsumers(port string, n int, job time.Duration) {
	p, _ := strconv.Atoi(port)
	var open atomic.Int64
	for i := 0; i < n; i++ {
		var c *consumer.Consumer
		o := consumer.Options{
			Host:         "127.0.0.1",
			Port:         p,
			OnOpen:       func() { say("OPEN %d", open.Add(1)) },
			OnDisconnect: func(frame.CloseCode, string) { say("OPEN %d", open.Add(-1)) },
			OnClose:      func(_ frame.CloseCode, reason string) { say("GAVEUP %s", reason) },
		}
		if job > 0 {
			o.OnMessage = func(m consumer.Message) {
				time.Sleep(job)
				if err := c.Send("done " + m.Text()); err != nil {
					say("SENDERROR %v", err)
				}
			}
		}
		var err error
		if c, err = consumer.New(o); err != nil {
			say("ERROR %v", err)
			os.Exit(1)
		}
		go func() { _ = c.Connect(context.Background()) }()
	}
	say("STARTED %d", n)
	select {} // until killed
}

// child is a running child process and the lines it printed.
type child struct {
	t     *testing.T
	cmd   *exec.Cmd
	lines chan string
	done  chan struct{} // closed when the process has exited
	// backlog holds lines read while another child's await watched this
	// one; this child's next await looks at them first.
	backlog []string
}

// spawn starts this test binary as a child with role and env. The child is
// killed when the test ends (and when this process dies).
func spawn(t *testing.T, role string, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append(env, roleEnv+"="+role)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := &child{t: t, cmd: cmd, lines: make(chan string, 4096), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case ch.lines <- sc.Text():
			default: // nobody reads this far behind; keep the child unblocked
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
		close(ch.done)
	}()
	t.Cleanup(ch.kill)
	return ch
}

// kill ends the child with SIGKILL (resuming it first, should it be
// stopped) and waits for it.
func (ch *child) kill() {
	_ = ch.cmd.Process.Signal(syscall.SIGCONT)
	_ = ch.cmd.Process.Kill()
	<-ch.done
}

// await reads the child's lines until match accepts one, for at most d;
// a line "GAVEUP ..." or "ERROR ..." fails the test at once, from this
// child or from any of watch (whose other lines are dropped).
func (ch *child) await(d time.Duration, what string, match func(line string) bool, watch ...*child) string {
	ch.t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	var other <-chan string
	if len(watch) > 0 {
		other = watch[0].lines
	}
	bad := func(line string) bool {
		return strings.HasPrefix(line, "GAVEUP") || strings.HasPrefix(line, "ERROR") || strings.HasPrefix(line, "SENDERROR")
	}
	for len(ch.backlog) > 0 {
		line := ch.backlog[0]
		ch.backlog = ch.backlog[1:]
		if match(line) {
			return line
		}
	}
	for {
		select {
		case line := <-ch.lines:
			if bad(line) {
				ch.t.Fatalf("waiting for %s: the child reported %q", what, line)
			}
			if match(line) {
				return line
			}
		case line := <-other:
			if bad(line) {
				ch.t.Fatalf("waiting for %s: the other child reported %q", what, line)
			}
			watch[0].backlog = append(watch[0].backlog, line)
		case <-ch.done:
			ch.t.Fatalf("waiting for %s: the child exited", what)
		case <-timer.C:
			ch.t.Fatalf("timed out after %v waiting for %s", d, what)
		}
	}
}

// count matches a line "KEY n" with n == want.
func count(key string, want int) func(string) bool {
	return func(line string) bool { return line == key+" "+strconv.Itoa(want) }
}

// TestStoppedConsumerIsRemoved: a Consumer process frozen with SIGSTOP
// stops answering pings; the Provider removes its connection after about
// interval × (strikes + 1), counted as a heartbeat kill. Resumed, the
// Consumer notices the loss and reconnects on its own.
func TestStoppedConsumerIsRemoved(t *testing.T) {
	const interval, strikes = 200 * time.Millisecond, 2
	type closeEv struct {
		code provider.CloseCode
		at   time.Time
	}
	closed := make(chan closeEv, 4)
	opened := make(chan struct{}, 4)
	p, err := provider.New(provider.Options{
		Addr:      "127.0.0.1:0",
		Heartbeat: provider.Heartbeat{Interval: interval, MaxStrikes: strikes},
		OnOpen:    func(*provider.Connection) { opened <- struct{}{} },
		OnClose: func(_ *provider.Connection, code provider.CloseCode, _ string) {
			closed <- closeEv{code, time.Now()}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	ch := spawn(t, "consumers", addrEnv+"="+strconv.Itoa(p.Port()), nEnv+"=1")
	ch.await(30*time.Second, "the Consumer to connect", count("OPEN", 1))
	<-opened
	// A few heartbeats answered first: the connection is healthy.
	time.Sleep(3 * interval)
	if p.Len() != 1 || p.Stats().HeartbeatKills != 0 {
		t.Fatalf("before the stop: %d connections, %d heartbeat kills", p.Len(), p.Stats().HeartbeatKills)
	}

	stopped := time.Now()
	if err := ch.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	var ev closeEv
	select {
	case ev = <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("the stopped Consumer was not removed within 30 s")
	}
	took := ev.at.Sub(stopped)
	expect := interval * (strikes + 1)
	t.Logf("the stopped Consumer was removed after %v (interval × (strikes + 1) = %v), close code %v", took, expect, ev.code)
	if ev.code != frame.CloseAbnormal || p.Stats().HeartbeatKills != 1 {
		t.Fatalf("close code %v, %d heartbeat kills; want 1006 and 1", ev.code, p.Stats().HeartbeatKills)
	}
	// Never before the strikes are used up; the upper bound is generous
	// for a loaded machine (one more tick is the algorithm's own slack).
	if took < interval*strikes || took > 10*expect {
		t.Fatalf("removed after %v, want about %v", took, expect)
	}

	// Resumed, the Consumer finds its connection gone and reconnects.
	if err := ch.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	ch.await(30*time.Second, "the Consumer to see the loss", count("OPEN", 0))
	ch.await(30*time.Second, "the Consumer to reconnect", count("OPEN", 1))
	select {
	case <-opened:
	case <-time.After(30 * time.Second):
		t.Fatal("the Provider saw no reconnect")
	}
}

// TestFleetSurvivesProviderRestart: 50 Consumers with default options (in
// one process) lose their Provider to SIGKILL; a new Provider process on
// the same port 15 s later gets all 50 back, none having given up.
func TestFleetSurvivesProviderRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("takes some 30 s")
	}
	const fleet = 50
	const away = 15 * time.Second
	prov := spawn(t, "provider", addrEnv+"=127.0.0.1:0")
	line := prov.await(30*time.Second, "the Provider's port", func(l string) bool { return strings.HasPrefix(l, "PORT ") })
	port := strings.TrimPrefix(line, "PORT ")

	fl := spawn(t, "consumers", addrEnv+"="+port, nEnv+"="+strconv.Itoa(fleet))
	prov.await(60*time.Second, "the fleet to connect", count("CONNS", fleet))
	fl.await(30*time.Second, "the fleet to report open", count("OPEN", fleet))

	killed := time.Now()
	prov.kill() // SIGKILL: no close frames, the kernel ends the connections
	fl.await(30*time.Second, "the fleet to see the loss", count("OPEN", 0))
	t.Logf("all %d Consumers saw the loss after %v", fleet, time.Since(killed))

	// Meanwhile none of the fleet may give up.
	wait := time.NewTimer(away - time.Since(killed))
	defer wait.Stop()
	for waiting := true; waiting; {
		select {
		case line := <-fl.lines:
			if strings.HasPrefix(line, "GAVEUP") {
				t.Fatalf("a Consumer gave up %v after the Provider went away: %q", time.Since(killed), line)
			}
		case <-wait.C:
			waiting = false
		}
	}
	prov2 := spawn(t, "provider", addrEnv+"=127.0.0.1:"+port)
	restarted := time.Now()
	prov2.await(10*time.Second, "the new Provider to listen", func(l string) bool { return l == "PORT "+port })
	prov2.await(60*time.Second, "the fleet to come back", count("CONNS", fleet), fl)
	t.Logf("the Provider was away %v; all %d Consumers were back %v after its restart",
		restarted.Sub(killed).Round(time.Millisecond), fleet, time.Since(restarted).Round(time.Millisecond))
	// The fleet process holds them all.
	fl.await(30*time.Second, "the fleet to report open", count("OPEN", fleet))
}

// TestSlowWorkersStayConnected: 20 Consumers in another process each spend
// 1.5 s in OnMessage on a job, under a 200 ms heartbeat (a connection that
// does not answer is removed after about 600 ms). All stay connected and
// all answer.
func TestSlowWorkersStayConnected(t *testing.T) {
	const workers = 20
	var opens, closes atomic.Int64
	results := make(chan string, workers)
	p, err := provider.New(provider.Options{
		Addr:      "127.0.0.1:0",
		Heartbeat: provider.Heartbeat{Interval: 200 * time.Millisecond},
		OnOpen:    func(*provider.Connection) { opens.Add(1) },
		OnMessage: func(_ *provider.Connection, m provider.Message) { results <- m.Text() },
		OnClose:   func(*provider.Connection, provider.CloseCode, string) { closes.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ch := spawn(t, "consumers", addrEnv+"="+strconv.Itoa(p.Port()), nEnv+"="+strconv.Itoa(workers), jobEnv+"=1.5s")
	ch.await(30*time.Second, "the workers to connect", count("OPEN", workers))
	start := time.Now()
	for i, c := range p.Connections() {
		if err := c.Send("job " + strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < workers; i++ {
		select {
		case r := <-results:
			if !strings.HasPrefix(r, "done job ") {
				t.Fatalf("result %q", r)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%d of %d results after 30 s; %d connections closed, %d heartbeat kills",
				i, workers, closes.Load(), p.Stats().HeartbeatKills)
		}
	}
	t.Logf("%d workers with 1.5 s jobs under a 200 ms heartbeat: all answered after %v; %d heartbeat kills",
		workers, time.Since(start).Round(time.Millisecond), p.Stats().HeartbeatKills)
	if closes.Load() != 0 || opens.Load() != workers || p.Stats().HeartbeatKills != 0 {
		t.Fatalf("%d opens, %d closes, %d heartbeat kills: a slow worker lost its connection",
			opens.Load(), closes.Load(), p.Stats().HeartbeatKills)
	}
}
