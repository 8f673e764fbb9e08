package provider

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/networkcluster/networkcluster/compress"
	"github.com/networkcluster/networkcluster/frame"
	"github.com/networkcluster/networkcluster/internal/proto"
	"github.com/networkcluster/networkcluster/poller"
)

// State is the life-cycle state of a connection.
type State uint32

// Connection states, in order. A connection moves only forward.
const (
	StateHandshake State = iota // reading the upgrade request
	StateAuth                   // the auth handler is running
	StateOpen                   // upgraded: messages flow
	StateClosing                // a close frame was sent or received
	StateClosed                 // the TCP connection is closed
)

var stateNames = [...]string{"handshake", "auth", "open", "closing", "closed"}

// String returns the state's name.
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint32(s))
}

// Connection is one Consumer's connection to the Provider.
//
// Its methods are safe for concurrent use by any number of goroutines. The
// data-carrying callbacks for one connection (OnOpen, then OnMessage in
// order, then OnClose) are never run concurrently with each other.
type Connection struct {
	// An idle connection costs what this struct holds, its poller.Conn
	// included: 240 bytes in one allocation (see connOf). What most
	// connections never need is made on first use (rare, z, pending,
	// topics, ...); flags guarded alike share a word. Fields are ordered to
	// leave no padding.
	pc   poller.Conn // the connection in the poller (one allocation with c: see connOf)
	p    *Provider
	uid  [16]byte                 // the id (a UUID v4), set when the upgrade completes; zero before
	rare atomic.Pointer[connRare] // made on first use

	state atomic.Uint32
	hb    atomic.Uint32 // flags hbAwaiting, hbKilled, hbPaused, hbDirect, hbFailed; the heartbeat's strikes from bit strikeShift

	// Read side: touched only by the goroutine running OnData for this
	// connection (the poller never runs two at once for one connection).
	partLeft int32   // payload bytes still to come of a frame taken in pieces; 0: none (frames are under 2 GiB: maxFrameSize)
	partMask [4]byte // its masking key, rotated to apply from the next piece's first byte; zero for an unmasked frame
	asm      frame.Assembler
	msg      *msgBuf // the message being assembled (pooled), charged to the budget

	// Write side.
	sendMu sync.Mutex // orders the open check and queueing of a message against the close frame (and compress+queue)

	// Handler queue (dispatch.go), under hMu.
	hMu     sync.Mutex
	hBytes  uint32 // bytes queued and not yet handled (at most MaxHandlerQueue, 1 GiB, plus a message, 1 GiB)
	hf      uint8  // hfScheduled, hfOpen, hfClose, hfDone, hfBatch
	hAction uint8  // a read-side action due after the queued messages
	rf      uint8  // (read side, not under hMu) rfPeerClosed, rfFailed
	cf      uint8  // (not under hMu) cDeflate, cV2: set before the connection opens

	// Heartbeat: the timer goroutine and the read side (and hb above).
	lastPing atomic.Int64 // unix nanoseconds of the last answer (pong)

	hTail *msgBuf // under hMu: the queued messages, a circular list (hTail.next is the first)
}

// Connection.hf's flags, under hMu.
const (
	hfScheduled = 1 << iota // on the run queue, or a worker runs it
	hfOpen                  // OnOpen is due
	hfClose                 // OnClose is due (after the queued messages)
	hfDone                  // OnClose has run
	hfBatch                 // the read side is parsing a batch of input: it kicks the handlers once, at the end
)

// Connection.rf's flags, the read side's.
const (
	rfPeerClosed = 1 << iota // the peer's close frame was received: input is discarded
	rfFailed                 // the connection was failed (RFC 6455 §7.1.7): input is discarded
)

// Connection.cf's flags, set before the connection opens.
const (
	cDeflate = 1 << iota // permessage-deflate negotiated
	cV2                  // subprotocol network-cluster.v2: binary frames carry an envelope
)

// deflate reports whether permessage-deflate was negotiated.
func (c *Connection) deflate() bool { return c.cf&cDeflate != 0 }

// v2 reports whether the subprotocol is network-cluster.v2.
func (c *Connection) v2() bool { return c.cf&cV2 != 0 }

// strikes returns the heartbeat's strikes.
func (c *Connection) strikes() int32 { return int32(c.hb.Load() >> strikeShift) }

// setDirect sets or clears hbDirect; only the handler worker running c
// changes it, so it is read first to skip a write that changes nothing.
func (c *Connection) setDirect(on bool) {
	switch set := c.hb.Load()&hbDirect != 0; {
	case on && !set:
		c.hb.Or(hbDirect)
	case !on && set:
		c.hb.And(^uint32(hbDirect))
	}
}

