//go:build linux

package poller

import (
	"context"
	"net"
	"syscall"

	"github.com/cloudwego/netpoll"
)

// New returns a Poller with no listener of its own, for connections given
// to it with [Poller.Adopt]. On Linux it has the netpoll engine (and its
// process-wide settings, as for [Listen]); elsewhere the goroutine engine.
// [Poller.Addr] is nil and [Poller.StopAccepting] only marks it stopping.
func New(h Handler, o Options) (*Poller, error) {
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
	p := newPoller(h, r)
	wp, err := newWpoll(p)
	if err != nil {
		return nil, err
	}
	p.eng = &npEngine{p: p, wp: wp}
	close(p.serveDone)
	p.gor.Add(1)
	go wp.loop()
	return p, nil
}

// adoptFD moves tc's socket to the netpoll engine. done is false when the
// descriptor could not be taken (tc is still intact: the caller serves it
// with a goroutine instead).
func (p *Poller) adoptFD(tc *net.TCPConn, initial []byte) (done bool, err error) {
	if _, ok := p.eng.(*npEngine); !ok {
		return false, nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return false, nil
	}
	fd := -1
	if cerr := rc.Control(func(s uintptr) {
		r, _, e := syscall.Syscall(syscall.SYS_FCNTL, s, syscall.F_DUPFD_CLOEXEC, 0)
		if e == 0 {
			fd = int(r)
		}
	}); cerr != nil || fd < 0 {
		return false, nil
	}
	laddr, raddr := tc.LocalAddr(), tc.RemoteAddr()
	// The duplicate keeps the socket open; the runtime's descriptor goes.
	_ = tc.Close()
	c := newConn(p)
	if !p.register(c) {
		syscall.Close(fd)
		return true, ErrPollerClosed
	}
	nc, err := netpoll.NewFDConnection(fd) // registers fd for reading
	if err != nil {
		// netpoll fails only to register fd, and has then closed it (its
		// close callback): closing it again could hit a reused number.
		c.mu.Lock()
		c.set(fClosed | fTransportDone)
		c.setCauseLocked(err)
		fire := c.finishLocked()
		c.mu.Unlock()
		if fire {
			c.fireClose()
		}
		return true, &opError{op: "adopt", err: err}
	}
	c.nc = adoptedConn{Connection: nc, laddr: laddr, raddr: raddr}
	c.fd = int32(fd)
	_ = nc.AddCloseCallback(c.onNetpollClose)
	// Input that arrives from now on waits in netpoll's buffer until the
	// OnRequest callback is set, after OnOpen and the initial bytes.
	if c.open() {
		c.deliver(initial)
	}
	_ = nc.SetOnRequest(func(_ context.Context, nc netpoll.Connection) error {
		return p.onRequest((*connCtx)(c), nc)
	})
	if !nc.IsActive() {
		// The peer hung up before the callback was set: netpoll left the
		// close to us.
		_ = nc.Close()
	}
	return true, nil
}

// adoptedConn is an adopted connection's netpoll.Connection with the
// addresses of the original connection (netpoll knows only the
// descriptor).
type adoptedConn struct {
	netpoll.Connection
	laddr, raddr net.Addr
}

func (a adoptedConn) LocalAddr() net.Addr  { return a.laddr }
func (a adoptedConn) RemoteAddr() net.Addr { return a.raddr }
