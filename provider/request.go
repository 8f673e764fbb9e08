package provider

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/networkcluster/networkcluster/frame"
	"github.com/networkcluster/networkcluster/internal/proto"
)

// ProtocolMode says whether the Provider speaks the request protocol.
type ProtocolMode uint8

const (
	// ProtocolAuto (the default) selects the subprotocol
	// "network-cluster.v2" when a Consumer offers it: requests and replies
	// then work both ways on that connection (see [Connection.Request]).
	// Connections that do not offer it (the Node 1.0.4 Consumer, browsers,
	// plain WebSocket clients) stay plain, byte for byte as before.
	ProtocolAuto ProtocolMode = iota
	// ProtocolPlain never selects v2 (it selects "network-cluster.v1" when
	// offered): every connection is plain and Request returns
	// [ErrNotSupported].
	ProtocolPlain
)

// Defaults of the request options.
const (
	DefaultRequestTimeout     = 10 * time.Second
	DefaultMaxPendingRequests = 1024
	DefaultDedupRequests      = 1024
	DefaultDedupAge           = 2 * time.Minute
	DefaultDedupBytes         = 256 << 10
)

// requestDefaults fills in and checks the request options.
func (o *Options) requestDefaults() error {
	switch {
	case o.RequestTimeout == 0:
		o.RequestTimeout = DefaultRequestTimeout
	case o.RequestTimeout < 0:
		return fmt.Errorf("request timeout %v", o.RequestTimeout)
	}
	switch {
	case o.MaxPendingRequests == 0:
		o.MaxPendingRequests = DefaultMaxPendingRequests
	case o.MaxPendingRequests < 0:
		return fmt.Errorf("max pending requests %d", o.MaxPendingRequests)
	}
	w := &o.DedupWindow
	switch {
	case w.Requests == 0:
		w.Requests = DefaultDedupRequests
	case w.Requests < -1:
		return fmt.Errorf("dedup window of %d requests", w.Requests)
	}
	switch {
	case w.Age == 0:
		w.Age = DefaultDedupAge
	case w.Age < 0:
		return fmt.Errorf("dedup window age %v", w.Age)
	}
	switch {
	case w.Bytes == 0:
		w.Bytes = DefaultDedupBytes
	case w.Bytes < 0:
		return fmt.Errorf("dedup window of %d bytes", w.Bytes)
	}
	if o.Protocol > ProtocolPlain {
		return fmt.Errorf("protocol mode %d", o.Protocol)
	}
	return nil
}

// RemoteError is the outcome of a request that the other side answered with
// an error: its handler called Fail, panicked, or could not take the
// request. Test for it with errors.As.
type RemoteError struct {
	// Code is 1 (nothing handles requests there), 2 (the handler
	// panicked), 3 (the other side is shutting down), 4 (refused), or an
	// application code of 1000 or more passed to Fail.
	Code uint16
	// Reason is the text given to Fail (at most 123 bytes).
	Reason string
}

// Error implements error.
func (e *RemoteError) Error() string {
	return "network-cluster: remote error " + strconv.Itoa(int(e.Code)) + ": " + e.Reason
}

// Request is a request received from a Consumer, handed to
// [Options.OnRequest]. Its methods are safe for concurrent use, and Reply
// and Fail may be called after OnRequest has returned, from any goroutine.
type Request struct {
	c           *Connection
	id          uint64
	msg         Message
	redelivered bool
	sess        *session // de-duplication of resent requests; nil if off
	answered    atomic.Bool
}

// Connection returns the connection the request came on.
func (r *Request) Connection() *Connection { return r.c }

// Message returns the request's payload. Its Data is only valid until
// OnRequest returns; copy it to keep it.
func (r *Request) Message() Message { return r.msg }

// Redelivered reports whether the Consumer sent this request again after a
// reconnect (it did not get the reply the first time). The request may have
// been handled already, here or by another Provider: handle requests
// idempotently.
func (r *Request) Redelivered() bool { return r.redelivered }

