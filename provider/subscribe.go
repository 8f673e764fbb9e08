package provider

import (
	"fmt"

	"github.com/networkcluster/networkcluster/frame"
	"github.com/networkcluster/networkcluster/internal/proto"
)

// onSubscription answers a Consumer's subscribe or unsubscribe (a control
// envelope, see internal/proto): a subscribe is honoured when
// Options.AuthorizeSubscribe allows it and refused with code 4 otherwise;
// an unsubscribe always is. The answer goes out in order with the
// connection's other messages, so a Consumer that has its answer has been
// a subscriber (or not) from that point on.
func (c *Connection) onSubscription(e proto.Envelope) {
	p := c.p
	topic := string(e.Payload)
	var b [proto.MaxEnvelopeHeader + 3 + proto.MaxReason]byte
	env := proto.AppendHeader(b[:0], proto.KindReply, 0, e.ID)
	switch e.Op {
	case proto.ControlSubscribe:
		ok, panicked := authorize(p.o.AuthorizeSubscribe, c, topic)
		switch {
		case panicked != nil:
			p.report(fmt.Errorf("provider: connection %s: AuthorizeSubscribe panicked: %v", c.ID(), panicked))
			env = proto.AppendError(b[:0], e.ID, proto.CodePanic, "subscribe handler panicked")
		case !ok:
			env = proto.AppendError(b[:0], e.ID, proto.CodeRefused, "subscribe refused")
		case c.Subscribe(topic) != nil:
			return // closing: the Consumer sees the connection end
		}
	case proto.ControlUnsubscribe:
		c.Unsubscribe(topic)
	}
	_ = c.sendEnvelope(frame.OpBinary, env, nil, false)
}

func authorize(f func(*Connection, string) bool, c *Connection, topic string) (ok bool, panicked any) {
	if f == nil {
		return false, nil
	}
	defer func() {
		if panicked = recover(); panicked != nil {
			ok = false
		}
	}()
	return f(c, topic), nil
}
