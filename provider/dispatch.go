package provider

import (
	"encoding/binary"
	"sync"

	"github.com/networkcluster/networkcluster/frame"
	"github.com/networkcluster/networkcluster/internal/bigbuf"
)

// The handler side of a connection.
//
// The read side (OnData: on the poll loop that read the input for an open
// connection without compression, see poller.Conn.SetInline; else on the
// poller's workers) parses frames, answers control frames and records
// heartbeat answers itself, at once, whatever the user's handlers are
// doing. It never blocks. Each complete data message is put on the
// connection's handler queue, and the connection on the Provider's run
// queue; a pool of at most Options.HandlerWorkers goroutines runs OnOpen,
// OnMessage (through deliver) and OnClose from there, in order per
// connection and one at a time per connection. So a handler that blocks
// delays only its own connection's later messages and takes one worker; it
// never delays a pong, a close or another connection's input.
//
// The queue is a list of segments (msgBuf): a small message is copied into
// the last segment as a record [op][length, 4 bytes LE][data]; a large one
// already held in a buffer of ours (assembled from fragments or frame
// pieces, or inflated) becomes a segment of its own without a copy.

const recHeader = 5

// handlerPool runs connections' handler queues on at most max goroutines,
// started on demand. A scheduled connection goes on the run queue, and a
// worker is woken (or started) for it only when none is searching: woken
// and not yet committed to a connection. A searching worker takes the head
// of the run queue, and wakes the next searcher if connections are still
// waiting; a worker whose handler returned takes the next connection
// without parking. So every queued connection has a worker on its way
// that is not stuck in a handler (a handler that blocks never holds up
// another connection until max handlers block), while a steady flow of
// messages is served by the few goroutines already running, without a
// wake-up and a park per message. A worker that finds nothing to do
// parks; one parked for a whole tick of the Provider's timer (100 ms at
// most) exits, so an idle Provider holds none.
type handlerPool struct {
	work      func() // Provider.handlerWorker
	max       int
	running   int
	searching int // workers woken or started that have not taken a connection yet
	runq      runQueue
	idle      []*hworker // parked workers, the most recently parked last
	free      []*hworker // hworkers of exited workers, for reuse
	tick      uint64     // timer ticks seen (reapHandlers)
	stopped   bool       // the Provider stopped: workers exit when idle
}

// runQueue is the connections waiting for a handler worker, first in first
// out: a ring that grows (doubling) to the most connections ever waiting at
// once, so that a connection costs nothing for it while not waiting, and
// the queue allocates nothing once grown.
type runQueue struct {
	ring []*Connection // len(ring) is 0 or a power of two
	head int           // index of the first
	n    int           // connections waiting
}

func (q *runQueue) push(c *Connection) {
	if q.n == len(q.ring) {
		ring := make([]*Connection, max(16, 2*len(q.ring)))
		k := copy(ring, q.ring[q.head:])
		copy(ring[k:], q.ring[:q.head])
		q.ring, q.head = ring, 0
	}
	q.ring[(q.head+q.n)&(len(q.ring)-1)] = c
	q.n++
}

// pop returns the first connection waiting, or nil.
func (q *runQueue) pop() *Connection {
	if q.n == 0 {
		return nil
	}
	c := q.ring[q.head]
	q.ring[q.head] = nil
	q.head = (q.head + 1) & (len(q.ring) - 1)
	q.n--
	return c
}

// hworker is a parked worker's mailbox.
type hworker struct {
	wake     chan bool // capacity 1: true to search the run queue, false to exit
	parkedAt uint64    // handlerPool.tick when it parked
}

// schedule puts c (whose c.hScheduled the caller set) on the run queue, and
// wakes or starts a searching worker unless one is on its way.
func (p *Provider) schedule(c *Connection) {
	p.hpMu.Lock()
	hp := &p.hp
	hp.runq.push(c)
	p.wakeSearcherLocked() // unlocks
}

// wakeSearcherLocked wakes a parked worker, or starts one if the bound
// allows, to take the run queue's head, unless a searching worker is on
// its way already; called with p.hpMu held and the run queue not empty, it
// returns with it released.
func (p *Provider) wakeSearcherLocked() {
	hp := &p.hp
	if hp.searching > 0 {
		p.hpMu.Unlock()
		return
	}
	if n := len(hp.idle); n > 0 {
		w := hp.idle[n-1]
		hp.idle[n-1] = nil
		hp.idle = hp.idle[:n-1]
		hp.searching++
		p.hpMu.Unlock()
		w.wake <- true // never blocks: the mailbox is empty while parked
		return
	}
	if hp.running < hp.max {
		hp.running++
		hp.searching++
		p.hpMu.Unlock()
		p.wg.Add(1)
		go p.hp.work() // a func value made once: go allocates nothing
		return
	}
	p.hpMu.Unlock()
}

