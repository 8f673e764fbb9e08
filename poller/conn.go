package poller

import (
	"context"
	"errors"
	"io"
	"math"
	"net"
	"sync"
	"time"

	"github.com/cloudwego/netpoll"
	"github.com/networkcluster/networkcluster/frame"
)

// Conn is one accepted connection. All its methods are safe for concurrent
// use, from handlers or any other goroutine, and any number of times.
//
// When idle it holds no buffer of its own: carried-over input lives in a
// pooled buffer only while some is pending, and the outbound queue holds
// pooled chunks only while bytes are queued. On the netpoll engine it holds
// no goroutine either.
type Conn struct {
	// An idle connection of the netpoll engine costs what this struct
	// holds (120 bytes; see [Options.NewConn] for sharing its allocation
	// with the handler's own per-connection state): what few connections
	// need is in ext, made on first use. Fields are ordered to leave no
	// padding.
	p   *Poller
	nc  netpoll.Connection // netpoll engine; nil for Serve
	ext *connExt           // Serve engine, TLS, SetContext, or closing; else nil

	fd         int32  // netpoll engine: the socket, valid while !closed
	slot, gen  uint32 // registry slot; write-readiness events carry both
	maxPending int32  // under mu: cap on carried-over input (SetMaxPending), at most MaxInt32

	// mu guards everything below (the fields noted otherwise excepted).
	// wmu is held across each direct write on fd, and taken by the close
	// callback, so that netpoll (which closes fd once its close callbacks
	// return) never closes fd under a write.
	mu  sync.Mutex
	wmu sync.Mutex

	q frame.Queue

	// Carried-over input: in.n bytes at the start of in.b. While a
	// dispatch runs, in belongs to the dispatching goroutine and new input
	// collects in inq instead. nil when there is none.
	in  *buffer
	inq *buffer

	f connFlag // under mu: the connection's flags (fOpened, ...)

	// The peer's address when it is IPv4 (netpoll engine), set before c is
	// shared: netpoll keeps c itself as the address (see connAddr).
	ip4  [4]byte
	port uint16

	// Running OnData on the poll loop (netpoll engine; SetInline); the
	// flags fInline and fCloseDeferred are in f. Not under mu: written
	// only by netpoll's task for c (one at a time), onLoop under mu too.
	unreleased uint16 // bytes read on the loop whose netpoll buffer nodes are not released yet (at most 2*inlineRelease)
	onLoop     bool   // a netpoll task of this connection runs on its poll loop now
	released   bool   // a worker released inlineRelease bytes: netpoll's nodes have grown

	tlsOn bool // ext.tls is set (Options.TLS, netpoll engine); set before c is shared
}

// connFlag is a Conn's flags, under Conn.mu; they share one word.
type connFlag uint32

const (
	fOpened        connFlag = 1 << iota // OnOpen was called (so OnClose will be)
	fTracked                            // registered with the Poller
	fClosed                             // no more writes; the transport is closed or closing
	fCloseAfter                         // CloseAfterFlush was called
	fLingering                          // our write side is shut down; waiting for the peer
	fFlushing                           // a flush owns the queue (running, or waiting for writability)
	fWriting                            // the flusher is writing slices of the queue outside mu
	fArmed                              // waiting for write readiness (netpoll engine)
	fWreg                               // fd is registered with the write-readiness epoll
	fDispatching                        // OnOpen or OnData is running (or about to)
	fWakeAgain                          // Wake was called during a dispatch
	fTransportDone                      // netpoll's close callback ran / the reader exited
	fPeerClosed                         // the transport closed it (the peer), not a local close
	fFinished                           // OnClose has been scheduled
	fHoldEOF                            // KeepWritableAfterEOF: outlive the peer's half-close (netpoll engine)
	fPeerEOF                            // the peer half-closed and fd is our duplicate, kept for writing
	fInline                             // SetInline: the handler asked for OnData on the poll loop
	fCloseDeferred                      // closeTransport came while onLoop: a worker closes it after
)

// has reports whether any of the flags f is set; called with c.mu held.
func (c *Conn) has(f connFlag) bool { return c.f&f != 0 }

// set sets the flags f; called with c.mu held (or before c is shared).
func (c *Conn) set(f connFlag) { c.f |= f }

