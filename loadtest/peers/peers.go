package peers

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
)

// The harness protocol (PROTOCOL.md) in constants.
const (
	// BroadcastPrefix starts a binary message that the server does not echo
	// but sends, whole and as a binary message, to every open connection
	// including the sender.
	BroadcastPrefix = "NCBCAST:"

	// StatsQuery is the exact payload of a binary message that the server
	// answers, to the sender only, with StatsQuery followed by the JSON of a
	// Stats value.
	StatsQuery = "NCSTATS:"

	// StatsSettledQuery is answered as StatsQuery is, after the server has
	// run a garbage collection and returned the freed memory to the
	// system (runtime.GC, debug.FreeOSMemory): its memory as it settles
	// when idle (the Go runtime collects at least every 2 minutes), without
	// the garbage of what happened last.
	StatsSettledQuery = "NCSTATS:gc"

	// MaxMessageSize is the largest message, in bytes, that every WebSocket
	// implementation accepts (inclusive). A larger one closes the connection
	// with 1009 where the library does so.
	MaxMessageSize = 16 << 20

	// DefaultAddr is the listen address used when Config.Addr is empty.
	DefaultAddr = "127.0.0.1:0"

	// DefaultPath is the WebSocket path used when Config.Path is empty.
	DefaultPath = "/connect"

	// DefaultGobwasReadBuffer is the size of the bufio.Reader that the gobwas
	// peer puts in front of each connection when Config.GobwasReadBuffer is 0.
	DefaultGobwasReadBuffer = 4096

	// RawTCPBuffer is the size of the per-connection buffer of the rawtcp peer.
	RawTCPBuffer = 4096
)

// Names of the implementations, for Config.Impl.
const (
	ImplGorilla = "gorilla"
	ImplNbio    = "nbio"
	ImplGobwas  = "gobwas"
	ImplRawTCP  = "rawtcp"
)

// Impls returns the names of all implementations, in a fixed order. The
// caller owns the returned slice.
func Impls() []string {
	return []string{ImplGorilla, ImplNbio, ImplGobwas, ImplRawTCP}
}

// Config selects and configures one peer server. The zero value of every
// field except Impl is a usable default.
type Config struct {
	// Impl is one of Impls(). Required.
	Impl string

	// Addr is the TCP address to listen on. Default DefaultAddr
	// ("127.0.0.1:0": a free port on the loopback address).
	Addr string

	// Path is the URL path of the WebSocket endpoint; it must start with
	// "/". Default DefaultPath ("/connect"). Ignored by rawtcp.
	Path string

	// GobwasReadBuffer is the size of the bufio.Reader in front of each gobwas
	// connection. 0 means DefaultGobwasReadBuffer (4096); -1 means none: the
	// frame reader reads straight from the net.Conn (a few read calls per
	// frame, no buffer held by an idle connection). Used only by gobwas.
	GobwasReadBuffer int

	// TLSCert and TLSKey are PEM files: when set, the server speaks wss.
	// gorilla serves it through crypto/tls (net/http over a tls.Listener, a
	// goroutine per connection); nbio through its own non-blocking TLS
	// (github.com/lesismal/llib/std/crypto/tls, a fork of crypto/tls, on
	// nbio's event loop). gobwas and rawtcp do not serve TLS here.
	TLSCert, TLSKey string
}

// TLSImpls returns the implementations that serve wss (Config.TLSCert).
func TLSImpls() []string { return []string{ImplGorilla, ImplNbio} }

// backend is what each implementation provides to Server.
type backend interface {
	addr() net.Addr
	conns() int
	// shutdown stops accepting, says 1001 Going Away where it can, closes
	// every connection and waits for the goroutines it started, or for ctx.
	shutdown(ctx context.Context) error
}

// Server is one running peer. All its methods are safe for concurrent use.
type Server struct {
	impl string
	b    backend

	once    sync.Once
	done    chan struct{}
	shutErr error
}

// Start validates cfg, listens on cfg.Addr and starts serving in background
// goroutines. The returned Server is serving when Start returns; stop it with
// Shutdown.
func Start(cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.Path == "" {
		cfg.Path = DefaultPath
	}
	if !strings.HasPrefix(cfg.Path, "/") {
		return nil, fmt.Errorf("%w: Path %q does not start with /", ErrBadConfig, cfg.Path)
	}
	switch {
	case cfg.GobwasReadBuffer == 0:
		cfg.GobwasReadBuffer = DefaultGobwasReadBuffer
	case cfg.GobwasReadBuffer < 0:
		cfg.GobwasReadBuffer = -1
	case cfg.GobwasReadBuffer < 16:
		return nil, fmt.Errorf("%w: GobwasReadBuffer %d is below bufio's minimum 16", ErrBadConfig, cfg.GobwasReadBuffer)
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return nil, fmt.Errorf("%w: TLSCert and TLSKey go together", ErrBadConfig)
	}
	if cfg.TLSCert != "" && cfg.Impl != ImplGorilla && cfg.Impl != ImplNbio {
		return nil, fmt.Errorf("%w: %s does not serve TLS here (only %s)", ErrBadConfig, cfg.Impl, strings.Join(TLSImpls(), ", "))
	}
	var (
		b   backend
		err error
	)
	switch cfg.Impl {
	case ImplGorilla:
		b, err = startGorilla(cfg)
	case ImplNbio:
		b, err = startNbio(cfg)
	case ImplGobwas:
		b, err = startGobwas(cfg)
	case ImplRawTCP:
		b, err = startRawTCP(cfg)
	default:
		return nil, fmt.Errorf("%w: %q (want one of %s)", ErrUnknownImpl, cfg.Impl, strings.Join(Impls(), ", "))
	}
	if err != nil {
		return nil, fmt.Errorf("peers: start %s on %s: %w", cfg.Impl, cfg.Addr, err)
	}
	return &Server{impl: cfg.Impl, b: b, done: make(chan struct{})}, nil
}

// Impl returns the implementation name.
func (s *Server) Impl() string { return s.impl }

// Addr returns the bound listen address (with the real port when Config.Addr
// asked for port 0).
func (s *Server) Addr() net.Addr { return s.b.addr() }

// Conns returns the number of open connections: upgraded WebSocket
// connections, or accepted TCP connections for rawtcp.
func (s *Server) Conns() int { return s.b.conns() }

// Shutdown stops accepting, sends close 1001 (Going Away) to every WebSocket
// connection where the library allows it, closes every connection and waits
// for the server's goroutines to end or for ctx to be done, whichever is
// first. It may be called more than once and from any goroutine; later calls
// wait for the first one (or their own ctx) and return its result.
func (s *Server) Shutdown(ctx context.Context) error {
	s.once.Do(func() {
		go func() {
			s.shutErr = s.b.shutdown(ctx)
			close(s.done)
		}()
	})
	select {
	case <-s.done:
		return s.shutErr
	case <-ctx.Done():
		return ctx.Err()
	}
}
