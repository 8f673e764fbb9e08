// Package cluster joins several Providers into one cluster through a
// message broker (NATS in production, with the nested module
// github.com/networkcluster/networkcluster/cluster/natsbroker; MemBroker in
// tests): cluster-wide Broadcast and Publish, Send to a connection on any
// node, and presence (which node holds which connection, on which topics).
//
// A Node is attached to a Provider before the Provider starts:
//
//	p, _ := provider.New(provider.Options{...})
//	n, _ := cluster.New(p, cluster.Options{Broker: b})
//	p.Start()
//	n.Start(ctx)
//	n.Publish("jobs", false, []byte("..."))   // every subscriber on every node
//
// Semantics:
//   - Cross-node delivery is at most once. A nil error from Broadcast or
//     Publish means the message left this node; a broker that dies at that
//     moment may lose it. Losses are counted (Stats.Dropped, Stats.Gaps) and
//     reported to Options.OnError. Send is answered by the node that holds the
//     connection, so its nil means the owner queued the message.
//   - Messages from one node reach every other node in the order they were
//     sent from it; there is no order between nodes.
//   - Every node receives every cluster message (one broker subject): a
//     broadcast costs one broker message per node, and the fan-out to
//     connections is local. This suits a handful of nodes (3 to 10).
//   - Presence is a replica, updated every PresenceBatch; it freezes while
//     this node's broker link is down, and a node silent for NodeTimeout
//     while our link is up is dropped (OnNodeDown).
//   - Node.NewQueue is provider.Queue across the cluster: its workers are
//     the request-speaking connections of every node (from presence, which
//     carries that bit), and a job for a remote worker goes through the
//     node that holds it. Delivery is at least once: a job whose worker
//     disconnects, times out, fails it retryably, or whose node shuts down
//     (at once, through its leave message) or goes silent for NodeTimeout,
//     goes to another worker flagged redelivered, up to MaxAttempts.
//     Handlers must be idempotent. The queue lives in the submitting
//     node's memory: if that node dies, its waiting jobs are lost and its
//     jobs in flight may still run on other nodes' workers with nobody
//     waiting for the result; a Shutdown ends them with ErrClosed.
//   - Messages over the broker's size limit fail with ErrTooLarge (the NATS
//     default is 1 MiB, less than a Consumer's 16 MiB MaxPayloadLength: raise
//     max_payload on the server, up to 8 MiB, if you broadcast large
//     messages).
package cluster
