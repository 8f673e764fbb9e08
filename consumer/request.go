package consumer

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/networkcluster/networkcluster/frame"
	"github.com/networkcluster/networkcluster/internal/proto"
)

// ProtocolMode says whether the Consumer offers the request protocol.
type ProtocolMode uint8

const (
	// ProtocolAuto (the default) offers the subprotocols
	// "network-cluster.v1, network-cluster.v2". A Provider of this library
	// selects v2 and requests work both ways; the Node 1.0.4 Provider and
	// other servers select v1 or nothing, and the connection stays plain
	// (Request returns [ErrNotSupported]).
	ProtocolAuto ProtocolMode = iota
	// ProtocolPlain offers no subprotocol: the upgrade request is the Node
	// 1.0.4 Consumer's, and every connection is plain.
	ProtocolPlain
)

// Defaults of the request options.
const (
	DefaultRequestTimeout     = 10 * time.Second
	DefaultMaxPendingRequests = 1024
)

// RemoteError is the outcome of a request that the Provider answered with
// an error: its handler called Fail, panicked, or could not take the
// request. Test for it with errors.As.
type RemoteError struct {
	// Code is 1 (nothing handles requests there), 2 (the handler
	// panicked), 3 (the Provider is shutting down), 4 (the Provider refused
	// a Subscribe), or an application code of 1000 or more passed to Fail.
	Code uint16
	// Reason is the text given to Fail (at most 123 bytes).
	Reason string
}

// Error implements error.
func (e *RemoteError) Error() string {
	return "network-cluster: remote error " + strconv.Itoa(int(e.Code)) + ": " + e.Reason
}

// Stats is a snapshot of a Consumer's counters. Totals count since New.
type Stats struct {
	// Opens counts connections opened; Disconnects those of them lost or
	// closed since.
	Opens, Disconnects uint64
	// MessagesSent and MessagesReceived count data messages (requests and
	// replies not included).
	MessagesSent, MessagesReceived uint64
	// Requests this Consumer made: RequestsSent went out (the first time);
	// each then ended in RequestsAnswered (a reply), RequestsFailed (a
	// *RemoteError), RequestsTimedOut (ctx or RequestTimeout first) or
	// RequestsDisconnected (lost with its connection, or the Consumer
	// closed). Resent counts requests sent again after a reconnect
	// (Options.Resend). PendingRequests are unanswered now. LateReplies
	// counts replies that came after their request had ended (dropped).
	RequestsSent, RequestsAnswered, RequestsFailed uint64
	RequestsTimedOut, RequestsDisconnected, Resent uint64
	LateReplies                                    uint64
	PendingRequests                                int
	// RequestsReceived counts requests from the Provider, RepliesSent the
	// replies and errors sent back.
	RequestsReceived, RepliesSent uint64
}

type counters struct {
	opens, disconnects                            atomic.Uint64
	messagesOut, messagesIn                       atomic.Uint64
	requestsOut, answered, failed, timedOut, lost atomic.Uint64
	resent, lateReplies, requestsIn, repliesOut   atomic.Uint64
}

// Stats returns a snapshot of the Consumer's counters.
func (c *Consumer) Stats() Stats {
	c.reqMu.Lock()
	pending := len(c.reqs)
	c.reqMu.Unlock()
	s := &c.stats
	return Stats{
		Opens:                s.opens.Load(),
		Disconnects:          s.disconnects.Load(),
		MessagesSent:         s.messagesOut.Load(),
		MessagesReceived:     s.messagesIn.Load(),
		RequestsSent:         s.requestsOut.Load(),
		RequestsAnswered:     s.answered.Load(),
		RequestsFailed:       s.failed.Load(),
		RequestsTimedOut:     s.timedOut.Load(),
		RequestsDisconnected: s.lost.Load(),
		Resent:               s.resent.Load(),
		LateReplies:          s.lateReplies.Load(),
		PendingRequests:      pending,
		RequestsReceived:     s.requestsIn.Load(),
		RepliesSent:          s.repliesOut.Load(),
	}
}

// SupportsRequests reports whether the current (or last) connection
// negotiated the request protocol (subprotocol "network-cluster.v2").
func (c *Consumer) SupportsRequests() bool { return c.v2.Load() }

