package consumer

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/networkcluster/networkcluster/compress"
)

// Defaults of [Options] and [Reconnect]; a zero field takes these.
const (
	DefaultPort             = 8080
	DefaultPath             = "/connect"
	DefaultHost             = "localhost"
	DefaultDialTimeout      = 10 * time.Second
	DefaultWriteTimeout     = 10 * time.Second
	DefaultCloseTimeout     = time.Second
	DefaultMaxPayloadLength = 16 << 20
	DefaultReadBufferSize   = 4 << 10
	DefaultInterval         = time.Second
	DefaultMaxAttempts      = -1 // never give up
	DefaultBackoff          = 2
	DefaultJitter           = 0.2
	DefaultMaxInterval      = 10 * time.Second
	DefaultQueueLength      = 32
	DefaultQueueBytes       = 1 << 20

	// NodeMaxAttempts is the attempt limit of the Node network-cluster
	// 1.0.4 policy; see [NodeReconnect].
	NodeMaxAttempts = 10

	// MaxMaxPayloadLength is the largest accepted MaxPayloadLength: 1 GiB,
	// as on the Provider.
	MaxMaxPayloadLength = 1 << 30

	// MinReadBufferSize is the smallest accepted ReadBufferSize: a control
	// frame (at most 2+125 bytes on the wire from a server) always fits.
	MinReadBufferSize = 256
)

