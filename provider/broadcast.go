package provider

import (
	"errors"
	"sort"
	"sync"

	"github.com/networkcluster/networkcluster/frame"
	"github.com/networkcluster/networkcluster/internal/proto"
	"github.com/networkcluster/networkcluster/poller"
)

// PreparedMessage is a message framed once, and compressed once when the
// shared compressor is on, so that the same bytes can be queued on any
// number of connections without a copy. It is immutable and safe for
// concurrent use. Make one with Provider.Prepare.
type PreparedMessage struct {
	p       *Provider
	op      frame.Opcode
	payload []byte // a private copy, for connections that compress themselves
	plain   []byte // the uncompressed frame

	// The frame compressed without context, made on first use: only if a
	// receiver negotiated compression with 15-bit windows.
	zonce      sync.Once
	compressed []byte

	// A binary message for connections that negotiated requests (v2),
	// whose binary frames start with an envelope byte: made on first use.
	v2once sync.Once
	v2     *PreparedMessage
}

// Prepare frames a message for Broadcast, Publish or SendPrepared. data is
// copied. Text must be valid UTF-8.
func (p *Provider) Prepare(binary bool, data []byte) (*PreparedMessage, error) {
	op := frame.OpText
	if binary {
		op = frame.OpBinary
	} else if !frame.ValidUTF8(data) {
		return nil, ErrInvalidUTF8
	}
	m := &PreparedMessage{p: p, op: op}
	m.plain = frame.NewFrame(op, data, false).Bytes()
	m.payload = m.plain[len(m.plain)-len(data):]
	return m, nil
}

// compressedFrame returns the message compressed once without context, or
// nil if compression failed (the caller then compresses per connection).
func (m *PreparedMessage) compressedFrame() []byte {
	m.zonce.Do(func() {
		buf := getScratch()
		out, err := m.p.shared.Compress((*buf)[:0], m.payload)
		if err == nil {
			m.compressed = frame.NewFrame(m.op, out, true).Bytes()
			m.p.stats.framesCompressed.Add(1)
		}
		*buf = out
		putScratch(buf)
	})
	return m.compressed
}

// enveloped returns the message as v2 connections take it: a binary
// payload behind the plain-message envelope byte. Text is the same on both.
func (m *PreparedMessage) enveloped() *PreparedMessage {
	m.v2once.Do(func() {
		data := make([]byte, 0, 1+len(m.payload))
		data = append(append(data, proto.KindMessage), m.payload...)
		v := &PreparedMessage{p: m.p, op: m.op}
		v.plain = frame.NewFrame(m.op, data, false).Bytes()
		v.payload = v.plain[len(v.plain)-len(data):]
		m.v2 = v
	})
	return m.v2
}

// Len returns the payload length of the message.
func (m *PreparedMessage) Len() int { return len(m.payload) }

// SendPrepared queues a prepared message on the connection, sharing its
// bytes. Errors are those of Send.
func (c *Connection) SendPrepared(m *PreparedMessage) error {
	err := c.queuePrepared(m)
	if err == nil {
		c.pc.Flush()
	}
	return err
}