// Request sends data to the Provider (text must be UTF-8; data is not
// retained unless Options.Resend keeps a copy) and waits for its reply. The
// outcome is exactly one of:
//
//   - the reply, whose Data is the caller's to keep;
//   - a [*RemoteError]: the Provider's handler failed the request or
//     panicked;
//   - ctx's error (or context.DeadlineExceeded after
//     [Options.RequestTimeout] when ctx has no deadline); a reply that
//     arrives later is dropped and counted in Stats.LateReplies;
//   - an error wrapping [ErrDisconnected] as soon as the connection is lost
//     (the Provider may or may not have handled it), unless Options.Resend
//     is on: the request is then sent again, first, on the next connection
//     (flagged redelivered) and keeps waiting until ctx ends; also when the
//     Consumer is closed (wrapping [ErrClosed] too);
//   - [ErrNotSupported] when the connection did not negotiate requests
//     (the Node 1.0.4 Provider, another server, or ProtocolPlain);
//   - [ErrTooManyPending] at [Options.MaxPendingRequests] unanswered
//     requests;
//   - the errors of [Consumer.Send] (ErrNotConnected without Resend,
//     ErrClosed, ErrInvalidUTF8, a write error).
//
// A nil error means the Provider's handler (or, without one, its
// OnMessage) has the request: this is the confirmation a Send cannot give.
func (c *Consumer) Request(ctx context.Context, binary bool, data []byte) (Message, error) {
	var flags byte
	if !binary {
		if !utf8.Valid(data) {
			return Message{}, ErrInvalidUTF8
		}
		flags = proto.FlagText
	}
	resend := c.cfg.Resend
	c.wmu.Lock()
	open := c.wc != nil && !c.closeSent && !c.dead
	switch {
	case c.isClosed.Load():
		c.wmu.Unlock()
		return Message{}, ErrClosed
	case open && !c.v2.Load():
		c.wmu.Unlock()
		return Message{}, ErrNotSupported
	case !open && !resend:
		c.wmu.Unlock()
		return Message{}, ErrNotConnected
	case !open && c.stats.opens.Load() > 0 && !c.v2.Load():
		c.wmu.Unlock()
		return Message{}, ErrNotSupported
	}
	c.reqMu.Lock()
	if len(c.reqs) >= c.cfg.MaxPendingRequests {
		c.reqMu.Unlock()
		c.wmu.Unlock()
		return Message{}, ErrTooManyPending
	}
	c.reqNext++
	id := c.reqNext
	w := waiterPool.Get().(*waiter)
	w.flags = flags
	if resend {
		w.data = append(w.data[:0], data...)
	}
	if c.reqs == nil {
		c.reqs = make(map[uint64]*waiter)
	}
	c.reqs[id] = w
	c.reqMu.Unlock()
	if open {
		err := c.writeEnvelopeLocked(proto.KindRequest, flags, id, data)
		if err == nil {
			w.sent = true
			c.stats.requestsOut.Add(1)
		} else if !resend {
			c.wmu.Unlock()
			if c.removeRequest(id) {
				c.putWaiter(w)
				return Message{}, err
			}
			return c.outcome(w) // failed by the disconnect meanwhile
		}
		// With Resend a failed write leaves the request pending: the
		// reconnect sends it.
	}
	c.wmu.Unlock()
	return c.waitReply(ctx, id, w)
}

// waitReply waits for the outcome of request id.
func (c *Consumer) waitReply(ctx context.Context, id uint64, w *waiter) (Message, error) {
	var timeout <-chan time.Time
	if _, ok := ctx.Deadline(); !ok {
		w.timer.Reset(c.cfg.RequestTimeout)
		timeout = w.timer.C
	}
	var err error
	select {
	case res := <-w.ch:
		w.timer.Stop()
		c.putWaiter(w)
		return res.msg, res.err
	case <-ctx.Done():
		err = ctx.Err()
	case <-timeout:
		err = fmt.Errorf("consumer: no reply within RequestTimeout %v: %w", c.cfg.RequestTimeout, context.DeadlineExceeded)
	}
	w.timer.Stop()
	if c.removeRequest(id) {
		c.stats.timedOut.Add(1)
		c.putWaiter(w)
		return Message{}, err
	}
	return c.outcome(w) // decided at the same moment: that outcome stands
}

func (c *Consumer) outcome(w *waiter) (Message, error) {
	res := <-w.ch
	c.putWaiter(w)
	return res.msg, res.err
}

func (c *Consumer) removeRequest(id uint64) bool {
	c.reqMu.Lock()
	_, ok := c.reqs[id]
	delete(c.reqs, id)
	c.reqMu.Unlock()
	return ok
}

// writeEnvelopeLocked writes a binary frame holding the envelope header
// of kind with flags and id, then data. c.wmu must be held and the
// connection open.
func (c *Consumer) writeEnvelopeLocked(kind, flags byte, id uint64, data []byte) error {
	var hb [proto.MaxEnvelopeHeader]byte
	return c.writeDataLocked(frame.OpBinary, proto.AppendHeader(hb[:0], kind, flags, id), data)
}

