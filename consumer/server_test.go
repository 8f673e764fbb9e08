package consumer

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"github.com/networkcluster/networkcluster/frame"
	"github.com/networkcluster/networkcluster/internal/proto"
)

// hbMode is the heartbeat form a test server speaks.
type hbMode int

const (
	hbNone   hbMode = iota // plain WebSocket server: no announcement, no pings
	hbHeader               // interval in proto.HeartbeatHeader, RFC 6455 pings
	hbText                 // Node 1.0.4: PROVIDER_HEARTBEAT|ms, then "PING" texts
)

// srvOpts configures a test server.
type srvOpts struct {
	mode     hbMode
	interval time.Duration // announced interval; pings go out every interval/… see pingEvery
	// pingEvery is how often pings are sent; 0 = interval; <0 = never
	// (an announced heartbeat that never comes: the cutoff test).
	pingEvery time.Duration
	// reject answers the upgrade with this HTTP status when it returns
	// non-zero (called with the 1-based upgrade attempt number).
	reject func(attempt int) int
	// handler handles each data message; nil echoes it.
	handler func(sc *srvConn, op ws.OpCode, p []byte)
	// onOpen runs once each connection is upgraded.
	onOpen func(sc *srvConn)
	tls    *tls.Config
	// deflate accepts permessage-deflate (gobwas/ws/wsflate, stdlib flate,
	// no context takeover either way) and compresses every data message it
	// sends.
	deflate bool
	// negotiate, when set, answers the permessage-deflate offer instead.
	negotiate func(httphead.Option) (httphead.Option, error)
}

// testServer is an independent WebSocket server on gobwas/ws (a goroutine
// per connection) that speaks both heartbeat forms.
type testServer struct {
	t    testing.TB
	o    srvOpts
	ln   net.Listener
	port int

	mu       sync.Mutex
	conns    map[*srvConn]struct{}
	accepts  []time.Time // when each TCP connection was accepted
	lastURI  string
	lastHdr  http.Header
	closes   []ws.StatusCode // close codes received from clients
	attempts int

	wg         sync.WaitGroup
	pongs      atomic.Int64 // control pongs received
	textPongs  atomic.Int64 // "PONG" texts received
	messages   atomic.Int64 // data messages received (other than PONG)
	compressed atomic.Int64 // of which had RSV1 set
}

type srvConn struct {
	srv     *testServer
	nc      net.Conn
	wmu     sync.Mutex
	done    chan struct{}
	deflate bool // permessage-deflate was negotiated
}

// write sends one unmasked frame, compressed when permessage-deflate was
// negotiated and it is a data frame.
func (sc *srvConn) write(op ws.OpCode, p []byte) error {
	sc.wmu.Lock()
	defer sc.wmu.Unlock()
	f := ws.NewFrame(op, true, p)
	if sc.deflate && (op == ws.OpText || op == ws.OpBinary) {
		var err error
		if f, err = wsflate.CompressFrame(f); err != nil {
			return err
		}
	}
	return ws.WriteFrame(sc.nc, f)
}

// writeRaw writes bytes as they are (hand-made frames).
func (sc *srvConn) writeRaw(b []byte) error {
	sc.wmu.Lock()
	defer sc.wmu.Unlock()
	_, err := sc.nc.Write(b)
	return err
}

func newTestServer(t testing.TB, o srvOpts) *testServer {
	return newTestServerOn(t, o, 0)
}

func newTestServerOn(t testing.TB, o srvOpts, port int) *testServer {
	t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // a restart may race the old socket's release
		ln, err = net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil || port == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	if o.tls != nil {
		ln = tls.NewListener(ln, o.tls)
	}
	s := &testServer{t: t, o: o, ln: ln, port: ln.Addr().(*net.TCPAddr).Port, conns: map[*srvConn]struct{}{}}
	s.wg.Add(1)
	go s.acceptLoop()
	t.Cleanup(s.stop)
	return s
}

func (s *testServer) acceptLoop() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.accepts = append(s.accepts, time.Now())
		sc := &srvConn{srv: s, nc: nc, done: make(chan struct{})}
		s.conns[sc] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serve(sc)
	}
}

