//go:build linux

package poller

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/cloudwego/netpoll"
)

// Listen binds network ("tcp", "tcp4" or "tcp6") and addr ("127.0.0.1:0"
// works: [Poller.Addr] reports the real port) and serves the connections
// with cloudwego/netpoll; it returns once the listener is registered with
// the event loop. ctx is used while binding (address resolution) only. The
// first Listen in a process configures netpoll (see [Options]).
//
// How the engine uses netpoll, from its source (v0.7.2):
//   - OnPrepare creates the [Conn] and adds a close callback. netpoll runs
//     close callbacks newest first, and its own, which closes the socket and
//     frees its buffers, was added first: so ours always runs before the
//     descriptor is closed. It marks the Conn closed under the Conn's mutex
//     and then waits for any write in progress (the write lock), which makes
//     "no write after close", and no write to a reused descriptor number,
//     airtight.
//   - OnConnect calls OnOpen; OnRequest reads everything netpoll buffered
//     (leaving bytes there makes netpoll call again at once, in a loop) and
//     releases it.
//   - Writes never use netpoll's Writer (its Flush blocks until the peer has
//     read everything, and writing after close panics).
func Listen(ctx context.Context, network, addr string, h Handler, o Options) (*Poller, error) {
	r, err := o.resolve()
	if err != nil {
		return nil, err
	}
	if h == nil {
		return nil, fmt.Errorf("%w: nil handler", ErrInvalidOptions)
	}
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("%w: network %q (want tcp, tcp4 or tcp6)", ErrInvalidOptions, network)
	}
	if err := configureNetpoll(r); err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	nl, err := lc.Listen(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return serveNetpoll(nl, h, r)
}

// ListenOn serves the connections of ln, which the caller bound (a socket
// from systemd's socket activation, say): with the netpoll engine, as
// [Listen], when ln is a [*net.TCPListener] on Linux, and otherwise as
// [Serve]. The Poller owns ln from now on (the netpoll engine keeps a
// duplicate of its descriptor and closes ln at once).
func ListenOn(ln net.Listener, h Handler, o Options) (*Poller, error) {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return Serve(ln, h, o)
	}
	r, err := o.resolve()
	if err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errNilHandler
	}
	if err := configureNetpoll(r); err != nil {
		return nil, err
	}
	return serveNetpoll(tl, h, r)
}

// serveNetpoll serves nl (which it closes, keeping a duplicate of its
// descriptor) with the netpoll engine.
func serveNetpoll(nl net.Listener, h Handler, r resolved) (*Poller, error) {
	ln, err := newListener(nl)
	if err != nil {
		return nil, err
	}
	p := newPoller(h, r)
	p.addr = ln.addr
	ln.p = p
	wp, err := newWpoll(p)
	if err != nil {
		ln.close()
		return nil, err
	}
	evl, err := netpoll.NewEventLoop(p.onRequest,
		netpoll.WithOnPrepare(p.onPrepare),
		netpoll.WithOnConnect(p.onConnect))
	if err != nil {
		wp.stop()
		ln.close()
		return nil, err
	}
	eng := &npEngine{p: p, ln: ln, wp: wp, evl: evl}
	p.eng = eng
	p.gor.Add(2)
	go wp.loop()
	serveErr := make(chan error, 1)
	go func() {
		defer p.gor.Done()
		serveErr <- evl.Serve(ln)
		close(p.serveDone)
	}()
	select {
	case <-ln.registered:
		return p, nil
	case err := <-serveErr:
		// netpoll could not register the listener.
		wp.stop()
		ln.close()
		p.gor.Wait()
		if err == nil {
			err = errors.New("poller: netpoll stopped serving at once")
		}
		return nil, err
	}
}

// npEngine is the listener side of the netpoll engine.
type npEngine struct {
	p   *Poller
	ln  *listener
	wp  *wpoll
	evl netpoll.EventLoop
}