// queuePrepared queues m without flushing.
func (c *Connection) queuePrepared(m *PreparedMessage) error {
	if State(c.state.Load()) != StateOpen {
		return c.closedError()
	}
	n := len(m.payload)
	if c.v2() && m.op == frame.OpBinary {
		m = m.enveloped()
	}
	var err error
	c.sendMu.Lock()
	switch {
	case State(c.state.Load()) != StateOpen:
		c.sendMu.Unlock()
		return c.closedError()
	case !c.deflate() || !c.p.shouldCompress(len(m.payload)):
		err = c.pc.WriteShared(m.plain, false)
	case c.zstate().fullWindow && m.compressedFrame() != nil:
		// The broadcast was compressed once, without context: valid for
		// any receiver that takes 15-bit windows. A receiver whose own
		// compressor keeps context must also remember the message, as the
		// peer's inflater will.
		z := c.zstate()
		if !z.zcontext {
			err = c.pc.WriteShared(m.compressed, false)
			break
		}
		if err = c.pc.WriteShared(m.compressed, false); err == nil {
			z.deflater.Observe(m.payload)
		}
	default:
		// A compressor that keeps context must see every message it sends,
		// in order: compress this one for this connection.
		err = c.sendCompressed(m.op, nil, m.payload)
	}
	c.sendMu.Unlock()
	switch {
	case err == nil:
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

// BroadcastResult tells what a Broadcast or Publish did.
type BroadcastResult struct {
	// Sent counts the connections the message was queued on.
	Sent int
	// Refused counts connections over their backpressure limit (closed by
	// the default policy, or left open without this message under
	// RefuseOnBackpressure).
	Refused int
	// Closed counts receivers that were closing or closed meanwhile.
	Closed int
}

// Broadcast sends a message to every open connection. It frames the message
// once (and compresses it once under the shared compressor) and queues the
// same bytes on every receiver; it never blocks on a slow receiver, which
// meets its own backpressure limit instead. data is not retained.
func (p *Provider) Broadcast(binary bool, data []byte) (BroadcastResult, error) {
	return p.BroadcastFilter(binary, data, nil)
}

// BroadcastFilter is Broadcast to the connections for which keep returns
// true (all when keep is nil). keep runs on the calling goroutine.
func (p *Provider) BroadcastFilter(binary bool, data []byte, keep func(*Connection) bool) (BroadcastResult, error) {
	m, err := p.Prepare(binary, data)
	if err != nil {
		return BroadcastResult{}, err
	}
	return p.BroadcastPrepared(m, keep), nil
}

// BroadcastPrepared sends a prepared message to the connections for which
// keep returns true (all when keep is nil).
func (p *Provider) BroadcastPrepared(m *PreparedMessage, keep func(*Connection) bool) BroadcastResult {
	snap := getSnapshot()
	defer putSnapshot(snap)
	*snap = p.snapshotConns(*snap)
	return p.fanOut(m, *snap, keep)
}

func (p *Provider) fanOut(m *PreparedMessage, conns []*Connection, keep func(*Connection) bool) BroadcastResult {
	var r BroadcastResult
	for _, c := range conns {
		if keep != nil && !keep(c) {
			continue
		}
		switch err := c.queuePrepared(m); {
		case err == nil:
			r.Sent++
			c.pc.Flush()
		case errors.Is(err, ErrBackpressure):
			r.Refused++
		default:
			r.Closed++
		}
	}
	return r
}

var snapshotPool = sync.Pool{New: func() any { s := make([]*Connection, 0, 1024); return &s }}

func getSnapshot() *[]*Connection { return snapshotPool.Get().(*[]*Connection) }

func putSnapshot(s *[]*Connection) {
	clear(*s)
	*s = (*s)[:0]
	snapshotPool.Put(s)
}

// --- topics ---

type topic struct {
	subs map[*Connection]struct{}
}

type topicSet map[string]struct{}

// Subscribe adds the connection to topic. Subscribing twice is harmless.
// It returns ErrClosed if the connection is not open.
func (c *Connection) Subscribe(name string) error {
	p := c.p
	p.topicMu.Lock()
	defer p.topicMu.Unlock()
	if State(c.state.Load()) != StateOpen {
		return c.closedError()
	}
	t := p.topics[name]
	if t == nil {
		t = &topic{subs: make(map[*Connection]struct{})}
		p.topics[name] = t
	}
	t.subs[c] = struct{}{}
	p.queuesTopic(c, name, true)
	r := c.rareState()
	if r.topics == nil {
		r.topics = make(topicSet)
	}
	if _, dup := r.topics[name]; !dup && len(p.observers) > 0 {
		p.observeTopic(c, name, true)
	}
	r.topics[name] = struct{}{}
	return nil
}

// Unsubscribe removes the connection from topic. It reports whether the
// connection was subscribed.
func (c *Connection) Unsubscribe(name string) bool {
	p := c.p
	p.topicMu.Lock()
	defer p.topicMu.Unlock()
	topics := c.subs()
	if _, ok := topics[name]; !ok {
		return false
	}
	p.queuesTopic(c, name, false)
	delete(topics, name)
	p.dropSub(name, c)
	p.observeTopic(c, name, false)
	return true
}

// dropSub removes c from topic name; the caller holds topicMu.
func (p *Provider) dropSub(name string, c *Connection) {
	if t := p.topics[name]; t != nil {
		delete(t.subs, c)
		if len(t.subs) == 0 {
			delete(p.topics, name)
		}
	}
}

// Topics returns the topics the connection is subscribed to, sorted.
func (c *Connection) Topics() []string {
	c.p.topicMu.RLock()
	topics := c.subs()
	out := make([]string, 0, len(topics))
	for name := range topics {
		out = append(out, name)
	}
	c.p.topicMu.RUnlock()
	sort.Strings(out)
	return out
}

// Subscribed reports whether the connection is subscribed to topic.
func (c *Connection) Subscribed(name string) bool {
	c.p.topicMu.RLock()
	defer c.p.topicMu.RUnlock()
	_, ok := c.subs()[name]
	return ok
}

// unsubscribeAll removes c from its topics; with observers it returns them.
func (p *Provider) unsubscribeAll(c *Connection) (topics []string) {
	p.topicMu.Lock()
	if r := c.rare.Load(); r != nil {
		for name := range r.topics {
			p.dropSub(name, c)
			if len(p.observers) > 0 {
				topics = append(topics, name)
			}
		}
		r.topics = nil
	}
	p.topicMu.Unlock()
	return topics
}

// Subscribers returns the number of connections subscribed to topic.
func (p *Provider) Subscribers(name string) int {
	p.topicMu.RLock()
	defer p.topicMu.RUnlock()
	if t := p.topics[name]; t != nil {
		return len(t.subs)
	}
	return 0
}

// Publish sends a message to every connection subscribed to topic, framed
// once, as Broadcast does.
func (p *Provider) Publish(topic string, binary bool, data []byte) (BroadcastResult, error) {
	m, err := p.Prepare(binary, data)
	if err != nil {
		return BroadcastResult{}, err
	}
	return p.PublishPrepared(topic, m), nil
}

// PublishPrepared sends a prepared message to the subscribers of topic.
func (p *Provider) PublishPrepared(topic string, m *PreparedMessage) BroadcastResult {
	snap := getSnapshot()
	defer putSnapshot(snap)
	p.topicMu.RLock()
	if t := p.topics[topic]; t != nil {
		for c := range t.subs {
			*snap = append(*snap, c)
		}
	}
	p.topicMu.RUnlock()
	return p.fanOut(m, *snap, nil)
}
