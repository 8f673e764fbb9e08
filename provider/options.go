package provider

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/networkcluster/networkcluster/compress"
)

// Defaults of the Node network-cluster package, and ours where it has none.
const (
	DefaultPort                  = 8080
	DefaultPath                  = "/connect"
	DefaultMaxPayloadLength      = 32 << 10
	DefaultMaxBackpressure       = 1 << 20
	DefaultHeartbeatInterval     = 10 * time.Second
	DefaultHeartbeatMaxStrikes   = 2
	DefaultHandshakeTimeout      = 10 * time.Second
	DefaultMaxHandshakeSize      = 8 << 10
	DefaultMaxPendingHandshakes  = 1024
	DefaultCloseTimeout          = 5 * time.Second
	DefaultCompressionThreshold  = compress.DefaultThreshold
	DefaultHandlerWorkers        = 1024
	DefaultMaxHandlerQueue       = 4 << 20
	DefaultMemoryBudget          = 256 << 20
	minHeartbeatInterval         = 10 * time.Millisecond
	maxMaxPayloadLength          = 1 << 30
	maxMaxHandlerQueue           = 1 << 30
	handshakeTimerResolutionStep = 100 * time.Millisecond
)

// BackpressurePolicy says what a send does when the connection's outbound
// queue is over [Options.MaxBackpressure].
type BackpressurePolicy uint8

const (
	// CloseOnBackpressure (the default, as the Node package documents) closes
	// the connection: the send returns an error wrapping [ErrBackpressure],
	// a close frame 1008 (policy violation) with the reason
	// "max backpressure exceeded" is sent if it fits, and the connection is
	// released once that frame is written or after [Options.CloseTimeout].
	CloseOnBackpressure BackpressurePolicy = iota
	// RefuseOnBackpressure refuses that one message and keeps the
	// connection: the send returns an error wrapping [ErrBackpressure] and
	// nothing of the message is queued. A later send succeeds once the peer
	// has read enough.
	RefuseOnBackpressure
)

// HeartbeatMode selects the wire form of the heartbeat.
type HeartbeatMode uint8

const (
	// HeartbeatControlFrames (the default) sends RFC 6455 ping control frames
	// and counts pong frames as answers. The interval is announced in the
	// upgrade response header X-Network-Cluster-Heartbeat (milliseconds), so
	// a Consumer knows when to give up on a silent Provider. No user message
	// is reserved.
	HeartbeatControlFrames HeartbeatMode = iota
	// HeartbeatText speaks the text heartbeat of the Node network-cluster
	// 1.0.4 package, so that its unmodified Consumers stay connected: the
	// text "PROVIDER_HEARTBEAT|<ms>" once after the connection opens, then
	// "PING" each interval, answered by "PONG". Those texts are swallowed
	// on both sides: a user message equal to "PONG" never reaches
	// OnMessage. Pong control frames count as answers too.
	HeartbeatText
	// HeartbeatOff sends nothing and never strikes; a vanished peer is then
	// noticed only by TCP.
	HeartbeatOff
)

// Heartbeat configures the ping/pong cycle that removes dead connections.
// Each interval, per connection: if it answered since the last ping, a new
// ping is sent and its strikes reset; else if its strikes are below
// MaxStrikes, it gets a strike; else it is closed (close code 1006 is
// reported, as no close frame is exchanged with a dead peer). One timer
// serves all connections.
type Heartbeat struct {
	// Interval between pings. Default 10 s (DefaultHeartbeatInterval).
	Interval time.Duration
	// MaxStrikes is how many intervals without an answer a connection
	// survives. Default 2. Set -1 for 0 (closed after one silent interval).
	MaxStrikes int
	// Mode is the wire form. Default HeartbeatControlFrames.
	Mode HeartbeatMode
}

// Handshake is what the auth handler sees of an upgrade request.
type Handshake struct {
	Method     string      // always "GET"
	Path       string      // the request path, Options.Path
	RawQuery   string      // the query string, without "?", still encoded
	Header     http.Header // the request headers, canonicalised
	RemoteAddr net.Addr    // the peer's address
}

