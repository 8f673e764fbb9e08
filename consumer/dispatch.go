package consumer

import (
	"sync"
	"sync/atomic"
	"time"
)

// The dispatcher runs the Consumer's message and request handlers off the
// read loop, so that a slow handler does not stop the reader: pings are
// answered, the close handshake runs and a lost connection is noticed while
// a handler works. Items run one at a time, in the order they were queued,
// on a goroutine that exists only while there is work (and for
// dispatchLinger after it, so that a steady flow of messages does not start
// one per message): an idle Consumer holds no dispatcher goroutine and no
// queued buffer.
//
// The queue is bounded in items ([Options.QueueLength]) and in payload
// bytes ([Options.QueueBytes]). When it is full the reader waits for room
// before it reads on: nothing is dropped, and TCP flow control pushes back on
// the Provider (whose own backpressure policy then applies).

// dispatchLinger is how long the dispatcher goroutine waits for more work
// before it exits.
const dispatchLinger = time.Second

// item is one unit of work for the dispatcher.
type item struct {
	// buf holds the payload; the item owns it, and the dispatcher returns
	// it to the pool once the item has run (or was skipped). nil for an
	// empty payload.
	buf *buffer
	// fn runs the item; nil means a message for OnMessage. data is buf's
	// bytes (nil for no buf).
	fn func(it *item, data []byte)
	// id is a request's id, or a wait marker's.
	id uint64
	// size is the payload size counted against QueueBytes.
	size int64
	// off is where the payload starts in buf (after a v2 envelope header).
	off         int32
	binary      bool
	redelivered bool // a request's redelivered flag
}

// dispatcher is the queue and the state of its goroutine.
type dispatcher struct {
	mu      sync.Mutex
	ring    []item // circular; grows up to max
	head    int
	n       int   // items queued (not counting the one running)
	queued  int64 // payload bytes of the queued items and the running one
	running bool  // a goroutine exists (running items or lingering)
	busy    bool  // it is running an item
	stop    bool  // finish was called: exit once the queue is empty

	max      int
	maxBytes int64
	room     chan struct{} // signalled (cap 1) when an item has run
	idle     chan struct{} // signalled (cap 1) when the goroutine has exited
	wake     chan struct{} // signalled (cap 1) when an item was queued
	linger   *time.Timer   // the goroutine's wait for more work
	marked   chan uint64   // ids of wait markers that have run
	marks    uint64        // the last wait marker's id; the reader's
	gid      atomic.Uint64 // the goroutine's id while it runs
	cur      item          // the item running; a field, so &cur does not escape per item
	run      func(it *item, data []byte)
	skip     func() bool // true: run no more messages (Destroy was called)
}

func (d *dispatcher) init(length int, maxBytes int64, run func(*item, []byte), skip func() bool) {
	d.max = length
	d.maxBytes = maxBytes
	d.room = make(chan struct{}, 1)
	d.idle = make(chan struct{}, 1)
	d.wake = make(chan struct{}, 1)
	d.marked = make(chan uint64, 1)
	d.run = run
	d.skip = skip
}

// self reports whether gid is the dispatcher goroutine's (a handler's).
func (d *dispatcher) self(gid uint64) bool {
	g := d.gid.Load()
	return g != 0 && g == gid
}

// enqueue queues it, waiting while the queue holds QueueLength items or
// while its bytes leave no room for it (an item larger than QueueBytes is
// queued once the queue is empty). A nil expire waits as long as it takes;
// otherwise enqueue gives up when expire fires and reports false. It is
// called by the reader only.
func (d *dispatcher) enqueue(it item, expire <-chan time.Time) bool {
	for {
		d.mu.Lock()
		if d.n < d.max && (d.queued == 0 || d.queued+it.size <= d.maxBytes) {
			d.push(it)
			start := !d.running
			d.running = true
			d.mu.Unlock()
			if start {
				go d.loop()
			} else {
				select {
				case d.wake <- struct{}{}:
				default:
				}
			}
			return true
		}
		d.mu.Unlock()
		select {
		case <-d.room:
		case <-expire:
			return false
		}
	}
}

// push appends it to the ring, growing it. d.mu must be held.
func (d *dispatcher) push(it item) {
	if d.n == len(d.ring) {
		ring := make([]item, min(max(4, 2*len(d.ring)), d.max))
		for i := 0; i < d.n; i++ {
			ring[i] = d.ring[(d.head+i)%len(d.ring)]
		}
		d.ring, d.head = ring, 0
	}
	d.ring[(d.head+d.n)%len(d.ring)] = it
	d.n++
	d.queued += it.size
}

func (d *dispatcher) loop() {
	d.gid.Store(goid())
	if d.linger == nil {
		d.linger = time.NewTimer(dispatchLinger)
		d.linger.Stop()
	}
	for {
		d.mu.Lock()
		for d.n == 0 {
			expired := false
			if !d.stop {
				d.mu.Unlock()
				d.linger.Reset(dispatchLinger)
				select {
				case <-d.wake:
					d.linger.Stop()
				case <-d.linger.C:
					expired = true
				}
				d.mu.Lock()
			}
			if d.n == 0 && (d.stop || expired) {
				d.ring, d.head = nil, 0 // an idle Consumer keeps no ring
				d.running = false
				d.gid.Store(0)
				d.mu.Unlock()
				select {
				case d.idle <- struct{}{}:
				default:
				}
				return
			}
		}
		d.cur = d.ring[d.head]
		d.ring[d.head] = item{}
		d.head = (d.head + 1) % len(d.ring)
		d.n--
		d.busy = true
		d.mu.Unlock()

		it := &d.cur
		var data []byte
		if it.buf != nil {
			data = it.buf.b
		}
		if it.fn != nil {
			it.fn(it, data)
		} else if !d.skip() {
			d.run(it, data)
		}
		putBuffer(it.buf)
		d.mu.Lock()
		d.queued -= it.size
		d.busy = false
		d.mu.Unlock()
		*it = item{}
		select {
		case d.room <- struct{}{}:
		default:
		}
	}
}

// finish waits until every queued item has run (or was skipped) and the
// goroutine has exited. The reader calls it once the connection is over.
func (d *dispatcher) finish() {
	d.mu.Lock()
	d.stop = true
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
	for {
		d.mu.Lock()
		running := d.running
		d.mu.Unlock()
		if !running {
			break
		}
		<-d.idle
	}
	d.mu.Lock()
	d.stop = false
	d.mu.Unlock()
}

// buffer returns a pooled buffer with room for n bytes, for the copy of a
// payload that an item will own.
func (d *dispatcher) buffer(n int) *buffer { return getBuffer(n) }

// wait waits until the items queued so far have run, for at most timeout,
// and reports whether they have. The reader calls it before it sends a
// close frame, so that replies to the messages read before the close go
// out first.
func (d *dispatcher) wait(timeout time.Duration) bool {
	d.mu.Lock()
	idle := d.n == 0 && !d.busy
	d.mu.Unlock()
	if idle {
		return true
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	d.marks++
	id := d.marks
	if !d.enqueue(item{fn: d.mark, id: id}, t.C) {
		return false
	}
	for {
		select {
		case got := <-d.marked:
			if got == id {
				return true
			}
		case <-t.C:
			return false
		}
	}
}

// mark is the function of a wait marker: it reports the marker's id,
// replacing an older id nobody took.
func (d *dispatcher) mark(it *item, _ []byte) {
	for {
		select {
		case d.marked <- it.id:
			return
		default:
		}
		select {
		case <-d.marked:
		default:
		}
	}
}
