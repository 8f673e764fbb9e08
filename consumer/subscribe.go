package consumer

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/networkcluster/networkcluster/frame"
	"github.com/networkcluster/networkcluster/internal/proto"
)

// subscriptions are the topics this Consumer joined with Subscribe, and the
// subscribe and unsubscribe control messages awaiting the Provider's answer.
type subscriptions struct {
	mu      sync.Mutex
	topics  map[string]struct{} // accepted: renewed on every new connection
	pending map[uint64]*ctlCall // by request id (shared with Request's ids)
}

type ctlCall struct {
	op        byte
	topic     string
	ch        chan error // the caller's; nil for a renewal after a reconnect
	abandoned bool       // the caller's ctx ended first
}

// Subscribe asks the Provider to add this connection to topic (1 to 1024
// bytes of UTF-8), so that the Provider's Publish to topic reaches it and a
// provider.Queue for topic hands it jobs. The Provider honours it only if
// its Options.AuthorizeSubscribe allows; it refuses by default. Once
// accepted, the Consumer subscribes again on every new connection after a
// reconnect (a refusal then drops the topic and is reported to OnError).
//
// It returns nil once the Provider has subscribed the connection; a
// [*RemoteError] (code 4) when it refused; an error wrapping
// [ErrDisconnected] when the connection was lost first (the topic is then
// not renewed); ctx's error (or context.DeadlineExceeded after
// Options.RequestTimeout when ctx has no deadline): a late acceptance is
// then undone; [ErrNotConnected], [ErrNotSupported] (the connection did not
// negotiate requests), [ErrClosed] or [ErrInvalidTopic].
//
// It may be called from OnMessage or OnRequest (they run off the read
// loop), not from OnOpen: the answer is read once OnOpen has returned, so
// there it waits for its timeout.
func (c *Consumer) Subscribe(ctx context.Context, topic string) error {
	return c.control(ctx, proto.ControlSubscribe, topic)
}

// Unsubscribe asks the Provider to remove this connection from topic, and
// stops renewing the subscription after reconnects. It returns nil once the
// Provider has answered, or at once when no connection is open (a lost
// connection ended the subscription anyway); otherwise the errors of
// Subscribe. The topic is not renewed whatever the outcome.
func (c *Consumer) Unsubscribe(ctx context.Context, topic string) error {
	s := &c.subs
	s.mu.Lock()
	delete(s.topics, topic)
	s.mu.Unlock()
	err := c.control(ctx, proto.ControlUnsubscribe, topic)
	if err == ErrNotConnected {
		return nil
	}
	return err
}

// Topics returns the topics the Provider accepted with Subscribe and that
// are renewed after a reconnect, sorted.
func (c *Consumer) Topics() []string {
	s := &c.subs
	s.mu.Lock()
	out := make([]string, 0, len(s.topics))
	for t := range s.topics {
		out = append(out, t)
	}
	s.mu.Unlock()
	slices.Sort(out)
	return out
}

// control sends a subscribe or unsubscribe and waits for the answer.
func (c *Consumer) control(ctx context.Context, op byte, topic string) error {
	if !proto.ValidTopic(topic) {
		return fmt.Errorf("%w: %d bytes", ErrInvalidTopic, len(topic))
	}
	call := &ctlCall{op: op, topic: topic, ch: make(chan error, 1)}
	c.wmu.Lock()
	switch {
	case c.isClosed.Load():
		c.wmu.Unlock()
		return ErrClosed
	case c.wc == nil || c.closeSent || c.dead:
		c.wmu.Unlock()
		return ErrNotConnected
	case !c.v2.Load():
		c.wmu.Unlock()
		return ErrNotSupported
	}
	id, err := c.sendControlLocked(call)
	c.wmu.Unlock()
	if err != nil {
		return err
	}
	var timeout <-chan time.Time
	if _, ok := ctx.Deadline(); !ok {
		t := time.NewTimer(c.cfg.RequestTimeout)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case err := <-call.ch:
		return err
	case <-ctx.Done():
		err = ctx.Err()
	case <-timeout:
		err = fmt.Errorf("consumer: no answer within RequestTimeout %v: %w", c.cfg.RequestTimeout, context.DeadlineExceeded)
	}
	s := &c.subs
	s.mu.Lock()
	if s.pending[id] == call {
		call.abandoned = true
		s.mu.Unlock()
		return err
	}
	s.mu.Unlock()
	return <-call.ch // answered at the same moment: that answer stands
}

