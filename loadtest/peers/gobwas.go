package peers

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// gobwasServer is gobwas/ws with a goroutine per connection: an accept loop,
// ws.Upgrader.Upgrade on the net.Conn, then a wsutil.Reader read loop (UTF-8
// checked, control frames answered by wsutil.ControlFrameHandler), a mutex
// per connection around writes, and broadcast as frame bytes compiled once
// (ws.MustCompileFrame) written to each connection in a loop.
//
// Settings: a bufio.Reader of Config.GobwasReadBuffer bytes (default 4096,
// the size gorilla and net/http use) in front of the conn, or none; no write
// buffer (each frame is one Write of header+payload); message buffers come
// from a sync.Pool, so an idle connection holds none; no compression; max
// message MaxMessageSize; no deadlines.
type gobwasServer struct {
	ln      net.Listener
	up      ws.Upgrader
	rbuf    int                    // bufio.Reader size, or -1 for none
	raw     *registry[net.Conn]    // every accepted conn, upgraded or not
	reg     *registry[*gobwasConn] // upgraded conns
	accepts sync.WaitGroup
}

type gobwasConn struct {
	nc net.Conn
	mu sync.Mutex // held around each Write of a whole frame

	hdr  [ws.MaxHeaderSize]byte // scratch for the echo header; reader goroutine only
	sink headerSink
}

// headerSink receives the header bytes that ws.WriteHeaderBuffer writes.
type headerSink struct{ n int }

func (h *headerSink) Write(p []byte) (int, error) { h.n = len(p); return len(p), nil }

// lockedWriter writes to the connection under its write mutex. Every Write
// call carries one whole frame (wsutil's control handler builds each reply
// in one buffer), so frames never interleave.
type lockedWriter struct{ c *gobwasConn }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	return w.c.nc.Write(p)
}

// headroom is reserved in front of each payload buffer for the echo header.
const headroom = ws.MaxHeaderSize

// maxPooledBuffer is the largest message buffer kept in the pool.
const maxPooledBuffer = 64 << 10

var gobwasBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// closeGoingAway is a compiled server close frame with code 1001.
var closeGoingAway = ws.MustCompileFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, "")))

func startGobwas(cfg Config) (backend, error) {
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	s := &gobwasServer{
		ln:   ln,
		rbuf: cfg.GobwasReadBuffer,
		raw:  newRegistry[net.Conn](),
		reg:  newRegistry[*gobwasConn](),
	}
	path := []byte(cfg.Path)
	s.up = ws.Upgrader{
		// The path must match; query parameters are ignored.
		OnRequest: func(uri []byte) error {
			if i := bytes.IndexByte(uri, '?'); i >= 0 {
				uri = uri[:i]
			}
			if !bytes.Equal(uri, path) {
				return ws.RejectConnectionError(ws.RejectionStatus(http.StatusNotFound))
			}
			return nil
		},
	}
	s.accepts.Add(1)
	go s.acceptLoop()
	return s, nil
}

func (s *gobwasServer) addr() net.Addr { return s.ln.Addr() }
func (s *gobwasServer) conns() int     { return s.reg.len() }

func (s *gobwasServer) acceptLoop() {
	defer s.accepts.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and the like: back off briefly instead of spinning.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if !s.raw.add(nc) {
			_ = nc.Close()
			continue
		}
		go s.serve(nc)
	}
}

// serve upgrades nc and runs its read loop until the connection ends.
func (s *gobwasServer) serve(nc net.Conn) {
	defer func() {
		_ = nc.Close()
		s.raw.remove(nc)
	}()
	if _, err := s.up.Upgrade(nc); err != nil {
		return // Upgrade has answered with an HTTP error status
	}
	c := &gobwasConn{nc: nc}
	if !s.reg.add(c) {
		return
	}
	defer s.reg.remove(c)

	var src io.Reader = nc
	if s.rbuf > 0 {
		src = bufio.NewReaderSize(nc, s.rbuf)
	}
	s.readLoop(c, src)
}

