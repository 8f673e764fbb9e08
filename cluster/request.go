package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/networkcluster/networkcluster/provider"
)

// Request sends a request to one connection anywhere in the cluster and
// returns its reply: Connection.Request on the node that holds it, the
// outcome relayed back. A local id takes the local path. The outcome is one
// of: the reply (its Data is the caller's); the owner's Connection.Request
// error (*provider.RemoteError, provider.ErrDisconnected,
// provider.ErrNotSupported, provider.ErrTooManyPending, provider.ErrClosed,
// provider.ErrBackpressure, context.DeadlineExceeded); ErrUnknownConnection;
// ErrNodeUnreachable at once when the owner does not listen on the broker;
// ErrTooLarge; or ctx's error. Options.RequestTimeout applies when ctx has
// no deadline; the owner is given the same deadline.
func (n *Node) Request(ctx context.Context, connID string, binary bool, data []byte) (provider.Message, error) {
	return n.request(ctx, connID, binary, data, false)
}

// request is Request, with the request flagged redelivered on the worker's
// side when redelivered is true (a Queue's retry).
func (n *Node) request(ctx context.Context, connID string, binary bool, data []byte, redelivered bool) (provider.Message, error) {
	if err := n.running(); err != nil {
		return provider.Message{}, err
	}
	if c, ok := n.p.Connection(connID); ok {
		if redelivered {
			return c.RequestRedelivered(ctx, binary, data)
		}
		return c.Request(ctx, binary, data)
	}
	owner, ok := n.lookupRemote(connID)
	if !ok {
		return provider.Message{}, fmt.Errorf("%w: %q", ErrUnknownConnection, connID)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.o.RequestTimeout)
		defer cancel()
		deadline, _ = ctx.Deadline()
	}
	ms := time.Until(deadline).Milliseconds()
	if ms <= 0 {
		return provider.Message{}, context.DeadlineExceeded
	}
	n.stats.remoteRequests.Add(1)
	payload := make([]byte, 0, len(connID)+20+len(data))
	payload = appendString(payload, connID)
	payload = appendUvarint(payload, uint64(ms))
	payload = append(payload, data...)
	var m provider.Message
	flags := flagsOf(binary)
	if redelivered {
		flags |= flagRedelivered
	}
	r, err := n.call(ctx, owner, kindRequest, flags, payload)
	if err == nil {
		err = parseStatus(owner, connID, r, &m)
		if err == nil && r.payload[0] != statusMessage {
			err = fmt.Errorf("%w: no message in the reply from node %s", ErrBadEnvelope, owner)
		}
	}
	if err != nil {
		n.stats.remoteRequestErrors.Add(1)
		return provider.Message{}, err
	}
	return m, nil
}

// serveRequest answers a kindRequest from another node: Connection.Request
// on the local connection, on its own goroutine, within the caller's
// deadline.
func (n *Node) serveRequest(e envelope, reply func([]byte) error) {
	id, rest, err := parseDirected(e.payload)
	var ms uint64
	if err == nil {
		var ok bool
		if ms, rest, ok = cutUvarint(rest); !ok {
			err = fmt.Errorf("%w: request deadline", ErrBadEnvelope)
		}
	}
	if err != nil {
		reply(replyStatus(err))
		return
	}
	c, ok := n.p.Connection(id)
	if !ok {
		reply(appendEnvelope(nil, kindReply, 0, 0, "", []byte{statusUnknown}))
		return
	}
	data := append([]byte(nil), rest...)
	binary, redelivered := e.binary(), e.flags&flagRedelivered != 0
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		ctx, cancel := context.WithTimeout(n.ctx, time.Duration(ms)*time.Millisecond)
		defer cancel()
		var m provider.Message
		var err error
		if redelivered {
			m, err = c.RequestRedelivered(ctx, binary, data)
		} else {
			m, err = c.Request(ctx, binary, data)
		}
		if err != nil {
			reply(replyStatus(err))
			return
		}
		payload := append([]byte{statusMessage}, m.Data...)
		r := appendEnvelope(make([]byte, 0, envelopeHdrMax+len(payload)), kindReply, flagsOf(m.Binary), 0, "", payload)
		if len(r) > n.b.MaxMessage() {
			r = replyStatus(fmt.Errorf("%w: reply of %d bytes", ErrTooLarge, len(r)))
		}
		if err := reply(r); err != nil {
			n.report(fmt.Errorf("cluster: reply to a request: %w", err))
		}
	}()
}