// failRequests ends every pending request with err (wrapping
// ErrDisconnected).
func (c *Consumer) failRequests(err error) {
	c.reqMu.Lock()
	defer c.reqMu.Unlock()
	for id, w := range c.reqs {
		delete(c.reqs, id)
		c.stats.lost.Add(1)
		w.ch <- result{err: err}
	}
}

// resendLocked sends the pending requests again, in id order, on a new
// connection: before anything else goes out on it. Those sent before are
// flagged redelivered. c.wmu must be held.
func (c *Consumer) resendLocked() {
	c.reqMu.Lock()
	if len(c.reqs) == 0 {
		c.reqMu.Unlock()
		return
	}
	ids := make([]uint64, 0, len(c.reqs))
	for id := range c.reqs {
		ids = append(ids, id)
	}
	c.reqMu.Unlock()
	slices.Sort(ids)
	for _, id := range ids {
		c.reqMu.Lock()
		w := c.reqs[id]
		var flags byte
		var data []byte
		wasSent := false
		if w != nil {
			flags, data, wasSent = w.flags, w.data, w.sent
			if wasSent {
				flags |= proto.FlagRedelivered
			}
		}
		c.reqMu.Unlock()
		if w == nil {
			continue // ended meanwhile
		}
		// data stays valid: a waiter's bytes change only when it is
		// reused, after its request has left the table, and the table is
		// only added to under c.wmu, which we hold.
		if err := c.writeEnvelopeLocked(proto.KindRequest, flags, id, data); err != nil {
			return // the connection broke: the next one resends
		}
		if wasSent {
			c.stats.resent.Add(1)
		} else {
			c.stats.requestsOut.Add(1)
			c.reqMu.Lock()
			if c.reqs[id] == w {
				w.sent = true
			}
			c.reqMu.Unlock()
		}
	}
}

// onEnvelope handles a binary message of a v2 connection on the reader: a
// reply completes its waiter here; a message or a request becomes the item
// it returns with ok set, for the dispatcher (its payload starts at it.off
// in data).
func (c *Consumer) onEnvelope(data []byte) (it item, ok bool, err error) {
	e, err := proto.ParseEnvelope(data)
	if err != nil {
		return it, false, errEnvelope
	}
	if e.Text && !utf8.Valid(e.Payload) {
		return it, false, &frame.CloseError{Code: frame.CloseInvalidPayload, Reason: "text payload is not valid UTF-8"}
	}
	it.off = int32(len(data) - len(e.Payload)) // the payload ends the envelope
	switch e.Kind {
	case proto.KindMessage:
		c.stats.messagesIn.Add(1)
		it.binary = true
		return it, c.cfg.OnMessage != nil && !c.destroyed.Load(), nil
	case proto.KindRequest:
		c.stats.requestsIn.Add(1)
		it.fn, it.id = c.runRequest, e.ID
		it.binary, it.redelivered = !e.Text, e.Redelivered
		return it, true, nil
	case proto.KindControl:
		return it, false, errEnvelope // only a Consumer sends these
	}
	c.onReply(e)
	return it, false, nil
}

var errEnvelope = &frame.CloseError{Code: frame.CloseProtocolError, Reason: "malformed request envelope"}

func (c *Consumer) onReply(e proto.Envelope) {
	c.reqMu.Lock()
	w := c.reqs[e.ID]
	delete(c.reqs, e.ID)
	c.reqMu.Unlock()
	if w == nil {
		if !c.onControlReply(e) {
			c.stats.lateReplies.Add(1)
		}
		return
	}
	if e.Kind == proto.KindError {
		c.stats.failed.Add(1)
		w.ch <- result{err: &RemoteError{Code: e.Code, Reason: string(e.Payload)}}
		return
	}
	c.stats.answered.Add(1)
	w.ch <- result{msg: Message{Binary: !e.Text, Data: append([]byte(nil), e.Payload...)}}
}

// runRequest runs a request on the dispatcher: OnRequest, or else OnMessage
// and an automatic empty reply. After Destroy it does nothing (the
// connection is gone, so the Provider's Request fails).
func (c *Consumer) runRequest(it *item, data []byte) {
	if c.destroyed.Load() {
		return
	}
	msg := Message{Binary: it.binary, Data: data[it.off:]}
	// The dispatcher runs a connection's items before the next connection
	// opens, so the current generation is the request's.
	gen, id := c.gen.Load(), it.id
	if f := c.cfg.OnRequest; f != nil {
		r := &Request{c: c, id: id, gen: gen, msg: msg, redelivered: it.redelivered}
		if v := callRequest(f, r); v != nil {
			c.reportError(fmt.Errorf("consumer: OnRequest panicked: %v", v))
			_ = r.fail(proto.CodePanic, "handler panicked")
		}
		return
	}
	r := Request{c: c, id: id, gen: gen}
	c.stats.messagesIn.Add(1)
	if f := c.cfg.OnMessage; f != nil {
		if v := callMessage(f, msg); v != nil {
			c.reportError(fmt.Errorf("consumer: OnMessage panicked on a request: %v", v))
			_ = r.fail(proto.CodePanic, "handler panicked")
			return
		}
	}
	r.answered.Store(true)
	var hb [proto.MaxEnvelopeHeader]byte
	_ = r.answer(proto.AppendHeader(hb[:0], proto.KindReply, 0, id), nil)
}

