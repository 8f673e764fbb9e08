package consumer

import (
	"context"
	crand "crypto/rand"
	"log/slog"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/networkcluster/networkcluster/compress"
	"github.com/networkcluster/networkcluster/frame"
	"github.com/networkcluster/networkcluster/internal/proto"
)

// Consumer is a client of one Provider. Create it with [New].
//
// All methods are safe for concurrent use. The send methods may be called
// from many goroutines at once; each message goes out whole, in the order the
// calls take the Consumer's write lock.
type Consumer struct {
	cfg    *config
	log    *slog.Logger
	dialer ws.Dialer

	// Lifecycle, guarded by mu.
	mu        sync.Mutex
	started   bool
	closed    bool          // Close or Destroy was called
	ready     bool          // a connection is open and OnOpen has returned
	opens     uint64        // connections opened so far (ready became true)
	terminal  error         // why the cycle ended; nil while it may still connect
	change    chan struct{} // closed and replaced whenever ready or terminal changes
	ctx       context.Context
	cancel    context.CancelFunc
	done      chan struct{} // closed once the cycle goroutine (and OnClose) finished
	runGID    uint64        // id of the cycle goroutine, to spot Close from a handler
	nc        net.Conn      // the open connection, for Destroy
	closeOnce sync.Once
	// handshakeErr is how the close handshake of the last connection
	// ended (see closeOutcome), for Close.
	handshakeErr error

	isClosed  atomic.Bool
	destroyed atomic.Bool // Destroy was called: no more OnMessage
	connected atomic.Bool
	inFlight  atomic.Bool
	interval  atomic.Int64 // heartbeat interval of the current connection, ns; 0 = none
	lastHB    atomic.Int64 // unix ns of the last heartbeat (or of the open)

	// Write side, guarded by wmu.
	wmu       sync.Mutex
	wc        net.Conn // the open connection; nil when there is none
	closeSent bool     // a close frame went out (or the connection broke): no more frames
	sentCode  frame.CloseCode
	sentWhy   string
	rng       *rand.ChaCha8 // masking keys
	comp      *compress.Compressor
	wsmall    []byte // encoding buffer for small frames

	dead bool  // the reader knows the connection is lost: no more sends
	werr error // the write error that broke the connection, if one did

	// Read side: owned by the cycle goroutine.
	rd reader
	hs handshakeResult

	// disp runs OnMessage and OnRequest off the read loop.
	disp dispatcher

	// Requests.
	v2      atomic.Bool   // the current (or last) connection negotiated requests
	gen     atomic.Uint64 // connections opened: a reply must go out on its request's
	reqMu   sync.Mutex
	reqNext uint64                 // the last request id used (ids are never reused)
	reqs    map[uint64]*waiter     // unanswered requests, by id
	session string                 // X-Network-Cluster-Session, with Resend
	addrIdx int                    // index into cfg.urls of the Provider to dial next
	addr    atomic.Pointer[string] // host:port of the current (or last) Provider
	stats   counters
	subs    subscriptions // topics joined with Subscribe (subscribe.go)
}

// New validates o and returns a Consumer that is not connected yet; call
// [Consumer.Connect]. The error wraps [ErrInvalidOptions].
func New(o Options) (*Consumer, error) {
	cfg, err := normalize(o)
	if err != nil {
		return nil, err
	}
	var seed [32]byte
	_, _ = crand.Read(seed[:]) // never fails (crypto/rand panics rather than return an error)
	c := &Consumer{
		cfg:    cfg,
		log:    cfg.Logger,
		change: make(chan struct{}),
		done:   make(chan struct{}),
		rng:    rand.NewChaCha8(seed),
	}
	if cfg.Resend && cfg.Protocol == ProtocolAuto {
		c.session = proto.NewSessionID()
	}
	c.addrIdx = rand.New(c.rng).IntN(len(cfg.urls)) // the start among Addrs
	c.addr.Store(&cfg.urls[c.addrIdx].hostPort)
	c.dialer = c.newDialer()
	c.disp.init(cfg.QueueLength, cfg.QueueBytes, c.runMessage, c.destroyed.Load)
	return c, nil
}