// AuthHandler decides whether an upgrade request may connect, after the
// required parameters of [Auth] have matched. It may block (it runs on the
// Provider's handshake workers, never on the event loop); ctx is cancelled at
// the handshake timeout or when the Provider closes. A verdict of false, or a
// non-nil error (or a panic), rejects the request with 403 Forbidden and the
// body "Unauthorized"; the error is also passed to [Options.OnError],
// wrapping [ErrAuthFailed]. A handler still running at the handshake timeout
// gets 408 Request Timeout instead, whatever it returns, and nothing is
// reported to OnError.
type AuthHandler func(ctx context.Context, r *Handshake, params url.Values) (bool, error)

// Auth configures how upgrade requests are authenticated.
type Auth struct {
	// Parameters are required URL query parameters: for every key, the
	// request must carry that key exactly once with exactly this (decoded)
	// value, compared in constant time. Other parameters are allowed and
	// kept as metadata in Connection.Parameters.
	Parameters map[string]string
	// Handler, when set, runs after the parameters matched.
	Handler AuthHandler
	// MaxPending bounds the handshakes whose Handler is running at once;
	// further requests get 503 Service Unavailable until one finishes.
	// Default 1024.
	MaxPending int
}

// TLS configures wss. Set Config, or CertFile and KeyFile.
type TLS struct {
	// Config is used as is (it must hold a certificate or a GetCertificate).
	Config *tls.Config
	// CertFile and KeyFile are PEM files. KeyFile may be encrypted (PKCS#8
	// "ENCRYPTED PRIVATE KEY" with PBES2, or legacy "Proc-Type: 4,ENCRYPTED"
	// PEM), in which case Passphrase decrypts it.
	CertFile, KeyFile string
	Passphrase        string
	// GoroutinePerConn serves TLS with one goroutine per connection (a
	// blocking crypto/tls connection each) instead of on the event loop.
	// The event loop is the default: an idle TLS connection there holds no
	// goroutine. This is the fallback, and the engine of systems without
	// netpoll (not Linux), where it is used whatever this says.
	GoroutinePerConn bool
}

// Message is a data message received from a Consumer.
type Message struct {
	// Binary is true for a binary message, false for text (valid UTF-8).
	Binary bool
	// Data is the payload. It is only valid until the OnMessage callback
	// returns; copy it to keep it. (A large message lives in memory mapped
	// outside the Go heap, which is unmapped when the callback returns:
	// reading it afterwards crashes the process.)
	Data []byte
}

// Text returns the payload as a string (a copy).
func (m Message) Text() string { return string(m.Data) }

