package provider

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/google/uuid"

	"github.com/networkcluster/networkcluster/compress"
	"github.com/networkcluster/networkcluster/frame"
	"github.com/networkcluster/networkcluster/internal/proto"
	"github.com/networkcluster/networkcluster/poller"
)

// Provider is a WebSocket server that holds the connections of many
// Consumers. Create it with New, then Start it. Its methods are safe for
// concurrent use.
//
// Goroutines: the poller's event loops and its small worker pool run the
// callbacks; the Provider adds one timer goroutine (handshake deadlines and
// the heartbeat for every connection) and, only while an Auth.Handler runs,
// one goroutine per upgrade in progress (at most Auth.MaxPending). Close and
// Shutdown wait for all of them.
type Provider struct {
	o   Options
	log *slog.Logger

	authDigests map[string][sha256.Size]byte
	hbHeader    []byte // heartbeat announcement header, or nil
	pingFrame   []byte // the heartbeat ping, encoded once
	announce    []byte // text-heartbeat announcement frame, or nil
	tlsConfig   *tls.Config
	// shared is a compressor without context (window 15): the compressor
	// of every connection that negotiated no context takeover, and the one
	// that compresses a broadcast once for all receivers.
	shared *compress.Compressor
	// parse is how the frames of a connection are parsed, without and with
	// permessage-deflate.
	parse [2]frame.ParseOptions

	lifeMu   sync.Mutex // orders Start against Close and Shutdown
	pl       *poller.Poller
	started  atomic.Bool
	closing  atomic.Bool // Shutdown or Close began: no new connections
	closed   atomic.Bool
	done     chan struct{}
	ctx      context.Context // cancelled by Close: auth handlers see it
	cancel   context.CancelFunc
	wg       sync.WaitGroup // the timer goroutine and auth workers
	authSem  chan struct{}
	stopOnce sync.Once

	connMu  sync.RWMutex
	byID    map[uint64]*Connection   // open and closing connections, by idKey
	byIDx   map[[16]byte]*Connection // those whose idKey another one has (almost never), by id
	lenWait lenWaiters               // WaitLen

	dlMu      sync.Mutex
	deadlines map[*Connection]int64 // handshake and closing deadlines (unix ns; handshakeExpired), see deadline

	topicMu sync.RWMutex
	topics  map[string]*topic

	hpMu sync.Mutex
	hp   handlerPool  // runs OnOpen, OnMessage and OnClose
	mem  atomic.Int64 // bytes of MemoryBudget in use

	sessMu   sync.Mutex
	sessions map[string]*session // de-duplication windows by Consumer session

	observers []Observer    // set before Start (observer.go)
	queues    queueRegistry // job queues told of workers (queue.go)

	stats counters
}

