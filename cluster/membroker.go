package cluster

import (
	"context"
	"fmt"
	"sync"
)

// MemHub is an in-process broker server: the MemBrokers made by one hub
// form one cluster. For tests and examples; a real cluster uses a network
// broker (natsbroker).
type MemHub struct {
	mu    sync.RWMutex
	nodes map[string]*MemBroker
	max   int
}

// NewMemHub returns a hub whose brokers accept messages up to maxMessage
// bytes (0: 1 MiB, as NATS).
func NewMemHub(maxMessage int) *MemHub {
	if maxMessage <= 0 {
		maxMessage = 1 << 20
	}
	return &MemHub{nodes: make(map[string]*MemBroker), max: maxMessage}
}

// Broker returns a new Broker of this hub, for one Node.
func (h *MemHub) Broker() *MemBroker {
	return &MemBroker{hub: h, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// MemBroker is one node's Broker on a MemHub. Each broker delivers to its
// handler from one goroutine, in order; its queue holds up to MaxQueue
// messages, beyond which messages are dropped and reported through
// HandleDropped (like a NATS slow consumer).
type MemBroker struct {
	hub  *MemHub
	node string
	h    BrokerHandler

	// MaxQueue bounds the messages waiting for the handler; 0 means 65536.
	// Set it before Open.
	MaxQueue int

	mu      sync.Mutex
	queue   []memItem
	dropped int
	down    bool // SetLink(false): sends fail, nothing is received
	closed  bool
	wake    chan struct{}
	done    chan struct{}
}

type memItem struct {
	from  string
	kind  uint8 // 0 broadcast, 1 direct, 2 request
	msg   []byte
	reply func([]byte) error
}

// Open joins the hub as node.
func (b *MemBroker) Open(ctx context.Context, node string, h BrokerHandler) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.hub.mu.Lock()
	defer b.hub.mu.Unlock()
	if b.h != nil {
		return fmt.Errorf("%w: broker already open", ErrBroker)
	}
	if _, dup := b.hub.nodes[node]; dup {
		return fmt.Errorf("%w: node %q already in the hub", ErrBroker, node)
	}
	b.node, b.h = node, h
	if b.MaxQueue <= 0 {
		b.MaxQueue = 65536
	}
	b.hub.nodes[node] = b
	go b.run()
	return nil
}

func (b *MemBroker) run() {
	defer close(b.done)
	var batch []memItem
	for {
		b.mu.Lock()
		batch, b.queue = b.queue, batch[:0]
		dropped := b.dropped
		b.dropped = 0
		closed := b.closed
		b.mu.Unlock()
		if dropped > 0 {
			b.h.HandleDropped(dropped)
		}
		for i, it := range batch {
			switch it.kind {
			case 0:
				b.h.HandleBroadcast(it.from, it.msg)
			case 1:
				b.h.HandleDirect(it.from, it.msg)
			case 2:
				b.h.HandleRequest(it.from, it.msg, it.reply)
			}
			batch[i] = memItem{}
		}
		if closed {
			return
		}
		if len(batch) == 0 {
			<-b.wake
		}
	}
}

func (b *MemBroker) enqueue(it memItem) {
	b.mu.Lock()
	if b.closed || b.down {
		b.mu.Unlock()
		return // at most once: lost
	}
	if len(b.queue) >= b.MaxQueue {
		b.dropped++
	} else {
		b.queue = append(b.queue, it)
	}
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

func (b *MemBroker) check(msg []byte) error {
	b.mu.Lock()
	down, closed := b.down, b.closed
	b.mu.Unlock()
	switch {
	case b.h == nil:
		return fmt.Errorf("%w: broker not open", ErrBroker)
	case closed:
		return fmt.Errorf("%w: broker closed", ErrBroker)
	case down:
		return fmt.Errorf("%w: link down", ErrBroker)
	case len(msg) > b.hub.max:
		return fmt.Errorf("%w: %d bytes, max %d", ErrTooLarge, len(msg), b.hub.max)
	}
	return nil
}

// Broadcast queues a copy of msg for every other node of the hub.
func (b *MemBroker) Broadcast(msg []byte) error {
	if err := b.check(msg); err != nil {
		return err
	}
	cp := append([]byte(nil), msg...)
	b.hub.mu.RLock()
	defer b.hub.mu.RUnlock()
	for id, o := range b.hub.nodes {
		if id != b.node {
			o.enqueue(memItem{from: b.node, msg: cp})
		}
	}
	return nil
}

func (b *MemBroker) peer(node string) (*MemBroker, error) {
	b.hub.mu.RLock()
	o := b.hub.nodes[node]
	b.hub.mu.RUnlock()
	if o == nil {
		return nil, fmt.Errorf("%w: %q", ErrNodeUnreachable, node)
	}
	o.mu.Lock()
	down := o.down
	o.mu.Unlock()
	if down {
		return nil, fmt.Errorf("%w: %q", ErrNodeUnreachable, node)
	}
	return o, nil
}

// Direct queues a copy of msg for node.
func (b *MemBroker) Direct(node string, msg []byte) error {
	if err := b.check(msg); err != nil {
		return err
	}
	o, err := b.peer(node)
	if err != nil {
		return err
	}
	o.enqueue(memItem{from: b.node, kind: 1, msg: append([]byte(nil), msg...)})
	return nil
}

// Request queues a copy of msg for node and waits for the reply.
func (b *MemBroker) Request(ctx context.Context, node string, msg []byte) ([]byte, error) {
	if err := b.check(msg); err != nil {
		return nil, err
	}
	o, err := b.peer(node)
	if err != nil {
		return nil, err
	}
	ch := make(chan []byte, 1)
	var once sync.Once
	reply := func(r []byte) error {
		if len(r) > b.hub.max {
			return fmt.Errorf("%w: reply of %d bytes", ErrTooLarge, len(r))
		}
		ok := false
		once.Do(func() { ch <- append([]byte(nil), r...); ok = true })
		if !ok {
			return fmt.Errorf("%w: replied twice", ErrBroker)
		}
		return nil
	}
	o.enqueue(memItem{from: b.node, kind: 2, msg: append([]byte(nil), msg...), reply: reply})
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// MaxMessage returns the hub's limit.
func (b *MemBroker) MaxMessage() int { return b.hub.max }

// SetLink simulates losing (false) and restoring (true) this broker's link:
// while down, sends fail with ErrBroker, messages to this node are lost and
// Requests to it fail with ErrNodeUnreachable. The handler is told through
// HandleLink, synchronously.
func (b *MemBroker) SetLink(up bool) {
	b.mu.Lock()
	changed := b.down == up
	b.down = !up
	b.mu.Unlock()
	if changed && b.h != nil {
		var err error
		if !up {
			err = fmt.Errorf("%w: link down (simulated)", ErrBroker)
		}
		b.h.HandleLink(up, err)
	}
}

// Close leaves the hub; messages already queued for this node's handler
// are delivered first (bounded by ctx).
func (b *MemBroker) Close(ctx context.Context) error {
	b.hub.mu.Lock()
	if b.hub.nodes[b.node] == b {
		delete(b.hub.nodes, b.node)
	}
	b.hub.mu.Unlock()
	b.mu.Lock()
	already := b.closed
	b.closed = true
	b.mu.Unlock()
	if b.h == nil || already {
		return nil
	}
	select {
	case b.wake <- struct{}{}:
	default:
	}
	select {
	case <-b.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