// handlerWorker starts searching (see handlerPool).
func (p *Provider) handlerWorker() {
	defer p.wg.Done()
	hp := &p.hp
	var w *hworker
	searching := true
	for {
		p.hpMu.Lock()
		if searching {
			hp.searching--
			searching = false
		}
		c := hp.runq.pop()
		if c == nil {
			if hp.stopped {
				hp.running--
				if w != nil {
					hp.free = append(hp.free, w)
				}
				p.hpMu.Unlock()
				return
			}
			if w == nil {
				if n := len(hp.free); n > 0 {
					w = hp.free[n-1]
					hp.free[n-1] = nil
					hp.free = hp.free[:n-1]
				} else {
					w = &hworker{wake: make(chan bool, 1)}
				}
			}
			w.parkedAt = hp.tick
			hp.idle = append(hp.idle, w)
			p.hpMu.Unlock()
			if !<-w.wake {
				// Reaped or stopped (and taken off the idle list).
				p.hpMu.Lock()
				hp.running--
				hp.free = append(hp.free, w)
				p.hpMu.Unlock()
				return
			}
			searching = true // the waker counted us in hp.searching
			continue
		}
		if hp.runq.n == 0 {
			p.hpMu.Unlock()
		} else {
			// The rest needs a worker that is not held up by c's handlers.
			p.wakeSearcherLocked()
		}
		c.runHandlers()
	}
}

// reapHandlers ends the workers that stayed parked for a whole tick;
// called on every tick of the Provider's timer.
func (p *Provider) reapHandlers() {
	p.hpMu.Lock()
	hp := &p.hp
	hp.tick++
	n := 0
	for n < len(hp.idle) && hp.idle[n].parkedAt+1 < hp.tick {
		hp.idle[n].wake <- false
		n++
	}
	if n > 0 {
		k := copy(hp.idle, hp.idle[n:])
		clear(hp.idle[k:])
		hp.idle = hp.idle[:k]
	}
	p.hpMu.Unlock()
}

// stopHandlers makes every worker exit once the run queue is empty.
func (p *Provider) stopHandlers() {
	p.hpMu.Lock()
	hp := &p.hp
	hp.stopped = true
	for i, w := range hp.idle {
		w.wake <- false
		hp.idle[i] = nil
	}
	hp.idle = hp.idle[:0]
	p.hpMu.Unlock()
}

// runHandlers runs what the connection's handler queue holds now: OnOpen
// if due, the queued messages in order, and OnClose once nothing precedes
// it. If more arrived meanwhile, the connection goes to the back of the run
// queue, so that a busy connection does not starve the others.
func (c *Connection) runHandlers() {
	p := c.p
	c.hMu.Lock()
	open := c.hf&hfOpen != 0
	c.hf &^= hfOpen
	var segs *msgBuf
	if t := c.hTail; t != nil {
		segs, t.next, c.hTail = t.next, nil, nil // the first; the circle opened
	}
	var act uint8
	if segs == nil {
		act = c.hAction // after the messages received before it
		c.hAction = 0
	}
	closing := !open && segs == nil && act == 0 && c.hf&hfClose != 0
	c.hMu.Unlock()

	if open {
		if f := p.o.OnOpen; f != nil {
			f(c)
		}
	}
	for segs != nil {
		s := segs
		segs = s.next
		s.next = nil
		// The last message of what was taken is handled with hDirect set:
		// a reply its handler sends is written at once by this goroutine.
		// The ones before it leave their replies to a flusher, which takes
		// those of the messages after them along in one write.
		if s.whole {
			c.setDirect(segs == nil)
			c.handle(s.op, s.b)
		} else {
			for b := s.b; len(b) >= recHeader; {
				n := int(binary.LittleEndian.Uint32(b[1:recHeader]))
				rest := b[recHeader+n:]
				c.setDirect(segs == nil && len(rest) < recHeader)
				c.handle(frame.Opcode(b[0]), b[recHeader:recHeader+n])
				b = rest
			}
		}
		c.setDirect(false)
		p.uncharge(s.charged)
		c.hMu.Lock()
		resume := c.handledLocked(s.queued)
		c.hMu.Unlock()
		if resume {
			c.hb.And(hbFlags) // not judged while its input was left unread
			c.pc.Wake()       // OnData takes the input it left
		}
		freeMsgBuf(s)
	}
	switch act {
	case actFail:
		c.failNow(c.rare.Load().actErr)
	case actPeerClose:
		ce := c.rare.Load().actErr.(*CloseError)
		c.peerCloseNow(ce.Code, ce.Reason)
	}
	if closing {
		code, reason := c.closeStatus()
		if f := p.o.OnClose; f != nil {
			f(c, code, reason)
		}
	}

	c.hMu.Lock()
	if closing {
		c.hf &^= hfClose
		c.hf |= hfDone
	}
	if c.hTail != nil || c.hf&(hfOpen|hfClose) != 0 || c.hAction != 0 {
		c.hMu.Unlock()
		p.schedule(c)
		return
	}
	c.hf &^= hfScheduled
	c.hMu.Unlock()
}