// Reply answers the request with data (text must be UTF-8; data is not
// retained). Reply or Fail may be called once: a second call returns
// [ErrAlreadyAnswered]. It returns nil once the reply is queued on the
// connection, or, when the Consumer resends unanswered requests
// (consumer.Options.Resend), once it is kept for the resend that follows a
// lost connection. Otherwise it returns the errors of [Connection.Send]
// (ErrClosed when the connection has ended: the Consumer's Request then
// failed with its ErrDisconnected).
func (r *Request) Reply(binary bool, data []byte) error {
	var flags byte
	if !binary {
		if !frame.ValidUTF8(data) {
			return ErrInvalidUTF8
		}
		flags = proto.FlagText
	}
	if !r.answered.CompareAndSwap(false, true) {
		return ErrAlreadyAnswered
	}
	var hb [proto.MaxEnvelopeHeader]byte
	return r.answer(proto.AppendHeader(hb[:0], proto.KindReply, flags, r.id), data)
}

// Fail answers the request with an error: the requester gets a
// [*RemoteError] with code and reason. code must be at least 1000 (lower
// codes are the library's); a reason over 123 bytes is cut, and it must be
// UTF-8. Otherwise as Reply.
func (r *Request) Fail(code uint16, reason string) error {
	if code < proto.MinAppCode {
		return fmt.Errorf("%w: Fail code %d: codes below %d are reserved", ErrInvalidOptions, code, proto.MinAppCode)
	}
	return r.fail(code, reason)
}

func (r *Request) fail(code uint16, reason string) error {
	if !frame.ValidUTF8(unsafeBytes(reason)) {
		return ErrInvalidUTF8
	}
	if !r.answered.CompareAndSwap(false, true) {
		return ErrAlreadyAnswered
	}
	var b [proto.MaxEnvelopeHeader + 3 + proto.MaxReason]byte
	return r.answer(proto.AppendError(b[:0], r.id, code, reason), nil)
}

// answer sends the reply envelope env followed by data, and keeps it for
// a resend when the session de-duplicates.
func (r *Request) answer(env, data []byte) error {
	c := r.c
	c.p.stats.repliesOut.Add(1)
	var waiting *Connection
	var kept bool
	if r.sess != nil {
		waiting, kept = r.sess.answered(r.id, env, data, c.p.o.DedupWindow.Bytes)
	}
	err := c.sendEnvelope(frame.OpBinary, env, data, true)
	if waiting != nil && waiting != c {
		// The Consumer resent the request on a new connection while the
		// handler ran: the reply goes there too.
		if waiting.sendEnvelope(frame.OpBinary, env, data, true) == nil {
			err = nil
		}
	}
	if err != nil && kept && errors.Is(err, ErrClosed) {
		err = nil // the resend after the reconnect gets it
	}
	return err
}

// SupportsRequests reports whether the connection negotiated the request
// protocol (subprotocol "network-cluster.v2"): only then do Request,
// OnRequest and replies work on it.
func (c *Connection) SupportsRequests() bool { return c.v2() }

// Request sends data to the Consumer (text must be UTF-8; data is not
// retained) and waits for its reply. The outcome is exactly one of:
//
//   - the reply, whose Data is the caller's to keep;
//   - a [*RemoteError]: the Consumer's handler failed the request or
//     panicked;
//   - ctx's error (or context.DeadlineExceeded after
//     [Options.RequestTimeout] when ctx has no deadline); a reply that
//     arrives later is dropped and counted in Stats.LateReplies;
//   - an error wrapping [ErrDisconnected] as soon as the connection ends
//     first: the Consumer may or may not have handled the request (requests
//     from the Provider are not resent; send the work to another
//     connection);
//   - [ErrNotSupported] when the connection did not negotiate requests;
//   - [ErrTooManyPending] at [Options.MaxPendingRequests] unanswered
//     requests on this connection;
//   - the errors of [Connection.Send] (ErrClosed, ErrBackpressure,
//     ErrInvalidUTF8): nothing was sent.
func (c *Connection) Request(ctx context.Context, binary bool, data []byte) (Message, error) {
	return c.request(ctx, binary, data, 0, 0, nil)
}