// New validates o and returns a Provider that is not yet listening.
func New(o Options) (*Provider, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &Provider{
		o:         o,
		log:       o.Logger,
		byID:      make(map[uint64]*Connection),
		deadlines: make(map[*Connection]int64),
		topics:    make(map[string]*topic),
		sessions:  make(map[string]*session),
		done:      make(chan struct{}),
		authSem:   make(chan struct{}, o.Auth.MaxPending),
		hp:        handlerPool{max: o.HandlerWorkers},
		hbHeader:  heartbeatHeader(&o),
	}
	p.hp.work = p.handlerWorker
	for i, deflate := range []bool{false, true} {
		p.parse[i] = frame.ParseOptions{
			Role:       frame.RoleServer,
			AllowRSV1:  deflate,
			MaxPayload: int64(p.maxFrameSize(deflate)),
		}
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.authDigests = make(map[string][sha256.Size]byte, len(o.Auth.Parameters))
	for k, v := range o.Auth.Parameters {
		p.authDigests[k] = sha256.Sum256([]byte(v))
	}
	switch o.Heartbeat.Mode {
	case HeartbeatControlFrames:
		p.pingFrame = frame.PingFrame()
	case HeartbeatText:
		p.pingFrame = frame.NewFrame(frame.OpText, []byte(proto.TextPing), false).Bytes()
		p.announce = frame.NewFrame(frame.OpText,
			[]byte(proto.TextHeartbeatPrefix+proto.FormatInterval(o.Heartbeat.Interval)), false).Bytes()
	}
	if o.TLS != nil {
		if p.tlsConfig, err = loadTLS(o.TLS); err != nil {
			return nil, err
		}
	}
	if o.Compressor.Enabled() {
		p.shared = compress.NewCompressor(compress.Config{CompressWindowBits: 15})
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	return p, nil
}

// Start binds the listen address and serves. It returns once the Provider
// is listening (Port then reports the bound port), or the listen error.
func (p *Provider) Start() error {
	p.lifeMu.Lock()
	defer p.lifeMu.Unlock()
	if p.closing.Load() {
		return ErrServerClosed
	}
	if !p.started.CompareAndSwap(false, true) {
		return ErrAlreadyStarted
	}
	po := p.pollerOptions()
	var err error
	if p.tlsConfig != nil {
		po.TLS = p.tlsConfig
		po.TLSHandshakeTimeout = p.o.HandshakeTimeout
	}
	if p.o.Listener != nil {
		p.pl, err = p.serveListener(po)
	} else if p.tlsConfig != nil && p.o.TLS.GoroutinePerConn {
		var ln net.Listener
		ln, err = net.Listen(p.o.Network, p.o.Addr)
		if err == nil {
			p.pl, err = poller.Serve(ln, handler{p}, po)
			if err != nil {
				ln.Close()
			}
		}
	} else {
		p.pl, err = poller.Listen(context.Background(), p.o.Network, p.o.Addr, handler{p}, po)
	}
	if err != nil {
		p.started.Store(false)
		return fmt.Errorf("provider: listen %s: %w", p.o.Addr, err)
	}
	p.wg.Add(1)
	go p.timerLoop()
	p.log.Debug("provider listening", "addr", p.pl.Addr().String(), "path", p.o.Path, "tls", p.tlsConfig != nil)
	return nil
}

// Addr returns the bound listen address (nil before Start).
func (p *Provider) Addr() net.Addr {
	if p.pl == nil {
		return nil
	}
	return p.pl.Addr()
}

// Port returns the bound port (the configured one before Start).
func (p *Provider) Port() int {
	if a, ok := p.Addr().(*net.TCPAddr); ok {
		return a.Port
	}
	_, port, _ := net.SplitHostPort(p.o.Addr)
	n, _ := strconv.Atoi(port)
	return n
}

// Path returns the WebSocket endpoint path.
func (p *Provider) Path() string { return p.o.Path }

// Len returns the number of connections that completed the upgrade and
// have not closed yet (those closing included).
func (p *Provider) Len() int {
	p.connMu.RLock()
	defer p.connMu.RUnlock()
	return len(p.byID) + len(p.byIDx)
}

// Connection returns the connection with the given id if it completed the
// upgrade and has not closed yet: like Len, it includes a connection in its
// closing handshake (see Connection.State).
func (p *Provider) Connection(id string) (*Connection, bool) {
	uid, ok := parseUUID(id)
	if !ok {
		return nil, false
	}
	p.connMu.RLock()
	defer p.connMu.RUnlock()
	if c := p.byID[idKey(uid)]; c != nil && c.uid == uid {
		return c, true
	}
	c, ok := p.byIDx[uid]
	return c, ok
}

// Range calls f for each open connection until f returns false. It works on
// a snapshot, so f may do anything, including closing connections.
func (p *Provider) Range(f func(c *Connection) bool) {
	for _, c := range p.Connections() {
		if !f(c) {
			return
		}
	}
}

// Connections returns a snapshot of the open connections.
func (p *Provider) Connections() []*Connection {
	p.connMu.RLock()
	defer p.connMu.RUnlock()
	out := make([]*Connection, 0, len(p.byID)+len(p.byIDx))
	for _, c := range p.byID {
		if State(c.state.Load()) == StateOpen {
			out = append(out, c)
		}
	}
	for _, c := range p.byIDx {
		if State(c.state.Load()) == StateOpen {
			out = append(out, c)
		}
	}
	return out
}

// Close stops the Provider at once: the listener and every connection are
// closed without a closing handshake (OnClose reports 1006), auth handlers
// see their context cancelled, and Close returns once every goroutine of the
// Provider has ended. It is safe to call more than once, from any goroutine.
func (p *Provider) Close() error {
	p.closing.Store(true)
	p.stop()
	return nil
}

func (p *Provider) stop() {
	p.queuesStop()
	p.lifeMu.Lock() // a Start in progress finishes first
	p.lifeMu.Unlock()
	p.stopOnce.Do(func() {
		p.cancel()
		if p.pl != nil {
			_ = p.pl.Close()
		}
		close(p.done)
		p.stopHandlers()
		p.wg.Wait()
		p.closed.Store(true)
	})
	<-p.done
	p.wg.Wait()
}

// Shutdown stops the Provider gracefully: it stops accepting connections,
// answers new upgrade requests with 503, sends every open connection what is
// already queued followed by a close frame 1001 (going away), and waits until
// all have closed or ctx is done; then it closes what is left as Close does.
// It returns ctx.Err() if the context ended first. Safe to call more than
// once, from any goroutine.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p.closing.Swap(true) && p.closed.Load() {
		return nil
	}
	p.lifeMu.Lock()
	if p.pl != nil {
		_ = p.pl.StopAccepting()
	}
	p.lifeMu.Unlock()
	for _, c := range p.Connections() {
		c.closeWith(frame.CloseGoingAway, "provider shutting down")
	}
	var err error
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for p.liveConns() > 0 {
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-t.C:
			continue
		}
		break
	}
	p.stop()
	return err
}