// stopAccepting shuts the listening socket down while its descriptor is
// still open: netpoll sees EPOLLHUP, deregisters the listener and quits
// Serve. Only then is the descriptor closed, so that netpoll never touches
// a closed (and possibly reused) descriptor number.
func (e *npEngine) stopAccepting() {
	if e.ln == nil { // a Poller of New
		return
	}
	e.ln.stop()
	<-e.p.serveDone
	e.ln.close()
}

func (e *npEngine) close() {
	// Serve has returned (the listener is detached and closed); Shutdown
	// drops netpoll's reference to the server. Every connection is closed.
	if e.evl != nil {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = e.evl.Shutdown(ctx)
	}
	e.wp.stop()
}

// --- netpoll callbacks ---

func (p *Poller) onPrepare(nc netpoll.Connection) context.Context {
	// An IPv4 peer's address is the Conn, made by Accept (see connAddr).
	ca, byAddr := nc.RemoteAddr().(*connAddr)
	c := (*Conn)(ca)
	if !byAddr {
		c = newConn(p)
	}
	c.nc = nc
	f, ok := nc.(interface{ Fd() int })
	if ok {
		c.fd = int32(f.Fd())
	}
	if !ok {
		// Never with netpoll v0.7.2; without a descriptor we cannot write.
		c.fd = -1
		c.set(fClosed)
		c.setCauseLocked(errors.New("poller: netpoll connection without a descriptor"))
	} else if !p.register(c) {
		// The Poller is closing: OnConnect closes it without OnOpen.
		c.set(fClosed)
		c.setCauseLocked(ErrPollerClosed)
	} else if p.o.TLS != nil {
		c.extState().tls = newTLSLayer(c, p.o.TLS, p.o.TLSHandshakeTimeout)
		c.tlsOn = true
	}
	if byAddr {
		// The address leads back to c: no closure to keep per connection.
		_ = nc.AddCloseCallback(onNetpollClosed)
	} else {
		_ = nc.AddCloseCallback(c.onNetpollClose)
	}
	return (*connCtx)(c)
}

func (p *Poller) onConnect(ctx context.Context, nc netpoll.Connection) context.Context {
	c := connOf(ctx)
	if c == nil {
		return ctx
	}
	if c.tls() != nil {
		// OnOpen comes when the handshake is done; a connection closed
		// before is closed here as an unopened one is below.
		c.mu.Lock()
		closed := c.has(fClosed)
		c.mu.Unlock()
		if closed {
			_ = nc.Close()
		}
		return ctx
	}
	if !c.open() {
		_ = nc.Close()
	}
	return ctx
}

func (p *Poller) onRequest(ctx context.Context, nc netpoll.Connection) error {
	c := connOf(ctx)
	r := nc.Reader()
	n := r.Len()
	if n > 0 {
		if in, err := r.Next(n); err == nil && c != nil {
			if c.tls() != nil {
				c.deliverTLS(in)
			} else {
				c.deliver(in)
			}
		}
	}
	if c != nil && c.onLoop && !c.released { // only this goroutine writes onLoop
		// See inlineRelease: the nodes are released by a later read.
		c.unreleased = uint16(min(int(c.unreleased)+min(n, inlineRelease), 2*inlineRelease))
		return nil
	}
	if c != nil && c.unreleased > 0 {
		c.released = c.unreleased >= inlineRelease
		c.unreleased = 0
	}
	return r.Release()
}

// onNetpollClosed is onNetpollClose for a connection whose address is its
// Conn (a connAddr).
func onNetpollClosed(nc netpoll.Connection) error {
	return (*Conn)(nc.RemoteAddr().(*connAddr)).onNetpollClose(nc)
}