// Options configures a [Consumer]. The zero value of every field means its
// default, stated on the field. [New] validates the options once and keeps a
// copy: changing the struct (or the maps it holds) afterwards has no effect.
//
// The Node network-cluster names are given in brackets.
type Options struct {
	// URL is the Provider's endpoint as one URL, "ws://host:port/path?k=v"
	// or "wss://...", instead of Host, Port, Path and TLS (set none of them
	// with it). The port defaults to 80 for ws and 443 for wss, the path to
	// "/"; query parameters are added to Parameters. Default "" (the fields
	// below).
	URL string
	// Host is the Provider's host name or IP address [host]. Default
	// "localhost".
	Host string
	// Port is the Provider's port [port]. Default 8080.
	Port int
	// Path is the upgrade path; it must start with "/" [path]. Default
	// "/connect".
	Path string

	// TLS dials wss:// instead of ws:// [ssl]. Setting TLSConfig turns it
	// on too. Default off.
	TLS bool
	// TLSConfig configures the TLS client; nil means the crypto/tls
	// defaults. When its ServerName is empty, Host is used. Default nil.
	TLSConfig *tls.Config

	// Parameters are sent as URL query parameters of the upgrade request
	// [parameters]; keys and values are escaped. The Provider's auth
	// compares them. Default none.
	Parameters map[string]string
	// Header holds extra request headers for the upgrade request, for
	// credentials that should not appear in a URL (and so in access logs).
	// The handshake's own headers (Host, Upgrade, Connection,
	// Sec-WebSocket-Key, -Version, -Extensions, -Protocol and -Accept,
	// Content-Length, Transfer-Encoding) may not be set here: New refuses
	// them. Default none.
	Header http.Header

	// Reconnect is the reconnect policy [reconnect]. Its zero value retries
	// forever with capped exponential backoff and jitter (1 s, 2 s, 4 s,
	// 8 s, then every 10 s, each ±20 %), so that a fleet outlives any
	// restart of its Provider. [NodeReconnect] is the Node 1.0.4 policy
	// (10 attempts, 1 s apart, then give up).
	Reconnect Reconnect

	// DialTimeout bounds one connection attempt: TCP connect, TLS and the
	// upgrade handshake. Default 10 s.
	DialTimeout time.Duration
	// WriteTimeout is the no-progress timeout of a send: when the kernel
	// takes no byte of a frame for this long (the Provider stopped
	// reading), the send fails with the write error and the connection is
	// dropped and reconnected. A large message to a slow reader is not cut
	// as long as bytes keep moving. Default 10 s.
	WriteTimeout time.Duration
	// CloseTimeout bounds the wait for the Provider's side of the close
	// handshake (its close frame, then the end of TCP) before the TCP
	// connection is dropped, and the wait for OnMessage to handle the
	// messages read before a close frame the Consumer answers or sends
	// after a protocol error. Default 1 s.
	CloseTimeout time.Duration

	// MaxPayloadLength is the largest inbound message, in bytes, after
	// decompression (at most 1 GiB); a larger one fails the connection with
	// close code 1009 [the Provider's MaxPayloadLength, same name].
	// Default 16 MiB: Provider-to-Consumer messages carry work items, so
	// the bound is larger than the Provider's 32 KiB inbound default, yet
	// it keeps a misbehaving Provider from making each of thousands of
	// Consumers in one process hold 100 MiB (the ws client's default). It
	// matches the load test's largest message.
	MaxPayloadLength int
	// ReadBufferSize is the read buffer each connection keeps, in bytes
	// (at least 256). Frames that do not fit are read into a pooled buffer
	// sized to the message, which goes back to the pool once the message
	// has been handled. Default 4 KiB.
	ReadBufferSize int

	// Compressor is the permessage-deflate preset (RFC 7692) offered to
	// the Provider [the Provider's compressor option]. Default
	// compress.Disabled: no offer.
	Compressor compress.Preset
	// CompressionThreshold is the smallest outbound message that is
	// compressed when permessage-deflate was negotiated; smaller messages go
	// out uncompressed [the Provider's CompressionThreshold, same name].
	// Default compress.DefaultThreshold.
	CompressionThreshold int

	// Logger receives debug and warning records about connection attempts
	// and losses [set_debug_logger]. Default nil: no logging.
	Logger *slog.Logger
	// OnError receives errors that no call returns: failed connection
	// attempts, protocol violations by the Provider, heartbeat cutoffs
	// [set_error_handler]. Default nil.
	OnError func(err error)

	// OnOpen is called after each successful connection [open].
	OnOpen func()
	// OnDisconnect is called after each loss of an open connection, with
	// the close code and reason [disconnect]: those of the close frame the
	// Provider sent, the code this side sent after a protocol violation
	// (1002, 1007, 1009), or 1006 when TCP ended without a close frame or
	// the heartbeat cutoff dropped it, with the cause as the reason (the
	// text of ErrHeartbeatCutoff, or the network or write error). It runs
	// after the messages read before the loss have been handled.
	OnDisconnect func(code CloseCode, reason string)
	// OnMessage is called for each text or binary message, in order
	// [message], on the Consumer's dispatcher goroutine: the connection is
	// read on (pings answered, the close handshake run) while it works.
	// m.Data is only valid until OnMessage returns.
	OnMessage func(m Message)

	// QueueLength is the most messages read and waiting for OnMessage.
	// When the queue is full (in messages or in QueueBytes), the Consumer
	// stops reading until OnMessage has caught up: no message is dropped,
	// and TCP flow control makes the Provider's sends wait (its
	// backpressure policy then applies). While reading has stopped, pings
	// are not answered either, so a handler that stays behind a full queue
	// for longer than the Provider's heartbeat allows loses the
	// connection; and replies are not read, so a handler that waits for
	// the reply to its own Request while the queue is full waits until
	// that request times out. Default 32.
	QueueLength int
	// QueueBytes is the most payload bytes held by messages waiting for
	// OnMessage (a single larger message still waits alone in the queue).
	// Default 1 MiB.
	QueueBytes int64
	// OnClose is called exactly once, when the Consumer stops for good
	// [close]: 1000 after Close, 1006 after Destroy, or 1006 when the
	// reconnect policy gave up or the Provider answered 403 (the reason is
	// then that error).
	OnClose func(code CloseCode, reason string)

	// Addrs lists several Providers as "host:port", instead of Host and
	// Port (Path, TLS and Parameters apply to each). The Consumer starts at
	// a random one and moves to the next after each failed attempt and
	// after losing an open connection; before the first attempt after a
	// loss it waits a random delay in [0, Reconnect.Interval] (full jitter),
	// so that a fleet that loses its Provider does not reconnect in one
	// burst.
	Addrs []string

	// OnRequest handles a request the Provider made with
	// Connection.Request, on connections that negotiated requests. It runs
	// like OnMessage, in order with the messages; the handler answers with
	// r.Reply or r.Fail, there or later from any goroutine. A panic in it
	// answers the request with a *RemoteError of code 2. Nil: a request is
	// delivered to OnMessage and acknowledged with an empty reply once
	// OnMessage has returned.
	OnRequest func(r *Request)
	// RequestTimeout bounds Request calls whose ctx has no deadline.
	// Default 10 s.
	RequestTimeout time.Duration
	// MaxPendingRequests bounds the unanswered Requests; one more gets
	// ErrTooManyPending. Default 1024.
	MaxPendingRequests int
	// Resend keeps the Requests that are unanswered when the connection is
	// lost and sends them again, first and in their order, on the next
	// connection (to any of Addrs), flagged redelivered, until each ends in
	// a reply or its ctx. The Provider answers a resent request it has
	// already handled from its de-duplication window without running the
	// handler again; another Provider (after a failover) runs it again, so
	// handlers must be idempotent: delivery is at least once. Each pending
	// request keeps a copy of its payload. Off: pending requests fail with
	// ErrDisconnected when the connection is lost.
	Resend bool
	// Protocol says whether requests are offered (ProtocolAuto, the
	// default) or the upgrade is the plain Node 1.0.4 one (ProtocolPlain).
	Protocol ProtocolMode
}