// Options configures a Provider. The zero value of every field means its
// documented default, so Options{} is a valid configuration.
type Options struct {
	// Addr is the listen address, "host:port" as in net/http. Default
	// ":8080" (the Node package's port 8080 on every interface). A port of
	// 0 picks a free one: read Provider.Port after Start.
	Addr string
	// Network is "tcp" (default; IPv4 and IPv6), "tcp4" or "tcp6".
	Network string
	// Listener, when set, is served by Start instead of binding Addr (a
	// socket from systemd's socket activation, or one shared with other
	// servers); the Provider owns it from Start on. A *net.TCPListener is
	// served on the event loop, any other listener (and every one under
	// TLS) with a goroutine per connection. To share a port with other
	// HTTP handlers instead, see Provider.Handler.
	Listener net.Listener
	// Path of the WebSocket endpoint. Default "/connect". GET and HEAD
	// /alive answer 200 "OK" (a health check); other methods there get 405.
	Path string

	// TLS, when set, serves wss with crypto/tls on the event loop (the
	// handshake on a short-lived goroutine, then no goroutine per
	// connection); HandshakeTimeout also bounds the TLS handshake. See
	// TLS.GoroutinePerConn for the fallback engine. Everything else is
	// identical to ws.
	TLS *TLS

	// Compressor is the permessage-deflate preset (compress.Disabled by
	// default). Presets combine with |.
	Compressor compress.Preset
	// CompressionThreshold: messages shorter than this go out uncompressed.
	// Default compress.DefaultThreshold; -1 compresses everything.
	CompressionThreshold int

	// MaxPayloadLength is the largest incoming message (after inflation),
	// in bytes. A larger one closes the connection with 1009: an
	// uncompressed message as soon as a frame header shows it, before the
	// payload is buffered; a compressed one once its inflation passes the
	// limit. Default 32 KiB.
	MaxPayloadLength int
	// MaxBackpressure is the most bytes queued for one connection: a send
	// that would take a non-empty queue over it meets the Backpressure
	// policy. A single message larger than it is still accepted when
	// nothing is queued. Default 1 MiB.
	MaxBackpressure int
	// Backpressure is the policy at MaxBackpressure. Default CloseOnBackpressure.
	Backpressure BackpressurePolicy

	// Auth is how upgrade requests are authenticated. Default: no
	// required parameter and no handler, so every upgrade is accepted.
	Auth Auth
	// Heartbeat is the ping cycle that removes dead connections. Default
	// every 10 s, 2 strikes, RFC 6455 control frames.
	Heartbeat Heartbeat

	// HandshakeTimeout bounds the upgrade, including a slow auth handler:
	// a connection not upgraded in time is answered 408 Request Timeout and
	// closed. Default 10 s.
	HandshakeTimeout time.Duration
	// MaxHandshakeSize caps the upgrade request; a larger one gets
	// 431 Request Header Fields Too Large. Default 8 KiB.
	MaxHandshakeSize int
	// CloseTimeout bounds how long a closing connection waits for its close
	// frame to be written and answered. Default 5 s.
	CloseTimeout time.Duration

	// PollLoops is the number of netpoll event loops (process-wide); 0
	// leaves netpoll's default.
	PollLoops int

	// HandlerWorkers bounds the goroutines that run OnOpen, OnMessage and
	// OnClose for all connections (started on demand, gone when idle).
	// Default 1024 (DefaultHandlerWorkers). Heartbeats, pings, pongs and
	// close frames never wait for them; see OnMessage for what a blocking
	// handler costs.
	HandlerWorkers int
	// MaxHandlerQueue bounds the bytes of received messages one
	// connection may have waiting for (or in) its OnMessage. Past it, the
	// connection's input is left unread (held by the poller, up to
	// MaxHandlerQueue + MaxPayloadLength + 64 KiB more; a peer that sends
	// beyond that meanwhile is closed) until the handlers have caught up
	// with half of it, and its heartbeat is not judged meanwhile (its
	// answers wait in that input); Stats.ReadPauses counts the pauses.
	// Default 4 MiB (DefaultMaxHandlerQueue); a value above 1 GiB acts as
	// 1 GiB.
	MaxHandlerQueue int
	// MemoryBudget bounds, for the whole Provider, the bytes of received
	// messages held in memory: frames being assembled, messages being
	// inflated (each inflation holds what its output may reach, up to
	// MaxPayloadLength, while it runs), and messages waiting for or in
	// their OnMessage. A message that does not fit closes its connection
	// with 1013 (try again later), counted in Stats.BudgetCloses; other
	// connections go on. Large message buffers are mapped outside the Go
	// heap and unmapped once handled, so memory goes back to the system at
	// once. Default 256 MiB (DefaultMemoryBudget), and never less than 4 ×
	// MaxPayloadLength; a value below MaxPayloadLength is invalid.
	MemoryBudget int

	// Logger receives debug and error logs; nil means silent.
	Logger *slog.Logger
	// OnError is told of errors that have no caller to return to: a failing
	// (or panicking) auth handler (wrapping ErrAuthFailed) and a connection
	// failed for a protocol error (its *CloseError carries the code). It
	// runs on the goroutine that found the error and must not block.
	// Optional.
	OnError func(error)

	// OnOpen is called once per connection when it is open, before any
	// OnMessage. OnMessage is called for each data message, in order, never
	// concurrently for one connection. OnClose is called once per opened
	// connection with the close code and reason (1006 when the peer vanished
	// without a close frame), after the OnMessage of every message received
	// before the close. The three run on the Provider's handler workers
	// (HandlerWorkers), never on the event loop, so a callback may block:
	// the connection's heartbeat answers, pings and close frames are handled
	// meanwhile, and other connections are not delayed until all workers
	// are blocked. What blocking costs: the connection's later messages
	// wait (past MaxHandlerQueue its input is left unread), a blocked
	// worker is a goroutine, and once HandlerWorkers callbacks block at the
	// same time, every connection's callbacks wait for one to return. For
	// long work per message, hand it to your own goroutines. A callback may
	// call any method of the Connection or the Provider, except Close and
	// Shutdown, which wait for the callbacks.
	OnOpen    func(c *Connection)
	OnMessage func(c *Connection, m Message)
	OnClose   func(c *Connection, code CloseCode, reason string)

	// OnStateChange, when set, is told of every connection state change
	// (for metrics). It must not block.
	OnStateChange func(c *Connection, s State)

	// OnRequest handles a request a Consumer made with Request, on
	// connections that negotiated requests ([Connection.SupportsRequests]).
	// It runs like OnMessage (in order with the connection's messages);
	// the handler answers with r.Reply or r.Fail, there or later from any
	// goroutine. A panic in it answers the request with a *RemoteError of
	// code 2 and keeps the connection. Nil: a request is delivered to
	// OnMessage and acknowledged with an empty reply once OnMessage has
	// returned (a delivery acknowledgement).
	OnRequest func(c *Connection, r *Request)
	// RequestTimeout bounds Connection.Request calls whose ctx has no
	// deadline. Default 10 s.
	RequestTimeout time.Duration
	// MaxPendingRequests bounds the unanswered Requests per connection;
	// one more gets ErrTooManyPending. Default 1024.
	MaxPendingRequests int
	// DedupWindow bounds the replies kept for Consumers that resend
	// unanswered requests after a reconnect. Default 1024 requests, 2
	// minutes, 256 KiB per session.
	DedupWindow DedupWindow
	// Protocol says whether requests are offered (ProtocolAuto, the
	// default) or every connection stays plain (ProtocolPlain).
	Protocol ProtocolMode
	// AuthorizeSubscribe decides whether a Consumer may join topic with
	// consumer.Consumer.Subscribe (connections that negotiated requests
	// only); true subscribes c as Connection.Subscribe would. It runs like
	// OnMessage, on the connection's event loop: it must not block. Nil:
	// every such subscribe is refused (the Consumer gets a *RemoteError of
	// code 4). A Consumer may always unsubscribe.
	AuthorizeSubscribe func(c *Connection, topic string) bool
}

