package frame

import "sync"

// Queue is a FIFO of outbound bytes with a byte count and a limit (the
// connection's max backpressure). It holds two kinds of segment:
//
//   - owned bytes, copied into pooled chunks by [Queue.Append] and
//     [Queue.Reserve]; consecutive small frames share a chunk, so that many
//     frames drain in one write;
//   - shared bytes, referenced without a copy by [Queue.AppendShared]: the
//     encode-once frames of a broadcast, queued on many connections at once.
//
// A writer drains it in batches: [Queue.Buffers] lists the pending segments
// for one vectored write, [Queue.Advance] drops what was written and recycles
// emptied chunks. An empty queue holds no chunk, so an idle connection costs
// only the Queue struct itself.
//
// A Queue is not safe for concurrent use; its owner serialises access (the
// poller holds a per-connection lock). The zero value is an empty queue with
// no limit.
type Queue struct {
	blk   *segBlock // the pending segments; nil while the queue is empty
	n     int       // pending bytes
	limit int       // 0 means no limit
}

type segment struct {
	b []byte // the unsent bytes; for owned segments, cap reaches the chunk's end
	c *chunk // the chunk b lives in, or nil for shared bytes
}

// chunk is a pooled buffer for owned bytes.
type chunk struct {
	buf   []byte
	class int8 // index into chunkPools, or -1 when not pooled
}

// Chunk size classes: small frames coalesce in the smallest; a larger frame
// takes the smallest class that holds it; beyond the largest, a chunk is
// allocated for it alone and left to the garbage collector.
var chunkSizes = [...]int{4 << 10, 32 << 10, 256 << 10, 2 << 20}

var chunkPools [len(chunkSizes)]sync.Pool

func getChunk(size int) *chunk {
	for i, s := range chunkSizes {
		if size <= s {
			if c, ok := chunkPools[i].Get().(*chunk); ok {
				return c
			}
			return &chunk{buf: make([]byte, s), class: int8(i)}
		}
	}
	return &chunk{buf: make([]byte, size), class: -1}
}

func putChunk(c *chunk) {
	if c.class >= 0 {
		chunkPools[c.class].Put(c)
	}
}

// segBlock is a pooled segment list with its pending range. A queue takes
// one from the pool when it gets its first segment, moves to a larger class
// when the pending segments outgrow it, and gives it back when it empties,
// so an idle queue holds no segment list either (and its struct is small).
// Past the largest class the list grows privately (class -1) and is
// released when the queue empties.
type segBlock struct {
	s          []segment // len(s) is the capacity; all zero while pooled
	head, tail int       // the pending segments are s[head:tail]
	class      int8
}

var segSizes = [...]int{16, 128, 1024}

var segPools [len(segSizes)]sync.Pool

// getSegBlock returns a list of at least n segments: pooled, or private
// past the largest class.
func getSegBlock(n int) *segBlock {
	for i, s := range segSizes {
		if n <= s {
			if b, ok := segPools[i].Get().(*segBlock); ok {
				return b
			}
			return &segBlock{s: make([]segment, s), class: int8(i)}
		}
	}
	return &segBlock{s: make([]segment, n), class: -1}
}

func putSegBlock(b *segBlock) {
	clear(b.s[b.head:b.tail])
	b.head, b.tail = 0, 0
	if b.class >= 0 {
		segPools[b.class].Put(b)
	}
}

// SetLimit sets the queue's limit in bytes; 0 removes it. Append,
// AppendShared and Reserve refuse bytes that would take a non-empty queue
// over the limit; an empty queue admits anything, so that a single message
// larger than the limit can still be sent.
func (q *Queue) SetLimit(n int) {
	if n < 0 {
		n = 0
	}
	q.limit = n
}

// Limit returns the limit set by [Queue.SetLimit].
func (q *Queue) Limit() int { return q.limit }

// Len returns the number of bytes queued and not yet written.
func (q *Queue) Len() int { return q.n }

// Segments returns the number of pending segments.
func (q *Queue) Segments() int {
	if q.blk == nil {
		return 0
	}
	return q.blk.tail - q.blk.head
}

// admit reports whether size more bytes fit. A queue that is empty always
// admits, so that a single message larger than the limit can still be sent;
// force admits regardless (for control frames, which are small and must get
// out: a pong, a close).
func (q *Queue) admit(size int, force bool) bool {
	return force || q.limit == 0 || q.n == 0 || q.n+size <= q.limit
}