// stop closes the listener and every connection and waits for the server's
// goroutines. It may be called more than once.
func (s *testServer) stop() {
	s.ln.Close()
	s.mu.Lock()
	for sc := range s.conns {
		sc.nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// restart stops the server and starts a new one on the same port.
func (s *testServer) restart() *testServer {
	s.stop()
	return newTestServerOn(s.t, s.o, s.port)
}

func (s *testServer) conn() []*srvConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*srvConn
	for sc := range s.conns {
		out = append(out, sc)
	}
	return out
}

func (s *testServer) upgrades() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts
}

func (s *testServer) serve(sc *srvConn) {
	defer s.wg.Done()
	defer func() {
		sc.nc.Close()
		close(sc.done)
		s.mu.Lock()
		delete(s.conns, sc)
		s.mu.Unlock()
	}()
	var uri string
	hdr := http.Header{}
	ext := wsflate.Extension{Parameters: wsflate.Parameters{ServerNoContextTakeover: true, ClientNoContextTakeover: true}}
	up := ws.Upgrader{
		OnRequest: func(u []byte) error { uri = string(u); return nil },
		OnHeader: func(k, v []byte) error {
			hdr.Add(string(k), string(v))
			return nil
		},
		OnBeforeUpgrade: func() (ws.HandshakeHeader, error) {
			s.mu.Lock()
			s.attempts++
			n := s.attempts
			s.lastURI, s.lastHdr = uri, hdr
			s.mu.Unlock()
			if s.o.reject != nil {
				if code := s.o.reject(n); code != 0 {
					return nil, ws.RejectConnectionError(ws.RejectionStatus(code), ws.RejectionReason("Unauthorized"))
				}
			}
			if s.o.mode == hbHeader {
				return ws.HandshakeHeaderHTTP(http.Header{proto.HeartbeatHeader: {proto.FormatInterval(s.o.interval)}}), nil
			}
			return nil, nil
		},
	}
	if s.o.deflate {
		up.Negotiate = ext.Negotiate
	}
	if s.o.negotiate != nil {
		up.Negotiate = s.o.negotiate
	}
	_ = sc.nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := up.Upgrade(sc.nc); err != nil {
		return
	}
	_, sc.deflate = ext.Accepted()
	_ = sc.nc.SetDeadline(time.Time{})
	if s.o.mode == hbText {
		if sc.write(ws.OpText, []byte(proto.TextHeartbeatPrefix+proto.FormatInterval(s.o.interval))) != nil {
			return
		}
	}
	if s.o.onOpen != nil {
		s.o.onOpen(sc)
	}
	every := s.o.pingEvery
	if every == 0 {
		every = s.o.interval
	}
	if s.o.mode != hbNone && every > 0 {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			tk := time.NewTicker(every)
			defer tk.Stop()
			for {
				select {
				case <-sc.done:
					return
				case <-tk.C:
				}
				var err error
				if s.o.mode == hbHeader {
					err = sc.write(ws.OpPing, nil)
				} else {
					err = sc.write(ws.OpText, []byte(proto.TextPing))
				}
				if err != nil {
					return
				}
			}
		}()
	}
	br := bufio.NewReader(sc.nc)
	for {
		f, err := ws.ReadFrame(br)
		if err != nil {
			return
		}
		if !f.Header.Masked {
			s.t.Errorf("test server: unmasked frame from the client")
			return
		}
		ws.Cipher(f.Payload, f.Header.Mask, 0)
		if f.Header.Rsv1() {
			s.compressed.Add(1)
			if f, err = wsflate.DecompressFrame(f); err != nil {
				s.t.Errorf("test server: inflate: %v", err)
				return
			}
		}
		switch f.Header.OpCode {
		case ws.OpPing:
			_ = sc.write(ws.OpPong, f.Payload)
		case ws.OpPong:
			s.pongs.Add(1)
		case ws.OpClose:
			code, _ := ws.ParseCloseFrameData(f.Payload)
			s.mu.Lock()
			s.closes = append(s.closes, code)
			s.mu.Unlock()
			_ = sc.write(ws.OpClose, f.Payload) // echo, then end TCP
			return
		case ws.OpText, ws.OpBinary:
			if !f.Header.Fin {
				s.t.Errorf("test server: the consumer fragmented a message")
				return
			}
			if f.Header.OpCode == ws.OpText && string(f.Payload) == proto.TextPong && s.o.mode == hbText {
				s.textPongs.Add(1)
				continue
			}
			s.messages.Add(1)
			if s.o.handler != nil {
				s.o.handler(sc, f.Header.OpCode, f.Payload)
			} else if err := sc.write(f.Header.OpCode, f.Payload); err != nil {
				return
			}
		default:
			s.t.Errorf("test server: unexpected opcode %v", f.Header.OpCode)
			return
		}
	}
}

