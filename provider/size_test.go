package provider

import (
	"testing"
	"unsafe"
)

// An idle connection's Connection, its poller.Conn inside, fits the
// 256-byte size class on 64-bit platforms: one allocation per connection
// (BenchmarkIdleMemory measures the whole).
func TestConnectionSize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("sizes are for 64-bit platforms")
	}
	if n := unsafe.Sizeof(Connection{}); n > 256 {
		t.Errorf("Connection is %d bytes, more than 256", n)
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