// liveConns counts every connection the poller still holds, open or not.
func (p *Provider) liveConns() int {
	if p.pl == nil {
		return 0
	}
	return p.pl.Len()
}

func (p *Provider) report(err error) {
	if f := p.o.OnError; f != nil {
		f(err)
	}
	if p.log.Enabled(context.Background(), slog.LevelDebug) {
		p.log.Debug("provider error", "err", err)
	}
}

// shouldCompress applies the compression threshold to a message size.
func (p *Provider) shouldCompress(n int) bool {
	return p.o.CompressionThreshold < 0 || n >= p.o.CompressionThreshold
}

// --- the poller handler ---

type handler struct{ p *Provider }

// pollerOptions are the options of the Provider's pollers: each
// connection's poller.Conn is a field of its Connection (see connOf).
func (p *Provider) pollerOptions() poller.Options {
	return poller.Options{
		Loops:      p.o.PollLoops,
		MaxPending: p.o.MaxHandshakeSize,
		Logger:     p.o.Logger,
		NewConn:    p.newConn,
	}
}

// newConn makes a connection's Connection, with its poller.Conn inside,
// for the poller (poller.Options.NewConn): one allocation for both.
func (p *Provider) newConn() *poller.Conn {
	c := &Connection{p: p}
	return &c.pc
}

// connOf returns the Connection whose field pc is *pc. Every poller.Conn
// the handler is given is one (pollerOptions' NewConn makes them), so the
// pointer arithmetic stays inside the Connection's allocation, as the
// unsafe package's rule (3) requires of a conversion from uintptr back to
// a pointer; the conversion and the arithmetic are one expression.
func connOf(pc *poller.Conn) *Connection {
	return (*Connection)(unsafe.Pointer(uintptr(unsafe.Pointer(pc)) - unsafe.Offsetof(Connection{}.pc)))
}

func (h handler) OnOpen(pc *poller.Conn) {
	p := h.p
	c := connOf(pc)
	if p.closing.Load() {
		_ = pc.Write(respUnavailable, nil, true)
		pc.CloseAfterFlush(p.o.CloseTimeout)
		return
	}
	p.armDeadline(c, p.o.HandshakeTimeout)
}