// connRare is the state few connections need, or need only at the end.
type connRare struct {
	idStr    atomic.Pointer[[36]byte]     // the id's string form, made by the first ID
	value    atomic.Value                 // SetValue's
	closeRec atomic.Pointer[closeRecord]  // the first close code and reason
	sess     *session                     // the Consumer's de-duplication session, or nil; set before the connection opens
	topics   topicSet                     // under Provider.topicMu
	actErr   error                        // actFail's error; actPeerClose's code and reason (*CloseError); under Connection.hMu
	remote   atomic.Pointer[net.Addr]     // RemoteAddr's, made by the first call
	z        *deflateState                // permessage-deflate's state (Connection.deflate), set before the connection opens
	pending  atomic.Pointer[pendingTable] // unanswered requests sent on c (subprotocol network-cluster.v2); made on first use
	query    string                       // the upgrade request's query when it had parameters; set before the connection opens
	params   atomic.Pointer[url.Values]   // query parsed, by the first Parameters (a map costs ten times the string)

	// With an auth handler, made before the connection enters StateAuth.
	authOver atomic.Bool               // the auth step ended: by the handler's verdict or by the handshake deadline
	authed   atomic.Pointer[handshake] // an upgrade the auth handler accepted, for OnData to open
}

// Connection.hb's flags; the strikes take the bits from strikeShift on.
const (
	hbAwaiting = 1 << iota // a ping was sent and not answered
	hbKilled               // the heartbeat closed it (counted once)
	hbPaused               // input is not taken: hBytes went over MaxHandlerQueue
	hbDirect               // a handler worker handles the last queued message: a send flushes on that goroutine
	hbFailed               // deliver failed the connection (handler workers only)

	strikeShift = 8
	hbFlags     = 1<<strikeShift - 1
	maxStrikes  = 1<<(32-strikeShift) - 1 // what the strikes' bits hold: MaxStrikes above it act as it
)

// zstate returns the permessage-deflate state of a connection that
// negotiated it (c.deflate).
func (c *Connection) zstate() *deflateState { return c.rare.Load().z }

// session returns the Consumer's de-duplication session, or nil.
func (c *Connection) session() *session {
	if r := c.rare.Load(); r != nil {
		return r.sess
	}
	return nil
}

// subs returns the topics c is subscribed to (nil for none); the caller
// holds Provider.topicMu.
func (c *Connection) subs() topicSet {
	if r := c.rare.Load(); r != nil {
		return r.topics
	}
	return nil
}

// rareState returns c's rare state, making it on first use.
func (c *Connection) rareState() *connRare {
	if r := c.rare.Load(); r != nil {
		return r
	}
	r := new(connRare)
	if !c.rare.CompareAndSwap(nil, r) {
		r = c.rare.Load()
	}
	return r
}

// deflateState is a connection's permessage-deflate state.
type deflateState struct {
	inflater   *compress.Decompressor // read side
	deflater   *compress.Compressor   // under sendMu
	fullWindow bool                   // the peer accepts back-references of 32 KiB (15 bits)
	zcontext   bool                   // deflater keeps context: what it compresses must be sent
}

// closeRecord is a connection's close code and reason, recorded once.
type closeRecord struct {
	code   CloseCode
	reason string
}

// ID returns the connection's unique id, a UUID v4 string ("" until the
// upgrade completes).
func (c *Connection) ID() string {
	if r := c.rare.Load(); r != nil {
		if s := r.idStr.Load(); s != nil {
			return unsafe.String(&s[0], len(s))
		}
	}
	if c.uid == ([16]byte{}) {
		return ""
	}
	r := c.rareState()
	s := new([36]byte)
	formatUUID(s, &c.uid)
	if !r.idStr.CompareAndSwap(nil, s) {
		s = r.idStr.Load()
	}
	return unsafe.String(&s[0], len(s))
}

// IP returns the remote IP address, without the port.
func (c *Connection) IP() string { return ipOf(c.RemoteAddr()) }

// RemoteAddr returns the remote network address (for TCP a *net.TCPAddr,
// which must not be modified).
func (c *Connection) RemoteAddr() net.Addr {
	if r := c.rare.Load(); r != nil {
		if a := r.remote.Load(); a != nil {
			return *a
		}
	}
	a := c.pc.RemoteAddr()
	if !c.rareState().remote.CompareAndSwap(nil, &a) {
		a = *c.rare.Load().remote.Load()
	}
	return a
}

// Parameters returns the decoded URL query parameters of the upgrade
// request (required auth parameters and any other metadata): nil when it
// had none. The map must not be modified.
func (c *Connection) Parameters() url.Values {
	r := c.rare.Load()
	if r == nil || r.query == "" {
		return nil
	}
	if v := r.params.Load(); v != nil {
		return *v
	}
	v, _ := url.ParseQuery(r.query) // it was parsed without error at the upgrade
	if !r.params.CompareAndSwap(nil, &v) {
		v = *r.params.Load()
	}
	return v
}

