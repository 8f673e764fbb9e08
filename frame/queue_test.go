package frame

import (
	"bytes"
	"errors"
	"testing"
)

// drain writes everything queued into a buffer the way a writer would:
// Buffers, "write" up to max bytes, Advance by what was written.
func drain(q *Queue, max int) []byte {
	var out []byte
	var bufs [][]byte
	for i := 0; q.Len() > 0; i++ {
		if i > 1<<20 {
			panic("drain does not terminate")
		}
		bufs = q.Buffers(bufs[:0], 0)
		n := 0
		for _, b := range bufs {
			k := min(len(b), max-n)
			out = append(out, b[:k]...)
			n += k
		}
		q.Advance(n)
	}
	return out
}

func TestQueueLimit(t *testing.T) {
	var q Queue
	q.SetLimit(10)
	if q.Limit() != 10 {
		t.Fatal("Limit")
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(q.Append([]byte("abc"), []byte("def"), false)) // 6
	must(q.Append([]byte("ghij"), nil, false))          // 10: exactly at the limit
	if err := q.Append([]byte("k"), nil, false); !errors.Is(err, ErrBackpressure) {
		t.Fatalf("over the limit: %v", err)
	}
	if err := q.AppendShared([]byte("k"), false); !errors.Is(err, ErrBackpressure) {
		t.Fatalf("shared over the limit: %v", err)
	}
	if b, err := q.Reserve(1, false); !errors.Is(err, ErrBackpressure) || b != nil {
		t.Fatalf("reserve over the limit: %v", err)
	}
	if q.Len() != 10 {
		t.Fatalf("a refused append changed Len to %d", q.Len())
	}
	// Force admits control frames regardless.
	must(q.AppendShared(PongFrame(), true))
	must(q.Append(CloseFrame(CloseGoingAway), nil, true))
	if got := drain(&q, 1<<20); string(got) != "abcdefghij\x8a\x00\x88\x02\x03\xe9" {
		t.Fatalf("drained % x", got)
	}
	// Removing the limit.
	q.SetLimit(0)
	must(q.Append(make([]byte, 1<<20), nil, false))
	must(q.Append(make([]byte, 1<<20), nil, false))
	q.Reset()
	q.SetLimit(-5)
	if q.Limit() != 0 {
		t.Fatal("negative limit")
	}
}

func TestQueueEmptyAdmitsOversized(t *testing.T) {
	var q Queue
	q.SetLimit(100)
	big := bytes.Repeat([]byte{7}, 1000)
	if err := q.Append(big, nil, false); err != nil {
		t.Fatalf("an empty queue refused a message over the limit: %v", err)
	}
	if err := q.Append([]byte{1}, nil, false); !errors.Is(err, ErrBackpressure) {
		t.Fatalf("a non-empty queue over its limit admitted more: %v", err)
	}
	q.Advance(999)
	if err := q.Append(make([]byte, 99), nil, false); err != nil {
		t.Fatalf("1 byte left + 99 is within the limit: %v", err)
	}
	if err := q.Append([]byte{1}, nil, false); !errors.Is(err, ErrBackpressure) {
		t.Fatal("101 bytes admitted over a limit of 100")
	}
	q.Reset()
	if err := q.AppendShared(big, false); err != nil {
		t.Fatalf("empty queue refused a shared message over the limit: %v", err)
	}
}

func TestQueueCoalesces(t *testing.T) {
	var q Queue
	var want []byte
	for i := range 100 {
		f := AppendFrame(nil, true, OpText, false, []byte{byte('a' + i%26)})
		if err := q.Append(f[:2], f[2:], false); err != nil {
			t.Fatal(err)
		}
		want = append(want, f...)
	}
	if q.Segments() != 1 {
		t.Fatalf("100 small frames took %d segments, want 1 chunk", q.Segments())
	}
	bufs := q.Buffers(nil, 0)
	if len(bufs) != 1 || !bytes.Equal(bufs[0], want) {
		t.Fatal("Buffers does not hold the frames in order")
	}
	// A frame that does not fit the chunk's remainder opens a new one.
	if err := q.Append(make([]byte, 4000), nil, false); err != nil {
		t.Fatal(err)
	}
	if q.Segments() != 2 {
		t.Fatalf("segments = %d", q.Segments())
	}
	// Reserve writes in place and coalesces too.
	b, err := q.Reserve(3, false)
	if err != nil || len(b) != 3 {
		t.Fatal(err)
	}
	copy(b, "xyz")
	if q.Segments() != 2 || q.Len() != len(want)+4000+3 {
		t.Fatalf("after Reserve: %d segments, %d bytes", q.Segments(), q.Len())
	}
	if b, err := q.Reserve(0, false); b != nil || err != nil {
		t.Fatal("Reserve(0)")
	}
	got := drain(&q, 1<<20)
	if !bytes.Equal(got[:len(want)], want) || string(got[len(got)-3:]) != "xyz" {
		t.Fatal("drained bytes differ")
	}
}

func TestQueueLargeFrames(t *testing.T) {
	var q Queue
	var want []byte
	for _, n := range []int{5000, 40 << 10, 300 << 10, 2<<20 + 1, 10} { // every chunk class and beyond
		p := seq(n)
		if err := q.Append(p[:1], p[1:], false); err != nil {
			t.Fatal(err)
		}
		want = append(want, p...)
	}
	if got := drain(&q, 256<<10); !bytes.Equal(got, want) {
		t.Fatal("drained bytes differ")
	}
}

func TestQueueShared(t *testing.T) {
	f := NewFrame(OpText, []byte("broadcast"), false)
	queues := make([]Queue, 3)
	for i := range queues {
		q := &queues[i]
		q.Append([]byte("own"), nil, false)
		if err := q.AppendShared(f.Bytes(), false); err != nil {
			t.Fatal(err)
		}
		q.Append([]byte("after"), nil, false)
		if q.Segments() != 3 {
			t.Fatalf("segments = %d, want owned, shared, owned", q.Segments())
		}
		bufs := q.Buffers(nil, 0)
		if &bufs[1][0] != &f.Bytes()[0] {
			t.Fatal("shared bytes were copied")
		}
		if q.AppendShared(nil, false) != nil || q.Segments() != 3 {
			t.Fatal("empty shared append queued a segment")
		}
	}
	for i := range queues {
		if got := drain(&queues[i], 5); string(got) != "own"+string(f.Bytes())+"after" {
			t.Fatalf("queue %d drained %q", i, got)
		}
	}
	if string(f.Bytes()[2:]) != "broadcast" {
		t.Fatal("draining modified the shared frame")
	}
}

func TestQueuePartialAdvance(t *testing.T) {
	var q Queue
	q.Append([]byte("hello"), nil, false)
	q.AppendShared([]byte("world"), false)
	q.Advance(3)
	if bufs := q.Buffers(nil, 0); len(bufs) != 2 || string(bufs[0]) != "lo" || string(bufs[1]) != "world" || q.Len() != 7 {
		t.Fatalf("after Advance(3): %q, len %d", bufs, q.Len())
	}
	// Appending after a partial write goes on after the unwritten bytes.
	q.Append([]byte("!"), nil, false)
	q.Advance(4) // "lo" and "wo"
	if bufs := q.Buffers(nil, 0); len(bufs) != 2 || string(bufs[0]) != "rld" || string(bufs[1]) != "!" {
		t.Fatalf("after Advance(4): %q", bufs)
	}
	// max limits how many segments one write gets.
	if bufs := q.Buffers(nil, 1); len(bufs) != 1 || string(bufs[0]) != "rld" {
		t.Fatalf("Buffers(max 1) = %q", bufs)
	}
	q.Advance(0)
	if q.Len() != 4 {
		t.Fatal("Advance(0)")
	}
	q.Advance(4)
	if q.Len() != 0 || q.Segments() != 0 {
		t.Fatal("not empty")
	}
	for _, n := range []int{-1, 1} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Advance(%d) on an empty queue did not panic", n)
				}
			}()
			q.Advance(n)
		}()
	}
}

