// Package poller moves bytes between a server and thousands of TCP
// connections with few goroutines. It knows nothing of WebSocket: a
// [Handler] is given each connection's input as one contiguous slice and
// says how many bytes it consumed; the rest is carried over to the next
// call. Output goes through a per-connection, byte-accounted queue
// ([frame.Queue]) with a single flusher, so writes are safe from any
// goroutine and never block on a slow peer.
//
// # Two engines, one contract
//
// [Listen] serves with cloudwego/netpoll (Linux): a few epoll loops accept
// and read, handlers run on a small bounded worker pool, and an idle
// connection holds no goroutine and no buffer of ours. Writes go straight
// to the socket with a non-blocking sendmsg: what a handler queued, from
// the handler's goroutine when it returns; what [Conn.Flush] asks for, from
// a few process-wide flusher goroutines, so that a publisher makes no
// system call per connection and frames queued meanwhile share one write.
// When a socket is full, the remainder waits for write readiness on the
// Poller's own epoll instance (one goroutine per Poller), so a slow peer
// parks nothing and blocks nobody. netpoll's own writer is never used (its
// Flush blocks until the peer has read everything, and it panics after a
// close). On other systems Listen falls back to the second engine.
//
// With [Options.TLS], the netpoll engine serves TLS with [crypto/tls]
// itself: the handshake runs on a goroutine started by the peer's first
// bytes and gone when it ends; then the worker that reads a connection's
// bytes decrypts them (crypto/tls is told "no more input for now" with a
// temporary net.Error, after which it resumes where it stopped), and the
// flush that writes encrypts. An idle TLS connection holds no goroutine.
// Once a TLS 1.3 handshake with an AES-GCM suite is done, crypto/tls's
// connection state is dropped and the record layer (RFC 8446 section 5)
// runs here on the standard library's AES-GCM, with the traffic secrets
// crypto/tls gives its KeyLogWriter; an idle connection then keeps its keys
// but not its AES-GCM state. TLS 1.2 and ChaCha20-Poly1305 stay with
// crypto/tls. See tls.go and tls13.go.
//
// [Serve] takes any [net.Listener] (with Options.TLS it wraps it with
// [crypto/tls.NewListener]): one reader goroutine per connection, plus one
// flusher goroutine per connection while it has something to write.
//
// [ListenOn] serves a listener the caller bound (the netpoll engine for a
// [*net.TCPListener] on Linux, else that of Serve). [Poller.Adopt] takes an
// established connection accepted elsewhere (one an [net/http] handler
// hijacked) with the bytes already read from it: a TCP connection moves to
// the netpoll engine when the Poller has it, anything else gets a reader
// goroutine; [New] makes a Poller with no listener, for adopted
// connections only.
//
// Both engines give the same [Conn] and the same order of callbacks:
//
//	accept ─► OnOpen ─► OnData* ─► OnClose
//	           │          ▲   │
//	           │   Wake ──┘   └─ writes made here are flushed when it returns
//	           └─ exactly once each; never two at a time for one connection;
//	              OnClose after the last OnData has returned
//
// Handlers must not block for long: on the netpoll engine they share
// [Options.Workers] goroutines with every other connection of the process.
// A handler that panics crashes the process (panics are not recovered).
//
// # Process-wide settings
//
// netpoll is configured once per process: the number of poll loops, its
// buffer size and the worker pool are taken from the first [Listen] (see
// [Options]). The package keeps that record, the worker pool, the flush
// queue and the buffer pools at package level; nothing else.
//
// # Byte ownership
//
// The input slice given to [Handler.OnData] is only valid until OnData
// returns. [Conn.Write] copies its arguments before returning;
// [Conn.WriteShared] keeps its slice until the bytes are written, and the
// caller must not modify it meanwhile.
package poller