// clear clears the flags f; called with c.mu held.
func (c *Conn) clear(f connFlag) { c.f &^= f }

// put sets or clears the flags f; called with c.mu held.
func (c *Conn) put(f connFlag, on bool) {
	if on {
		c.f |= f
	} else {
		c.f &^= f
	}
}

// connExt is what few Conns need: those of the Serve engine or TLS, those
// with a SetContext value, and those closing (or about to), so that an idle
// one of the netpoll engine holds none. Its fields are under Conn.mu, sc
// and tls excepted (set before c is shared).
type connExt struct {
	sc        net.Conn      // Serve engine: the connection
	tls       *tlsLayer     // netpoll engine with Options.TLS (Conn.tlsOn)
	flushSig  chan struct{} // Serve engine: wakes the flusher goroutine
	flusherUp bool          // Serve engine: the flusher goroutine runs
	cause     error         // why it closed, for OnClose
	timer     *time.Timer   // CloseAfterFlush's deadline
	ctx       any           // SetContext's
}

// tls returns the connection's TLS layer (netpoll engine with
// Options.TLS), or nil. Safe without c.mu: both fields are set before c is
// shared.
func (c *Conn) tls() *tlsLayer {
	if !c.tlsOn {
		return nil
	}
	return c.ext.tls
}

// extState returns c.ext, making it; called with c.mu held (or before c is
// shared).
func (c *Conn) extState() *connExt {
	if c.ext == nil {
		c.ext = new(connExt)
	}
	return c.ext
}

// setCauseLocked records why c closed; called with c.mu held.
func (c *Conn) setCauseLocked(err error) {
	if err != nil || c.ext != nil {
		c.extState().cause = err
	}
}

// cause returns why c closed (nil for a clean close). It is read under
// c.mu, or once c is finished (no more writes).
func (c *Conn) cause() error {
	if c.ext == nil {
		return nil
	}
	return c.ext.cause
}

// pendingCap clamps a cap on carried-over input to what maxPending holds.
func pendingCap(n int) int32 {
	return int32(min(n, math.MaxInt32))
}

// connCtx is a Conn seen as the context.Context netpoll carries for it, so
// that the netpoll callbacks find their Conn without an allocation.
type connCtx Conn

func (*connCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (*connCtx) Done() <-chan struct{}       { return nil }
func (*connCtx) Err() error                  { return nil }
func (*connCtx) Value(any) any               { return nil }

func connOf(ctx context.Context) *Conn {
	cc, _ := ctx.(*connCtx)
	return (*Conn)(cc)
}

func newConn(p *Poller) *Conn {
	var c *Conn
	if p.o.NewConn != nil {
		c = p.o.NewConn()
	}
	if c == nil {
		c = new(Conn)
	}
	c.p, c.maxPending = p, pendingCap(p.o.MaxPending)
	c.q.SetLimit(p.o.MaxBuffered)
	return c
}

// SetContext stores v, the caller's per-connection state; [Conn.Context]
// returns it. Safe for concurrent use. The first non-nil value costs an
// allocation of the connection's rarely used state (80 bytes);
// [Options.NewConn] keeps the handler's state with the Conn instead.
func (c *Conn) SetContext(v any) {
	c.mu.Lock()
	if v != nil || c.ext != nil {
		c.extState().ctx = v
	}
	c.mu.Unlock()
}

// Context returns the value last given to [Conn.SetContext], or nil.
func (c *Conn) Context() any {
	var v any
	c.mu.Lock()
	if c.ext != nil {
		v = c.ext.ctx
	}
	c.mu.Unlock()
	return v
}

// RemoteAddr returns the peer's address: for TCP a *net.TCPAddr, on the
// netpoll engine a new one at each call, whose IP is shared with other
// connections' (it must not be modified).
func (c *Conn) RemoteAddr() net.Addr {
	if c.nc != nil {
		return tcpAddrOf(c.nc.RemoteAddr())
	}
	return c.ext.sc.RemoteAddr()
}

// SetMaxPending sets the cap on carried-over unconsumed input (for
// example the handshake size while upgrading, the largest frame after);
// n <= 0 restores [Options.MaxPending]. It applies from the next OnData.
func (c *Conn) SetMaxPending(n int) {
	if n <= 0 {
		n = c.p.o.MaxPending
	}
	c.mu.Lock()
	c.maxPending = pendingCap(n)
	c.mu.Unlock()
}

// SetMaxBuffered sets the outbound limit in bytes (the maximum
// backpressure; see [frame.Queue.SetLimit]); 0 removes it. Bytes already
// queued stay queued.
func (c *Conn) SetMaxBuffered(n int) {
	c.mu.Lock()
	c.q.SetLimit(n)
	c.mu.Unlock()
}

// KeepWritableAfterEOF(true) asks that when the peer closes its sending
// side (a TCP half-close), the connection stay writable until it is closed
// here, so that an answer owed to input already received (the response to
// a request still being checked, say) can be written: [Conn.PeerEOF] then
// reports true, no more input comes, and [Conn.CloseAfterFlush] closes as
// soon as the queue is written. false restores the default, where the
// peer's half-close closes the connection. Only the netpoll engine keeps
// the connection; on the Serve engine a half-close always ends it.
func (c *Conn) KeepWritableAfterEOF(on bool) {
	c.mu.Lock()
	c.put(fHoldEOF, on)
	c.mu.Unlock()
}

// PeerEOF reports whether the peer has half-closed a connection kept
// writable by [Conn.KeepWritableAfterEOF].
func (c *Conn) PeerEOF() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.has(fPeerEOF)
}

