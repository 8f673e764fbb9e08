package provider

import (
	"testing"
	"unsafe"
)

// An idle connection's Connection, its poller.Conn inside, fits the
// 240-byte size class on 64-bit platforms: one allocation per connection
// (BenchmarkIdleMemory measures the whole).
func TestConnectionSize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("sizes are for 64-bit platforms")
	}
	if n := unsafe.Sizeof(Connection{}); n > 240 {
		t.Errorf("Connection is %d bytes, more than 240", n)
	}
	if off := unsafe.Offsetof(Connection{}.pc); off != 0 {
		t.Logf("pc at offset %d", off) // connOf works at any offset
	}
}

// The queued messages form a circular list: appended in order, taken
// whole, in order, by runHandlers.
func TestHandlerQueueOrder(t *testing.T) {
	var c Connection
	bufs := []*msgBuf{{}, {}, {}}
	for _, b := range bufs {
		c.appendSegLocked(b)
	}
	if c.hTail != bufs[2] || c.hTail.next != bufs[0] {
		t.Fatal("the tail does not lead to the first")
	}
	var got []*msgBuf
	t0 := c.hTail
	segs := t0.next
	t0.next = nil
	for s := segs; s != nil; s = s.next {
		got = append(got, s)
	}
	if len(got) != 3 || got[0] != bufs[0] || got[1] != bufs[1] || got[2] != bufs[2] {
		t.Fatalf("order %v, want %v", got, bufs)
	}
}

// The run queue hands connections out first in, first out, across the
// ring's wrap-around and its growth, and forgets the ones it handed out.
func TestRunQueue(t *testing.T) {
	var q runQueue
	conns := make([]*Connection, 100)
	for i := range conns {
		conns[i] = new(Connection)
	}
	next, want := 0, 0
	for round := range 40 { // pushes outpace pops: the ring wraps, then grows
		for range round % 5 {
			q.push(conns[next%len(conns)])
			next++
		}
		for range round % 3 {
			c := q.pop()
			if c == nil {
				break
			}
			if c != conns[want%len(conns)] {
				t.Fatalf("round %d: popped connection out of order (want #%d)", round, want)
			}
			want++
		}
	}
	for c := q.pop(); c != nil; c = q.pop() {
		if c != conns[want%len(conns)] {
			t.Fatalf("draining: popped connection out of order (want #%d)", want)
		}
		want++
	}
	if want != next || q.n != 0 {
		t.Fatalf("pushed %d, popped %d, %d left", next, want, q.n)
	}
	for i, c := range q.ring {
		if c != nil {
			t.Fatalf("ring slot %d still holds a connection", i)
		}
	}
}
