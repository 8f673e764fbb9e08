package poller

import (
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
)

// Handler receives a Poller's connection events. Its methods are called
// for each connection in the order OnOpen, OnData (any number of times),
// OnClose, never two at a time for one connection; different connections
// are handled concurrently.
type Handler interface {
	// OnOpen is called once per accepted connection, before any OnData.
	// It must not block. Writes made here are flushed when it returns.
	OnOpen(c *Conn)

	// OnData is called with the connection's buffered input: the bytes it
	// left unconsumed earlier followed by the new ones, as one contiguous
	// slice, valid only until OnData returns. It returns how many bytes it
	// consumed (0 to len(in)); the poller keeps the rest in the
	// connection's own buffer, capped by [Conn.SetMaxPending] (exceeding
	// the cap closes the connection with [ErrPendingLimit]), and passes
	// them again, followed by new input, on the next call. in is empty
	// only for a call caused by [Conn.Wake] with nothing pending.
	//
	// OnData runs on the worker pool (netpoll engine; on the poll loop
	// after [Conn.SetInline]) or the connection's reader goroutine; it
	// should not block for long. Writes made during
	// OnData, from any goroutine, are flushed once when it returns
	// (batched): [Conn.Flush] called meanwhile defers to that flush.
	OnData(c *Conn, in []byte) (consumed int)

	// OnClose is called exactly once per connection that was opened, after
	// its last OnData has returned; every write fails with [ErrClosed]
	// from the moment the connection is closed, which is before OnClose.
	// err says why: nil for [Conn.Close](nil) or a completed
	// [Conn.CloseAfterFlush]; the error given to Close; io.EOF when the
	// peer closed (the netpoll engine reports a reset as io.EOF too; the
	// Serve engine gives its read error as is); [ErrPendingLimit],
	// [ErrFlushTimeout], [ErrBadConsume], [ErrPollerClosed]; or an error
	// wrapping the system error of a failed write.
	//
	// A handler must not call [Poller.Close] of its own Poller, which waits
	// for the handlers.
	OnClose(c *Conn, err error)
}

// Poller serves the connections accepted on one listener. Its methods are
// safe for concurrent use.
type Poller struct {
	h    Handler
	o    resolved
	log  *slog.Logger
	addr net.Addr

	mu     sync.Mutex
	closed bool
	slots  []*Conn  // the live connections, by Conn.slot
	free   []uint32 // free indices of slots
	gen    uint32   // last generation handed out
	live   atomic.Int64

	conns sync.WaitGroup // tracked connections whose OnClose has not returned
	gor   sync.WaitGroup // goroutines the Poller started

	stopOnce  sync.Once
	serveDone chan struct{} // closed when the accept side has stopped
	done      chan struct{} // closed when Close has finished

	eng engine // the netpoll listener side (nil for Serve)

	sln      net.Listener  // Serve's listener
	stopping chan struct{} // closed by StopAccepting (Serve)
}

// engine is the netpoll engine's listener side.
type engine interface {
	stopAccepting() // returns once no more connections can be accepted
	close()         // after every connection is closed
}

func newPoller(h Handler, o resolved) *Poller {
	return &Poller{
		h:         h,
		o:         o,
		log:       o.Logger,
		serveDone: make(chan struct{}),
		done:      make(chan struct{}),
		stopping:  make(chan struct{}),
	}
}

// Addr returns the address the Poller listens on, with the real port when
// it was asked for port 0.
func (p *Poller) Addr() net.Addr { return p.addr }

// Len returns the number of live connections: accepted and not yet through
// OnClose.
func (p *Poller) Len() int { return int(p.live.Load()) }

// StopAccepting stops accepting connections (for a graceful shutdown) and
// returns once no more will be accepted; the open ones keep working. New
// dials are refused. Calling it again does nothing.
func (p *Poller) StopAccepting() error {
	p.stopOnce.Do(func() {
		close(p.stopping)
		if p.eng != nil {
			p.eng.stopAccepting()
			return
		}
		if p.sln != nil { // nil for a Poller of New
			_ = p.sln.Close()
		}
		<-p.serveDone
	})
	return nil
}

// Close stops accepting, closes every connection (queued bytes are
// dropped; OnClose gets [ErrPollerClosed]) and waits until every OnClose has
// returned and every goroutine the Poller started has exited. A handler
// that never returns makes Close wait for it. A second Close returns
// [ErrPollerClosed] once the first has finished.
func (p *Poller) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.done
		return ErrPollerClosed
	}
	p.closed = true
	p.mu.Unlock()

	_ = p.StopAccepting()
	// No connection registers after closed was set; take the snapshot now.
	p.mu.Lock()
	conns := make([]*Conn, 0, len(p.slots))
	for _, c := range p.slots {
		if c != nil {
			conns = append(conns, c)
		}
	}
	p.mu.Unlock()
	for _, c := range conns {
		_ = c.Close(ErrPollerClosed)
	}
	p.conns.Wait()
	if p.eng != nil {
		p.eng.close()
	}
	p.gor.Wait()
	close(p.done)
	return nil
}

// register gives c a slot, or reports false when the Poller is closed.
func (p *Poller) register(c *Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	var idx uint32
	if n := len(p.free); n > 0 {
		idx = p.free[n-1]
		p.free = p.free[:n-1]
	} else {
		idx = uint32(len(p.slots))
		p.slots = append(p.slots, nil)
	}
	p.gen++
	if p.gen == wakeGen {
		p.gen++
	}
	c.slot, c.gen = idx, p.gen
	c.set(fTracked)
	p.slots[idx] = c
	p.conns.Add(1)
	p.live.Add(1)
	return true
}

// wakeGen is never a connection's generation: the write-readiness loop
// uses it for its own wake-up event.
const wakeGen = ^uint32(0)

// lookup returns the live connection of a slot and generation, or nil.
func (p *Poller) lookup(slot, gen uint32) *Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	if int(slot) < len(p.slots) {
		if c := p.slots[slot]; c != nil && c.gen == gen {
			return c
		}
	}
	return nil
}

func (p *Poller) unregister(c *Conn) {
	p.mu.Lock()
	if int(c.slot) < len(p.slots) && p.slots[c.slot] == c {
		p.slots[c.slot] = nil
		p.free = append(p.free, c.slot)
	}
	p.mu.Unlock()
	p.live.Add(-1)
	p.conns.Done()
}