func callRequest(f func(*Request), r *Request) (panicked any) {
	defer func() { panicked = recover() }()
	f(r)
	return nil
}

func callMessage(f func(Message), m Message) (panicked any) {
	defer func() { panicked = recover() }()
	f(m)
	return nil
}

// Request is a request received from the Provider, handed to
// [Options.OnRequest]. Its methods are safe for concurrent use, and Reply
// and Fail may be called after OnRequest has returned, from any goroutine.
type Request struct {
	c           *Consumer
	id          uint64
	gen         uint64 // the connection it came on
	msg         Message
	redelivered bool
	answered    atomic.Bool
}

// Message returns the request's payload. Its Data is only valid until
// OnRequest returns; copy it to keep it.
func (r *Request) Message() Message { return r.msg }

// Redelivered reports whether the request was flagged as sent again: a
// Provider's job queue (provider.Queue) sets it on a job that an earlier
// worker may have run (that worker was lost, timed out or failed it
// retryably). Handle such jobs idempotently.
func (r *Request) Redelivered() bool { return r.redelivered }

// Reply answers the request with data (text must be UTF-8; data is not
// retained). Reply or Fail may be called once: a second call returns
// [ErrAlreadyAnswered]. It returns nil once the reply went out, an error
// wrapping [ErrDisconnected] when the connection the request came on has
// ended (the Provider's Request has then failed), or the errors of Send.
func (r *Request) Reply(binary bool, data []byte) error {
	var flags byte
	if !binary {
		if !utf8.Valid(data) {
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

// Fail answers the request with an error: the Provider's Request returns a
// *RemoteError with code and reason. code must be at least 1000 (lower codes
// are the library's); a reason over 123 bytes is cut, and it must be UTF-8.
// Otherwise as Reply.
func (r *Request) Fail(code uint16, reason string) error {
	if code < proto.MinAppCode {
		return fmt.Errorf("%w: Fail code %d: codes below %d are reserved", ErrInvalidOptions, code, proto.MinAppCode)
	}
	return r.fail(code, reason)
}

func (r *Request) fail(code uint16, reason string) error {
	if !utf8.ValidString(reason) {
		return ErrInvalidUTF8
	}
	if !r.answered.CompareAndSwap(false, true) {
		return ErrAlreadyAnswered
	}
	var b [proto.MaxEnvelopeHeader + 3 + proto.MaxReason]byte
	return r.answer(proto.AppendError(b[:0], r.id, code, reason), nil)
}

func (r *Request) answer(env, data []byte) error {
	c := r.c
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wc == nil || c.closeSent || c.dead || c.gen.Load() != r.gen {
		if c.isClosed.Load() {
			return fmt.Errorf("%w: %w", ErrDisconnected, ErrClosed)
		}
		return fmt.Errorf("%w: the connection the request came on has ended", ErrDisconnected)
	}
	if err := c.writeDataLocked(frame.OpBinary, env, data); err != nil {
		return err
	}
	c.stats.repliesOut.Add(1)
	return nil
}

// --- waiters ---

type result struct {
	msg Message
	err error
}

// waiter is one Request call waiting for its outcome. Pooled.
type waiter struct {
	ch    chan result // capacity 1: the outcome is sent once, never blocks
	timer *time.Timer // RequestTimeout when ctx has no deadline
	flags byte
	sent  bool   // went out at least once (a resend is flagged redelivered)
	data  []byte // a copy of the payload, kept for resends (Options.Resend)
}

var waiterPool = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &waiter{ch: make(chan result, 1), timer: t}
}}

func (c *Consumer) putWaiter(w *waiter) {
	w.sent = false
	if cap(w.data) > 64<<10 {
		w.data = nil
	}
	w.data = w.data[:0]
	waiterPool.Put(w)
}

// lostError is the error of requests failed by a lost connection.
func lostError(closed bool) error {
	if closed {
		return fmt.Errorf("%w: %w", ErrDisconnected, ErrClosed)
	}
	return ErrDisconnected
}
