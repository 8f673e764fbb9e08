// Package consumer is the client side of network-cluster: a Consumer holds
// one WebSocket connection to a Provider, reconnects when it is lost, answers
// the Provider's heartbeat, and delivers messages to a handler.
//
// It speaks RFC 6455 (and RFC 7692 permessage-deflate when
// [Options.Compressor] is set) over gobwas/ws's dialer and the frame and
// compress packages of this module. It is cheap enough to run thousands of
// Consumers in one process (the load test does):
//
//   - one goroutine per Consumer, which dials, reads, waits between
//     reconnect attempts and runs the connection events, plus one that
//     runs OnMessage while messages arrive (it exits after a second
//     without); no timer goroutines: the heartbeat cutoff is the
//     connection's read deadline, re-armed on each ping;
//   - a small fixed read buffer per connection ([Options.ReadBufferSize]);
//     larger messages borrow pooled buffers and return them after delivery;
//   - no allocation per message sent or received in steady state;
//   - masking keys from a per-Consumer ChaCha8 generator seeded from
//     crypto/rand.
//
// # Lifecycle
//
// [New] validates the options. [Consumer.Connect] starts the connection
// cycle and returns once the first connection is open or the cycle has
// failed for good; [Consumer.Ready] waits for the current connection. When a
// connection is lost the Consumer waits ([Reconnect]) and dials again, until
// [Consumer.Close] (close handshake) or [Consumer.Destroy] (immediate), or
// until the reconnect policy gives up or the Provider answers 403 Forbidden.
//
// # Heartbeat
//
// A network-cluster Provider announces its heartbeat in one of two forms,
// and the Consumer follows whichever it sees on each connection:
//
//   - RFC 6455 ping/pong: the upgrade response carries the interval in
//     milliseconds in the header X-Network-Cluster-Heartbeat; the Provider sends
//     pings, which the Consumer answers with pongs (it answers every ping,
//     announced or not);
//   - the Node network-cluster 1.0.4 text form: the first message of the
//     connection is the text "PROVIDER_HEARTBEAT|<ms>", then the Provider
//     sends the text "PING" each interval and the Consumer answers "PONG".
//     These messages are not delivered to OnMessage.
//
// With either form, a connection that sees no heartbeat for twice the
// interval ([Consumer.HeartbeatCutoff]) is dropped and reconnected. Against
// a server that announces neither (a plain WebSocket server), there is no
// cutoff.
//
// # Events
//
// The handlers in [Options] run one at a time and in order: OnOpen, the
// connection's messages (OnMessage), OnDisconnect, and so on for each
// connection, then OnClose once. OnOpen, OnDisconnect and OnClose run on the
// Consumer's goroutine; nothing is read from the connection while OnOpen
// runs, so it should return promptly.
//
// OnMessage (and OnRequest) runs on a dispatcher goroutine apart from the
// reader; Message.Data is a copy in a pooled buffer, reused once the handler
// returns. While a handler works, the connection is still read, pings are
// answered, a lost connection is noticed (sends then fail and
// [Consumer.Connected] turns false) and the close handshake runs. Messages wait for OnMessage in a
// bounded queue ([Options.QueueLength], [Options.QueueBytes]); when it is
// full, reading pauses until OnMessage catches up, so nothing is dropped and
// TCP flow control pushes back on the Provider. When the Provider closes,
// or the Consumer fails the connection for a protocol error, its close frame
// waits up to [Options.CloseTimeout] for OnMessage to handle the messages
// read before, so that replies to them go out first; messages still queued
// when the connection is lost are delivered before OnDisconnect (after
// Destroy, none is).
//
// Handlers may call any method of the Consumer, including Close and Destroy
// (which then return without waiting for the goroutine that is running the
// handler).
package consumer