func (h handler) OnData(pc *poller.Conn, in []byte) int {
	c := connOf(pc)
	switch State(c.state.Load()) {
	case StateHandshake:
		switch h.p.deadline(c) {
		case 0:
			// Refused (respond disarmed the handshake deadline): the
			// connection only lingers until it closes; input is discarded.
			return len(in)
		case handshakeExpired:
			h.p.refuse(c, respTimeout, RejectTimeout)
			return len(in)
		}
		return h.p.onHandshake(c, in)
	case StateAuth:
		// Early frames wait for the auth handler's verdict; an accepted
		// upgrade is opened here, on the loop, so that OnOpen comes before
		// OnMessage and never runs alongside OnData or OnClose.
		hs := c.rare.Load().authed.Swap(nil) // made before StateAuth
		if hs == nil {
			return 0
		}
		if !h.p.finishHandshake(c, hs, true) {
			return len(in)
		}
		return c.onFrames(in)
	case StateClosed:
		return len(in)
	}
	return c.onFramesBatch(in)
}

func (h handler) OnClose(pc *poller.Conn, err error) {
	p := h.p
	c := connOf(pc)
	prev := State(c.state.Swap(uint32(StateClosed)))
	if f := p.o.OnStateChange; f != nil {
		f(c, StateClosed)
	}
	p.disarmDeadline(c)
	c.releaseMsg()
	if c.deflate() {
		z := c.zstate()
		z.inflater.Release()
		c.sendMu.Lock()
		if z.deflater != p.shared {
			z.deflater.Release()
		}
		c.sendMu.Unlock()
	}
	if prev < StateOpen {
		return
	}
	if t := c.loadPending(); t != nil {
		t.failAll(p, err)
	}
	if s := c.session(); s != nil {
		p.detachSession(s)
	}
	p.unregister(c)
	p.queuesClosed(c)
	p.stats.closed.Add(1)
	code, reason := c.closeStatus()
	if code == 0 {
		code = frame.CloseAbnormal
		if err != nil {
			reason = err.Error()
		}
	}
	// After the messages received before the close have been handled.
	c.queueClosed(code, reason)
}

// onHandshake handles input before the upgrade.
func (p *Provider) onHandshake(c *Connection, in []byte) int {
	end := findRequestEnd(in)
	if end < 0 || end > p.o.MaxHandshakeSize {
		if end > 0 || len(in) >= p.o.MaxHandshakeSize {
			p.refuse(c, respTooLarge, RejectTooLarge)
			return len(in)
		}
		return 0
	}
	req := in[:end]
	method, path, _, ok := requestLine(req)
	switch {
	case !ok:
		p.refuse(c, respBadRequest, RejectBadRequest)
		return len(in)
	case string(path) == alivePath:
		switch string(method) {
		case "GET":
			p.respond(c, respAlive)
		case "HEAD":
			p.respond(c, respAliveHead)
		default:
			p.respond(c, respAliveMethod)
		}
		return len(in)
	case string(path) != p.o.Path:
		p.refuse(c, respNotFound, RejectNotFound)
		return len(in)
	case string(method) != "GET":
		p.refuse(c, respMethod, RejectMethod)
		return len(in)
	case !hasUpgradeHeader(req):
		p.refuse(c, respUpgradeNeeded, RejectUpgrade)
		return len(in)
	case !checkHeaderFields(req):
		p.refuse(c, respBadRequest, RejectBadRequest)
		return len(in)
	}
	hs := p.getHandshake(c)
	if p.o.Auth.Handler == nil {
		hs.req = req
		hs.ctx = p.ctx
		if !p.finishHandshake(c, hs, hs.upgrade()) {
			return len(in)
		}
		return end + c.onFrames(in[end:])
	}
	select {
	case p.authSem <- struct{}{}:
	default:
		p.putHandshake(hs)
		p.refuse(c, respBusy, RejectBusy)
		return len(in)
	}
	hs.req = bytes.Clone(req)
	c.rareState() // holds the auth step's state: made before StateAuth
	c.setState(StateAuth)
	// A client may half-close once its request is sent: it still gets the
	// answer, then the close.
	c.pc.KeepWritableAfterEOF(true)
	// Frames sent right behind the request wait in the poller's buffer.
	c.pc.SetMaxPending(p.maxFrameSize(true) + frame.MaxHeaderSize)
	p.wg.Add(1)
	go p.authWorker(c, hs)
	return end
}

