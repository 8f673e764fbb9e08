//go:build !linux

package poller

import (
	"context"
	"errors"
	"fmt"
	"net"
)

// Listen binds network ("tcp", "tcp4" or "tcp6") and addr and serves the
// connections. The netpoll engine needs Linux; elsewhere Listen serves with
// the goroutine engine of [Serve], with the same contract.
func Listen(ctx context.Context, network, addr string, h Handler, o Options) (*Poller, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("%w: network %q (want tcp, tcp4 or tcp6)", ErrInvalidOptions, network)
	}
	if _, err := o.resolve(); err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	p, err := Serve(ln, h, o)
	if err != nil {
		ln.Close()
	}
	return p, err
}

// directFlushLocked is never reached: without netpoll no Conn has nc set.
func (c *Conn) directFlushLocked() {
	c.clear(fFlushing)
	c.mu.Unlock()
}

func shutdownWrite(int) error { return errors.ErrUnsupported }

// writeAlertLocked is never reached: without netpoll no Conn has tls set.
func (c *Conn) writeAlertLocked() {}

// closeKept: without netpoll no connection is kept after EOF.
func (c *Conn) closeKept() bool { return false }

// closeNetpoll is never reached: without netpoll no Conn has nc set.
func (c *Conn) closeNetpoll() { _ = c.nc.Close() }