// onNetpollClose is the connection's netpoll close callback. It runs once,
// never during OnRequest, and before netpoll closes the descriptor.
func (c *Conn) onNetpollClose(netpoll.Connection) error {
	c.mu.Lock()
	if c.has(fHoldEOF) && !c.has(fClosed) && c.keepAfterEOFLocked() {
		c.mu.Unlock()
		// Wait out a write on the old descriptor, which netpoll closes when
		// we return.
		c.wmu.Lock()
		c.wmu.Unlock() //nolint:staticcheck // an empty critical section is the point
		return nil
	}
	c.peerClosedLocked(nil)
	c.set(fTransportDone)
	fire := c.finishLocked()
	c.mu.Unlock()
	// Wait out a direct write that started before closed was set: the
	// descriptor is closed when we return.
	c.wmu.Lock()
	c.wmu.Unlock() //nolint:staticcheck // an empty critical section is the point
	if fire {
		// Not inline: this may be a poll loop or the goroutine of Close.
		workers.run(c.fireClose)
	}
	return nil
}

// keepAfterEOFLocked keeps a connection whose peer half-closed writable (see
// KeepWritableAfterEOF): writes go to a duplicate of its descriptor, which
// closeKept closes. Called with c.mu held, from netpoll's close callback.
func (c *Conn) keepAfterEOFLocked() bool {
	r, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(c.fd), syscall.F_DUPFD_CLOEXEC, 0)
	if e != 0 {
		return false
	}
	c.fd = int32(r)
	c.set(fPeerEOF)
	c.clear(fWreg) // registered, if at all, under the old descriptor number
	if c.has(fArmed) {
		if err := c.armLocked(); err != nil {
			c.clear(fArmed)
		}
	}
	return true
}

// closeKept closes the duplicate descriptor of a kept connection (which
// the caller marked closed) in place of netpoll, and schedules OnClose. It
// reports false for a connection that was not kept.
func (c *Conn) closeKept() bool {
	c.mu.Lock()
	if !c.has(fPeerEOF) || c.has(fTransportDone) {
		kept := c.has(fPeerEOF)
		c.mu.Unlock()
		return kept
	}
	c.set(fTransportDone)
	fd := int(c.fd)
	fire := c.finishLocked()
	c.mu.Unlock()
	c.wmu.Lock() // a write in progress has ended; none starts: c.closed
	syscall.Close(fd)
	c.wmu.Unlock()
	if fire {
		workers.run(c.fireClose)
	}
	return true
}

// --- the direct write path ---

// iovMax is the most iovecs one sendmsg takes (IOV_MAX on Linux).
const iovMax = 1024

type scratch struct {
	bufs [][]byte
	iov  []syscall.Iovec
}

var scratchPool = sync.Pool{New: func() any {
	return &scratch{bufs: make([][]byte, 0, 16), iov: make([]syscall.Iovec, 0, 16)}
}}

// sendmsg writes s.bufs to fd without blocking (sendmsg(2), or send(2)
// for a single buffer). n is what the kernel took
// (0 on error), total what was offered.
func (s *scratch) sendmsg(fd int) (n, total int, err error) {
	iov := s.iov[:0]
	for _, b := range s.bufs {
		if len(b) == 0 {
			continue
		}
		v := syscall.Iovec{Base: &b[0]}
		v.SetLen(len(b))
		iov = append(iov, v)
		total += len(b)
	}
	s.iov = iov
	var r uintptr
	var e syscall.Errno
	switch len(iov) {
	case 0:
		return 0, 0, nil
	case 1:
		// One buffer (a lone reply, say): send(2) spares the kernel the
		// message header and the iovec array.
		r, _, e = syscall.Syscall6(syscall.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(iov[0].Base)), uintptr(total),
			syscall.MSG_NOSIGNAL|syscall.MSG_DONTWAIT, 0, 0)
	default:
		var msg syscall.Msghdr
		msg.Iov = &iov[0]
		setLen(&msg.Iovlen, len(iov))
		r, _, e = syscall.Syscall(syscall.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)),
			syscall.MSG_NOSIGNAL|syscall.MSG_DONTWAIT)
	}
	if e != 0 {
		return 0, total, e
	}
	return int(r), total, nil
}