// Reconnect is the reconnect policy. The zero value is the default: retry
// forever, waiting 1 s, then twice as long after each failed attempt up to
// 10 s, each wait ±20 %.
//
// After a loss, the Consumer waits Interval, then dials; each failed attempt
// waits again before the next. The n-th consecutive wait (n from 0) is
// Interval × Backoff^n, capped at MaxInterval, then jittered: drawn
// uniformly from [w·(1−Jitter), w·(1+Jitter)]. The count of failed attempts
// resets on each successful open.
type Reconnect struct {
	// Interval is the base wait before a reconnect attempt [interval].
	// Default 1 s.
	Interval time.Duration
	// MaxAttempts is the number of consecutive failed connection attempts
	// (the first Connect included) after which the Consumer gives up and
	// closes [max_attempts]. 0 or negative: never give up. Default: never
	// (the Node package's default is 10, see [NodeReconnect]).
	MaxAttempts int
	// Jitter is the fraction of each wait that is randomised, in (0, 1].
	// Default 0.2: ±20 %, so 10 000 Consumers that lost their Provider at
	// the same instant return spread over 0.4 s instead of within one
	// millisecond, while the mean wait stays Interval.
	Jitter float64
	// NoJitter turns jitter off: every wait is exact. Default false.
	NoJitter bool
	// Backoff is the factor applied to the wait after each consecutive
	// failed attempt; 1 keeps the interval fixed (the Node policy). Must be
	// 0 (the default) or at least 1. Default 2.
	Backoff float64
	// MaxInterval caps the wait that Backoff grows. Default 10 s.
	MaxInterval time.Duration
}

// NodeReconnect returns the reconnect policy of the Node network-cluster
// 1.0.4 package: 10 attempts, 1 s apart, then give up for good (jitter
// stays on; set NoJitter for exact waits). A fleet with this policy stays
// down when its Provider is away for more than about 10 s.
func NodeReconnect() Reconnect {
	return Reconnect{Interval: time.Second, MaxAttempts: NodeMaxAttempts, Backoff: 1}
}