// withDefaults returns o with every zero field set to its default, or an
// error wrapping ErrInvalidOptions.
func (o Options) withDefaults() (Options, error) {
	bad := func(format string, a ...any) (Options, error) {
		return o, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOptions}, a...)...)
	}
	if o.Addr == "" {
		o.Addr = ":" + strconv.Itoa(DefaultPort)
	}
	if _, port, err := net.SplitHostPort(o.Addr); err != nil {
		return bad("address %q: %v", o.Addr, err)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return bad("address %q: bad port", o.Addr)
	}
	switch o.Network {
	case "":
		o.Network = "tcp"
	case "tcp", "tcp4", "tcp6":
	default:
		return bad("network %q (want tcp, tcp4 or tcp6)", o.Network)
	}
	if o.Path == "" {
		o.Path = DefaultPath
	}
	if !strings.HasPrefix(o.Path, "/") || strings.ContainsAny(o.Path, "?# \t\r\n") {
		return bad("path %q must start with / and hold no query, fragment or space", o.Path)
	}
	if o.Path == alivePath {
		return bad("path %q is reserved for the health check", o.Path)
	}
	if err := o.Compressor.Validate(); err != nil {
		return bad("compressor: %v", err)
	}
	switch {
	case o.CompressionThreshold == 0:
		o.CompressionThreshold = DefaultCompressionThreshold
	case o.CompressionThreshold < -1:
		return bad("compression threshold %d", o.CompressionThreshold)
	}
	switch {
	case o.MaxPayloadLength == 0:
		o.MaxPayloadLength = DefaultMaxPayloadLength
	case o.MaxPayloadLength < 0 || o.MaxPayloadLength > maxMaxPayloadLength:
		return bad("max payload length %d (want 1 to %d)", o.MaxPayloadLength, maxMaxPayloadLength)
	}
	switch {
	case o.MaxBackpressure == 0:
		o.MaxBackpressure = DefaultMaxBackpressure
	case o.MaxBackpressure < 0:
		return bad("max backpressure %d", o.MaxBackpressure)
	}
	if o.Backpressure > RefuseOnBackpressure {
		return bad("backpressure policy %d", o.Backpressure)
	}
	if o.Auth.MaxPending == 0 {
		o.Auth.MaxPending = DefaultMaxPendingHandshakes
	} else if o.Auth.MaxPending < 0 {
		return bad("auth max pending %d", o.Auth.MaxPending)
	}
	for k := range o.Auth.Parameters {
		if k == "" {
			return bad("auth parameter with an empty name")
		}
	}
	h := &o.Heartbeat
	switch {
	case h.Interval == 0:
		h.Interval = DefaultHeartbeatInterval
	case h.Interval < minHeartbeatInterval:
		return bad("heartbeat interval %v (at least %v)", h.Interval, minHeartbeatInterval)
	}
	switch {
	case h.MaxStrikes == 0:
		h.MaxStrikes = DefaultHeartbeatMaxStrikes
	case h.MaxStrikes == -1:
		h.MaxStrikes = 0
	case h.MaxStrikes < -1:
		return bad("heartbeat max strikes %d", h.MaxStrikes)
	}
	if h.Mode > HeartbeatOff {
		return bad("heartbeat mode %d", h.Mode)
	}
	if o.HandshakeTimeout == 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	} else if o.HandshakeTimeout < 0 {
		return bad("handshake timeout %v", o.HandshakeTimeout)
	}
	switch {
	case o.MaxHandshakeSize == 0:
		o.MaxHandshakeSize = DefaultMaxHandshakeSize
	case o.MaxHandshakeSize < 256:
		return bad("max handshake size %d (at least 256)", o.MaxHandshakeSize)
	}
	if o.CloseTimeout == 0 {
		o.CloseTimeout = DefaultCloseTimeout
	} else if o.CloseTimeout < 0 {
		return bad("close timeout %v", o.CloseTimeout)
	}
	if o.PollLoops < 0 {
		return bad("poll loops %d", o.PollLoops)
	}
	switch {
	case o.HandlerWorkers == 0:
		o.HandlerWorkers = DefaultHandlerWorkers
	case o.HandlerWorkers < 0:
		return bad("handler workers %d", o.HandlerWorkers)
	}
	switch {
	case o.MaxHandlerQueue == 0:
		o.MaxHandlerQueue = DefaultMaxHandlerQueue
	case o.MaxHandlerQueue < 0:
		return bad("max handler queue %d", o.MaxHandlerQueue)
	case o.MaxHandlerQueue > maxMaxHandlerQueue:
		o.MaxHandlerQueue = maxMaxHandlerQueue // Connection.hBytes holds it and a message
	}
	switch {
	case o.MemoryBudget == 0:
		o.MemoryBudget = max(DefaultMemoryBudget, 4*o.MaxPayloadLength)
	case o.MemoryBudget < o.MaxPayloadLength:
		return bad("memory budget %d is below the max payload length %d", o.MemoryBudget, o.MaxPayloadLength)
	}
	if err := o.requestDefaults(); err != nil {
		return bad("%v", err)
	}
	if o.TLS != nil {
		if o.TLS.Config == nil && (o.TLS.CertFile == "" || o.TLS.KeyFile == "") {
			return bad("TLS needs Config, or CertFile and KeyFile")
		}
	}
	return o, nil
}
