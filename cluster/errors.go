package cluster

import "errors"

// Sentinel errors. Errors returned by a Node wrap one of them (test with
// errors.Is) and add detail; errors that cross back from the owner of a
// connection wrap the provider's sentinels instead (provider.ErrClosed,
// provider.ErrBackpressure, provider.ErrInvalidUTF8).
var (
	// ErrInvalidOptions: Options failed validation in New.
	ErrInvalidOptions = errors.New("cluster: invalid options")
	// ErrBroker: the broker refused a message or its link is down; the
	// message did not leave this node (local delivery, if any, happened).
	ErrBroker = errors.New("cluster: broker")
	// ErrTooLarge: the message, in its envelope, is over the broker's
	// MaxMessage (NATS: the server's max_payload, 1 MiB by default).
	ErrTooLarge = errors.New("cluster: message too large for the broker")
	// ErrUnknownConnection: no node holds a connection with that id (the
	// owner answered so, or no node is known to hold it).
	ErrUnknownConnection = errors.New("cluster: unknown connection")
	// ErrNodeUnreachable: the node holding the connection does not answer
	// on the broker (NATS: no responders), at once, not after a timeout.
	ErrNodeUnreachable = errors.New("cluster: node unreachable")
	// ErrNotStarted: the Node was used before Start.
	ErrNotStarted = errors.New("cluster: node not started")
	// ErrClosed: the Node has shut down.
	ErrClosed = errors.New("cluster: node closed")
	// ErrBadEnvelope: a message from the broker is not a cluster envelope
	// of a version this node reads (reported to OnError, then dropped).
	ErrBadEnvelope = errors.New("cluster: bad envelope")
	// ErrGap: messages from a node were lost (sequence gap, or the broker
	// client dropped messages); reported to OnError, presence is
	// re-synchronised with a snapshot.
	ErrGap = errors.New("cluster: messages lost")
	// ErrRemote: the owner of a connection failed a directed call with an
	// error that has no sentinel here; the message carries its text.
	ErrRemote = errors.New("cluster: remote error")
)