// handle delivers a queued message, unless an earlier one failed the
// connection (the rest, which came after the violation, is dropped).
func (c *Connection) handle(op frame.Opcode, data []byte) {
	if c.hb.Load()&hbFailed != 0 {
		return
	}
	if err := c.deliver(op, data); err != nil {
		c.hb.Or(hbFailed)
		c.failNow(err)
	}
}

// kick schedules the connection unless it is scheduled or the read side
// is parsing a batch (it kicks at the end); called with c.hMu held, it
// returns with it released.
func (c *Connection) kickLocked() {
	if c.hf&(hfScheduled|hfBatch) != 0 {
		c.hMu.Unlock()
		return
	}
	c.hf |= hfScheduled
	c.hMu.Unlock()
	c.p.schedule(c)
}

// onFramesBatch is onFrames for a whole read: the messages it queues go to
// the handlers together, with one kick at the end, so that a worker does
// not start on the first while the rest are parsed (which would split the
// replies to one read into several writes).
func (c *Connection) onFramesBatch(in []byte) int {
	c.hMu.Lock()
	c.hf |= hfBatch
	c.hMu.Unlock()
	n := c.onFrames(in)
	c.hMu.Lock()
	c.hf &^= hfBatch
	if c.hTail == nil && c.hf&(hfOpen|hfClose) == 0 && c.hAction == 0 {
		c.hMu.Unlock()
		return n
	}
	c.kickLocked()
	return n
}

// Actions of the read side that must follow the handling of the messages
// received before them.
const (
	actFail      = 1 // failNow(actErr)
	actPeerClose = 2 // peerCloseNow with actErr's code and reason
)

// deferAction reports whether the handlers are busy, in which case it
// leaves the failure for the handler worker to carry out after them. The
// read side stops reading either way, so the action is the last thing
// queued.
func (c *Connection) deferAction(act uint8, err error) bool {
	c.hMu.Lock()
	if c.hTail == nil && c.hf&hfScheduled == 0 {
		c.hMu.Unlock()
		return false
	}
	c.rareState().actErr = err
	c.hAction = act
	c.hMu.Unlock()
	return true
}

// deferPeerClose is deferAction for the answer to the peer's close frame;
// reason is copied.
func (c *Connection) deferPeerClose(code CloseCode, reason []byte) bool {
	c.hMu.Lock()
	if c.hTail == nil && c.hf&hfScheduled == 0 {
		c.hMu.Unlock()
		return false
	}
	c.rareState().actErr = &CloseError{Code: code, Reason: string(reason)}
	c.hAction = actPeerClose
	c.hMu.Unlock()
	return true
}

// queueOpen queues the OnOpen call, the first of the connection.
func (c *Connection) queueOpen() {
	if c.p.o.OnOpen == nil {
		return
	}
	c.hMu.Lock()
	c.hf |= hfOpen
	c.kickLocked()
}

// queueClosed queues the OnClose call, the last of the connection: it runs
// once every message received before it has been handled.
func (c *Connection) queueClosed(code CloseCode, reason string) {
	c.hMu.Lock()
	if c.hf&(hfDone|hfClose) != 0 {
		c.hMu.Unlock()
		return
	}
	c.recordClose(code, reason) // closeStatus gives it to OnClose
	c.hf |= hfClose
	c.kickLocked()
}

// moveThreshold: a message at least this large, already in a buffer of
// ours, is queued by moving the buffer rather than copying it.
const moveThreshold = 32 << 10

// queueCopy queues a copy of a message (data is the caller's). It returns
// errOverBudget (close 1013) when the memory budget has no room for it.
func (c *Connection) queueCopy(op frame.Opcode, data []byte) error {
	n := recHeader + len(data)
	if !c.p.charge(n) {
		c.p.stats.budgetCloses.Add(1)
		return errOverBudget
	}
	c.hMu.Lock()
	t := c.hTail
	if t == nil || t.whole || cap(t.b)-len(t.b) < n {
		t = newMsgBuf(max(n, msgClassSize[0]))
		c.appendSegLocked(t)
	}
	var hdr [recHeader]byte
	hdr[0] = byte(op)
	binary.LittleEndian.PutUint32(hdr[1:], uint32(len(data)))
	t.b = append(append(t.b, hdr[:]...), data...)
	t.charged += n
	t.queued += n
	c.addQueuedLocked(n)
	c.kickLocked()
	return nil
}