func (s *testServer) closeCodes() []ws.StatusCode {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ws.StatusCode(nil), s.closes...)
}

// rawFrame builds an unmasked server frame by hand (for bad frames).
func rawFrame(fin bool, rsv byte, op byte, masked bool, payload []byte) []byte {
	b0 := op | rsv<<4
	if fin {
		b0 |= 0x80
	}
	var out []byte
	out = append(out, b0)
	m := byte(0)
	if masked {
		m = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		out = append(out, m|byte(n))
	case n < 1<<16:
		out = append(out, m|126, byte(n>>8), byte(n))
	default:
		out = append(out, m|127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	if masked {
		key := [4]byte{1, 2, 3, 4}
		out = append(out, key[:]...)
		p := append([]byte(nil), payload...)
		ws.Cipher(p, key, 0)
		return append(out, p...)
	}
	return append(out, payload...)
}

// waitFor polls cond every 5 ms for at most d; it fails the test on timeout.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// events records a Consumer's events for assertions.
type events struct {
	mu          sync.Mutex
	opens       int
	disconnects []closeEv
	closes      []closeEv
	errs        []error
	msgs        []Message // copies
}

type closeEv struct {
	code   int
	reason string
}

func (e *events) hook(o *Options) {
	o.OnOpen = func() { e.mu.Lock(); e.opens++; e.mu.Unlock() }
	o.OnDisconnect = func(code frame.CloseCode, reason string) {
		e.mu.Lock()
		e.disconnects = append(e.disconnects, closeEv{int(code), reason})
		e.mu.Unlock()
	}
	o.OnClose = func(code frame.CloseCode, reason string) {
		e.mu.Lock()
		e.closes = append(e.closes, closeEv{int(code), reason})
		e.mu.Unlock()
	}
	o.OnError = func(err error) { e.mu.Lock(); e.errs = append(e.errs, err); e.mu.Unlock() }
	o.OnMessage = func(m Message) {
		e.mu.Lock()
		e.msgs = append(e.msgs, Message{Binary: m.Binary, Data: bytes.Clone(m.Data)})
		e.mu.Unlock()
	}
}

func (e *events) snapshot() (opens int, disc []closeEv, closes []closeEv, errs []error, msgs []Message) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.opens, append([]closeEv(nil), e.disconnects...), append([]closeEv(nil), e.closes...),
		append([]error(nil), e.errs...), append([]Message(nil), e.msgs...)
}

// newConsumer returns a Consumer for s with fast reconnects, destroyed at
// the end of the test.
func newConsumer(t testing.TB, port int, mod func(o *Options)) (*Consumer, *events) {
	t.Helper()
	ev := &events{}
	o := Options{Host: "127.0.0.1", Port: port, Reconnect: Reconnect{Interval: 10 * time.Millisecond}}
	ev.hook(&o)
	if mod != nil {
		mod(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.Destroy)
	return c, ev
}

// freePort returns a port with no listener.
func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return p
}

// rawListener accepts TCP connections on 127.0.0.1 and hands each to
// serve on the accept goroutine; it returns the port and the number of
// connections accepted. The listener and every accepted connection are
// closed when the test ends.
func rawListener(t testing.TB, serve func(nc net.Conn)) (port int, accepted *atomic.Int64) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted = new(atomic.Int64)
	var conns []net.Conn
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			mu.Lock()
			conns = append(conns, nc)
			mu.Unlock()
			serve(nc)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().(*net.TCPAddr).Port, accepted
}

// silentListener accepts TCP connections and never answers: a dial to it
// stays in the handshake.
func silentListener(t testing.TB) (port int, accepted *atomic.Int64) {
	return rawListener(t, func(nc net.Conn) { go io.Copy(io.Discard, nc) })
}

func msgText(m Message) string { return fmt.Sprintf("%v:%q", m.Binary, m.Data) }
