package poller

import (
	"errors"

	"github.com/networkcluster/networkcluster/frame"
)

// Sentinel errors. Every error the package returns or reports to
// [Handler.OnClose] is one of these, wraps one of these, or wraps the
// system error that ended the connection (a *net.OpError or a
// syscall.Errno such as ECONNRESET), so errors.Is works on all of them.
var (
	// ErrClosed is returned by writes to a connection that is closed or
	// closing (after [Conn.Close] or [Conn.CloseAfterFlush], or once the
	// peer went away), and by a second [Conn.Close].
	ErrClosed = errors.New("poller: connection closed")

	// ErrPendingLimit is given to OnClose when a connection's unconsumed
	// input grew over its limit ([Options.MaxPending], [Conn.SetMaxPending]).
	ErrPendingLimit = errors.New("poller: unconsumed input over the connection's limit")

	// ErrPollerClosed is given to OnClose for the connections that
	// [Poller.Close] closed, and returned by a second Close.
	ErrPollerClosed = errors.New("poller: poller closed")

	// ErrFlushTimeout is given to OnClose when [Conn.CloseAfterFlush] reached
	// its timeout before the queue was written; the unsent bytes were
	// dropped.
	ErrFlushTimeout = errors.New("poller: close timed out before the queue was written")

	// ErrBadConsume is given to OnClose when [Handler.OnData] returned a
	// count below 0 or above the length of its input (a handler bug).
	ErrBadConsume = errors.New("poller: OnData returned an impossible consumed count")

	// ErrTLSHandshakeTimeout is why a connection whose TLS handshake did
	// not end within [Options.TLSHandshakeTimeout] was closed (logged at
	// Debug; such a connection was never opened).
	ErrTLSHandshakeTimeout = errors.New("poller: TLS handshake timed out")

	// ErrInvalidOptions is wrapped by the error of [Listen] and [Serve]
	// for an [Options] value out of range or an unsupported network.
	ErrInvalidOptions = errors.New("poller: invalid options")

	// ErrConfigConflict is wrapped by the error of [Listen] when it asks
	// for a process-wide netpoll setting (Loops, LinkBufferCap, Workers)
	// that differs from the one an earlier Listen in this process applied.
	ErrConfigConflict = errors.New("poller: netpoll is already configured with different process-wide settings")

	// ErrBackpressure is returned by [Conn.Write] and [Conn.WriteShared]
	// when the bytes do not fit the connection's outbound limit
	// ([Conn.SetMaxBuffered]); nothing was queued. It wraps
	// [frame.ErrBackpressure], so errors.Is matches either.
	ErrBackpressure error = &wrapError{
		msg: "poller: outbound queue over its limit (max backpressure)",
		err: frame.ErrBackpressure,
	}
)

// wrapError is a fixed message that unwraps to another sentinel.
type wrapError struct {
	msg string
	err error
}

func (e *wrapError) Error() string { return e.msg }
func (e *wrapError) Unwrap() error { return e.err }

// opError is a system error that ended a connection, with the operation
// that hit it ("write", "shutdown", "epoll").
type opError struct {
	op  string
	err error
}

func (e *opError) Error() string { return "poller: " + e.op + ": " + e.err.Error() }
func (e *opError) Unwrap() error { return e.err }