// queueMove queues m, one whole message whose budget charge m.charged
// carries; the queue owns m from then on.
func (c *Connection) queueMove(op frame.Opcode, m *msgBuf) error {
	c.hMu.Lock()
	m.whole, m.op, m.queued = true, op, len(m.b)
	c.appendSegLocked(m)
	c.addQueuedLocked(len(m.b))
	c.kickLocked()
	return nil
}

// addQueuedLocked counts n more bytes waiting for the handlers; past
// MaxHandlerQueue, the read side stops taking input from the connection
// (onFrames) until the handlers have caught up with half of it.
func (c *Connection) addQueuedLocked(n int) {
	c.hBytes += uint32(n)
	if int(c.hBytes) > c.p.o.MaxHandlerQueue && c.hb.Load()&hbPaused == 0 {
		c.hb.Or(hbPaused)
		c.p.stats.readPauses.Add(1)
	}
}

// handledLocked counts n queued bytes as handled, and reports whether
// reading resumes.
func (c *Connection) handledLocked(n int) bool {
	c.hBytes -= uint32(n)
	if c.hb.Load()&hbPaused != 0 && int(c.hBytes) <= c.p.o.MaxHandlerQueue/2 {
		c.hb.And(^uint32(hbPaused))
		return true
	}
	return false
}

// appendSegLocked queues s last; the queue is a circular list, whose
// last element leads to the first.
func (c *Connection) appendSegLocked(s *msgBuf) {
	if t := c.hTail; t == nil {
		s.next = s
	} else {
		s.next, t.next = t.next, s
	}
	c.hTail = s
}

var (
	errOverBudget = &frame.CloseError{Code: frame.CloseTryAgainLater, Reason: "server busy: memory budget for messages exhausted"}
)

// --- the memory budget ---

// charge takes n bytes of the Provider's MemoryBudget, reporting false
// (and taking nothing) if they are not there.
func (p *Provider) charge(n int) bool {
	if p.mem.Add(int64(n)) > int64(p.o.MemoryBudget) {
		p.mem.Add(-int64(n))
		return false
	}
	return true
}

// chargeUpTo takes up to n bytes of the budget and returns how many it took.
func (p *Provider) chargeUpTo(n int) int {
	for {
		used := p.mem.Load()
		take := min(int64(n), int64(p.o.MemoryBudget)-used)
		if take <= 0 {
			return 0
		}
		if p.mem.CompareAndSwap(used, used+take) {
			return int(take)
		}
	}
}

func (p *Provider) uncharge(n int) {
	if n != 0 {
		p.mem.Add(-int64(n))
	}
}

// --- message buffers ---

// msgBuf is a message buffer: a fragment assembly buffer, an inflation
// output, or a segment of a handler queue. Small ones are pooled in size
// classes on the heap; larger ones are mapped outside the heap (bigbuf) and
// unmapped when released, so the memory of a large message goes back to the
// system as soon as it has been handled.
type msgBuf struct {
	b       []byte
	class   int     // index into msgPools, or -1: a bigbuf mapping
	charged int     // bytes of the memory budget it holds
	queued  int     // bytes it counts in its handler queue
	next    *msgBuf // the next segment of a handler queue
	whole   bool    // b is one whole message of opcode op
	op      frame.Opcode
}

var (
	msgPools     [3]sync.Pool
	msgClassSize = [3]int{4 << 10, 32 << 10, 256 << 10}
)

// newMsgBuf returns an empty buffer with room for at least n bytes.
func newMsgBuf(n int) *msgBuf {
	for i, size := range msgClassSize {
		if n <= size {
			if m, ok := msgPools[i].Get().(*msgBuf); ok {
				return m
			}
			return &msgBuf{b: make([]byte, 0, size), class: i}
		}
	}
	return &msgBuf{b: bigbuf.Alloc(n)[:0], class: -1}
}

// freeMsgBuf releases m; its budget charge is the caller's business.
func freeMsgBuf(m *msgBuf) {
	if m == nil {
		return
	}
	m.next, m.whole, m.charged, m.queued = nil, false, 0, 0
	if m.class < 0 {
		bigbuf.Free(m.b)
		m.b = nil
		return
	}
	m.b = m.b[:0]
	msgPools[m.class].Put(m)
}