// request is Request with extra envelope flags (FlagRedelivered, for a
// Queue's redelivery), a timeout of its own (0: RequestTimeout when ctx has
// no deadline) and a channel whose closing abandons the wait like ctx
// (errQueueKilled; nil: none).
func (c *Connection) request(ctx context.Context, binary bool, data []byte, flags byte, timeout time.Duration, stop <-chan struct{}) (Message, error) {
	if !c.v2() {
		return Message{}, ErrNotSupported
	}
	if !binary {
		if !frame.ValidUTF8(data) {
			return Message{}, ErrInvalidUTF8
		}
		flags |= proto.FlagText
	}
	p := c.p
	t := c.pendingTable()
	w, id, err := t.add(p.o.MaxPendingRequests)
	if err != nil {
		return Message{}, c.pendingError(err)
	}
	p.stats.pending.Add(1)
	var hb [proto.MaxEnvelopeHeader]byte
	if err := c.sendEnvelope(frame.OpBinary, proto.AppendHeader(hb[:0], proto.KindRequest, flags, id), data, true); err != nil {
		if t.remove(id) {
			p.stats.pending.Add(-1)
			putWaiter(w)
			return Message{}, err
		}
		// The connection closed meanwhile and failed the waiter.
	} else {
		p.stats.requestsOut.Add(1)
	}
	return c.wait(ctx, t, id, w, timeout, stop)
}

// wait waits for the outcome of request id.
func (c *Connection) wait(ctx context.Context, t *pendingTable, id uint64, w *waiter, d time.Duration, stop <-chan struct{}) (Message, error) {
	p := c.p
	var timeout <-chan time.Time
	what := "AttemptTimeout"
	if _, ok := ctx.Deadline(); d == 0 && !ok {
		d, what = p.o.RequestTimeout, "RequestTimeout"
	}
	if d > 0 {
		w.timer.Reset(d)
		timeout = w.timer.C
	}
	var err error
	select {
	case res := <-w.ch:
		w.timer.Stop()
		putWaiter(w)
		return res.msg, res.err
	case <-ctx.Done():
		err = ctx.Err()
	case <-timeout:
		err = fmt.Errorf("provider: no reply within %s %v: %w", what, d, context.DeadlineExceeded)
	case <-stop:
		err = ErrQueueClosed
	}
	w.timer.Stop()
	if t.remove(id) {
		p.stats.pending.Add(-1)
		p.stats.requestsTimedOut.Add(1)
		putWaiter(w)
		return Message{}, err
	}
	// The outcome came at the same moment: it wins, as it was decided first.
	res := <-w.ch
	putWaiter(w)
	return res.msg, res.err
}

func (c *Connection) pendingError(err error) error {
	if errors.Is(err, ErrDisconnected) {
		return c.closedError()
	}
	return err
}

// pendingTable returns the connection's table of unanswered requests,
// made on first use so that a connection that never sends a request holds
// none.
func (c *Connection) pendingTable() *pendingTable {
	r := c.rareState()
	if t := r.pending.Load(); t != nil {
		return t
	}
	t := &pendingTable{m: make(map[uint64]*waiter)}
	if r.pending.CompareAndSwap(nil, t) {
		if State(c.state.Load()) == StateClosed {
			t.failAll(c.p, nil) // OnClose may have run before the table existed
		}
		return t
	}
	return r.pending.Load()
}

// loadPending returns the connection's table of unanswered requests, or
// nil if none was made.
func (c *Connection) loadPending() *pendingTable {
	if r := c.rare.Load(); r != nil {
		return r.pending.Load()
	}
	return nil
}

// onReply completes a request with the reply or error envelope e.
func (c *Connection) onReply(e proto.Envelope) {
	p := c.p
	t := c.loadPending()
	var w *waiter
	if t != nil {
		w = t.take(e.ID)
	}
	if w == nil {
		p.stats.lateReplies.Add(1)
		return
	}
	p.stats.pending.Add(-1)
	if e.Kind == proto.KindError {
		p.stats.requestsFailed.Add(1)
		w.ch <- result{err: &RemoteError{Code: e.Code, Reason: string(e.Payload)}}
		return
	}
	p.stats.requestsAnswered.Add(1)
	w.ch <- result{msg: Message{Binary: !e.Text, Data: append([]byte(nil), e.Payload...)}}
}

