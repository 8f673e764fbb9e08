package consumer

import (
	"sync/atomic"
	"time"
)

// The dispatcher runs the Consumer's message handlers off the read loop, so
// that a slow handler does not stop the reader: pings are answered, the
// close handshake runs and a lost connection is noticed while a handler
// works. One dispatcher goroutine runs per open connection; it runs the
// queued items one at a time, in the order they were queued.
//
// The queue is bounded in items ([Options.QueueLength]) and in payload
// bytes ([Options.QueueBytes]). When it is full the reader waits for room
// before it reads on: nothing is dropped, and TCP flow control pushes back on
// the Provider (whose own backpressure policy then applies).

// item is one unit of work for the dispatcher.
type item struct {
	// buf holds the payload; the item owns it, and the dispatcher returns
	// it once the item has run (or was skipped). nil for an empty payload.
	buf *buffer
	// fn runs the item; nil means a message for OnMessage. It runs on the
	// dispatcher goroutine. data is buf's bytes (nil for no buf).
	fn func(it *item, data []byte)
	// off is where the payload starts in buf (after a v2 envelope header).
	off int
	// id, gen and redelivered are a request's: its id, the connection it
	// came on, and its redelivered flag.
	id          uint64
	gen         uint64
	redelivered bool
	binary      bool
	size        int64 // bytes counted against QueueBytes
	stop        bool  // the last item of a connection: the dispatcher exits
}

// dispatcher is the queue and the state of its goroutine. The queue, the
// spare buffers and the room signal live as long as the Consumer; the
// goroutine lives as long as one connection.
type dispatcher struct {
	q        chan item
	room     chan struct{} // signalled (cap 1) when queued bytes go down
	spare    chan *buffer  // recycled buffers for messages that fit the read buffer
	spareCap int           // the capacity of a spare buffer
	maxBytes int64
	queued   atomic.Int64 // payload bytes queued and not yet run
	pending  atomic.Int64 // items queued and not yet run
	marked   chan uint64  // ids of wait markers that have run
	marks    uint64       // the last wait marker's id; the reader's
	gid      atomic.Uint64
	done     chan struct{} // closed when the current goroutine exits
	cur      item          // the item running; a field, so that &cur does not escape per item
	run      func(it *item, data []byte)
	skip     func() bool // true: do not run messages (Destroy was called)
}

func (d *dispatcher) init(length int, maxBytes int64, spareCap int, run func(*item, []byte), skip func() bool) {
	d.q = make(chan item, length)
	d.room = make(chan struct{}, 1)
	d.spare = make(chan *buffer, 2)
	d.marked = make(chan uint64, 1)
	d.spareCap = spareCap
	d.maxBytes = maxBytes
	d.run = run
	d.skip = skip
}

// start starts the goroutine for a new connection.
func (d *dispatcher) start() {
	d.done = make(chan struct{})
	go d.loop(d.done)
}

// finish queues the stop item behind everything queued and waits until the
// goroutine has run (or skipped) all of it and exited.
func (d *dispatcher) finish() {
	d.q <- item{stop: true}
	<-d.done
}

// self reports whether the caller is the dispatcher goroutine (a handler).
func (d *dispatcher) self(gid uint64) bool {
	g := d.gid.Load()
	return g != 0 && g == gid
}

func (d *dispatcher) loop(done chan struct{}) {
	d.gid.Store(goid())
	defer func() {
		d.gid.Store(0)
		close(done)
	}()
	for {
		d.cur = <-d.q
		it := &d.cur
		if it.stop {
			return
		}
		var data []byte
		if it.buf != nil {
			data = it.buf.b
		}
		if it.fn != nil {
			it.fn(it, data)
		} else if !d.skip() {
			d.run(it, data)
		}
		d.release(it.buf)
		d.pending.Add(-1)
		if it.size > 0 {
			d.queued.Add(-it.size)
			select {
			case d.room <- struct{}{}:
			default:
			}
		}
		*it = item{}
	}
}

// buffer returns a buffer with room for n bytes for a message's copy: a
// spare one when n fits, else a pooled one.
func (d *dispatcher) buffer(n int) *buffer {
	if n <= d.spareCap {
		select {
		case b := <-d.spare:
			b.b = b.b[:0]
			return b
		default:
			return &buffer{b: make([]byte, 0, d.spareCap)}
		}
	}
	return getBuffer(n)
}

// release takes back a buffer of an item that has run.
func (d *dispatcher) release(b *buffer) {
	if b == nil {
		return
	}
	if cap(b.b) == d.spareCap {
		select {
		case d.spare <- b:
			return
		default:
		}
	}
	putBuffer(b)
}

// enqueue queues it, waiting first while the queue holds other items whose
// bytes leave no room for it (a single item larger than the byte bound is
// queued alone), then while it holds QueueLength items. It is called by the
// reader only.
func (d *dispatcher) enqueue(it item) {
	if it.size > 0 {
		for {
			q := d.queued.Load()
			if q == 0 || q+it.size <= d.maxBytes {
				break
			}
			<-d.room
		}
		d.queued.Add(it.size)
	}
	d.pending.Add(1)
	d.q <- it
}

// wait waits until the items queued so far have run, for at most timeout,
// and reports whether they have. The reader calls it before it sends a
// close frame, so that replies to the messages read before the close go
// out first.
func (d *dispatcher) wait(timeout time.Duration) bool {
	if d.pending.Load() == 0 {
		return true
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	d.marks++
	id := d.marks
	select {
	case d.q <- item{fn: d.mark, id: id}:
		d.pending.Add(1)
	case <-t.C:
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

// dispatch queues fn to run on the dispatcher goroutine after everything
// queued before it, with data as its payload (copied; data may be nil). It
// is for handlers other than OnMessage (a request's, say); fn runs even
// after Destroy, so it must check that itself if it should not.
func (d *dispatcher) dispatch(fn func(it *item, data []byte), id uint64, binary bool, data []byte) {
	it := item{fn: fn, id: id, binary: binary}
	if data != nil {
		it.buf = d.buffer(len(data))
		it.buf.b = append(it.buf.b, data...)
		it.size = int64(len(data))
	}
	d.enqueue(it)
}
