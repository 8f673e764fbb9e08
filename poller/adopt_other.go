//go:build !linux

package poller

import "net"

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
	p := newPoller(h, r)
	close(p.serveDone)
	return p, nil
}

func (p *Poller) adoptFD(*net.TCPConn, []byte) (bool, error) { return false, nil }

// ListenOn serves the connections of ln, which the caller bound (a socket
// from systemd's socket activation, say): with the netpoll engine, as
// [Listen], when ln is a [*net.TCPListener] on Linux, and otherwise as
// [Serve]. The Poller owns ln from now on.
func ListenOn(ln net.Listener, h Handler, o Options) (*Poller, error) { return Serve(ln, h, o) }
