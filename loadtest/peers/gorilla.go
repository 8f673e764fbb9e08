package peers

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// goodbyeTimeout bounds the close 1001 written to each connection on
// shutdown; it is one deadline shared by all connections, so a shutdown with
// non-reading clients takes about this long, not this long per client.
const goodbyeTimeout = time.Second

// gorillaServer is net/http + gorilla/websocket, one goroutine per
// connection (net/http's own, which runs the read loop after the upgrade),
// a mutex per connection around data writes, and broadcast as one
// PreparedMessage written to each connection in a loop.
//
// Settings: a zero websocket.Upgrader except CheckOrigin (accept all) — that
// is gorilla's default buffers: it reuses net/http's 4096-byte bufio.Reader
// and 4096-byte bufio.Writer of the hijacked connection; no compression; no
// WriteBufferPool; read limit MaxMessageSize; no deadlines.
type gorillaServer struct {
	ln        net.Listener
	hs        *http.Server
	up        websocket.Upgrader
	path      string
	reg       *registry[*gorillaConn]
	serveDone chan struct{}
}

type gorillaConn struct {
	ws *websocket.Conn
	mu sync.Mutex // gorilla allows one concurrent writer: held around data writes
}

func startGorilla(cfg Config) (backend, error) {
	var ln net.Listener
	var err error
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, err
		}
		ln, err = tls.Listen("tcp", cfg.Addr, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		if err != nil {
			return nil, err
		}
	} else if ln, err = net.Listen("tcp", cfg.Addr); err != nil {
		return nil, err
	}
	s := &gorillaServer{
		ln:        ln,
		path:      cfg.Path,
		reg:       newRegistry[*gorillaConn](),
		serveDone: make(chan struct{}),
		up: websocket.Upgrader{
			CheckOrigin: func(*http.Request) bool { return true },
		},
	}
	// No ServeMux: it would read pattern syntax into the path and redirect
	// unclean paths; the path is compared exactly.
	s.hs = &http.Server{Handler: http.HandlerFunc(s.handle)}
	go func() {
		defer close(s.serveDone)
		_ = s.hs.Serve(ln) // returns http.ErrServerClosed on shutdown
	}()
	return s, nil
}

func (s *gorillaServer) addr() net.Addr { return s.ln.Addr() }
func (s *gorillaServer) conns() int     { return s.reg.len() }

// handle runs on net/http's goroutine for the connection and, after the
// upgrade, is that connection's reader until it closes.
func (s *gorillaServer) handle(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != s.path {
		http.NotFound(w, r)
		return
	}
	ws, err := s.up.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade has answered with an HTTP error status
	}
	c := &gorillaConn{ws: ws}
	if !s.reg.add(c) {
		_ = ws.Close()
		return
	}
	defer func() {
		_ = ws.Close()
		s.reg.remove(c)
	}()
	ws.SetReadLimit(MaxMessageSize)
	for {
		mt, p, err := ws.ReadMessage()
		if err != nil {
			return
		}
		if mt == websocket.BinaryMessage {
			switch {
			case isStatsQuery(p):
				if c.write(mt, statsAnswer(p, s.reg.len())) != nil {
					return
				}
				continue
			case isBroadcast(p):
				s.broadcast(p)
				continue
			}
		}
		if c.write(mt, p) != nil {
			return
		}
	}
}

func (c *gorillaConn) write(mt int, p []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ws.WriteMessage(mt, p)
}

// broadcast frames p once (a PreparedMessage) and writes it to every open
// connection in turn on the calling goroutine. A connection whose write fails
// is closed (its reader then exits). A client that does not read blocks the
// loop once its socket buffers are full: that is how this setup behaves.
func (s *gorillaServer) broadcast(p []byte) {
	pm, err := websocket.NewPreparedMessage(websocket.BinaryMessage, p)
	if err != nil {
		return
	}
	snap := s.reg.snapshot()
	for _, c := range *snap {
		c.mu.Lock()
		err := c.ws.WritePreparedMessage(pm)
		c.mu.Unlock()
		if err != nil {
			_ = c.ws.Close()
		}
	}
	s.reg.release(snap)
}

func (s *gorillaServer) shutdown(ctx context.Context) error {
	// Close stops the listener and closes connections net/http still owns
	// (those not upgraded); hijacked ones are ours.
	err := s.hs.Close()
	members := s.reg.close()
	deadline := time.Now().Add(goodbyeTimeout)
	for _, c := range members {
		_ = c.ws.UnderlyingConn().SetWriteDeadline(deadline) // also unblocks a stuck broadcast
	}
	msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "")
	for _, c := range members {
		_ = c.ws.WriteControl(websocket.CloseMessage, msg, deadline)
		_ = c.ws.Close()
	}
	if werr := s.reg.wait(ctx); werr != nil {
		return werr
	}
	if werr := waitCtx(ctx, func() { <-s.serveDone }); werr != nil {
		return werr
	}
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