// authWorker runs an upgrade whose auth handler may block, off the event
// loop.
func (p *Provider) authWorker(c *Connection, hs *handshake) {
	defer p.wg.Done()
	defer func() { <-p.authSem }()
	ctx, cancel := context.WithDeadline(p.ctx, time.Unix(0, p.deadline(c)))
	hs.ctx = ctx
	ok := hs.upgrade()
	timedOut := ctx.Err() == context.DeadlineExceeded
	cancel()
	r := c.rare.Load() // made before the worker started
	if !r.authOver.CompareAndSwap(false, true) {
		// The handshake deadline passed while the handler ran: the timer
		// has answered 408 and counted the timeout.
		p.putHandshake(hs)
		return
	}
	if !ok && timedOut {
		// The handler gave up at its context's deadline: a timeout, not an
		// auth failure.
		p.putHandshake(hs)
		p.refuse(c, respTimeout, RejectTimeout)
		return
	}
	if !ok {
		p.finishHandshake(c, hs, false)
		return
	}
	r.authed.Store(hs)
	c.pc.Wake() // OnData opens the connection
}

// respond writes a canned HTTP response and closes once it is written.
func (p *Provider) respond(c *Connection, resp []byte) {
	p.disarmDeadline(c)
	_ = c.pc.Write(resp, nil, true)
	c.pc.Flush()
	c.pc.CloseAfterFlush(p.o.CloseTimeout)
}

// refuse is respond for a rejected upgrade request, counted in Stats.
func (p *Provider) refuse(c *Connection, resp []byte, why RejectReason) {
	p.stats.rejected[why].Add(1)
	p.respond(c, resp)
}

// finishHandshake writes the upgrade response and either opens the
// connection or closes it. It reports whether the connection is open.
func (p *Provider) finishHandshake(c *Connection, hs *handshake, ok bool) bool {
	defer p.putHandshake(hs)
	if !ok {
		if hs.authErr != nil {
			p.report(fmt.Errorf("%w: connection from %s: %w", ErrAuthFailed, c.IP(), hs.authErr))
		}
		p.stats.rejected[hs.rejected].Add(1)
		p.respond(c, hs.resp)
		return false
	}
	c.pc.KeepWritableAfterEOF(false) // from now on a half-close ends the connection
	if c.pc.PeerEOF() {
		// The client half-closed while its upgrade was checked: it gets
		// the answer, then the close; nothing can be read from it.
		p.respond(c, hs.resp)
		return false
	}
	// The response is queued before the connection opens: once it is open,
	// OnClose will report it, so OnOpen must follow.
	if err := c.pc.Write(hs.resp, nil, true); err != nil {
		return false // closed (Provider closing, say) while upgrading
	}
	if !c.casState(StateHandshake, StateOpen) && !c.casState(StateAuth, StateOpen) {
		return false // closed (timeout, Provider closing) while upgrading
	}
	p.disarmDeadline(c)
	c.uid = uuid.New()
	if hs.rawQuery != "" {
		// Kept as the query string, parsed again on first use.
		c.rareState().query = hs.rawQuery
	}
	if hs.v2 {
		c.cf |= cV2
	}
	if c.v2() && hs.session != "" {
		p.attachSession(c, hs.session)
	}
	c.lastPing.Store(time.Now().UnixNano())
	if hs.extOK {
		cfg := compress.NewConfig(p.o.Compressor, hs.extResp, true)
		z := &deflateState{
			fullWindow: cfg.CompressWindowBits == 0 || cfg.CompressWindowBits == 15,
			inflater:   compress.NewDecompressor(cfg),
		}
		if !cfg.CompressContextTakeover && z.fullWindow {
			z.deflater = p.shared // keeps nothing: one for every connection
		} else {
			z.deflater = compress.NewCompressor(cfg)
			z.zcontext = cfg.CompressContextTakeover
		}
		c.rareState().z = z
		c.cf |= cDeflate
	}
	c.asm.SetMaxPayload(int64(p.maxFrameSize(c.deflate())))
	// Data frames are taken as their payload arrives (onFrames): the poller
	// carries over at most a frame header or a control frame.
	c.pc.SetMaxPending(p.o.MaxHandlerQueue + p.maxFrameSize(c.deflate()) + maxCarried)
	c.pc.SetMaxBuffered(p.o.MaxBackpressure)
	if p.announce != nil {
		_ = c.pc.WriteShared(p.announce, true)
	}
	p.observeOpened(c) // before anyone can find c to subscribe it
	p.register(c)
	p.stats.opened.Add(1)
	c.queueOpen()
	if p.closing.Load() {
		// Shutdown began during the upgrade and may have missed it.
		c.closeWith(frame.CloseGoingAway, "provider shutting down")
	}
	p.queuesOpened(c)
	if !c.deflate() {
		// The read side never blocks (user handlers run on the handler
		// pool), so the poller may run it on its poll loop, saving a
		// hand-off per read. Inflating a large message is left to workers.
		c.pc.SetInline(true)
	}
	return true
}