// setLen stores n in Msghdr.Iovlen, whose type varies by architecture.
func setLen[T uint32 | uint64](p *T, n int) { *p = T(n) }

// release drops the references to queued bytes and returns s to the pool.
func (s *scratch) release() {
	clear(s.bufs)
	clear(s.iov)
	s.bufs, s.iov = s.bufs[:0], s.iov[:0]
	scratchPool.Put(s)
}

// directFlushLocked writes the queue straight to the socket until it is
// empty or the socket is full; then it arms write readiness and leaves the
// rest to the write-readiness loop. The caller set c.flushing and holds
// c.mu; it returns with c.mu released.
func (c *Conn) directFlushLocked() {
	s := scratchPool.Get().(*scratch)
	var failed error
	for {
		if c.has(fClosed) {
			c.clear(fFlushing)
			break
		}
		q := &c.q
		if c.tls() != nil {
			// TLS: the records go out; plaintext is sealed when they are
			// all written (and only once the handshake is done).
			q = &c.tls().out
			if q.Len() == 0 && c.q.Len() > 0 && c.has(fOpened) {
				if failed = c.sealLocked(s); failed != nil {
					break
				}
				continue
			}
		}
		if q.Len() == 0 {
			s.release()
			c.drainedLocked()
			return
		}
		s.bufs = q.Buffers(s.bufs[:0], iovMax)
		c.set(fWriting)
		// Take the write lock before letting go of mu: a close callback that
		// gets mu after us then waits for this write before returning.
		fd := int(c.fd) // kept connections switch descriptors under mu
		c.wmu.Lock()
		c.mu.Unlock()
		n, total, err := s.sendmsg(fd)
		c.wmu.Unlock()
		c.mu.Lock()
		c.clear(fWriting)
		if c.has(fClosed) {
			c.resetOutLocked()
			c.clear(fFlushing)
			break
		}
		q.Advance(n)
		if q != &c.q {
			c.tls().outPlain = max(0, c.tls().outPlain-n)
			if q.Len() == 0 {
				c.tls().outPlain = 0
			}
		}
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN || (err == nil && n < total) {
			if err = c.armLocked(); err != nil {
				failed = &opError{op: "epoll", err: err}
				c.markClosedLocked(failed)
			}
			break
		}
		if err != nil {
			failed = &opError{op: "write", err: err}
			c.markClosedLocked(failed)
			break
		}
	}
	c.mu.Unlock()
	s.release()
	if failed != nil {
		if c.p.log != nil {
			c.p.log.Debug("poller: write failed", "remote", c.RemoteAddr().String(), "err", failed)
		}
		c.closeTransport()
	}
}

// armLocked asks the write-readiness loop to resume this flush when the
// socket can take more. Called with c.mu held and !c.closed, so c.fd is
// open and is this connection's.
func (c *Conn) armLocked() error {
	ev := syscall.EpollEvent{Events: syscall.EPOLLOUT | syscall.EPOLLONESHOT, Fd: int32(c.slot), Pad: int32(c.gen)}
	wp := c.p.eng.(*npEngine).wp
	op := syscall.EPOLL_CTL_ADD
	if c.has(fWreg) {
		op = syscall.EPOLL_CTL_MOD
	}
	err := syscall.EpollCtl(wp.epfd, op, int(c.fd), &ev)
	switch err {
	case syscall.EEXIST:
		err = syscall.EpollCtl(wp.epfd, syscall.EPOLL_CTL_MOD, int(c.fd), &ev)
	case syscall.ENOENT:
		err = syscall.EpollCtl(wp.epfd, syscall.EPOLL_CTL_ADD, int(c.fd), &ev)
	}
	if err != nil {
		return err
	}
	c.set(fWreg | fArmed)
	return nil
}

