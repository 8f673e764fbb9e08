package cluster

import "context"

// Broker carries bytes between the Nodes of one cluster. Implementations:
// MemBroker (in-process, for tests and examples) and, in the nested module
// github.com/networkcluster/networkcluster/cluster/natsbroker, NATS.
//
// Delivery is at most once. Messages from one node arrive at each other
// node in the order that node's Broadcast calls returned (and, separately,
// in the order of its Direct calls to that node). A Broker must not keep a
// msg passed to it after the call returns, and its methods are safe for
// concurrent use.
type Broker interface {
	// Open joins the cluster as node and starts calling h. It returns once
	// messages flow.
	Open(ctx context.Context, node string, h BrokerHandler) error
	// Broadcast delivers msg to every other node. A nil error means handed
	// to the broker client, not delivered: at most once.
	Broadcast(msg []byte) error
	// Direct delivers msg to one node. ErrNodeUnreachable when the broker
	// can tell that no such node listens.
	Direct(node string, msg []byte) error
	// Request delivers msg to one node and returns its reply;
	// ErrNodeUnreachable at once when no such node listens, ctx.Err() on
	// timeout.
	Request(ctx context.Context, node string, msg []byte) ([]byte, error)
	// MaxMessage is the largest msg accepted.
	MaxMessage() int
	// Close flushes what was handed over (bounded by ctx) and leaves.
	Close(ctx context.Context) error
}

// BrokerHandler receives what a Broker carries. A Broker calls it from few
// goroutines (NATS: two), so its methods do not block for long.
type BrokerHandler interface {
	// HandleBroadcast receives another node's Broadcast; msg is valid
	// during the call only.
	HandleBroadcast(from string, msg []byte)
	// HandleDirect receives another node's Direct to this node.
	HandleDirect(from string, msg []byte)
	// HandleRequest receives a Request; reply may be called later, from
	// any goroutine, once.
	HandleRequest(from string, msg []byte, reply func([]byte) error)
	// HandleLink reports that the broker connection was lost (up false,
	// err why) or restored.
	HandleLink(up bool, err error)
	// HandleDropped reports that the broker client dropped n messages
	// (NATS: slow consumer).
	HandleDropped(n int)
}
