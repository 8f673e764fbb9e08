package poller

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"
)

// Defaults applied to the zero fields of [Options].
const (
	// DefaultLinkBufferCap is the netpoll read-buffer node size used when
	// [Options.LinkBufferCap] is 0: small, because every idle connection
	// keeps one node (netpoll's own default, 8 KiB, costs ~12 KB per idle
	// connection).
	DefaultLinkBufferCap = 256

	// DefaultWorkers bounds the goroutines that run handlers for the
	// netpoll engine when [Options.Workers] is 0.
	DefaultWorkers = 256

	// DefaultMaxPending is the cap on a connection's carried-over input
	// when [Options.MaxPending] is 0.
	DefaultMaxPending = 64 << 10

	// DefaultReadBufferSize is the read buffer of the goroutine engine
	// ([Serve]) when [Options.ReadBufferSize] is 0.
	DefaultReadBufferSize = 4 << 10

	// DefaultCloseTimeout is used by [Conn.CloseAfterFlush] for a timeout
	// of 0 or less.
	DefaultCloseTimeout = 5 * time.Second
)

// Options configures a [Poller]. The zero value is ready to use; each
// field states its default. Options are validated once, by [Listen] or
// [Serve].
//
// Loops, LinkBufferCap and Workers configure cloudwego/netpoll, whose
// settings are process-wide: the first [Listen] in a process applies them
// (its zero fields take the defaults below) and they hold for every later
// Poller of the netpoll engine. A later Listen that sets one of them to a
// different non-zero value fails with [ErrConfigConflict]; leave them 0
// to accept what is in force. [Serve] ignores them.
type Options struct {
	// Loops is the number of netpoll poll loops (epoll goroutines).
	// 0 keeps netpoll's default, GOMAXPROCS/20+1. Process-wide.
	Loops int

	// LinkBufferCap is the size of netpoll's read-buffer nodes: the first
	// read of a connection takes up to this many bytes (later reads grow),
	// and an idle connection keeps about one node. 0 means
	// DefaultLinkBufferCap (256 B). Process-wide (netpoll.LinkBufferCap
	// and netpoll.Config.BufferSize).
	LinkBufferCap int

	// Workers bounds the goroutines running OnOpen, OnData (but see
	// [Conn.SetInline]) and OnClose for the netpoll engine; further work
	// waits in a FIFO queue, so a handler that blocks delays the others.
	// Workers are started on demand and exit when the queue is empty.
	// 0 means DefaultWorkers (256). Process-wide (it is netpoll's Runner).
	Workers int

	// MaxPending is the default cap, in bytes, on a connection's
	// carried-over unconsumed input (see [Handler.OnData]); a connection
	// that exceeds it is closed with [ErrPendingLimit]. 0 means
	// DefaultMaxPending (64 KiB). [Conn.SetMaxPending] overrides it per
	// connection.
	MaxPending int

	// MaxBuffered is the default outbound limit of each connection, in
	// bytes: a write that would take the queue over it returns
	// [ErrBackpressure] (see [frame.Queue]). 0 means no limit.
	// [Conn.SetMaxBuffered] overrides it per connection.
	MaxBuffered int

	// ReadBufferSize is the size of the buffer each connection of the
	// goroutine engine ([Serve]) reads into while it waits for input.
	// 0 means DefaultReadBufferSize (4 KiB). [Listen] ignores it.
	ReadBufferSize int

	// TLS, when set, serves TLS with crypto/tls. [Listen] does it on the
	// event loop: the handshake runs on a goroutine started by the peer's
	// first bytes and gone when it ends, then input is decrypted by the
	// worker that reads it and output encrypted by the flush that writes
	// it, so an idle TLS connection holds no goroutine; after a TLS 1.3
	// handshake with an AES-GCM suite the records are protected by the
	// poller's own record layer on the standard library's AES-GCM, and the
	// handshake's tls.Conn is dropped (the Config's KeyLogWriter and
	// GetConfigForClient are still called). OnOpen is called
	// once the handshake is done; a connection whose handshake fails or
	// times out is closed without OnOpen or OnClose (the failure is logged
	// at Debug). [Serve] wraps its listener with [tls.NewListener] and
	// completes the handshake, under the same timeout, before OnOpen: the
	// goroutine-per-connection fallback. The Config is used as is and must
	// not be modified afterwards.
	TLS *tls.Config

	// TLSHandshakeTimeout bounds a TLS handshake, from accept to its end;
	// a connection still handshaking then is closed. 0 means
	// DefaultTLSHandshakeTimeout (10 s).
	TLSHandshakeTimeout time.Duration

	// NewConn, when set, makes the Conn of each connection: it must return
	// a new zero Conn (nil means a Conn of the Poller's own), which is
	// typically a field of a larger struct that the handler keeps per
	// connection, so that one allocation holds both and the handler finds
	// its state from the *Conn it is given (with [Conn.SetContext] the Conn
	// and the state cost an allocation each, and the Conn 16 bytes more).
	// The Poller owns the Conn from then on; the struct around it must
	// stay allocated as long as the Conn is used. It is called once per
	// accepted (or adopted) connection, possibly on a poll loop: it must
	// not block.
	NewConn func() *Conn

	// Logger receives the package's diagnostics (shed connections at the
	// open-file limit, write errors at Debug). nil logs nothing. The first
	// Logger given to [Listen] in a process also receives netpoll's own log
	// lines at Warn (netpoll's logger is process-wide); without one they
	// are discarded.
	Logger *slog.Logger
}

// resolved is Options with the defaults applied; asked keeps the fields
// as given.
type resolved struct {
	Options
	asked   Options
	workers int
}

func (o Options) resolve() (resolved, error) {
	check := func(name string, v int) error {
		if v < 0 {
			return fmt.Errorf("%w: %s is %d; it must be 0 (default) or more", ErrInvalidOptions, name, v)
		}
		return nil
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"Loops", o.Loops}, {"LinkBufferCap", o.LinkBufferCap}, {"Workers", o.Workers},
		{"MaxPending", o.MaxPending}, {"MaxBuffered", o.MaxBuffered}, {"ReadBufferSize", o.ReadBufferSize},
	} {
		if err := check(f.name, f.v); err != nil {
			return resolved{}, err
		}
	}
	r := resolved{Options: o, asked: o, workers: o.Workers}
	if r.LinkBufferCap == 0 {
		r.LinkBufferCap = DefaultLinkBufferCap
	}
	if r.workers == 0 {
		r.workers = DefaultWorkers
	}
	if r.MaxPending == 0 {
		r.MaxPending = DefaultMaxPending
	}
	if o.TLSHandshakeTimeout < 0 {
		return resolved{}, fmt.Errorf("%w: TLSHandshakeTimeout is %v; it must be 0 (default) or more", ErrInvalidOptions, o.TLSHandshakeTimeout)
	}
	if r.TLSHandshakeTimeout == 0 {
		r.TLSHandshakeTimeout = DefaultTLSHandshakeTimeout
	}
	if r.ReadBufferSize == 0 {
		r.ReadBufferSize = DefaultReadBufferSize
	}
	return r, nil
}
