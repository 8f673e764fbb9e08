package provider

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/frame"
	"github.com/networkcluster/networkcluster/internal/wstest"
)

// The handler pool wakes one searching worker for a burst of scheduled
// connections, and each worker that takes a connection wakes the next
// searcher while more wait: so handlers that block, taken from one burst,
// hold up none of the connections queued behind them, as long as fewer
// than HandlerWorkers block. Here a burst of connections whose handlers all
// block, then other connections' echoes, must all be served; the blocked
// ones answer in order once released.
func TestBlockedHandlersInABurstHoldUpNoOther(t *testing.T) {
	before, _ := goroutines()
	const blockers = 6
	release := make(chan struct{})
	blocked := make(chan struct{}, blockers)
	o := Options{
		HandlerWorkers: blockers + 2,
		OnMessage: func(c *Connection, m Message) {
			if bytes.HasPrefix(m.Data, []byte("block")) {
				blocked <- struct{}{}
				<-release
			}
			_ = c.SendText(m.Data)
		},
	}
	p, e, addr := start(t, o)
	stuck := make([]*wstest.Client, blockers)
	for i := range stuck {
		stuck[i] = dial(t, addr, "/connect")
	}
	e.wait(t, "open", func(e *events) bool { return len(e.opened) == blockers })
	// Written back to back, so that the read side schedules them together.
	for i, c := range stuck {
		if err := c.WriteFrame(true, frame.OpText, fmt.Appendf(nil, "block %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for range blockers {
		select {
		case <-blocked:
		case <-time.After(20 * time.Second):
			t.Fatal("the blocking handlers did not all start: one waits behind another")
		}
	}
	echoClients(t, addr, 10, 20)
	close(release)
	for i, c := range stuck {
		c.Conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, got, err := c.ReadMessage()
		if want := fmt.Sprintf("block %d", i); err != nil || string(got) != want {
			t.Fatalf("after release: %q %v, want %q", got, err, want)
		}
		c.Close()
	}
	closeWithin(t, p.Close)
	checkNoLeak(t, before)
}

// A burst scheduled at once (the run queue filled before any worker ran,
// as by a poll loop that read many connections in one go) wakes a single
// searching worker; the connections behind a handler that blocks must
// still each get a worker. Driven on the pool itself, with OnOpen as the
// handler: all but the last block until released.
func TestHandlerPoolBurstBehindBlockedHandlers(t *testing.T) {
	const n = 8
	release := make(chan struct{})
	started := make(chan struct{}, n)
	var last *Connection
	p, err := New(Options{
		HandlerWorkers: n,
		OnOpen: func(c *Connection) {
			started <- struct{}{}
			if c != last {
				<-release
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	conns := make([]*Connection, n)
	p.hpMu.Lock()
	for i := range conns {
		c := &Connection{p: p, hf: hfOpen | hfScheduled}
		conns[i] = c
		last = c
		p.hp.runq.push(c)
	}
	p.wakeSearcherLocked()
	seen := 0
	for seen < n {
		select {
		case <-started:
			seen++
		case <-time.After(20 * time.Second):
			t.Fatalf("%d of %d handlers started: the rest wait behind blocked ones", seen, n)
		}
	}
	close(release)
	p.stopHandlers()
	p.wg.Wait()
}