// onWritable hands an armed flush (c.flushing is still set) back to the
// flushers, so that the write-readiness loop only dispatches.
func (c *Conn) onWritable() {
	c.mu.Lock()
	if !c.has(fArmed) || c.has(fClosed) {
		c.mu.Unlock()
		return
	}
	c.clear(fArmed)
	c.mu.Unlock()
	flushers.push(c)
}

// sealLocked encrypts queued plaintext into the TLS output queue for the
// flush in progress. Called with c.mu held and c.writing clear; returns
// with c.mu held. A non-nil error closed the connection.
func (c *Conn) sealLocked(s *scratch) error {
	s.bufs = c.q.Buffers(s.bufs[:0], iovMax)
	c.set(fWriting)
	c.mu.Unlock()
	n, err := c.tls().seal(s.bufs)
	clear(s.bufs)
	c.mu.Lock()
	c.clear(fWriting)
	if c.has(fClosed) {
		c.resetOutLocked()
		c.clear(fFlushing)
		return nil
	}
	n = min(n, c.q.Len())
	c.q.Advance(n)
	c.tls().outPlain += n
	if err != nil {
		e := &opError{op: "tls write", err: err}
		c.markClosedLocked(e)
		return e
	}
	return nil
}

// writeAlertLocked writes the TLS records queued (an alert crypto/tls
// queued for a bad record) if the socket takes them at once, before the
// connection closes. Called with c.mu held and !c.closed.
func (c *Conn) writeAlertLocked() {
	if c.tls() == nil || c.has(fWriting) || c.tls().out.Len() == 0 {
		return
	}
	s := scratchPool.Get().(*scratch)
	s.bufs = c.tls().out.Buffers(s.bufs[:0], iovMax)
	c.wmu.Lock()
	_, _, _ = s.sendmsg(int(c.fd))
	c.wmu.Unlock()
	s.release()
}

func shutdownWrite(fd int) error { return syscall.Shutdown(fd, syscall.SHUT_WR) }

// --- the write-readiness loop ---

// wpoll is a Poller's own epoll instance for write readiness: a connection
// whose socket is full is registered (EPOLLOUT, one-shot) with its slot and
// generation as the event data, and this loop resumes its flush. An fd
// registration disappears when the descriptor is closed; an event that
// arrives for a closed or replaced connection fails the generation check
// or finds it not armed.
type wpoll struct {
	p    *Poller
	epfd int
	evfd int // eventfd that stops the loop
}

func newWpoll(p *Poller) (*wpoll, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, &opError{op: "epoll_create", err: err}
	}
	r, _, e := syscall.Syscall(syscall.SYS_EVENTFD2, 0, syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if e != 0 {
		syscall.Close(epfd)
		return nil, &opError{op: "eventfd", err: e}
	}
	w := &wpoll{p: p, epfd: epfd, evfd: int(r)}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: -1, Pad: -1} // Pad: wakeGen
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, w.evfd, &ev); err != nil {
		syscall.Close(w.evfd)
		syscall.Close(epfd)
		return nil, &opError{op: "epoll_ctl", err: err}
	}
	return w, nil
}

func (w *wpoll) loop() {
	defer w.p.gor.Done()
	defer func() {
		syscall.Close(w.evfd)
		syscall.Close(w.epfd)
	}()
	var events [128]syscall.EpollEvent
	for {
		n, err := syscall.EpollWait(w.epfd, events[:], -1)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			if w.p.log != nil {
				w.p.log.Error("poller: write-readiness loop stopped", "err", err)
			}
			return
		}
		for i := range events[:n] {
			ev := &events[i]
			if uint32(ev.Pad) == wakeGen {
				return
			}
			if c := w.p.lookup(uint32(ev.Fd), uint32(ev.Pad)); c != nil {
				c.onWritable()
			}
		}
	}
}