// Buffered returns the bytes queued and not yet handed to the kernel,
// including those of a write in progress. With TLS it counts what was
// queued (the plaintext), not the records' overhead.
func (c *Conn) Buffered() int {
	c.mu.Lock()
	n := c.bufferedLocked()
	c.mu.Unlock()
	return n
}

// Write queues a copy of a followed by b (a frame header and its payload,
// say; either may be empty); neither is retained. It does not flush: see
// [Conn.Flush]. force ignores the outbound limit (for control frames). It
// returns [ErrClosed] once the connection is closed or closing, and
// [ErrBackpressure] (nothing queued) when the bytes do not fit the limit. A
// message larger than the limit is still accepted by an empty queue.
func (c *Conn) Write(a, b []byte, force bool) error {
	c.mu.Lock()
	if c.has(fClosed) || c.has(fCloseAfter) {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.tls() != nil && !c.tlsAdmitLocked(len(a)+len(b), force) {
		c.mu.Unlock()
		return ErrBackpressure
	}
	err := c.q.Append(a, b, force)
	c.mu.Unlock()
	if err != nil {
		return ErrBackpressure
	}
	return nil
}

// WriteShared queues b without copying it: b is retained until written and
// must not be modified meanwhile (an encode-once frame queued on many
// connections). Otherwise as [Conn.Write].
func (c *Conn) WriteShared(b []byte, force bool) error {
	c.mu.Lock()
	if c.has(fClosed) || c.has(fCloseAfter) {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.tls() != nil && !c.tlsAdmitLocked(len(b), force) {
		c.mu.Unlock()
		return ErrBackpressure
	}
	err := c.q.AppendShared(b, force)
	c.mu.Unlock()
	if err != nil {
		return ErrBackpressure
	}
	return nil
}

// Flush starts writing what is queued and returns at once, without a
// system call: it hands the connection to a flusher. On the netpoll engine
// that is one of a few process-wide flusher goroutines, which write what
// the socket takes without blocking and leave the rest to the Poller's
// write-readiness loop; on the Serve engine it is the connection's own
// flusher goroutine. Frames queued before the flusher gets to the
// connection go out in the same vectored write, so flushing after every
// frame of a broadcast costs little.
// While OnOpen or OnData runs for the connection, Flush defers to the flush
// made when the handler returns.
func (c *Conn) Flush() { c.flush(false) }

// FlushNow is Flush done on the caller's goroutine: on the netpoll engine
// it writes what the socket takes at once, without blocking (the rest waits
// for write readiness, as after Flush), which saves handing the connection
// to a flusher when the caller is about to wait anyway (a handler that
// answers its peer). A flush already under way, or an OnOpen or OnData
// running for the connection, takes the bytes instead, as for Flush. On
// the Serve engine it is Flush.
func (c *Conn) FlushNow() { c.flush(true) }

// flush starts the flush of Flush (now: that of FlushNow) unless there is
// nothing to write or a flush or a handler will write it.
func (c *Conn) flush(now bool) {
	c.mu.Lock()
	if c.has(fClosed) || c.has(fFlushing) || c.has(fDispatching) || c.outLenLocked() == 0 {
		c.mu.Unlock()
		return
	}
	c.set(fFlushing)
	if now || c.nc == nil {
		c.flushLocked() // netpoll: written here; Serve: its flusher goroutine
		return
	}
	c.mu.Unlock()
	flushers.push(c)
}

// flushLocked runs or starts the flush that the caller made c.flushing
// for; called with c.mu held, it returns with c.mu released.
func (c *Conn) flushLocked() {
	if c.nc != nil {
		c.directFlushLocked()
		return
	}
	c.kickFlusherLocked()
}

// Wake schedules an OnData call with the pending input even though no new
// bytes arrived (for example once a blocking step the handler waited for is
// done). During a dispatch it asks for one more call when the current one
// returns. It does nothing on a closed connection.
func (c *Conn) Wake() {
	c.mu.Lock()
	if c.has(fClosed) {
		c.mu.Unlock()
		return
	}
	if c.has(fDispatching) {
		c.set(fWakeAgain)
		c.mu.Unlock()
		return
	}
	c.set(fDispatching)
	c.mu.Unlock()
	workers.run(c.wakeTask)
}

func (c *Conn) wakeTask() {
	c.mu.Lock()
	buf := c.in.bytes()
	c.mu.Unlock()
	c.dispatch(buf, true, false)
}

// Close closes the connection at once: queued bytes are dropped and every
// later write fails with [ErrClosed]. err is given to OnClose (nil is
// fine). It returns [ErrClosed] if the connection was already closed.
func (c *Conn) Close(err error) error {
	c.mu.Lock()
	if c.has(fClosed) {
		c.mu.Unlock()
		return ErrClosed
	}
	c.markClosedLocked(err)
	c.mu.Unlock()
	c.closeTransport()
	return nil
}

// CloseAfterFlush closes the connection once everything queued has been
// written: it refuses further writes ([ErrClosed]), flushes, then shuts
// down the write side (the peer reads EOF after the last byte) and closes
// when the peer closes too, or at timeout, whichever is first (timeout <= 0
// means [DefaultCloseTimeout]). Input that arrives meanwhile is still given
// to OnData. OnClose gets nil, or [ErrFlushTimeout] if queued bytes were
// still unsent at the timeout. Use it after queueing a close frame or a
// final HTTP response.
func (c *Conn) CloseAfterFlush(timeout time.Duration) {
	if timeout <= 0 {
		timeout = DefaultCloseTimeout
	}
	c.mu.Lock()
	if c.has(fClosed) || c.has(fCloseAfter) {
		c.mu.Unlock()
		return
	}
	c.set(fCloseAfter)
	c.extState().timer = time.AfterFunc(timeout, c.closeTimeout)
	switch {
	case c.has(fFlushing) || c.has(fDispatching):
		// The flush in progress, or the one after the handler returns,
		// finishes the job.
		c.mu.Unlock()
	case c.outLenLocked() > 0:
		c.set(fFlushing)
		c.flushLocked()
	default:
		c.lingerLocked()
	}
}

func (c *Conn) closeTimeout() {
	c.mu.Lock()
	if c.has(fClosed) {
		c.mu.Unlock()
		return
	}
	var err error
	if c.outLenLocked() > 0 {
		err = ErrFlushTimeout
	}
	c.markClosedLocked(err)
	c.mu.Unlock()
	c.closeTransport()
}

// drainedLocked is called by a flusher that emptied the queue, with c.mu
// held; it returns with c.mu released.
func (c *Conn) drainedLocked() {
	c.clear(fFlushing)
	if c.has(fCloseAfter) && !c.has(fLingering) && !c.has(fClosed) {
		c.lingerLocked()
		return
	}
	c.mu.Unlock()
}

// lingerLocked shuts down the write side of a CloseAfterFlush connection
// whose queue is empty; called with c.mu held, returns with it released.
func (c *Conn) lingerLocked() {
	if c.tlsNotifyLocked() {
		return // the flush of the alert comes back here
	}
	c.set(fLingering)
	if c.nc != nil {
		if c.has(fPeerEOF) {
			// The peer's side is closed already: nothing to wait for.
			c.markClosedLocked(nil)
			c.mu.Unlock()
			c.closeTransport()
			return
		}
		err := shutdownWrite(int(c.fd)) // fd is open: !closed, and we hold mu
		if err == nil {
			c.mu.Unlock()
			return
		}
		c.markClosedLocked(nil)
		c.mu.Unlock()
		c.closeTransport()
		return
	}
	c.mu.Unlock()
	if cw, ok := c.ext.sc.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		return
	}
	_ = c.Close(nil)
}

// markClosedLocked records the close; called with c.mu held, by the first
// closer only. The caller then closes the transport (outside mu).
func (c *Conn) markClosedLocked(err error) {
	c.set(fClosed)
	c.setCauseLocked(err)
	if !c.has(fWriting) {
		// No flusher holds slices of the queue: drop it now. Otherwise the
		// flusher drops it when its write returns.
		c.resetOutLocked()
		c.clear(fFlushing)
		c.clear(fArmed)
	}
	if c.ext != nil && c.ext.timer != nil {
		c.ext.timer.Stop()
	}
	if c.ext != nil && c.ext.flushSig != nil {
		select {
		case c.ext.flushSig <- struct{}{}:
		default:
		}
	}
	if c.tls() != nil {
		c.tls().shutdown()
	}
}

func (c *Conn) closeTransport() {
	if c.nc != nil {
		c.closeNetpoll()
		return
	}
	_ = c.ext.sc.Close()
}

// peerClosedLocked records a close that came from the transport (the peer
// closed or reset, or a read failed), if nothing closed c before.
func (c *Conn) peerClosedLocked(err error) {
	if c.has(fClosed) {
		return
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.EOF
		if c.has(fCloseAfter) && c.outLenLocked() == 0 {
			err = nil // the close we asked for
		}
	}
	c.markClosedLocked(err)
	c.set(fPeerClosed)
}

// finishLocked reports whether OnClose is due now (the connection is
// closed, its transport is done and no handler runs), marking it so that
// it is due only once.
func (c *Conn) finishLocked() bool {
	if c.has(fClosed) && c.has(fTransportDone) && !c.has(fDispatching) && !c.has(fFinished) && !c.tlsBusyLocked() {
		c.set(fFinished)
		return true
	}
	return false
}

// fireClose calls OnClose and releases the connection.
func (c *Conn) fireClose() {
	// The flags share a word that writers change under mu (finished is
	// set, no handler runs: opened and tracked change no more).
	c.mu.Lock()
	opened := c.has(fOpened)
	c.mu.Unlock()
	if opened {
		c.p.h.OnClose(c, c.cause())
	}
	c.mu.Lock()
	putBuffer(c.in)
	putBuffer(c.inq)
	c.in, c.inq = nil, nil
	tracked := c.has(fTracked)
	c.mu.Unlock()
	if c.tls() != nil {
		c.tls().release()
	}
	if tracked {
		c.p.unregister(c)
	}
}

// open calls OnOpen (as a dispatch, so that OnClose cannot overtake it)
// and reports false if the connection was closed before it could open.
func (c *Conn) open() bool {
	c.mu.Lock()
	if c.has(fClosed) {
		c.mu.Unlock()
		return false
	}
	c.set(fOpened)
	c.set(fDispatching)
	c.mu.Unlock()
	c.dispatch(nil, false, true)
	return true
}

// deliver hands newly read bytes to the handler. in belongs to the
// transport and is valid only during the call.
func (c *Conn) deliver(in []byte) {
	if len(in) == 0 {
		return
	}
	c.mu.Lock()
	if c.has(fClosed) && !c.tlsLateLocked() {
		c.mu.Unlock()
		return
	}
	if c.has(fDispatching) {
		// A Wake's OnData is running: park the bytes for its next round.
		if c.inq.used()+len(in) > int(c.maxPending) {
			if c.has(fClosed) {
				c.mu.Unlock()
				return
			}
			c.markClosedLocked(ErrPendingLimit)
			c.mu.Unlock()
			c.closeTransport()
			return
		}
		n := c.inq.used()
		c.inq = appendBuffer(c.inq, n, in)
		c.inq.n = n + len(in)
		c.mu.Unlock()
		return
	}
	c.set(fDispatching)
	n := c.in.used()
	if n == 0 {
		c.mu.Unlock()
		c.dispatch(in, false, false) // zero-copy: nothing carried over
		return
	}
	c.in = appendBuffer(c.in, n, in)
	c.in.n = n + len(in)
	buf := c.in.bytes()
	c.mu.Unlock()
	c.dispatch(buf, true, false)
}

// appendBuffer copies p after the first n bytes of b, moving to a larger
// pooled buffer when needed, and returns the buffer to use.
func appendBuffer(b *buffer, n int, p []byte) *buffer {
	if b == nil || len(b.b)-n < len(p) {
		nb := getBuffer(n + len(p))
		if b != nil {
			copy(nb.b, b.b[:n])
			putBuffer(b)
		}
		b = nb
	}
	copy(b.b[n:], p)
	return b
}

// dispatch runs the handler for a connection whose c.dispatching the
// caller set: OnOpen if open, else OnData(buf). It keeps calling OnData
// while input arrived or Wake was called meanwhile, keeps the unconsumed
// tail, then flushes what the handler queued and calls OnClose if the
// connection closed meanwhile. fromPend says buf is c.in's bytes;
// otherwise it is the transport's, valid only during the call.
func (c *Conn) dispatch(buf []byte, fromPend, open bool) {
	h := c.p.h
	closeNow, drain := false, false
	for {
		if open {
			h.OnOpen(c)
			open = false
			c.mu.Lock()
		} else {
			n := h.OnData(c, buf)
			c.mu.Lock()
			// Input parked while a Wake's OnData ran was sent before the
			// peer closed: it is still given to OnData (as it would have
			// been without the Wake), after the tail of this call is kept.
			drain = c.has(fClosed) && c.has(fPeerClosed) && c.inq.used() > 0
			if !c.has(fClosed) || drain {
				switch rest := len(buf) - n; {
				case n < 0 || rest < 0:
					if !c.has(fClosed) {
						c.markClosedLocked(ErrBadConsume)
						closeNow = true
					}
					drain = false
				case rest > int(c.maxPending):
					if !c.has(fClosed) {
						c.markClosedLocked(ErrPendingLimit)
						closeNow = true
					}
					drain = false
				default:
					c.keepLocked(buf[n:], fromPend)
				}
			}
		}
		if c.has(fClosed) && !drain {
			break
		}
		if q := c.inq.used(); q > 0 {
			n := c.in.used()
			c.in = appendBuffer(c.in, n, c.inq.bytes())
			c.in.n = n + q
			putBuffer(c.inq)
			c.inq = nil
		} else if !c.has(fWakeAgain) {
			break
		}
		c.clear(fWakeAgain)
		buf, fromPend = c.in.bytes(), true
		c.mu.Unlock()
	}
	c.clear(fDispatching)
	c.clear(fWakeAgain)
	if c.has(fClosed) {
		putBuffer(c.in)
		putBuffer(c.inq)
		c.in, c.inq = nil, nil
	}
	fire := c.finishLocked()
	switch {
	case c.has(fClosed) || c.has(fFlushing):
		c.mu.Unlock()
	case c.outLenLocked() > 0:
		c.set(fFlushing)
		c.flushLocked()
	case c.has(fCloseAfter) && !c.has(fLingering):
		c.lingerLocked()
	default:
		c.mu.Unlock()
	}
	if closeNow {
		c.closeTransport()
	}
	if fire {
		c.fireClose()
	}
}

// keepLocked keeps rest, the unconsumed tail of the input OnData saw, as
// the carried-over input. fromPend says rest lies in c.in.
func (c *Conn) keepLocked(rest []byte, fromPend bool) {
	switch {
	case len(rest) == 0:
		putBuffer(c.in)
		c.in = nil
	case fromPend:
		c.in.n = copy(c.in.b, rest)
	default:
		// c.in is nil: a dispatch of transport bytes starts with nothing
		// carried over.
		c.in = getBuffer(len(rest))
		c.in.n = copy(c.in.b, rest)
	}
}