func TestQueueBuffersStayValid(t *testing.T) {
	// Slices from Buffers are not disturbed by appends before Advance.
	var q Queue
	q.Append([]byte("first"), nil, false)
	bufs := q.Buffers(nil, 0)
	for range 50 {
		q.Append([]byte("more bytes"), nil, false)
	}
	if string(bufs[0]) != "first" {
		t.Fatalf("buffer changed to %q", bufs[0])
	}
	q.Advance(5)
	if q.Len() != 500 {
		t.Fatal(q.Len())
	}
}

func TestQueueManySegments(t *testing.T) {
	// More pending segments than the pooled list holds, then drained in
	// small writes while more arrive.
	var q Queue
	var want, got []byte
	shared := [][]byte{[]byte("A"), []byte("BB"), []byte("CCC")}
	for i := range 200 {
		q.AppendShared(shared[i%3], false)
		want = append(want, shared[i%3]...)
		if i%2 == 0 {
			q.Append([]byte{byte(i)}, nil, false)
			want = append(want, byte(i))
		}
		if i%7 == 0 {
			got = append(got, drain1(&q, 3)...)
		}
	}
	got = append(got, drain(&q, 3)...)
	if !bytes.Equal(got, want) {
		t.Fatal("bytes differ")
	}
	if q.blk != nil {
		t.Fatal("an empty queue kept its segment list")
	}
}

