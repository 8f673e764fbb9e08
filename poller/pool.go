package poller

import (
	"runtime"
	"sync"
)

// --- pending-input buffers ---

// buffer is a pooled byte slice; pools hold *buffer so that Get and Put
// allocate nothing once warm. len(b) == cap(b) always: the owner keeps
// the count of the bytes in use, in n (a Conn's carried-over input) or its
// own.
type buffer struct {
	b     []byte
	n     int  // bytes in use, for an owner that keeps the count here
	class int8 // index into bufPools, or -1 when not pooled
}

// used returns the bytes in use of a buffer that keeps its count (0 for
// none).
func (b *buffer) used() int {
	if b == nil {
		return 0
	}
	return b.n
}

// bytes returns the bytes in use of a buffer that keeps its count (nil for
// none).
func (b *buffer) bytes() []byte {
	if b == nil {
		return nil
	}
	return b.b[:b.n]
}

// Size classes (powers of two, 512 B to 8 MiB) for a connection's
// carried-over input and the Serve engine's read buffers: a partial frame
// header takes the smallest; a large message grows through them. Beyond
// the largest, a buffer of the exact size is allocated and left to the
// collector.
var bufSizes = func() (s [15]int) {
	for i := range s {
		s[i] = 512 << i
	}
	return s
}()

var bufPools [len(bufSizes)]sync.Pool

// getBuffer returns a buffer of at least n bytes, owned by the caller until
// putBuffer.
func getBuffer(n int) *buffer {
	for i, s := range bufSizes {
		if n <= s {
			if b, ok := bufPools[i].Get().(*buffer); ok {
				return b
			}
			return &buffer{b: make([]byte, s), class: int8(i)}
		}
	}
	return &buffer{b: make([]byte, n), class: -1}
}

func putBuffer(b *buffer) {
	if b != nil && b.class >= 0 {
		bufPools[b.class].Put(b)
	}
}

// --- the worker pool ---

// fifo is a first-in, first-out queue on a ring that grows as needed, so
// that pushing never blocks (the caller may be a poll loop). Its owner
// guards it.
type fifo[T any] struct {
	ring    []T
	head, n int
}

func (f *fifo[T]) push(v T) {
	if f.n == len(f.ring) {
		ring := make([]T, max(64, 2*len(f.ring)))
		for i := 0; i < f.n; i++ {
			ring[i] = f.ring[(f.head+i)%len(f.ring)]
		}
		f.ring, f.head = ring, 0
	}
	f.ring[(f.head+f.n)%len(f.ring)] = v
	f.n++
}

// pop removes the oldest element; ok is false when the queue is empty.
func (f *fifo[T]) pop() (v T, ok bool) {
	if f.n == 0 {
		return v, false
	}
	v = f.ring[f.head]
	var zero T
	f.ring[f.head] = zero // let the collector have it
	f.head = (f.head + 1) % len(f.ring)
	f.n--
	return v, true
}

// workerPool runs tasks on at most max goroutines, started on demand; each
// exits when the queue is empty, so an idle process holds none. Tasks wait
// in a FIFO (queueing never blocks the caller, which may be a poll loop).
// There is one, process-wide, because netpoll's Runner is process-wide.
type workerPool struct {
	mu      sync.Mutex
	max     int
	running int
	tasks   fifo[func()]
}

var workers = workerPool{max: DefaultWorkers}

// setMax changes the bound; running workers above it finish their task.
func (w *workerPool) setMax(n int) {
	w.mu.Lock()
	w.max = n
	w.mu.Unlock()
}

// run queues f and starts a worker if the bound allows.
func (w *workerPool) run(f func()) {
	w.mu.Lock()
	w.tasks.push(f)
	if w.running < w.max {
		w.running++
		w.mu.Unlock()
		go work() // no closure: the pool is a package variable
		return
	}
	w.mu.Unlock()
}

func work() {
	w := &workers
	for {
		w.mu.Lock()
		if w.tasks.n == 0 || w.running > w.max {
			w.running--
			w.mu.Unlock()
			return
		}
		f, _ := w.tasks.pop()
		w.mu.Unlock()
		f()
	}
}

// --- the flush queue (netpoll engine) ---

// flushQueue holds connections whose queued bytes should be written, for
// at most max flusher goroutines (started on demand, exiting when the
// queue is empty). Flush from outside a handler only queues the
// connection, so a publisher writing to many connections never makes a
// system call per connection itself, and frames queued meanwhile go out in
// one vectored write. Writes are non-blocking, so a small bound suffices.
type flushQueue struct {
	mu      sync.Mutex
	max     int
	running int
	conns   fifo[*Conn]
}

var flushers = flushQueue{max: max(2, runtime.GOMAXPROCS(0))}

// push queues c, whose c.flushing the caller set.
func (q *flushQueue) push(c *Conn) {
	q.mu.Lock()
	q.conns.push(c)
	if q.running < q.max {
		q.running++
		q.mu.Unlock()
		go flushWork()
		return
	}
	q.mu.Unlock()
}

func flushWork() {
	q := &flushers
	for {
		q.mu.Lock()
		c, ok := q.conns.pop()
		if !ok {
			q.running--
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		c.mu.Lock()
		c.directFlushLocked()
	}
}