// Connect starts the connection cycle (the first call does; later calls
// only wait) and returns once a connection is open, with nil, or once the
// cycle has failed for good: an error that wraps [ErrGaveUp] when the
// reconnect policy used up its attempts, a [*HandshakeError] for 403
// Forbidden, or [ErrClosed]. The OnOpen handler has returned by then.
//
// ctx bounds only the wait: when it ends first, Connect returns ctx.Err()
// and the cycle keeps trying in the background (stop it with Close). Calling
// Connect while connected returns nil at once and changes nothing.
func (c *Consumer) Connect(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	opens := c.opens
	if !c.started {
		c.started = true
		c.ctx, c.cancel = context.WithCancel(context.Background())
		go c.run(c.ctx)
	}
	c.mu.Unlock()
	return c.wait(ctx, opens)
}

// Ready waits until a connection is open (returning nil at once if one is)
// or until the cycle has failed for good, returning the same errors as
// [Consumer.Connect]. It does not start the cycle: before Connect it waits
// for Connect to be called. ctx bounds the wait.
//
// Called from an event handler, Connect and Ready do not wait (the handler
// runs on the goroutine they would wait for): they return nil when a
// connection is open and [ErrNotConnected] otherwise.
func (c *Consumer) Ready(ctx context.Context) error {
	c.mu.Lock()
	opens := c.opens
	c.mu.Unlock()
	return c.wait(ctx, opens)
}

