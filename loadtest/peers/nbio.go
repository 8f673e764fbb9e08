package peers

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"

	ltls "github.com/lesismal/llib/std/crypto/tls"
	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"
)

// nbioServer is lesismal/nbio's epoll engine (nbhttp.Engine in its default
// non-blocking IO mode) with its websocket.Upgrader and an OnMessage handler,
// the setup of nbio's own examples. nbio has no prepared-message or broadcast
// facility, so broadcast is a loop of conn.WriteMessage (which copies and
// frames the payload once per connection, and never blocks: what the socket
// does not take is queued in nbio's per-connection write buffer).
//
// Settings: nbhttp.Config defaults (1 poller goroutine on 2 cores, 64 KiB
// shared read buffer, message-handler pool of NumCPU*1024 goroutines, outgoing
// messages fragmented at 32 KiB) plus ReleaseWebsocketPayload (as in nbio's
// examples: payload buffers go back to nbio's pool after OnMessage); Upgrader
// defaults except MessageLengthLimit = MaxMessageSize (default 4 MiB),
// CheckOrigin accepts all, and KeepaliveTime = 0: nbio's default closes a
// connection that sends nothing for 120 s, which would end the idle scenario
// early and which the other peers do not do. No compression.
type nbioServer struct {
	engine *nbhttp.Engine
	up     *websocket.Upgrader
	reg    *registry[*websocket.Conn]

	mu    sync.Mutex
	bound net.Addr
}

func startNbio(cfg Config) (backend, error) {
	s := &nbioServer{reg: newRegistry[*websocket.Conn]()}

	up := websocket.NewUpgrader()
	up.CheckOrigin = func(*http.Request) bool { return true }
	up.KeepaliveTime = 0
	up.MessageLengthLimit = MaxMessageSize
	up.OnOpen(func(c *websocket.Conn) {
		if !s.reg.add(c) {
			_ = c.Close()
		}
	})
	up.OnClose(func(c *websocket.Conn, _ error) { s.reg.removeIfPresent(c) })
	up.OnMessage(s.onMessage)
	s.up = up

	// No ServeMux: the path is compared exactly (see gorilla.go).
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != cfg.Path {
			http.NotFound(w, r)
			return
		}
		// On success OnOpen has registered the connection; on failure
		// Upgrade has answered with an HTTP error status.
		_, _ = s.up.Upgrade(w, r, nil)
	})
	ncfg := nbhttp.Config{
		Network:                 "tcp",
		Addrs:                   []string{cfg.Addr},
		Handler:                 handler,
		ReleaseWebsocketPayload: true,
		Listen: func(network, addr string) (net.Listener, error) {
			ln, err := net.Listen(network, addr)
			if err == nil {
				s.mu.Lock()
				s.bound = ln.Addr()
				s.mu.Unlock()
			}
			return ln, err
		},
	}
	if cfg.TLSCert != "" {
		cert, err := ltls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, errors.Join(ErrBadConfig, err)
		}
		ncfg.Addrs, ncfg.AddrsTLS = nil, []string{cfg.Addr}
		ncfg.TLSConfig = &ltls.Config{Certificates: []ltls.Certificate{cert}, MinVersion: ltls.VersionTLS12}
	}
	s.engine = nbhttp.NewEngine(ncfg)
	up.Engine = s.engine
	if err := s.engine.Start(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *nbioServer) addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bound
}

func (s *nbioServer) conns() int { return s.reg.len() }

// onMessage runs on nbio's handler pool, in order for each connection. data
// is nbio's buffer, released when onMessage returns; WriteMessage copies it.
func (s *nbioServer) onMessage(c *websocket.Conn, mt websocket.MessageType, data []byte) {
	if mt == websocket.BinaryMessage {
		switch {
		case isStatsQuery(data):
			if c.WriteMessage(websocket.BinaryMessage, statsAnswer(data, s.reg.len())) != nil {
				_ = c.Close()
			}
			return
		case isBroadcast(data):
			s.broadcast(data)
			return
		}
	}
	if c.WriteMessage(mt, data) != nil {
		_ = c.Close()
	}
}

func (s *nbioServer) broadcast(p []byte) {
	snap := s.reg.snapshot()
	for _, c := range *snap {
		if c.WriteMessage(websocket.BinaryMessage, p) != nil {
			_ = c.Close()
		}
	}
	s.reg.release(snap)
}

func (s *nbioServer) shutdown(ctx context.Context) error {
	for _, c := range s.reg.close() {
		_ = c.WriteClose(int(1001), "") // Going Away; queued, never blocks
	}
	// Shutdown stops the listener, closes every connection and waits until
	// nbio has seen them all closed (it polls every 200 ms), or ctx.
	if err := s.engine.Shutdown(ctx); err != nil {
		return err
	}
	return s.reg.wait(ctx)
}