// Message is one inbound text or binary message.
type Message struct {
	// Binary is true for a binary message, false for text (valid UTF-8).
	Binary bool
	// Data is the payload. It is only valid until the OnMessage handler
	// returns: the Consumer copied it out of its read buffer into a pooled
	// buffer that it reuses afterwards, so copy it to keep it.
	Data []byte
}

// Text returns a copy of the payload as a string.
func (m Message) Text() string { return string(m.Data) }

// config is the validated, defaulted copy of Options a Consumer uses.
type config struct {
	Options
	urls     []target // one per Provider: Host:Port, or each of Addrs
	url      string
	logURL   string // url without its query, whose values may be secrets
	useTLS   bool
	header   http.Header
	compress compress.Preset
}

// reservedHeaders may not be set through Options.Header: the handshake
// writes them itself.
var reservedHeaders = [...]string{
	"Host", "Upgrade", "Connection", "Sec-Websocket-Key", "Sec-Websocket-Version",
	"Sec-Websocket-Extensions", "Sec-Websocket-Protocol", "Sec-Websocket-Accept",
	"Content-Length", "Transfer-Encoding",
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidOptions}, args...)...)
}

// normalize validates o and returns it with defaults filled in.
func normalize(o Options) (*config, error) {
	o, err := withURL(o)
	if err != nil {
		return nil, err
	}
	c := &config{Options: o}
	if c.Host == "" {
		c.Host = DefaultHost
	}
	if strings.ContainsAny(c.Host, "/?#@ \t\r\n") {
		return nil, invalid("host %q", c.Host)
	}
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if c.Port < 1 || c.Port > 65535 {
		return nil, invalid("port %d out of range 1..65535", c.Port)
	}
	if c.Path == "" {
		c.Path = DefaultPath
	}
	if c.Path[0] != '/' || strings.ContainsAny(c.Path, "?# \t\r\n") {
		return nil, invalid("path %q must start with / and hold no query, fragment or space", c.Path)
	}
	c.useTLS = c.TLS || c.TLSConfig != nil
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = DefaultCloseTimeout
	}
	if c.DialTimeout < 0 || c.WriteTimeout < 0 || c.CloseTimeout < 0 {
		return nil, invalid("negative timeout")
	}
	if c.MaxPayloadLength == 0 {
		c.MaxPayloadLength = DefaultMaxPayloadLength
	}
	if c.MaxPayloadLength < 0 || c.MaxPayloadLength > MaxMaxPayloadLength {
		return nil, invalid("MaxPayloadLength %d out of range 1..%d", c.MaxPayloadLength, MaxMaxPayloadLength)
	}
	if c.ReadBufferSize == 0 {
		c.ReadBufferSize = DefaultReadBufferSize
	}
	if c.ReadBufferSize < MinReadBufferSize || c.ReadBufferSize > 1<<24 {
		return nil, invalid("ReadBufferSize %d out of range %d..16 MiB", c.ReadBufferSize, MinReadBufferSize)
	}
	if c.QueueLength == 0 {
		c.QueueLength = DefaultQueueLength
	}
	if c.QueueLength < 1 || c.QueueLength > 1<<16 {
		return nil, invalid("QueueLength %d out of range 1..65536", c.QueueLength)
	}
	if c.QueueBytes == 0 {
		c.QueueBytes = DefaultQueueBytes
	}
	if c.QueueBytes < 0 {
		return nil, invalid("negative QueueBytes")
	}
	if err := c.Compressor.Validate(); err != nil {
		return nil, invalid("Compressor: %v", err)
	}
	c.compress = c.Compressor
	if c.CompressionThreshold == 0 {
		c.CompressionThreshold = compress.DefaultThreshold
	}
	if c.CompressionThreshold < 0 {
		return nil, invalid("negative CompressionThreshold")
	}

	r := &c.Reconnect
	if r.Interval == 0 {
		r.Interval = DefaultInterval
	}
	if r.Interval < 0 {
		return nil, invalid("negative Reconnect.Interval")
	}
	if r.MaxAttempts <= 0 {
		r.MaxAttempts = DefaultMaxAttempts
	}
	if r.Jitter == 0 {
		r.Jitter = DefaultJitter
	}
	if r.Jitter < 0 || r.Jitter > 1 || r.Jitter != r.Jitter {
		return nil, invalid("Reconnect.Jitter %v out of range (0, 1]", r.Jitter)
	}
	if r.NoJitter {
		r.Jitter = 0
	}
	if r.Backoff == 0 {
		r.Backoff = DefaultBackoff
	}
	if r.Backoff < 1 || r.Backoff > 1e3 || r.Backoff != r.Backoff {
		return nil, invalid("Reconnect.Backoff %v must be 0 or in [1, 1000]", r.Backoff)
	}
	if r.MaxInterval == 0 {
		r.MaxInterval = DefaultMaxInterval
	}
	if r.MaxInterval < r.Interval {
		r.MaxInterval = r.Interval
	}

	c.header = make(http.Header, len(o.Header))
	for k, vs := range o.Header {
		ck := textproto.CanonicalMIMEHeaderKey(k)
		if !validHeaderName(ck) {
			return nil, invalid("header name %q", k)
		}
		for _, r := range reservedHeaders {
			if ck == r {
				return nil, invalid("header %q is set by the handshake", k)
			}
		}
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n\x00") {
				return nil, invalid("header %q holds a line break", k)
			}
		}
		c.header[ck] = append([]string(nil), vs...)
	}
	if c.TLSConfig != nil {
		c.TLSConfig = c.TLSConfig.Clone()
	}

	scheme := "ws"
	if c.useTLS {
		scheme = "wss"
	}
	u := url.URL{
		Scheme: scheme,
		Host:   net.JoinHostPort(strings.Trim(c.Host, "[]"), strconv.Itoa(c.Port)),
		Path:   c.Path,
	}
	if len(o.Parameters) > 0 {
		q := make(url.Values, len(o.Parameters))
		for k, v := range o.Parameters {
			q.Set(k, v)
		}
		u.RawQuery = q.Encode()
	}
	c.url = u.String()
	q := u.RawQuery
	if _, err := url.ParseRequestURI(c.url); err != nil {
		return nil, invalid("URL %q: invalid host, port or path", u.Redacted())
	}
	// Parameters carry credentials (the Provider's required key): logs and
	// errors name the endpoint only.
	u.RawQuery = ""
	c.logURL = u.String()
	if len(o.Addrs) == 0 {
		c.urls = []target{{url: c.url, logURL: c.logURL, hostPort: u.Host}}
	}
	for _, a := range o.Addrs {
		host, port, err := net.SplitHostPort(a)
		n, perr := strconv.Atoi(port)
		if err != nil || perr != nil || n < 1 || n > 65535 || host == "" || strings.ContainsAny(host, "/?#@ \t\r\n") {
			return nil, invalid("Addrs: %q is not host:port", a)
		}
		au := u
		au.Host = net.JoinHostPort(host, port)
		logURL := au.String()
		au.RawQuery = q
		c.urls = append(c.urls, target{url: au.String(), logURL: logURL, hostPort: au.Host})
	}
	switch {
	case c.RequestTimeout == 0:
		c.RequestTimeout = DefaultRequestTimeout
	case c.RequestTimeout < 0:
		return nil, invalid("negative RequestTimeout")
	}
	switch {
	case c.MaxPendingRequests == 0:
		c.MaxPendingRequests = DefaultMaxPendingRequests
	case c.MaxPendingRequests < 0:
		return nil, invalid("negative MaxPendingRequests")
	}
	if c.Protocol > ProtocolPlain {
		return nil, invalid("Protocol %d", c.Protocol)
	}
	return c, nil
}

// target is one Provider to dial.
type target struct {
	url      string // with the query
	logURL   string // without it: its values may be secrets
	hostPort string
}

func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		b := k[i]
		if b <= ' ' || b >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", b) >= 0 {
			return false
		}
	}
	return true
}