// maxFrameSize is the largest frame payload accepted on the wire: the max
// payload, plus, with compression, room for deflate's worst-case expansion
// of incompressible data (zlib's conservative deflateBound, which covers
// small windows and memory levels: n + n/8 + n/64 + 5). The inflated size
// is held to the max payload exactly, while inflating.
func (p *Provider) maxFrameSize(deflate bool) int {
	n := p.o.MaxPayloadLength
	if deflate {
		n += n/8 + n/64 + 64
	}
	return n
}

// --- registry ---

func (p *Provider) register(c *Connection) {
	p.connMu.Lock()
	if k := idKey(c.uid); p.byID[k] == nil {
		p.byID[k] = c
	} else {
		if p.byIDx == nil {
			p.byIDx = make(map[[16]byte]*Connection)
		}
		p.byIDx[c.uid] = c
	}
	p.connMu.Unlock()
	p.lenWait.changed()
}

// idKey is the registry's key for a connection id: its first 8 bytes,
// random (a map keyed by 8 bytes costs about 14 B per connection less than
// one keyed by 16). Two live connections with the same key are possible in
// principle: the second goes to byIDx.
func idKey(uid [16]byte) uint64 { return binary.LittleEndian.Uint64(uid[:8]) }

// snapshotConns appends the registered connections to dst.
func (p *Provider) snapshotConns(dst []*Connection) []*Connection {
	p.connMu.RLock()
	for _, c := range p.byID {
		dst = append(dst, c)
	}
	for _, c := range p.byIDx {
		dst = append(dst, c)
	}
	p.connMu.RUnlock()
	return dst
}

func (p *Provider) unregister(c *Connection) {
	if topics := p.unsubscribeAll(c); len(p.observers) > 0 {
		defer p.observeClosed(c, topics)
	}
	p.connMu.Lock()
	defer p.connMu.Unlock()
	switch k := idKey(c.uid); {
	case p.byID[k] == c:
		delete(p.byID, k)
	case p.byIDx[c.uid] == c:
		delete(p.byIDx, c.uid)
	default:
		return
	}
	p.lenWait.changed() // under connMu: harmless, it only closes a channel
}

// --- timers ---

// armDeadline sets c's handshake or closing deadline. Deadlines are kept
// by the Provider, not the Connection: few connections have one at a time.
func (p *Provider) armDeadline(c *Connection, d time.Duration) {
	ns := time.Now().Add(d).UnixNano()
	p.dlMu.Lock()
	p.deadlines[c] = ns
	p.dlMu.Unlock()
}

func (p *Provider) disarmDeadline(c *Connection) {
	p.dlMu.Lock()
	delete(p.deadlines, c)
	p.dlMu.Unlock()
}

// deadline returns c's deadline in unix nanoseconds: 0 for none,
// handshakeExpired for a handshake that timed out.
func (p *Provider) deadline(c *Connection) int64 {
	p.dlMu.Lock()
	d := p.deadlines[c]
	p.dlMu.Unlock()
	return d
}