// stop ends the loop, which closes the descriptors.
func (w *wpoll) stop() {
	one := [8]byte{1}
	_, _ = syscall.Write(w.evfd, one[:])
}

// --- the listener ---

// errListenerClosed is what Accept returns once stopping; netpoll's server
// recognises "closed" and deregisters the listener.
var errListenerClosed = errors.New("poller: listener closed")

// listener is the netpoll.Listener we give netpoll: it owns a single
// descriptor (a duplicate of the bound socket's, the original closed), so
// closing it really releases the socket, and it closes it once only.
type listener struct {
	p          *Poller
	fd         int
	addr       net.Addr
	stopping   atomic.Bool
	registered chan struct{} // closed when netpoll asks for Fd
	regOnce    sync.Once

	mu     sync.Mutex
	closed bool
	spare  int // a reserved descriptor, given up to shed a connection at EMFILE
}

func newListener(nl net.Listener) (*listener, error) {
	defer nl.Close()
	sc, ok := nl.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("%w: listener %T has no descriptor", ErrInvalidOptions, nl)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	var dupErr error
	if err := rc.Control(func(s uintptr) {
		r, _, e := syscall.Syscall(syscall.SYS_FCNTL, s, syscall.F_DUPFD_CLOEXEC, 0)
		if e != 0 {
			dupErr = e
			return
		}
		fd = int(r)
	}); err != nil {
		return nil, err
	}
	if dupErr != nil {
		return nil, &opError{op: "dup", err: dupErr}
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, &opError{op: "setnonblock", err: err}
	}
	l := &listener{fd: fd, addr: nl.Addr(), registered: make(chan struct{}), spare: openSpare()}
	return l, nil
}

func openSpare() int {
	fd, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	return fd
}

// Fd implements netpoll.Listener; netpoll calls it as it registers us.
func (l *listener) Fd() int {
	l.regOnce.Do(func() { close(l.registered) })
	return l.fd
}

func (l *listener) Addr() net.Addr { return l.addr }

// Close implements net.Listener; it is idempotent.
func (l *listener) Close() error {
	l.close()
	return nil
}

// Accept implements net.Listener for netpoll's server, which calls it on
// its poll loop when the socket is readable: (nil, nil) means "nothing to
// accept now".
func (l *listener) Accept() (net.Conn, error) {
	if l.stopping.Load() {
		return nil, errListenerClosed
	}
	for {
		fd, sa, err := syscall.Accept4(l.fd, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
		switch err {
		case nil:
			// netpoll sets TCP_NODELAY only on its own descriptor type.
			_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
			return &acceptedConn{fd: fd, laddr: l.addr, raddr: peerAddr(l.p, sa)}, nil
		case syscall.EAGAIN:
			return nil, nil
		case syscall.EINTR, syscall.ECONNABORTED:
			continue
		case syscall.EMFILE, syscall.ENFILE:
			l.shed()
			return nil, nil
		default:
			return nil, err
		}
	}
}

// shed accepts and closes one connection with the spare descriptor, so
// that a level-triggered listener at the open-file limit does not spin.
func (l *listener) shed() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.spare < 0 || l.closed {
		return
	}
	syscall.Close(l.spare)
	if fd, _, err := syscall.Accept4(l.fd, syscall.SOCK_CLOEXEC); err == nil {
		syscall.Close(fd)
	}
	l.spare = openSpare()
	if l.p != nil && l.p.log != nil {
		l.p.log.Warn("poller: out of file descriptors; shed a new connection", "addr", l.addr.String())
	}
}

// stop makes the socket refuse new connections and report EPOLLHUP; the
// descriptor stays open until close.
func (l *listener) stop() {
	l.stopping.Store(true)
	l.mu.Lock()
	if !l.closed {
		_ = syscall.Shutdown(l.fd, syscall.SHUT_RD)
	}
	l.mu.Unlock()
}