// drain1 does one write of up to max bytes.
func drain1(q *Queue, max int) []byte {
	var out []byte
	for _, b := range q.Buffers(nil, 0) {
		k := min(len(b), max-len(out))
		out = append(out, b[:k]...)
	}
	q.Advance(len(out))
	return out
}

func TestQueueReset(t *testing.T) {
	var q Queue
	q.SetLimit(100)
	q.Append([]byte("abc"), nil, false)
	q.AppendShared([]byte("def"), false)
	q.Reset()
	if q.Len() != 0 || q.Segments() != 0 || q.Limit() != 100 {
		t.Fatalf("after Reset: len %d, segments %d, limit %d", q.Len(), q.Segments(), q.Limit())
	}
	if len(q.Buffers(nil, 0)) != 0 {
		t.Fatal("Buffers after Reset")
	}
	q.Append([]byte("x"), nil, false)
	if got := drain(&q, 10); string(got) != "x" {
		t.Fatalf("after Reset drained %q", got)
	}
}

func TestQueueIdleHoldsNothing(t *testing.T) {
	var q Queue
	for round := range 3 {
		q.Append(make([]byte, 100), nil, false)
		q.AppendShared(PingFrame(), false)
		for i := range 40 { // more segments than the pooled list holds
			q.AppendShared(PongFrame(), false)
			q.Append([]byte{byte(i)}, nil, false)
		}
		drain(&q, 7)
		if q.blk != nil || q.n != 0 {
			t.Fatalf("round %d: idle queue holds a segment list (%v) or bytes (%d)", round, q.blk != nil, q.n)
		}
	}
	// Also after a Reset with bytes pending.
	q.Append([]byte("x"), nil, false)
	q.Reset()
	if q.blk != nil {
		t.Fatal("Reset kept the segment list")
	}
}

func TestQueueDeepBacklog(t *testing.T) {
	// Pending segments through every pooled list class and past the largest,
	// with partial writes from the head while the tail keeps growing.
	var q Queue
	var want, got []byte
	frames := [][]byte{[]byte("x"), []byte("yy"), []byte("zzz")}
	for i := range 3000 {
		q.AppendShared(frames[i%3], false)
		want = append(want, frames[i%3]...)
		if i%500 == 499 {
			got = append(got, drain1(&q, 300)...)
		}
	}
	if q.Segments() < 1024 {
		t.Fatalf("only %d segments pending", q.Segments())
	}
	if bufs := q.Buffers(nil, 1024); len(bufs) != 1024 {
		t.Fatalf("Buffers(max 1024) gave %d", len(bufs))
	}
	got = append(got, drain(&q, 1000)...)
	if !bytes.Equal(got, want) {
		t.Fatal("bytes differ")
	}
	if q.blk != nil {
		t.Fatal("an empty queue kept its segment list")
	}
}