// Param returns the first value of the query parameter key, or "".
func (c *Connection) Param(key string) string { return c.Parameters().Get(key) }

// LastPing returns when the connection last answered a heartbeat ping (the
// time it opened until the first answer).
func (c *Connection) LastPing() time.Time { return time.Unix(0, c.lastPing.Load()) }

// Strikes returns how many heartbeat intervals in a row the connection has
// let pass without answering.
func (c *Connection) Strikes() int { return int(c.strikes()) }

// State returns the connection's current state.
func (c *Connection) State() State { return State(c.state.Load()) }

// Buffered returns the bytes queued for the connection and not yet taken by
// the kernel: its backpressure.
func (c *Connection) Buffered() int { return c.pc.Buffered() }

// Compressed reports whether permessage-deflate was negotiated.
func (c *Connection) Compressed() bool { return c.deflate() }

// SetValue attaches an application value to the connection; Value returns
// it. Safe for concurrent use; v must always be of the same concrete type.
func (c *Connection) SetValue(v any) { c.rareState().value.Store(v) }

// Value returns the value set by SetValue, or nil.
func (c *Connection) Value() any {
	if r := c.rare.Load(); r != nil {
		return r.value.Load()
	}
	return nil
}

func (c *Connection) setState(s State) {
	c.state.Store(uint32(s))
	if f := c.p.o.OnStateChange; f != nil {
		f(c, s)
	}
}

// casState moves from one state to another, reporting whether it did.
func (c *Connection) casState(from, to State) bool {
	if !c.state.CompareAndSwap(uint32(from), uint32(to)) {
		return false
	}
	c.stateChanged(to)
	return true
}

// stateChanged tells OnStateChange of a move to s.
func (c *Connection) stateChanged(s State) {
	if f := c.p.o.OnStateChange; f != nil {
		f(c, s)
	}
}

// queueClose moves from open to closing, records code and reason as the
// connection's close status and queues a close frame with payload, all in
// one step under sendMu, so that no message queued by a concurrent Send or
// Broadcast can follow the close frame on the wire (RFC 6455 §5.5.1). It
// reports whether it moved the state, and whether the frame was queued.
func (c *Connection) queueClose(code CloseCode, reason string, payload []byte) (moved, queued bool) {
	c.sendMu.Lock()
	if !c.state.CompareAndSwap(uint32(StateOpen), uint32(StateClosing)) {
		c.sendMu.Unlock()
		return false, false
	}
	c.recordClose(code, reason)
	var hb [frame.MaxHeaderSize]byte
	hdr := frame.AppendHeader(hb[:0], frame.Header{Fin: true, Op: frame.OpClose, Length: int64(len(payload))})
	queued = c.pc.Write(hdr, payload, true) == nil
	c.sendMu.Unlock()
	c.stateChanged(StateClosing)
	return true, queued
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// formatUUID writes u in the canonical form: 8-4-4-4-12 lower-case hex
// digits.
func formatUUID(dst *[36]byte, u *[16]byte) {
	const hexDigits = "0123456789abcdef"
	j := 0
	for i, b := range u {
		switch i {
		case 4, 6, 8, 10:
			dst[j] = '-'
			j++
		}
		dst[j], dst[j+1] = hexDigits[b>>4], hexDigits[b&0x0f]
		j += 2
	}
}

// parseUUID parses the canonical form that formatUUID writes, and nothing
// else (no upper case, braces or prefix): ok is false for any other string.
func parseUUID(s string) (u [16]byte, ok bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, false
	}
	j := 0
	for i := range u {
		switch i {
		case 4, 6, 8, 10:
			j++
		}
		hi, lo := hexValue(s[j]), hexValue(s[j+1])
		if hi < 0 || lo < 0 {
			return u, false
		}
		u[i] = byte(hi<<4 | lo)
		j += 2
	}
	return u, true
}

func hexValue(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	}
	return -1
}