// sendControlLocked registers call under a new request id and sends it.
// c.wmu must be held and the connection open.
func (c *Consumer) sendControlLocked(call *ctlCall) (uint64, error) {
	c.reqMu.Lock()
	c.reqNext++
	id := c.reqNext
	c.reqMu.Unlock()
	s := &c.subs
	s.mu.Lock()
	if s.pending == nil {
		s.pending = make(map[uint64]*ctlCall)
	}
	s.pending[id] = call
	s.mu.Unlock()
	var b [proto.MaxEnvelopeHeader + 1 + proto.MaxTopic]byte
	if err := c.writeDataLocked(frame.OpBinary, proto.AppendControl(b[:0], id, call.op, call.topic), nil); err != nil {
		s.mu.Lock()
		delete(s.pending, id)
		s.mu.Unlock()
		return 0, err
	}
	return id, nil
}

// onControlReply takes the answer e to a subscribe or unsubscribe,
// reporting whether e answered one.
func (c *Consumer) onControlReply(e proto.Envelope) bool {
	s := &c.subs
	s.mu.Lock()
	call := s.pending[e.ID]
	if call == nil {
		s.mu.Unlock()
		return false
	}
	delete(s.pending, e.ID)
	var err error
	if e.Kind == proto.KindError {
		err = &RemoteError{Code: e.Code, Reason: string(e.Payload)}
	}
	undo := false
	switch {
	case call.op == proto.ControlUnsubscribe:
		delete(s.topics, call.topic)
	case err != nil:
		delete(s.topics, call.topic) // a renewal refused: not renewed again
	case call.abandoned:
		undo = true
	default:
		if s.topics == nil {
			s.topics = make(map[string]struct{})
		}
		s.topics[call.topic] = struct{}{}
	}
	s.mu.Unlock()
	switch {
	case call.ch != nil && !call.abandoned:
		call.ch <- err
	case call.ch == nil && err != nil:
		c.reportError(fmt.Errorf("consumer: subscribing again to %q after a reconnect: %w", call.topic, err))
	case undo:
		// The caller was told it failed: leave the topic again.
		c.wmu.Lock()
		if c.wc != nil && !c.closeSent && !c.dead {
			_, _ = c.sendControlLocked(&ctlCall{op: proto.ControlUnsubscribe, topic: call.topic})
		}
		c.wmu.Unlock()
	}
	return true
}

// resubscribeLocked renews the accepted subscriptions on a new connection.
// c.wmu must be held.
func (c *Consumer) resubscribeLocked() {
	s := &c.subs
	s.mu.Lock()
	topics := make([]string, 0, len(s.topics))
	for t := range s.topics {
		topics = append(topics, t)
	}
	s.mu.Unlock()
	slices.Sort(topics)
	for _, t := range topics {
		if _, err := c.sendControlLocked(&ctlCall{op: proto.ControlSubscribe, topic: t}); err != nil {
			return // the connection broke: the next one renews them
		}
	}
}

// controlLost ends the subscribes and unsubscribes awaiting an answer on a
// connection that was lost.
func (c *Consumer) controlLost() {
	s := &c.subs
	s.mu.Lock()
	calls := make([]*ctlCall, 0, len(s.pending))
	for id, call := range s.pending {
		delete(s.pending, id)
		calls = append(calls, call)
	}
	s.mu.Unlock()
	for _, call := range calls {
		if call.ch == nil || call.abandoned {
			continue
		}
		if call.op == proto.ControlUnsubscribe {
			call.ch <- nil // the subscription ended with the connection
			continue
		}
		call.ch <- fmt.Errorf("%w: subscribe to %q", ErrDisconnected, call.topic)
	}
}