func (l *listener) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closed = true
	syscall.Close(l.fd)
	if l.spare >= 0 {
		syscall.Close(l.spare)
		l.spare = -1
	}
}

// peerAddr returns the address of a connection p accepted, for netpoll to
// keep: for IPv4 the connection's Conn, made now (see connAddr), for IPv6 a
// *net.TCPAddr.
func peerAddr(p *Poller, sa syscall.Sockaddr) net.Addr {
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		c := newConn(p)
		c.ip4, c.port = a.Addr, uint16(a.Port)
		return (*connAddr)(c)
	case *syscall.SockaddrInet6:
		ta := &net.TCPAddr{IP: append(net.IP(nil), a.Addr[:]...), Port: a.Port}
		if a.ZoneId != 0 {
			if ifi, err := net.InterfaceByIndex(int(a.ZoneId)); err == nil {
				ta.Zone = ifi.Name
			} else {
				ta.Zone = strconv.Itoa(int(a.ZoneId))
			}
		}
		return ta
	}
	return &net.TCPAddr{}
}

// acceptedConn carries an accepted descriptor to netpoll, which copies its
// fields into its own connection; its I/O methods are never called.
type acceptedConn struct {
	fd           int
	laddr, raddr net.Addr
}

var errNotIO = errors.New("poller: acceptedConn does no I/O")

func (a *acceptedConn) Fd() int                          { return a.fd }
func (a *acceptedConn) Read([]byte) (int, error)         { return 0, errNotIO }
func (a *acceptedConn) Write([]byte) (int, error)        { return 0, errNotIO }
func (a *acceptedConn) Close() error                     { return syscall.Close(a.fd) }
func (a *acceptedConn) LocalAddr() net.Addr              { return a.laddr }
func (a *acceptedConn) RemoteAddr() net.Addr             { return a.raddr }
func (a *acceptedConn) SetDeadline(time.Time) error      { return errNotIO }
func (a *acceptedConn) SetReadDeadline(time.Time) error  { return errNotIO }
func (a *acceptedConn) SetWriteDeadline(time.Time) error { return errNotIO }

// --- process-wide netpoll configuration ---

var npConfig struct {
	mu                     sync.Mutex
	done                   bool
	loops, bufCap, workers int
	logger                 atomic.Pointer[slog.Logger]
}

// configureNetpoll applies the process-wide settings once; later calls
// only check that they do not ask for different ones.
func configureNetpoll(r resolved) error {
	npConfig.mu.Lock()
	defer npConfig.mu.Unlock()
	if npConfig.done {
		for _, f := range []struct {
			name      string
			want, has int
		}{
			{"Loops", r.asked.Loops, npConfig.loops},
			{"LinkBufferCap", r.asked.LinkBufferCap, npConfig.bufCap},
			{"Workers", r.asked.Workers, npConfig.workers},
		} {
			if f.want != 0 && f.want != f.has {
				return fmt.Errorf("%w: %s %d asked, %d in force", ErrConfigConflict, f.name, f.want, f.has)
			}
		}
		return nil
	}
	cfg := netpoll.Config{
		BufferSize:   r.LinkBufferCap,
		Runner:       runTask,
		LoggerOutput: netpollLog{},
		LoadBalance:  netpoll.RoundRobin,
	}
	if r.Loops > 0 {
		cfg.PollerNum = r.Loops
	}
	netpoll.LinkBufferCap = r.LinkBufferCap
	if err := netpoll.Configure(cfg); err != nil {
		return fmt.Errorf("poller: configuring netpoll: %w", err)
	}
	workers.setMax(r.workers)
	inlineBelow.Store(int64(r.LinkBufferCap))
	// Loops 0 records netpoll's default: a later explicit value conflicts.
	npConfig.loops, npConfig.bufCap, npConfig.workers = r.Loops, r.LinkBufferCap, r.workers
	if r.Logger != nil {
		npConfig.logger.Store(r.Logger)
	}
	npConfig.done = true
	return nil
}