// Reserve queues size owned bytes and returns them for the caller to fill:
// for example a frame header and payload encoded in place. The slice is
// valid, and must be filled, before the next call to any Queue method.
// It returns [ErrBackpressure] (and queues nothing) when the bytes do not fit
// the limit, unless force is set.
func (q *Queue) Reserve(size int, force bool) ([]byte, error) {
	if size <= 0 {
		return nil, nil
	}
	if !q.admit(size, force) {
		return nil, ErrBackpressure
	}
	q.n += size
	if b := q.blk; b != nil && b.tail > b.head {
		s := &b.s[b.tail-1]
		if s.c != nil && cap(s.b)-len(s.b) >= size {
			l := len(s.b)
			s.b = s.b[:l+size]
			return s.b[l:], nil
		}
	}
	c := getChunk(size)
	b := c.buf[:size]
	q.push(segment{b: b, c: c})
	return b, nil
}

// Append copies the concatenation of a and b (either may be empty: a frame
// header and its payload, say) into the queue. It returns [ErrBackpressure]
// (and queues nothing) when they do not fit the limit, unless force is set.
// Neither slice is retained.
func (q *Queue) Append(a, b []byte, force bool) error {
	dst, err := q.Reserve(len(a)+len(b), force)
	if err != nil {
		return err
	}
	copy(dst[copy(dst, a):], b)
	return nil
}

// AppendShared queues b without copying it. b is retained until it has been
// written, and must not be modified while queued: use it for frames built
// once and queued on many connections. It returns [ErrBackpressure] (and
// queues nothing) when b does not fit the limit, unless force is set.
func (q *Queue) AppendShared(b []byte, force bool) error {
	if len(b) == 0 {
		return nil
	}
	if !q.admit(len(b), force) {
		return ErrBackpressure
	}
	q.n += len(b)
	q.push(segment{b: b})
	return nil
}

func (q *Queue) push(s segment) {
	b := q.blk
	if b == nil {
		b = getSegBlock(1)
		q.blk = b
	}
	if b.tail == len(b.s) && b.head > 0 {
		// Slide the pending segments to the front before growing.
		n := copy(b.s, b.s[b.head:b.tail])
		clear(b.s[n:b.tail])
		b.head, b.tail = 0, n
	}
	if n := b.tail; n == len(b.s) {
		// Move to a larger list (pooled, or past the largest class a
		// private one of twice the size); the old list goes back.
		size := n + 1
		if n >= segSizes[len(segSizes)-1] {
			size = 2 * n
		}
		nb := getSegBlock(size)
		nb.tail = copy(nb.s, b.s[:n])
		putSegBlock(b)
		q.blk, b = nb, nb
	}
	b.s[b.tail] = s
	b.tail++
}

// Buffers appends the pending segments, in order, to dst and returns it, at
// most max of them when max > 0 (a vectored write takes at most IOV_MAX).
// The slices stay valid until the next call to [Queue.Advance] or
// [Queue.Reset]; appending to the queue meanwhile does not disturb them.
func (q *Queue) Buffers(dst [][]byte, max int) [][]byte {
	if q.blk == nil {
		return dst
	}
	segs := q.blk.s[q.blk.head:q.blk.tail]
	if max > 0 && len(segs) > max {
		segs = segs[:max]
	}
	for i := range segs {
		dst = append(dst, segs[i].b)
	}
	return dst
}

// Advance drops the first n written bytes and recycles the chunks they
// emptied. n must be between 0 and [Queue.Len]; anything else is a bug in
// the caller's write loop and panics rather than corrupt the byte count.
func (q *Queue) Advance(n int) {
	if n < 0 || n > q.n {
		panic("frame: Queue.Advance outside the queued bytes")
	}
	q.n -= n
	for n > 0 {
		s := &q.blk.s[q.blk.head]
		if n < len(s.b) {
			s.b = s.b[n:]
			return
		}
		n -= len(s.b)
		q.drop()
	}
	// Segments are dropped as soon as they are fully written, so nothing is
	// pending here; Reset also shrinks a segment list grown by a burst.
	if q.n == 0 {
		q.Reset()
	}
}

// drop removes the head segment, recycling its chunk when no later segment
// uses it (only the tail segment's chunk can still grow).
func (q *Queue) drop() {
	b := q.blk
	s := b.s[b.head]
	b.s[b.head] = segment{}
	b.head++
	if s.c != nil {
		putChunk(s.c)
	}
	if b.head == b.tail {
		b.head, b.tail = 0, 0
	}
}

// Reset drops everything queued and recycles the chunks. Slices returned by
// [Queue.Buffers] must no longer be in use.
func (q *Queue) Reset() {
	if b := q.blk; b != nil {
		for i := b.head; i < b.tail; i++ {
			if c := b.s[i].c; c != nil {
				putChunk(c)
			}
		}
		putSegBlock(b)
		q.blk = nil
	}
	q.n = 0
}