func ipOf(a net.Addr) string {
	if a == nil {
		return ""
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap().String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// --- sending ---

// Send sends a text message. It returns nil once the message is queued for
// the connection (it is then written without blocking the caller, in order
// with the connection's other messages), or an error: ErrClosed (wrapped
// with the close code) when the connection is not open, ErrBackpressure when
// the queue is over MaxBackpressure (see Options.Backpressure),
// ErrInvalidUTF8 for text that is not UTF-8.
//
// A nil error means the message is queued on this connection, in order: it
// is not an acknowledgement. If the connection is lost before the Consumer
// reads it (the worker dies, the network drops), the message is lost with
// the connection. To know that the Consumer has a message, send it with
// [Connection.Request]: its reply (or its error) says what happened.
func (c *Connection) Send(msg string) error {
	return c.send(frame.OpText, unsafeBytes(msg), true)
}

// SendText is Send for a byte slice. p is not retained after it returns.
func (c *Connection) SendText(p []byte) error { return c.send(frame.OpText, p, true) }

// SendBinary sends a binary message. p is not retained after it returns.
func (c *Connection) SendBinary(p []byte) error { return c.send(frame.OpBinary, p, true) }

// SendOptions is SendText or SendBinary with per-message control of
// compression: compress false sends the message uncompressed even when
// permessage-deflate is on and it is above the threshold.
func (c *Connection) SendOptions(binary, compress bool, p []byte) error {
	op := frame.OpText
	if binary {
		op = frame.OpBinary
	}
	return c.send(op, p, compress)
}

func (c *Connection) send(op frame.Opcode, p []byte, mayCompress bool) error {
	if op == frame.OpText && !frame.ValidUTF8(p) {
		return ErrInvalidUTF8
	}
	if op == frame.OpBinary && c.v2() {
		return c.sendEnvelope(op, envPlain, p, mayCompress)
	}
	return c.sendEnvelope(op, nil, p, mayCompress)
}

// envPlain is the envelope of a plain binary message on a v2 connection.
var envPlain = []byte{proto.KindMessage}

// sendEnvelope queues one message whose payload is env followed by p (env
// is a v2 envelope header, or empty).
func (c *Connection) sendEnvelope(op frame.Opcode, env, p []byte, mayCompress bool) error {
	if State(c.state.Load()) != StateOpen {
		return c.closedError()
	}
	n := len(env) + len(p)
	var err error
	c.sendMu.Lock()
	switch {
	case State(c.state.Load()) != StateOpen:
		c.sendMu.Unlock()
		return c.closedError()
	case c.deflate() && mayCompress && c.p.shouldCompress(n):
		err = c.sendCompressed(op, env, p)
	default:
		var hb [frame.MaxHeaderSize + proto.MaxEnvelopeHeader + 3 + proto.MaxReason]byte
		hdr := frame.AppendHeader(hb[:0], frame.Header{Fin: true, Op: op, Length: int64(n)})
		if len(env) <= len(hb)-len(hdr) {
			err = c.pc.Write(append(hdr, env...), p, false)
		} else {
			err = c.writeJoined(hdr, env, p)
		}
	}
	c.sendMu.Unlock()
	return c.afterWrite(err, len(p))
}

// writeJoined queues hdr, env and p as one unit (env too long for the
// header buffer: a whole kept reply); the caller holds sendMu.
func (c *Connection) writeJoined(hdr, env, p []byte) error {
	buf := getScratch()
	defer putScratch(buf)
	*buf = append(append((*buf)[:0], env...), p...)
	return c.pc.Write(hdr, *buf, false)
}

// sendCompressed compresses and queues a message (env followed by p); the
// caller holds sendMu.
func (c *Connection) sendCompressed(op frame.Opcode, env, p []byte) error {
	if len(env) > 0 {
		joined := getScratch()
		defer putScratch(joined)
		*joined = append(append((*joined)[:0], env...), p...)
		p = *joined
	}
	buf := getScratch()
	defer putScratch(buf)
	z := c.zstate()
	if z.zcontext && c.p.o.Backpressure == RefuseOnBackpressure {
		// A compressor that keeps context must send what it compressed, so
		// refuse before compressing: the frame is never larger than this.
		if b := c.pc.Buffered(); b > 0 && b+len(p)+len(p)/1024+64 > c.p.o.MaxBackpressure {
			return frame.ErrBackpressure
		}
	}
	out, err := z.deflater.Compress((*buf)[:0], p)
	if err != nil {
		return err
	}
	*buf = out
	var hb [frame.MaxHeaderSize]byte
	hdr := frame.AppendHeader(hb[:0], frame.Header{Fin: true, Rsv: 4, Op: op, Length: int64(len(out))})
	err = c.pc.Write(hdr, out, false)
	if err != nil && z.zcontext && errors.Is(err, frame.ErrBackpressure) {
		// Compressed but not sent: the peer's inflater and our compressor
		// no longer agree, so the connection cannot go on.
		return errContextLost
	}
	if err == nil {
		c.p.stats.framesCompressed.Add(1)
	}
	return err
}

// afterWrite applies the backpressure policy to a write's error and starts
// the flush of a successful one.
func (c *Connection) afterWrite(err error, n int) error {
	switch {
	case err == nil:
		if c.hb.Load()&hbDirect != 0 {
			// A reply from the handler of the last queued message: written
			// by the handler's goroutine at once (without blocking: what
			// the socket does not take waits for write readiness), not
			// handed to a flusher goroutine.
			c.pc.FlushNow()
		} else {
			c.pc.Flush()
		}
		c.p.stats.messagesOut.Add(1)
		c.p.stats.bytesOut.Add(uint64(n))
		return nil
	case errors.Is(err, frame.ErrBackpressure):
		return c.backpressure(err)
	case errors.Is(err, poller.ErrClosed):
		return c.closedError()
	}
	return err
}

// errContextLost: a message was compressed with context but could not be
// queued, so the connection must close whatever the backpressure policy.
var errContextLost = fmt.Errorf("%w (compression context lost)", frame.ErrBackpressure)

// backpressure handles a send refused by the queue limit.
func (c *Connection) backpressure(err error) error {
	if c.p.o.Backpressure == RefuseOnBackpressure && err != errContextLost {
		c.p.stats.backpressureRefusals.Add(1)
		return fmt.Errorf("%w: %d bytes queued for connection %s (limit %d)",
			ErrBackpressure, c.pc.Buffered(), c.ID(), c.p.o.MaxBackpressure)
	}
	c.p.stats.backpressureCloses.Add(1)
	c.closeWith(ClosePolicyViolationBackpressure, reasonBackpressure)
	return fmt.Errorf("%w: connection %s closed (%d bytes queued, limit %d)",
		ErrBackpressure, c.ID(), c.pc.Buffered(), c.p.o.MaxBackpressure)
}

// ClosePolicyViolationBackpressure is the close code sent when the default
// backpressure policy closes a connection; the reason is
// "max backpressure exceeded".
const ClosePolicyViolationBackpressure = frame.ClosePolicyViolation

const reasonBackpressure = "max backpressure exceeded"

func (c *Connection) closedError() error {
	switch State(c.state.Load()) {
	case StateHandshake, StateAuth:
		return fmt.Errorf("%w: connection %s is not open yet", ErrClosed, c.ID())
	}
	code, reason := c.closeStatus()
	if code == 0 {
		return fmt.Errorf("%w: connection %s", ErrClosed, c.ID())
	}
	return fmt.Errorf("%w: connection %s: %w", ErrClosed, c.ID(), &CloseError{Code: code, Reason: reason})
}

// Close starts the closing handshake with code and reason (RFC 6455 §7):
// queued messages are written first, then the close frame; the connection is
// released when the Consumer answers or after Options.CloseTimeout. A code of
// 0 means 1000 (normal). It returns an error for a code that may not be sent
// (1005, 1006, 1015, ...) and one wrapping ErrInvalidUTF8 for a reason that
// is not UTF-8 (RFC 6455 §5.5.1; the Consumer would fail the connection with
// 1007); a reason over 123 bytes is cut at a rune boundary. Calling Close
// again does nothing.
func (c *Connection) Close(code CloseCode, reason string) error {
	if code == 0 {
		code = frame.CloseNormal
	}
	if !code.ValidOnWire() {
		return fmt.Errorf("provider: close code %v may not be sent", code)
	}
	if !utf8.ValidString(reason) {
		return fmt.Errorf("provider: close reason: %w", ErrInvalidUTF8)
	}
	c.closeWith(code, reason)
	return nil
}

// closeWith sends a close frame (once) and moves to closing; the connection
// is released when the peer answers or at the close deadline.
func (c *Connection) closeWith(code CloseCode, reason string) {
	var buf [frame.MaxControlPayload]byte
	moved, queued := c.queueClose(code, reason, frame.AppendClose(buf[:0], code, reason))
	switch {
	case !moved:
	case queued:
		c.pc.Flush()
		c.p.armDeadline(c, c.p.o.CloseTimeout)
	default:
		c.pc.Close(nil)
	}
}

// recordClose keeps the first close code and reason of the connection.
func (c *Connection) recordClose(code CloseCode, reason string) {
	if code == 0 {
		return
	}
	if r := c.rareState(); r.closeRec.Load() == nil {
		r.closeRec.CompareAndSwap(nil, &closeRecord{code: code, reason: reason})
	}
}

// closeStatus returns the recorded close code and reason (0 if none).
func (c *Connection) closeStatus() (CloseCode, string) {
	if r := c.rare.Load(); r != nil {
		if cr := r.closeRec.Load(); cr != nil {
			return cr.code, cr.reason
		}
	}
	return 0, ""
}

// fail fails the connection after a protocol violation (RFC 6455 §7.1.7):
// it sends a close frame with the code err carries (1002 when it carries
// none), reads nothing more, and closes once the frame is written and the
// peer has closed its side, or after CloseTimeout.
//
// The messages received before the failure are handled first: if the
// connection's handlers are busy, the close frame is sent once they have
// run (so that their replies precede it).
func (c *Connection) fail(err error) {
	c.rf |= rfFailed
	c.releaseMsg() // nothing more is read
	if c.deferAction(actFail, err) {
		return
	}
	c.failNow(err)
}

func (c *Connection) failNow(err error) {
	code := frame.CloseStatus(err)
	if code == 0 {
		code = frame.CloseProtocolError
	}
	reason := ""
	var ce *frame.CloseError
	if errors.As(err, &ce) {
		reason = ce.Reason
	}
	var buf [frame.MaxControlPayload]byte
	if moved, _ := c.queueClose(code, reason, frame.AppendClose(buf[:0], code, reason)); !moved {
		// Already closing: stop reading and end the wait for the peer.
		c.pc.CloseAfterFlush(c.p.o.CloseTimeout)
		return
	}
	if code != frame.CloseTryAgainLater {
		c.p.stats.protocolErrors.Add(1)
	}
	c.p.report(fmt.Errorf("provider: connection %s: %w", c.ID(), err))
	c.pc.CloseAfterFlush(c.p.o.CloseTimeout)
}

// --- receiving ---

// onFrames parses and handles the frames at the start of in and returns how
// many bytes it consumed. A data frame is taken as its payload arrives
// (unmasked, its text checked, appended to the message being assembled), so
// that the poller carries over at most a frame header or a control frame
// (125 bytes), and invalid text fails the connection at the first bad byte.
func (c *Connection) onFrames(in []byte) int {
	pos := 0
	for pos < len(in) {
		if c.rf != 0 {
			return len(in) // nothing more is read after a close or a failure
		}
		if c.hb.Load()&hbPaused != 0 {
			// The handlers are behind: the rest waits in the poller
			// (Options.MaxHandlerQueue) until they catch up and wake us.
			return pos
		}
		if c.partLeft > 0 {
			k := min(int(c.partLeft), len(in)-pos)
			err := c.framePart(in[pos : pos+k])
			pos += k
			if err == nil && c.partLeft == 0 {
				err = c.frameEnd(nil)
			}
			if err != nil {
				c.fail(err)
				return len(in)
			}
			continue
		}
		h, n, need, err := frame.ParseHeader(in[pos:], c.p.parse[b2i(c.deflate())])
		if err != nil {
			c.fail(err)
			return len(in)
		}
		if need > 0 {
			break
		}
		end := pos + n + int(h.Length)
		if end > len(in) {
			if h.Op.IsControl() {
				// At most 125 bytes: wait for all of it, after refusing
				// a frame that breaks the rules before it arrives.
				if err := c.asm.Check(h); err != nil {
					c.fail(err)
					return len(in)
				}
				break
			}
			// A data frame whose payload has not all arrived: take its
			// header now and its payload piece by piece.
			if err := c.frameStart(h); err != nil {
				c.fail(err)
				return len(in)
			}
			pos += n
			continue
		}
		payload := in[pos+n : end]
		if h.Masked {
			frame.Mask(payload, h.Mask, 0)
		}
		pos = end
		if err := c.onFrame(h, payload); err != nil {
			c.fail(err)
			return len(in)
		}
	}
	return pos
}

// frameStart begins a data frame whose payload will arrive in pieces.
func (c *Connection) frameStart(h frame.Header) error {
	if err := c.asm.Begin(h); err != nil {
		return err
	}
	c.partLeft, c.partMask = int32(h.Length), h.Mask
	if !h.Masked {
		c.partMask = [4]byte{} // masking with a zero key changes nothing
	}
	if State(c.state.Load()) == StateOpen {
		// Room for the whole frame at once, so that the buffer is not
		// regrown (and copied) piece by piece.
		c.growMsg(int(h.Length))
	}
	return nil
}

// framePart takes the next piece of the payload of the frame in progress.
func (c *Connection) framePart(p []byte) error {
	if m := c.partMask; m != ([4]byte{}) {
		// The key rotated to apply from the next piece's first byte.
		k := frame.Mask(p, m, 0)
		c.partMask = [4]byte{m[k], m[(k+1)&3], m[(k+2)&3], m[(k+3)&3]}
	}
	c.partLeft -= int32(len(p))
	if err := c.asm.Payload(p); err != nil {
		return err
	}
	if State(c.state.Load()) == StateOpen {
		return c.appendMsg(p)
	}
	return nil
}

func (c *Connection) onFrame(h frame.Header, payload []byte) error {
	if err := c.asm.Begin(h); err != nil {
		return err
	}
	if h.Op.IsControl() {
		return c.onControl(h.Op, payload)
	}
	if err := c.asm.Payload(payload); err != nil {
		return err
	}
	return c.frameEnd(payload)
}

// frameEnd ends a data frame: payload is its payload when it came whole,
// nil when it was taken in pieces (already appended to the message).
func (c *Connection) frameEnd(payload []byte) error {
	done, op, compressed, err := c.asm.End()
	if err != nil {
		return err
	}
	closing := State(c.state.Load()) != StateOpen
	if closing {
		// Data after we sent close is read (the peer may not have seen our
		// close yet) but not delivered (RFC 6455 §5.5.1).
		c.releaseMsg()
		return nil
	}
	if !done {
		if payload != nil {
			return c.appendMsg(payload)
		}
		return nil
	}
	data := payload
	if c.msg != nil {
		if payload != nil {
			if err := c.appendMsg(payload); err != nil {
				return err
			}
		}
		data = c.msg.b
	} else if data == nil {
		data = []byte{} // an empty frame taken in pieces (none)
	}
	if !compressed && len(data) > c.p.o.MaxPayloadLength {
		// With compression the wire allows for deflate's expansion; an
		// uncompressed message is held to the limit itself.
		c.releaseMsg()
		return errTooBig
	}
	if compressed {
		out, err := c.inflate(data)
		c.releaseMsg()
		if err != nil {
			return err
		}
		if op == frame.OpText && !frame.ValidUTF8(out.b) {
			c.p.uncharge(out.charged)
			freeMsgBuf(out)
			return errInvalidText
		}
		return c.received(op, out.b, out)
	}
	err = c.received(op, data, c.msg)
	c.msg = nil // queued, or released by received
	return err
}

// received hands a complete message to the handler queue. m, when not
// nil, is the buffer of ours that holds data: it is moved into the queue
// (a large message) or released after data is copied.
func (c *Connection) received(op frame.Opcode, data []byte, m *msgBuf) error {
	if c.p.o.Heartbeat.Mode == HeartbeatText && op == frame.OpText && string(data) == proto.TextPong {
		// A heartbeat answer: recorded here, on the read side, never
		// behind a handler.
		c.answered()
		c.freeMsg(m)
		return nil
	}
	if op == frame.OpBinary && c.v2() && len(data) > 0 {
		if k := data[0] & 0x0f; k == proto.KindReply || k == proto.KindError {
			// A reply to one of our requests only wakes its caller: handed
			// on here, so that a handler waiting for it (on this very
			// connection, say) is not waiting behind itself.
			err := c.deliver(op, data)
			c.freeMsg(m)
			return err
		}
	}
	if m != nil && len(data) >= moveThreshold {
		return c.queueMove(op, m)
	}
	err := c.queueCopy(op, data)
	c.freeMsg(m)
	return err
}

func (c *Connection) freeMsg(m *msgBuf) {
	if m != nil {
		c.p.uncharge(m.charged)
		freeMsgBuf(m)
	}
}

var errTooBig = &frame.CloseError{Code: frame.CloseTooBig, Reason: "message over the max payload length"}

var errInvalidText = &frame.CloseError{Code: frame.CloseInvalidPayload, Reason: "text message is not valid UTF-8"}

// maxInflateRatio bounds deflate's expansion: a length-distance pair of at
// least 2 bits yields at most 258 bytes.
const maxInflateRatio = 1032

// heapInflateLimit: an inflation whose output may exceed this goes to a
// mapped buffer (given back to the system at once) instead of the heap.
const heapInflateLimit = 256 << 10

// inflate inflates a compressed message into a new buffer that carries its
// budget charge. The output is limited by the max payload (1009 past it)
// and by what is left of the memory budget (1013 past it): that much is
// taken from the budget for the time of the inflation, so that concurrent
// inflations never hold more than the budget between them.
func (c *Connection) inflate(data []byte) (*msgBuf, error) {
	p := c.p
	max := p.o.MaxPayloadLength
	bound := max
	if b := (len(data)+16)*maxInflateRatio + 1024; b < bound {
		bound = b
	}
	got := p.chargeUpTo(bound + 1)
	if got < 1 {
		p.stats.budgetCloses.Add(1)
		return nil, errOverBudget
	}
	limit := got - 1 // Decompress needs room for one byte past the limit
	// A small output grows on the heap as needed; a large one is mapped at
	// its bound at once (its pages are only touched as they are written).
	var out *msgBuf
	if got <= heapInflateLimit {
		out = newMsgBuf(msgClassSize[0])
	} else {
		out = newMsgBuf(got)
	}
	res, err := c.zstate().inflater.Decompress(out.b[:0], data, limit)
	if err != nil {
		p.uncharge(got)
		freeMsgBuf(out)
		if errors.Is(err, compress.ErrTooBig) && limit < bound {
			p.stats.budgetCloses.Add(1)
			return nil, errOverBudget
		}
		return nil, inflateError(err)
	}
	out.b = res
	out.charged = len(res)
	p.uncharge(got - len(res))
	return out, nil
}

func inflateError(err error) error {
	if errors.Is(err, compress.ErrTooBig) {
		return &frame.CloseError{Code: frame.CloseTooBig, Reason: "message too big after inflation"}
	}
	return &frame.CloseError{Code: frame.CloseInvalidPayload, Reason: "invalid compressed data"}
}

// deliver hands a complete data message on: it runs on the Provider's
// handler workers, in order for the connection (see dispatch.go), except
// for replies to the Provider's own requests, which the read side hands on
// at once (received); data is valid until it returns. An error fails the
// connection.
func (c *Connection) deliver(op frame.Opcode, data []byte) error {
	p := c.p
	if p.o.Heartbeat.Mode == HeartbeatText && op == frame.OpText && string(data) == proto.TextPong {
		c.answered()
		return nil
	}
	if op == frame.OpBinary && c.v2() {
		return c.onEnvelope(data)
	}
	c.deliverMessage(Message{Binary: op == frame.OpBinary, Data: data})
	return nil
}

// deliverMessage hands a data message to OnMessage.
func (c *Connection) deliverMessage(m Message) {
	p := c.p
	p.stats.messagesIn.Add(1)
	p.stats.bytesIn.Add(uint64(len(m.Data)))
	if f := p.o.OnMessage; f != nil {
		f(c, m)
	}
}

func (c *Connection) onControl(op frame.Opcode, payload []byte) error {
	switch op {
	case frame.OpPing:
		if State(c.state.Load()) != StateOpen {
			return nil
		}
		var hb [frame.MaxHeaderSize]byte
		hdr := frame.AppendHeader(hb[:0], frame.Header{Fin: true, Op: frame.OpPong, Length: int64(len(payload))})
		if err := c.pc.Write(hdr, payload, true); err != nil && !errors.Is(err, poller.ErrClosed) {
			return err
		}
	case frame.OpPong:
		c.answered()
	case frame.OpClose:
		code, reason, err := frame.ParseClose(payload)
		if err != nil {
			return err
		}
		c.rf |= rfPeerClosed
		c.releaseMsg() // nothing more is read
		if c.deferPeerClose(code, reason) {
			return nil
		}
		c.peerCloseNow(code, string(reason))
	}
	return nil
}

// peerCloseNow answers the peer's close frame, or completes the closing
// handshake we started.
func (c *Connection) peerCloseNow(code CloseCode, reason string) {
	{
		// The peer started the close: answer with its code (RFC 6455
		// §5.5.1), then release the connection once that is written.
		var buf [2]byte
		var echo []byte
		if code != frame.CloseNoStatus {
			echo = frame.AppendClose(buf[:0], code, "")
		}
		if moved, _ := c.queueClose(code, reason, echo); moved {
			c.pc.CloseAfterFlush(c.p.o.CloseTimeout)
			return
		}
		// The peer answered our close: the handshake is complete.
		c.pc.CloseAfterFlush(c.p.o.CloseTimeout)
	}
}

// answered records a heartbeat answer.
func (c *Connection) answered() {
	c.hb.And(hbFlags &^ hbAwaiting) // and no strikes
	c.lastPing.Store(time.Now().UnixNano())
}

// --- pooled buffers ---

// Scratch buffers for compression and inflation, shared by all connections.
var scratchPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func getScratch() *[]byte { return scratchPool.Get().(*[]byte) }

func putScratch(b *[]byte) {
	if cap(*b) > 1<<20 {
		return // let an outsized buffer go
	}
	*b = (*b)[:0]
	scratchPool.Put(b)
}

// appendMsg appends p to the message being assembled, charging the memory
// budget for it (errOverBudget if it is not there).
func (c *Connection) appendMsg(p []byte) error {
	if !c.p.charge(len(p)) {
		c.p.stats.budgetCloses.Add(1)
		return errOverBudget
	}
	c.growMsg(len(p))
	c.msg.b = append(c.msg.b, p...)
	c.msg.charged += len(p)
	return nil
}

// growMsg makes room for n more bytes in the message being assembled. Only
// bytes appended are charged to the budget: room in a large buffer is
// mapped memory that costs nothing until written.
func (c *Connection) growMsg(n int) {
	m := c.msg
	if m != nil && cap(m.b)-len(m.b) >= n {
		return
	}
	size := n
	if m != nil {
		size = max(len(m.b)+n, 2*cap(m.b)) // fragments of unknown number: grow geometrically
	}
	nm := newMsgBuf(size)
	if m != nil {
		nm.b = append(nm.b, m.b...)
		nm.charged = m.charged
		freeMsgBuf(m)
	}
	c.msg = nm
}

// releaseMsg gives the assembly buffer back, with its budget charge.
func (c *Connection) releaseMsg() {
	m := c.msg
	if m == nil {
		return
	}
	c.msg = nil
	c.p.uncharge(m.charged)
	freeMsgBuf(m)
}
