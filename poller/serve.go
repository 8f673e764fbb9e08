package poller

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"
)

// Serve serves the connections of ln, which may be any [net.Listener] (a
// [crypto/tls] listener for wss: netpoll has no TLS), with one reader
// goroutine per connection (calling OnOpen, then OnData for what it reads)
// and one flusher goroutine per connection that writes the queue with
// blocking writes, started by a flush and gone after a second with nothing
// to write. The [Conn] type and the
// [Handler] contract are those of [Listen]. The Poller owns ln from now
// on and closes it in [Poller.StopAccepting].
func Serve(ln net.Listener, h Handler, o Options) (*Poller, error) {
	r, err := o.resolve()
	if err != nil {
		return nil, err
	}
	if ln == nil || h == nil {
		return nil, fmt.Errorf("%w: nil listener or handler", ErrInvalidOptions)
	}
	if r.TLS != nil {
		ln = tls.NewListener(ln, r.TLS)
	}
	p := newPoller(h, r)
	p.sln = ln
	p.addr = ln.Addr()
	p.gor.Add(1)
	go p.acceptLoop()
	return p, nil
}

func (p *Poller) acceptLoop() {
	defer p.gor.Done()
	defer close(p.serveDone)
	var delay time.Duration
	for {
		sc, err := p.sln.Accept()
		if err != nil {
			select {
			case <-p.stopping:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors, or a transient failure: back off.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			if p.log != nil {
				p.log.Warn("poller: accept failed; retrying", "err", err, "delay", delay)
			}
			t := time.NewTimer(delay)
			select {
			case <-p.stopping:
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		delay = 0
		c := newConn(p)
		c.ext = &connExt{sc: sc}
		if !p.register(c) {
			_ = sc.Close()
			continue
		}
		p.gor.Add(1)
		go c.readLoop()
	}
}

// readLoop is the reader goroutine of a Serve connection.
func (c *Conn) readLoop() {
	defer c.p.gor.Done()
	c.mu.Lock()
	opened := c.has(fOpened) // Adopt opens c itself
	c.mu.Unlock()
	if c.handshakeTLS() && (opened || c.open()) {
		rb := getBuffer(c.p.o.ReadBufferSize)
		for {
			n, err := c.ext.sc.Read(rb.b)
			if n > 0 {
				c.deliver(rb.b[:n])
			}
			if err != nil {
				c.mu.Lock()
				first := !c.has(fClosed)
				c.peerClosedLocked(err)
				c.mu.Unlock()
				if first {
					_ = c.ext.sc.Close()
				}
				break
			}
		}
		putBuffer(rb)
	} else {
		_ = c.ext.sc.Close()
	}
	c.mu.Lock()
	c.set(fTransportDone)
	fire := c.finishLocked()
	c.mu.Unlock()
	if fire {
		c.fireClose()
	}
}

// handshakeTLS completes the handshake of a connection of a listener that
// Serve wrapped for Options.TLS, within Options.TLSHandshakeTimeout; it
// reports false (the connection is closed, and never opened) if it failed.
func (c *Conn) handshakeTLS() bool {
	tc, ok := c.ext.sc.(*tls.Conn)
	if !ok || c.p.o.TLS == nil {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.p.o.TLSHandshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err == nil {
		return true
	}
	if errors.Is(err, context.DeadlineExceeded) {
		err = ErrTLSHandshakeTimeout
	}
	if c.p.log != nil {
		c.p.log.Debug("poller: TLS handshake failed", "remote", c.ext.sc.RemoteAddr().String(), "err", err)
	}
	_ = c.Close(&opError{op: "tls handshake", err: err})
	return false
}

// kickFlusherLocked wakes (or starts) the flusher goroutine of a Serve
// connection for the flush the caller made c.flushing for; called with
// c.mu held, it returns with c.mu released.
func (c *Conn) kickFlusherLocked() {
	if c.ext.flushSig == nil {
		c.ext.flushSig = make(chan struct{}, 1)
	}
	if !c.ext.flusherUp {
		c.ext.flusherUp = true
		c.p.gor.Add(1)
		go c.flushLoop()
	}
	c.mu.Unlock()
	select {
	case c.ext.flushSig <- struct{}{}:
	default:
	}
}

// flusherIdle is how long a Serve connection's flusher goroutine waits for
// more work before it exits (the next flush starts a new one), so that an
// idle connection holds only its reader goroutine.
const flusherIdle = time.Second

// flushLoop is the flusher goroutine of a Serve connection: it writes the
// queue with blocking writes whenever flushing is set, and exits once the
// connection is closed or it has been idle for flusherIdle.
func (c *Conn) flushLoop() {
	defer c.p.gor.Done()
	var bufs [][]byte
	var nb, base net.Buffers
	idle := time.NewTimer(flusherIdle)
	defer idle.Stop()
	for {
		select {
		case <-c.ext.flushSig:
		case <-idle.C:
			c.mu.Lock()
			if !c.has(fFlushing) && !c.has(fClosed) {
				c.ext.flusherUp = false
				c.mu.Unlock()
				return
			}
			c.mu.Unlock()
		}
		c.mu.Lock()
		for {
			if c.has(fClosed) {
				c.ext.flusherUp = false
				c.mu.Unlock()
				return
			}
			if !c.has(fFlushing) {
				c.mu.Unlock()
				break
			}
			if c.q.Len() == 0 {
				c.drainedLocked()
				break
			}
			bufs = c.q.Buffers(bufs[:0], 1024)
			c.set(fWriting)
			c.mu.Unlock()
			if cap(base) < len(bufs) {
				base = make(net.Buffers, len(bufs))
			}
			nb = base[:copy(base[:len(bufs)], bufs)]
			n, err := nb.WriteTo(c.ext.sc)
			clear(base[:len(bufs)])
			clear(bufs)
			c.mu.Lock()
			c.clear(fWriting)
			if c.has(fClosed) {
				c.q.Reset()
				c.clear(fFlushing)
				c.ext.flusherUp = false
				c.mu.Unlock()
				return
			}
			c.q.Advance(int(n))
			if err != nil {
				c.markClosedLocked(&opError{op: "write", err: err})
				c.ext.flusherUp = false
				c.mu.Unlock()
				_ = c.ext.sc.Close()
				if c.p.log != nil {
					c.p.log.Debug("poller: write failed", "remote", c.ext.sc.RemoteAddr().String(), "err", err)
				}
				return
			}
		}
		idle.Reset(flusherIdle)
	}
}