// timerLoop is the Provider's one timer: it expires handshake and closing
// deadlines and runs the heartbeat for every connection.
func (p *Provider) timerLoop() {
	defer p.wg.Done()
	tick := handshakeTimerResolutionStep
	if hb := p.o.Heartbeat.Interval / 4; hb < tick {
		tick = hb
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	next := time.Now().Add(p.o.Heartbeat.Interval)
	const sweepEvery = 5 * time.Second
	nextSweep := time.Now().Add(sweepEvery)
	var expired []*Connection
	for {
		select {
		case <-p.done:
			return
		case now := <-t.C:
			p.reapHandlers()
			expired = p.expire(now, expired[:0])
			if !now.Before(nextSweep) {
				nextSweep = now.Add(sweepEvery)
				p.sweepSessions(now)
			}
			if p.o.Heartbeat.Mode != HeartbeatOff && !now.Before(next) {
				next = now.Add(p.o.Heartbeat.Interval)
				p.heartbeat()
			}
		}
	}
}

func (p *Provider) expire(now time.Time, expired []*Connection) []*Connection {
	ns := now.UnixNano()
	p.dlMu.Lock()
	for c, d := range p.deadlines {
		if d > 0 && d <= ns {
			// Kept (until disarmed, by OnClose at the latest) as expired,
			// which tells OnData to refuse a handshake.
			p.deadlines[c] = handshakeExpired
			expired = append(expired, c)
		}
	}
	p.dlMu.Unlock()
	for i, c := range expired {
		switch State(c.state.Load()) {
		case StateHandshake:
			// Refused by OnData, on the loop, so that the 408 cannot
			// cross an upgrade in progress.
			c.pc.Wake()
		case StateAuth:
			// Unless the handler's verdict came first: the upgrade cannot
			// complete once this claims the auth step.
			if c.rare.Load().authOver.CompareAndSwap(false, true) { // made before StateAuth
				p.refuse(c, respTimeout, RejectTimeout)
			}
		case StateClosing:
			c.pc.Close(errCloseTimeout)
		}
		// Open: the handshake deadline of a connection that has just
		// opened and is about to disarm it.
		expired[i] = nil
	}
	return expired
}

// maxCarried, plus MaxHandlerQueue and a frame, caps the input the poller carries over
// for an open connection: a partial frame header or control frame, what
// arrives while a woken OnData runs, and what arrives while its input is
// left unread for its handlers to catch up.
const maxCarried = 64 << 10

// handshakeExpired is the deadline of a connection whose handshake timed
// out, for OnData to refuse.
const handshakeExpired = -1

var (
	errCloseTimeout = errors.New("provider: no close frame from the peer in time")
	errHeartbeat    = errors.New("provider: heartbeat: no answer")
)

// heartbeat runs the strike algorithm of the Node package on every open
// connection: a connection that answered since the last ping gets a new
// one; one that did not gets a strike; one with MaxStrikes strikes is closed.
func (p *Provider) heartbeat() {
	snap := getSnapshot()
	defer putSnapshot(snap)
	*snap = p.snapshotConns(*snap)
	max := int32(min(p.o.Heartbeat.MaxStrikes, maxStrikes))
	for _, c := range *snap {
		if State(c.state.Load()) != StateOpen || c.hb.Load()&hbPaused != 0 {
			// Paused: its answers wait, unread, behind input its handlers
			// have yet to catch up with; the peer is not at fault.
			continue
		}
		switch {
		case c.hb.Load()&hbAwaiting == 0:
			c.hb.Or(hbAwaiting)
			if c.pc.WriteShared(p.pingFrame, true) == nil {
				c.pc.Flush()
			}
		case c.strikes() < max:
			c.hb.Add(1 << strikeShift)
		case c.hb.Or(hbKilled)&hbKilled != 0:
			// Killed at an earlier tick and still closing: counted once.
		default:
			p.stats.heartbeatKills.Add(1)
			c.recordClose(frame.CloseAbnormal, "heartbeat: no answer after "+strconv.Itoa(int(max))+" strikes")
			c.pc.Close(errHeartbeat)
		}
	}
}