// wait waits until a connection is open or has opened since the opens
// count was taken, or the cycle has ended.
func (c *Consumer) wait(ctx context.Context, opens uint64) error {
	if c.handlerGoroutine() {
		// Called from an event handler: waiting would wait for the very
		// goroutine that runs the handler.
		if c.connected.Load() {
			return nil
		}
		return ErrNotConnected
	}
	for {
		c.mu.Lock()
		// A connection that opened (and maybe already dropped) since the
		// call began also counts.
		ready, term, ch := c.ready || c.opens != opens, c.terminal, c.change
		c.mu.Unlock()
		switch {
		case ready:
			return nil
		case term != nil:
			return term
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close stops the Consumer: it stops reconnecting, runs the close handshake
// on an open connection (close code 1000; it waits up to
// [Options.CloseTimeout] for the Provider's answer, after a send that may be
// in progress has finished), and returns once the Consumer's goroutine has
// exited and OnClose has run. Pending Connect and Ready calls return
// [ErrClosed]. Close may be called at any time, also before Connect and more
// than once; later calls wait like the first.
//
// The first call returns nil when the Provider answered the close frame
// (a clean close handshake), and also when there was no open connection to
// close (before Connect, while reconnecting, or when the connection was
// already lost or closing). It returns an error wrapping [ErrCloseTimeout]
// when the Provider did not answer within CloseTimeout (the connection was
// then dropped), or an error wrapping the cause when the handshake failed
// otherwise (the close frame could not be written, TCP ended without the
// Provider's close frame, or the Provider broke the protocol, a
// [*CloseError]). Later calls return [ErrClosed], as does Close after
// [Consumer.Destroy]. Called from an event handler, Close does not wait (the
// handler runs on a goroutine it would wait for) and returns nil.
func (c *Consumer) Close() error {
	return c.shutdown(false)
}

// Destroy stops the Consumer at once: it stops reconnecting, drops the TCP
// connection without a close handshake (a send in progress fails), delivers
// no further message (not even one already read), and returns once the Consumer's goroutine has exited and OnClose has run.
func (c *Consumer) Destroy() { _ = c.shutdown(true) }

// shutdown is Close and Destroy; it returns Close's error.
func (c *Consumer) shutdown(destroy bool) error {
	self := c.handlerGoroutine()
	c.mu.Lock()
	if c.closed {
		nc, done := c.nc, c.done
		if destroy && !c.destroyed.Load() {
			c.destroyed.Store(true)
		} else {
			nc = nil
		}
		c.mu.Unlock()
		if nc != nil {
			_ = nc.Close()
		}
		if !self {
			<-done
		}
		return ErrClosed
	}
	c.closed = true
	c.destroyed.Store(destroy)
	c.isClosed.Store(true)
	if c.terminal == nil {
		c.terminal = ErrClosed
	}
	c.ready = false
	c.notifyLocked()
	started, nc, done := c.started, c.nc, c.done
	c.mu.Unlock()

	if !started {
		// No goroutine to wait for: the close event is ours to emit. done
		// closes first, so that a Close from OnClose does not wait for
		// itself.
		close(done)
		c.emitClose(closeEvent(destroy, nil))
		return nil
	}
	c.cancel() // wakes a dial or a reconnect wait
	sent := false
	if nc != nil {
		if destroy {
			_ = nc.Close()
		} else {
			// Once closed is set no connection opens, so the one this
			// frame goes out on is the last one served.
			sent = c.sendClose(frame.CloseNormal, "")
		}
	}
	if self {
		return nil
	}
	<-done
	if !sent {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.handshakeErr
}

// handlerGoroutine reports whether the caller is one of the Consumer's
// goroutines that run event handlers: the cycle goroutine or the
// dispatcher's.
func (c *Consumer) handlerGoroutine() bool {
	g := goid()
	if c.disp.self(g) {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runGID != 0 && g == c.runGID
}

// closeEvent returns the code and reason of the close event.
func closeEvent(destroyed bool, cause error) (frame.CloseCode, string) {
	switch {
	case cause != nil:
		return frame.CloseAbnormal, cause.Error()
	case destroyed:
		return frame.CloseAbnormal, "destroyed"
	}
	return frame.CloseNormal, ""
}

func (c *Consumer) emitClose(code frame.CloseCode, reason string) {
	c.closeOnce.Do(func() {
		if f := c.cfg.OnClose; f != nil {
			f(code, reason)
		}
	})
}

// notifyLocked wakes every Ready waiter. c.mu must be held.
func (c *Consumer) notifyLocked() {
	close(c.change)
	c.change = make(chan struct{})
}

// RemoteAddr returns the "host:port" of the Provider of the current
// connection, or of the one the Consumer dials next or dialed last.
func (c *Consumer) RemoteAddr() string { return *c.addr.Load() }

// Connected reports whether a connection is open: from just before OnOpen
// until the Consumer knows the connection is lost or closing, which is
// before OnDisconnect and before the messages still queued for OnMessage
// have been handled. After a network error or the heartbeat cutoff it turns
// false at once; after a close frame from the Provider (or a protocol error
// of its), once the close answer has gone out, which waits up to
// [Options.CloseTimeout] for the replies to the messages read before it.
// Sends fail from that moment on.
func (c *Consumer) Connected() bool { return c.connected.Load() }

// InFlight reports whether a connection attempt (dial and handshake) is in
// progress.
func (c *Consumer) InFlight() bool { return c.inFlight.Load() }

// HeartbeatInterval returns the heartbeat interval the Provider announced on
// the current (or last) connection, or 0 if it announced none.
func (c *Consumer) HeartbeatInterval() time.Duration {
	return time.Duration(c.interval.Load())
}

// HeartbeatCutoff returns how long the Consumer waits for a heartbeat before
// it drops the connection: twice [Consumer.HeartbeatInterval], or 0 (no
// cutoff) when no interval was announced.
func (c *Consumer) HeartbeatCutoff() time.Duration { return 2 * c.HeartbeatInterval() }

// LastHeartbeat returns when the last heartbeat (a ping in either form)
// arrived on the current (or last) connection; each new connection resets it
// to the time it opened. It is the zero Time before the first connection.
func (c *Consumer) LastHeartbeat() time.Time {
	ns := c.lastHB.Load()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

func (c *Consumer) reportError(err error) {
	if c.log != nil && c.log.Enabled(context.Background(), slog.LevelWarn) {
		c.log.Warn("network-cluster consumer", "url", c.cfg.logURL, "err", err)
	}
	if f := c.cfg.OnError; f != nil {
		f(err)
	}
}

func (c *Consumer) debug(msg string, args ...any) {
	if c.log != nil && c.log.Enabled(context.Background(), slog.LevelDebug) {
		c.log.Debug(msg, append(args, "url", c.cfg.logURL)...)
	}
}

// goid returns the id of the calling goroutine, parsed from its stack
// header ("goroutine 42 [running]:"). It is used only to spot Close being
// called from an event handler, which must not wait for itself.
func goid() uint64 {
	var buf [40]byte
	n := runtime.Stack(buf[:], false)
	const prefix = len("goroutine ")
	var id uint64
	for i := prefix; i < n; i++ {
		d := buf[i]
		if d < '0' || d > '9' {
			break
		}
		id = id*10 + uint64(d-'0')
	}
	return id
}
