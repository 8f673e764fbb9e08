package peers

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

// rawTCPServer is not WebSocket: a goroutine per connection writes back every
// byte it reads, as it arrives, through one RawTCPBuffer-byte buffer per
// connection. It is the ceiling for the echo scenario. It has no path, no
// broadcast and no stats query.
type rawTCPServer struct {
	ln      net.Listener
	reg     *registry[net.Conn]
	accepts sync.WaitGroup
}

func startRawTCP(cfg Config) (backend, error) {
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	s := &rawTCPServer{ln: ln, reg: newRegistry[net.Conn]()}
	s.accepts.Add(1)
	go s.acceptLoop()
	return s, nil
}

func (s *rawTCPServer) addr() net.Addr { return s.ln.Addr() }
func (s *rawTCPServer) conns() int     { return s.reg.len() }

func (s *rawTCPServer) acceptLoop() {
	defer s.accepts.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // EMFILE and the like
			continue
		}
		if !s.reg.add(nc) {
			_ = nc.Close()
			continue
		}
		go s.serve(nc)
	}
}

// serve is io.Copy(nc, nc) written out: io.Copy would hand a *net.TCPConn to
// ReadFrom, which splices through a pipe (two more fds per connection).
func (s *rawTCPServer) serve(nc net.Conn) {
	defer func() {
		_ = nc.Close()
		s.reg.remove(nc)
	}()
	buf := make([]byte, RawTCPBuffer)
	for {
		n, err := nc.Read(buf)
		if n > 0 {
			if _, werr := nc.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (s *rawTCPServer) shutdown(ctx context.Context) error {
	err := s.ln.Close()
	for _, nc := range s.reg.close() {
		_ = nc.Close()
	}
	if werr := waitCtx(ctx, s.accepts.Wait); werr != nil {
		return werr
	}
	if werr := s.reg.wait(ctx); werr != nil {
		return werr
	}
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