// onRequest handles a request envelope from the Consumer.
func (c *Connection) onRequest(e proto.Envelope) {
	p := c.p
	p.stats.requestsIn.Add(1)
	if e.Redelivered {
		p.stats.requestsRedelivered.Add(1)
	}
	sess := c.session()
	if sess != nil {
		hit, cached := sess.begin(e.ID, c, p.o.DedupWindow)
		if hit {
			p.stats.dedupHits.Add(1)
			if cached != nil {
				_ = c.sendEnvelope(frame.OpBinary, nil, cached, true)
			}
			return
		}
	}
	msg := Message{Binary: !e.Text, Data: e.Payload}
	if f := p.o.OnRequest; f != nil {
		r := &Request{c: c, id: e.ID, msg: msg, redelivered: e.Redelivered, sess: sess}
		if panicked := callRequest(f, c, r); panicked != nil {
			p.report(fmt.Errorf("provider: connection %s: OnRequest panicked: %v", c.ID(), panicked))
			_ = r.fail(proto.CodePanic, "handler panicked")
		}
		return
	}
	// No OnRequest: deliver to OnMessage and acknowledge with an empty
	// reply once it returns.
	p.stats.messagesIn.Add(1)
	p.stats.bytesIn.Add(uint64(len(msg.Data)))
	r := Request{c: c, id: e.ID, sess: sess}
	if f := p.o.OnMessage; f != nil {
		if panicked := callMessage(f, c, msg); panicked != nil {
			p.report(fmt.Errorf("provider: connection %s: OnMessage panicked on a request: %v", c.ID(), panicked))
			_ = r.fail(proto.CodePanic, "handler panicked")
			return
		}
	}
	r.answered.Store(true)
	var hb [proto.MaxEnvelopeHeader]byte
	_ = r.answer(proto.AppendHeader(hb[:0], proto.KindReply, 0, e.ID), nil)
}

func callRequest(f func(*Connection, *Request), c *Connection, r *Request) (panicked any) {
	defer func() { panicked = recover() }()
	f(c, r)
	return nil
}

func callMessage(f func(*Connection, Message), c *Connection, m Message) (panicked any) {
	defer func() { panicked = recover() }()
	f(c, m)
	return nil
}

// onEnvelope handles a binary message of a v2 connection.
func (c *Connection) onEnvelope(data []byte) error {
	e, err := proto.ParseEnvelope(data)
	if err != nil {
		return errEnvelope
	}
	switch e.Kind {
	case proto.KindMessage:
		c.deliverMessage(Message{Binary: true, Data: e.Payload})
		return nil
	case proto.KindRequest:
		if e.Text && !frame.ValidUTF8(e.Payload) {
			return errInvalidText
		}
		c.onRequest(e)
	case proto.KindControl:
		c.onSubscription(e)
	default:
		if e.Text && !frame.ValidUTF8(e.Payload) {
			return errInvalidText
		}
		c.onReply(e)
	}
	return nil
}

var errEnvelope = &frame.CloseError{Code: frame.CloseProtocolError, Reason: "malformed request envelope"}

// --- the table of unanswered requests ---

type result struct {
	msg Message
	err error
}

// waiter is one Request call waiting for its outcome. Pooled.
type waiter struct {
	ch    chan result // capacity 1: the outcome is sent once, never blocks
	timer *time.Timer // RequestTimeout when ctx has no deadline
}

var waiterPool = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &waiter{ch: make(chan result, 1), timer: t}
}}

func putWaiter(w *waiter) { waiterPool.Put(w) }

type pendingTable struct {
	mu     sync.Mutex
	next   uint64
	m      map[uint64]*waiter
	closed bool
}

// add registers a new request: its waiter and id.
func (t *pendingTable) add(max int) (*waiter, uint64, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.closed:
		return nil, 0, ErrDisconnected
	case len(t.m) >= max:
		return nil, 0, ErrTooManyPending
	}
	t.next++
	w := waiterPool.Get().(*waiter)
	t.m[t.next] = w
	return w, t.next, nil
}

// remove forgets request id, reporting whether it was still pending.
func (t *pendingTable) remove(id uint64) bool {
	t.mu.Lock()
	_, ok := t.m[id]
	delete(t.m, id)
	t.mu.Unlock()
	return ok
}

// take removes and returns the waiter of id, or nil.
func (t *pendingTable) take(id uint64) *waiter {
	t.mu.Lock()
	w := t.m[id]
	delete(t.m, id)
	t.mu.Unlock()
	return w
}

// failAll ends every pending request with ErrDisconnected (wrapped with
// cause) and refuses new ones.
func (t *pendingTable) failAll(p *Provider, cause error) {
	t.mu.Lock()
	t.closed = true
	if len(t.m) == 0 {
		t.mu.Unlock()
		return
	}
	err := ErrDisconnected
	if cause != nil {
		err = fmt.Errorf("%w: %w", ErrDisconnected, cause)
	}
	for id, w := range t.m {
		delete(t.m, id)
		p.stats.pending.Add(-1)
		p.stats.requestsDisconnected.Add(1)
		w.ch <- result{err: err}
	}
	t.mu.Unlock()
}
