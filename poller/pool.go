package poller

import (
	"runtime"
	"sync"
)

// --- pending-input buffers ---

// buffer is a pooled byte slice; pools hold *buffer so that Get and Put
// allocate nothing once warm. len(b) == cap(b) always: the owner keeps its
// own count of the bytes in use.
type buffer struct {
	b     []byte
	class int8 // index into bufPools, or -1 when not pooled
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

// workerPool runs tasks on at most max goroutines, started on demand; each
// exits when the queue is empty, so an idle process holds none. Tasks wait
// in a FIFO ring that grows as needed (queueing never blocks the caller,
// which may be a poll loop). There is one, process-wide, because netpoll's
// Runner is process-wide.
type workerPool struct {
	mu      sync.Mutex
	max     int
	running int
	ring    []func()
	head, n int
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
	if w.n == len(w.ring) {
		w.grow()
	}
	w.ring[(w.head+w.n)%len(w.ring)] = f
	w.n++
	if w.running < w.max {
		w.running++
		w.mu.Unlock()
		go work() // no closure: the pool is a package variable
		return
	}
	w.mu.Unlock()
}

func (w *workerPool) grow() {
	ring := make([]func(), max(16, 2*len(w.ring)))
	for i := 0; i < w.n; i++ {
		ring[i] = w.ring[(w.head+i)%len(w.ring)]
	}
	w.ring, w.head = ring, 0
}

func work() {
	w := &workers
	for {
		w.mu.Lock()
		if w.n == 0 || w.running > w.max {
			w.running--
			w.mu.Unlock()
			return
		}
		f := w.ring[w.head]
		w.ring[w.head] = nil
		w.head = (w.head + 1) % len(w.ring)
		w.n--
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
	ring    []*Conn
	head, n int
}

var flushers = flushQueue{max: max(2, runtime.GOMAXPROCS(0))}

// push queues c, whose c.flushing the caller set.
func (q *flushQueue) push(c *Conn) {
	q.mu.Lock()
	if q.n == len(q.ring) {
		ring := make([]*Conn, max(64, 2*len(q.ring)))
		for i := 0; i < q.n; i++ {
			ring[i] = q.ring[(q.head+i)%len(q.ring)]
		}
		q.ring, q.head = ring, 0
	}
	q.ring[(q.head+q.n)%len(q.ring)] = c
	q.n++
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
		if q.n == 0 {
			q.running--
			q.mu.Unlock()
			return
		}
		c := q.ring[q.head]
		q.ring[q.head] = nil
		q.head = (q.head + 1) % len(q.ring)
		q.n--
		q.mu.Unlock()
		c.mu.Lock()
		c.directFlushLocked()
	}
}
