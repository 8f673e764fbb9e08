// Package provider is the server side of network-cluster: one process (the
// Provider) holds thousands of WebSocket connections from worker processes
// (the Consumers) and exchanges messages with them at low latency.
//
// It follows the Node package network-cluster (its Provider and Connection:
// auth by URL parameters plus a handler, heartbeat with strikes, compressor
// presets, max payload, max backpressure, TLS) and adds broadcast and topics
// that frame a message once for every receiver, graceful shutdown and a
// Stats snapshot.
//
// # Architecture
//
// Connections live on an event loop (package poller, over cloudwego/netpoll):
// no goroutine per connection. For each connection:
//
//	accept ─► OnOpen (state handshake, deadline armed)
//	   bytes ─► upgrade request parsed from the buffered bytes (gobwas/ws)
//	            ├─ no Auth.Handler: upgraded on the event loop
//	            └─ Auth.Handler: upgraded on a handshake goroutine (bounded)
//	         ─► state open ─► Options.OnOpen
//	   bytes ─► frames parsed from the buffered bytes (package frame), a
//	            data frame's payload taken as it arrives (text checked at
//	            once): pings, pongs and heartbeat answers handled inline;
//	            each data message, possibly fragmented or compressed, goes
//	            to the connection's handler queue
//	   close ─► close frames exchanged (state closing) ─► TCP closed
//
// The handler queue of each connection is run by a bounded pool of
// goroutines (Options.HandlerWorkers): OnOpen, then OnMessage for each
// message in order, then OnClose, one at a time per connection. A handler
// may block without delaying any heartbeat, pong or other connection's
// input. A close frame that ends a connection (a protocol error, or the
// answer to the peer's close) follows the handling of the messages
// received before it. Received message bytes are bounded per connection
// (Options.MaxHandlerQueue) and for the whole Provider
// (Options.MemoryBudget).
//
// Writes never block the caller: each connection has an outbound queue
// bounded by MaxBackpressure, drained by non-blocking writes.
//
// One timer goroutine serves every connection: handshake and closing
// deadlines and the heartbeat.
//
// TLS (wss) is served on the same event loop through crypto/tls: the
// handshake runs on a goroutine that ends with it, then records are
// decrypted by the worker that reads them and encrypted by the flush that
// writes them, so an idle wss connection holds no goroutine.
// TLS.GoroutinePerConn selects one goroutine per connection instead; the
// API and behaviour are the same.
//
// Besides its own listener (Options.Addr, or Options.Listener), a Provider
// takes connections from net/http: [Provider.Handler] is an http.Handler
// for an existing mux and its middleware, whose hijacked connections join
// the event loop where their descriptor can move there.
//
// # Jobs
//
// A [Queue] hands each job to one worker, a connection that negotiated
// requests (and is subscribed to the queue's topic), with at most
// MaxInFlight of the queue's jobs per worker, and returns the worker's
// reply. A job whose worker is lost, times out or fails it retryably goes to
// another worker flagged redelivered; the outcome of every job is exactly
// one reply or error. Consumers may pick their topics themselves
// (consumer.Consumer.Subscribe) where [Options.AuthorizeSubscribe] allows.
package provider
