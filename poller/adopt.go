package poller

import (
	"fmt"
	"net"
	"time"
)

// Adopt makes conn, an established connection accepted elsewhere (one an
// [net/http] handler hijacked, say), a connection of p: OnOpen is called,
// then OnData with initial (bytes already read from conn by its previous
// owner, such as the HTTP request head and what the peer sent behind it)
// followed by what arrives on conn, exactly as for an accepted connection.
// OnOpen and the OnData call for initial run on the caller's goroutine,
// before Adopt returns.
//
// A plain TCP connection ([*net.TCPConn]) joins the netpoll event loop when
// p has that engine (a Poller of [Listen] or [New] on Linux): Adopt takes
// over its descriptor, closes conn (the socket lives on in the Poller) and
// the connection then holds no goroutine while idle. Anything else (a TLS
// connection, another platform, a Poller of [Serve]) is served as [Serve]
// serves its connections, by a reader goroutine of its own reading conn.
// The Poller owns conn from the call on, even when Adopt fails, which
// happens only with [ErrPollerClosed] once [Poller.Close] has begun. conn's
// read and write deadlines are cleared.
func (p *Poller) Adopt(conn net.Conn, initial []byte) error {
	if conn == nil {
		return fmt.Errorf("%w: nil connection", ErrInvalidOptions)
	}
	_ = conn.SetDeadline(time.Time{})
	if tc, ok := conn.(*net.TCPConn); ok && p.eng != nil {
		if done, err := p.adoptFD(tc, initial); done {
			return err
		}
	}
	c := newConn(p)
	c.ext = &connExt{sc: conn}
	if !p.register(c) {
		_ = conn.Close()
		return ErrPollerClosed
	}
	if c.open() {
		c.deliver(initial)
	}
	p.gor.Add(1)
	go c.readLoop() // opens c only if the open above failed (to close it)
	return nil
}

var errNilHandler = fmt.Errorf("%w: nil handler", ErrInvalidOptions)