// readLoop reads frames from src until an error, answering control frames,
// and hands each whole data message to handle.
func (s *gobwasServer) readLoop(c *gobwasConn, src io.Reader) {
	control := wsutil.ControlFrameHandler(lockedWriter{c}, ws.StateServerSide)
	rd := wsutil.Reader{
		Source:         src,
		State:          ws.StateServerSide,
		CheckUTF8:      true,
		MaxMessageSize: MaxMessageSize,
		OnIntermediate: control,
	}
	for {
		hdr, err := rd.NextFrame()
		if err != nil {
			c.fail(err)
			return
		}
		if hdr.OpCode.IsControl() {
			if err := control(hdr, &rd); err != nil {
				return // a close was answered, or the conn broke
			}
			continue
		}
		bp := gobwasBufPool.Get().(*[]byte)
		buf, err := readMessage(&rd, (*bp)[:0])
		if err != nil {
			putBuf(bp, buf)
			c.fail(err)
			return
		}
		err = s.handle(c, hdr.OpCode, buf)
		putBuf(bp, buf)
		if err != nil {
			return
		}
	}
}

// handle acts on one whole message: buf holds headroom bytes, then the
// payload. buf is only valid until handle returns.
func (s *gobwasServer) handle(c *gobwasConn, op ws.OpCode, buf []byte) error {
	payload := buf[headroom:]
	if op == ws.OpBinary {
		switch {
		case isStatsQuery(payload):
			frame := ws.MustCompileFrame(ws.NewBinaryFrame(statsAnswer(payload, s.reg.len())))
			_, err := lockedWriter{c}.Write(frame)
			return err
		case isBroadcast(payload):
			s.broadcast(payload)
			return nil
		}
	}
	// Echo: put the header right before the payload and write both at once.
	h := ws.Header{Fin: true, OpCode: op, Length: int64(len(payload))}
	if err := ws.WriteHeaderBuffer(&c.sink, h, c.hdr[:]); err != nil {
		return err
	}
	start := headroom - c.sink.n
	copy(buf[start:headroom], c.hdr[:c.sink.n])
	_, err := lockedWriter{c}.Write(buf[start:])
	return err
}

// readMessage appends headroom zero bytes and then the whole message read
// from rd to buf, growing buf as bytes arrive (never on the declared length).
func readMessage(rd *wsutil.Reader, buf []byte) ([]byte, error) {
	buf = append(buf[:0], make([]byte, headroom)...)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := rd.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

func putBuf(bp *[]byte, buf []byte) {
	if cap(buf) > maxPooledBuffer {
		return // let a big buffer go rather than pin it in the pool
	}
	*bp = buf[:0]
	gobwasBufPool.Put(bp)
}

// fail closes the connection after a read error, with the RFC 6455 close
// code for that error when there is one.
func (c *gobwasConn) fail(err error) {
	var code ws.StatusCode
	var perr ws.ProtocolError
	switch {
	case errors.Is(err, wsutil.ErrInvalidUTF8):
		code = ws.StatusInvalidFramePayloadData
	case errors.Is(err, wsutil.ErrMessageTooLarge), errors.Is(err, wsutil.ErrFrameTooLarge):
		code = ws.StatusMessageTooBig
	case errors.As(err, &perr):
		code = ws.StatusProtocolError
	default:
		return
	}
	frame := ws.MustCompileFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(code, "")))
	_, _ = lockedWriter{c}.Write(frame)
}

// broadcast compiles p into one binary frame and writes those bytes to every
// open connection in turn on the calling goroutine. A connection whose write
// fails is closed (its reader then exits). A client that does not read blocks
// the loop once its socket buffers are full: that is how this setup behaves.
func (s *gobwasServer) broadcast(p []byte) {
	frame := ws.MustCompileFrame(ws.NewBinaryFrame(p))
	snap := s.reg.snapshot()
	for _, c := range *snap {
		if _, err := (lockedWriter{c}).Write(frame); err != nil {
			_ = c.nc.Close()
		}
	}
	s.reg.release(snap)
}

func (s *gobwasServer) shutdown(ctx context.Context) error {
	err := s.ln.Close()
	upgraded := s.reg.close()
	all := s.raw.close()
	deadline := time.Now().Add(goodbyeTimeout)
	for _, c := range upgraded {
		_ = c.nc.SetWriteDeadline(deadline) // also unblocks a stuck broadcast
	}
	for _, c := range upgraded {
		if c.mu.TryLock() { // skip the goodbye if a write is in progress
			_, _ = c.nc.Write(closeGoingAway)
			c.mu.Unlock()
		}
	}
	for _, nc := range all {
		_ = nc.Close()
	}
	if werr := waitCtx(ctx, s.accepts.Wait); werr != nil {
		return werr
	}
	if werr := s.raw.wait(ctx); werr != nil {
		return werr
	}
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