// runTask is netpoll's Runner. A task of a connection whose handler asked
// for it ([Conn.SetInline]) runs in place, on the poll loop that read the
// input: one hand-off less per read. Every other task (OnConnect, TLS, a
// connection being closed, a large read: see inlineBelow) goes to the
// worker pool.
//
// netpoll calls the Runner from its poll loop while it holds the
// connection's descriptor operator (FDOperator.do): a close callback run
// inside the task would free that operator and spin until the loop lets go
// of it, which it never does, hanging the loop. So while a task runs in
// place, closeNetpoll only records the close, and a worker carries it out
// once the task has returned (leaveLoop); netpoll's own close callbacks
// cannot start meanwhile (they need the processing lock the task holds,
// or, on a hang-up, this very poll loop).
func runTask(ctx context.Context, f func()) {
	c := connOf(ctx)
	if c == nil || c.nc.Reader().Len() >= int(inlineBelow.Load()) || c.unreleased >= inlineRelease || !c.enterLoop() {
		workers.run(f)
		return
	}
	f()
	c.leaveLoop()
}

// inlineBelow: a read of at least this many bytes (netpoll's node size,
// LinkBufferCap) goes to a worker even on an inline connection. netpoll
// reads into its current buffer node, which is that small until more than
// that has waited in the buffer at once: handled on the loop as it is read,
// a burst would be read, handled and answered in node-sized pieces, one
// system call each way per piece. Handled by a worker, the burst collects
// in netpoll's buffer meanwhile, which makes netpoll read in larger pieces
// from then on.
var inlineBelow atomic.Int64

// inlineRelease: once this many bytes were read on the loop without
// releasing netpoll's buffer nodes, the next read goes to a worker, which
// releases them. netpoll sizes its next buffer nodes by what a release
// finds (and only when the poll loop is not serving the connection, so
// never on the loop): releasing on the loop after every read would keep
// the nodes at LinkBufferCap bytes for good, and a stream of small
// messages would have one in every few split over two reads. Once such a
// release has been made, the nodes are larger and reads on the loop
// release at once.
const inlineRelease = 1024

// enterLoop reports whether a netpoll task of c may run on the poll loop,
// and if so marks it running there.
func (c *Conn) enterLoop() bool {
	c.mu.Lock()
	ok := c.has(fInline) && !c.has(fClosed) && c.tls() == nil && !c.onLoop
	if ok {
		c.onLoop = true
	}
	c.mu.Unlock()
	return ok
}

// leaveLoop ends a task run on the poll loop, and hands a close that came
// meanwhile to a worker.
func (c *Conn) leaveLoop() {
	c.mu.Lock()
	c.onLoop = false
	closeNow := c.has(fCloseDeferred)
	c.clear(fCloseDeferred)
	c.mu.Unlock()
	if closeNow {
		workers.run(c.closeNetpollNow)
	}
}

// closeNetpoll closes the transport of a connection of the netpoll engine,
// which the caller marked closed; while a task of it runs on the poll loop,
// after that task (see runTask).
func (c *Conn) closeNetpoll() {
	c.mu.Lock()
	if c.onLoop {
		c.set(fCloseDeferred)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.closeNetpollNow()
}

func (c *Conn) closeNetpollNow() {
	if c.closeKept() {
		return
	}
	_ = c.nc.Close()
}

// netpollLog receives netpoll's log lines (netpoll's logger is
// process-wide) and passes them to the first Logger given to Listen.
type netpollLog struct{}

func (netpollLog) Write(p []byte) (int, error) {
	if l := npConfig.logger.Load(); l != nil && !bytes.Contains(p, []byte(errListenerClosed.Error())) {
		l.Warn("netpoll: " + string(bytes.TrimSpace(p)))
	}
	return len(p), nil
}
