package poller

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDeliver drives the input path (carry-over of unconsumed bytes,
// input arriving during a dispatch, Wake, the pending limit) with a stream
// cut into arbitrary chunks. The handler consumes whole records (a length
// byte and that many bytes) and checks that every OnData sees exactly the
// unconsumed bytes of the stream, in order. It runs on one goroutine, so
// that coverage is deterministic: "input during a dispatch" is a chunk
// delivered from inside OnData, and a Wake's task is run inline.
func FuzzDeliver(f *testing.F) {
	f.Add([]byte{3, 'a', 'b', 'c', 0, 2, 'x', 'y'}, []byte{1, 2, 0x83, 0x41, 0x21, 1}, uint16(0))
	f.Add(bytes.Repeat([]byte{5, 1, 2, 3, 4, 5}, 40), []byte{7, 0x80, 13, 0x81, 0x62, 2}, uint16(10))
	f.Add([]byte{255}, []byte{0}, uint16(1))
	f.Fuzz(fuzzDeliverBody)
}

// Bits of a cut byte: the low 5 bits are the chunk length - 1.
const (
	cutWake   = 0x80 // after the chunk, run a Wake
	cutNested = 0x40 // deliver the chunk from inside the next OnData
	cutAgain  = 0x20 // the next OnData calls Wake (another round)
)

func fuzzDeliverBody(t *testing.T, stream, cuts []byte, limit uint16) {
	maxPending := int(limit)
	if maxPending == 0 {
		maxPending = 1 << 20
	}
	consumed, delivered := 0, 0
	var nested [][]byte
	wakeInside := false
	var bad error
	var c *Conn
	c = detachedConn(dataHandler(func(in []byte) int {
		if consumed+len(in) > delivered || !bytes.Equal(in, stream[consumed:consumed+len(in)]) {
			bad = errors.New("OnData input is not the unconsumed part of the stream")
		}
		n := records(in)
		consumed += n
		for len(nested) > 0 {
			chunk := nested[0]
			nested = nested[1:]
			delivered += len(chunk)
			c.deliver(chunk) // dispatching: parked for the next round
		}
		if wakeInside {
			wakeInside = false
			c.Wake() // dispatching: only asks for another round
		}
		return n
	}), maxPending)
	// deliverNested delivers the parked chunks from here (no dispatch runs);
	// the OnData each one causes may take the following ones, as above.
	deliverNested := func() {
		for len(nested) > 0 {
			n := nested[0]
			nested = nested[1:]
			delivered += len(n)
			c.deliver(n)
		}
	}
	for i, off := 0, 0; off < len(stream); i++ {
		var cut byte
		if len(cuts) > 0 {
			cut = cuts[i%len(cuts)]
		}
		k := min(int(cut&0x1f)+1, len(stream)-off)
		chunk := stream[off : off+k]
		off += k
		if cut&cutAgain != 0 {
			wakeInside = true
		}
		if cut&cutNested != 0 {
			nested = append(nested, chunk)
		} else {
			deliverNested() // keep the stream in order
			delivered += k
			c.deliver(chunk)
		}
		if cut&cutWake != 0 {
			c.mu.Lock()
			run := !c.has(fClosed) && !c.has(fDispatching)
			c.put(fDispatching, c.has(fDispatching) || run)
			c.mu.Unlock()
			if run {
				c.wakeTask() // what Wake schedules, inline
			}
		}
	}
	deliverNested()
	if bad != nil {
		t.Fatal(bad)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.has(fDispatching) {
		t.Fatal("still dispatching")
	}
	if c.has(fClosed) {
		if !errors.Is(c.cause(), ErrPendingLimit) {
			t.Fatalf("closed with %v", c.cause())
		}
		return
	}
	if consumed != records(stream) {
		t.Fatalf("consumed %d, want %d", consumed, records(stream))
	}
	if consumed+c.in.used() != len(stream) || c.inq.used() != 0 {
		t.Fatalf("consumed %d + pending %d (+ parked %d) != %d", consumed, c.in.used(), c.inq.used(), len(stream))
	}
	if n := c.in.used(); n > 0 && !bytes.Equal(c.in.bytes(), stream[consumed:consumed+n]) {
		t.Fatal("pending bytes differ from the stream")
	}
	if c.in.used() == 0 && c.in != nil {
		t.Fatal("an empty pending buffer is held")
	}
}
