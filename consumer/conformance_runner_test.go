package consumer

// The runner of the Consumer's conformance cases (conformance_test.go): a
// raw test server on 127.0.0.1 performs the upgrade itself (answering with
// whatever Sec-WebSocket-Extensions a case asks for, valid or not), then
// plays a script of writes (unmasked server frames, valid or not, written
// at once, chopped, or frame by frame) and of the events it then expects
// from the Consumer, in order: the messages its OnMessage handler sends
// back, pongs, its close frame. After the script the server closes with
// 1000 unless a close was already exchanged; every case ends by checking
// that nothing follows the Consumer's close frame, that the Consumer closes
// TCP once the server has (RFC 6455 §7.1.1), and that OnDisconnect reported
// the code of the close that ended the connection.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/networkcluster/networkcluster/frame"
)

// cfTimeout bounds every read and write of the test server.
const cfTimeout = 10 * time.Second

// cfPause separates writes that a case wants to arrive on their own.
const cfPause = time.Millisecond

type cfKind uint8

const (
	cfMsg cfKind = iota + 1
	cfPong
	cfClose
)

// cfEvent is something the Consumer sends: a whole data message, a pong,
// or its close frame.
type cfEvent struct {
	kind       cfKind
	op         frame.Opcode      // cfMsg
	data       []byte            // cfMsg, cfPong: the payload; cfClose: the reason
	codes      []frame.CloseCode // cfClose: the acceptable codes (CloseNoStatus: empty payload)
	compressed bool              // cfMsg: it came with RSV1 (got events only)
}

func evText(s string) cfEvent  { return cfEvent{kind: cfMsg, op: frame.OpText, data: []byte(s)} }
func evTextB(b []byte) cfEvent { return cfEvent{kind: cfMsg, op: frame.OpText, data: b} }
func evBin(b []byte) cfEvent   { return cfEvent{kind: cfMsg, op: frame.OpBinary, data: b} }
func evPong(s string) cfEvent  { return cfEvent{kind: cfPong, data: []byte(s)} }
func evClose(codes ...frame.CloseCode) cfEvent {
	return cfEvent{kind: cfClose, codes: codes}
}

func (ev cfEvent) match(got cfEvent) bool {
	if ev.kind != got.kind {
		return false
	}
	switch ev.kind {
	case cfMsg:
		return ev.op == got.op && bytes.Equal(ev.data, got.data)
	case cfPong:
		return bytes.Equal(ev.data, got.data)
	}
	for _, c := range ev.codes {
		if c == got.codes[0] {
			return true
		}
	}
	return false
}

func (ev cfEvent) String() string {
	show := func(b []byte) string {
		if len(b) > 40 {
			return fmt.Sprintf("%q... (%d bytes)", b[:40], len(b))
		}
		return fmt.Sprintf("%q", b)
	}
	switch ev.kind {
	case cfMsg:
		return fmt.Sprintf("%v message %s", ev.op, show(ev.data))
	case cfPong:
		return "pong " + show(ev.data)
	case cfClose:
		return fmt.Sprintf("close %v", ev.codes)
	}
	return "nothing"
}

// cfStep writes bytes and then waits for events.
type cfStep struct {
	data   []byte   // written in one write, or in pieces of chop bytes
	chop   int      // > 0: write data in pieces of this size, each on its own
	frames [][]byte // when set instead of data: one write per frame, each on its own
	// closes is the code of the valid close frame this step sends (the
	// server starts the closing handshake), 0 if it sends none.
	closes frame.CloseCode
	want   []cfEvent
	// trail is written after the events arrived, before the server
	// answers a close among them: bytes it had in flight.
	trail [][]byte
}

func (st cfStep) expect(ev ...cfEvent) cfStep { st.want = append(st.want, ev...); return st }
func (st cfStep) closing(code frame.CloseCode) cfStep {
	st.closes = code
	return st
}

func cfSend(frames ...[]byte) cfStep {
	if len(frames) == 1 {
		return cfStep{data: frames[0]}
	}
	return cfStep{data: bytes.Join(frames, nil)}
}
func cfChop(n int, frames ...[]byte) cfStep   { return cfStep{data: bytes.Join(frames, nil), chop: n} }
func cfEach(frames ...[]byte) cfStep          { return cfStep{frames: frames} }
func cfSteps(s ...cfStep) []cfStep            { return s }
func cfSendClose(code frame.CloseCode) cfStep { return cfSend(cfCloseFrame(code, "")).closing(code) }

// cfFrameRsv is an unmasked server frame with the reserved bits rsv (RSV1 =
// 4, RSV2 = 2, RSV3 = 1).
func cfFrameRsv(fin bool, op frame.Opcode, rsv byte, p []byte) []byte {
	b := frame.AppendHeader(make([]byte, 0, frame.MaxHeaderSize+len(p)), frame.Header{Fin: fin, Rsv: rsv, Op: op, Length: int64(len(p))})
	return append(b, p...)
}
func cfF(fin bool, op frame.Opcode, p string) []byte  { return cfFrameRsv(fin, op, 0, []byte(p)) }
func cfFB(fin bool, op frame.Opcode, p []byte) []byte { return cfFrameRsv(fin, op, 0, p) }
func cfRsv(rsv byte, fin bool, op frame.Opcode, p string) []byte {
	return cfFrameRsv(fin, op, rsv, []byte(p))
}
func cfCloseFrame(code frame.CloseCode, reason string) []byte {
	return cfFB(true, frame.OpClose, frame.AppendClose(nil, code, reason))
}

// cfFragments splits a message into frames of size bytes (the last may be
// shorter); rsv goes on the first frame only.
func cfFragments(op frame.Opcode, rsv byte, p []byte, size int) [][]byte {
	if size <= 0 || size >= len(p) {
		return [][]byte{cfFrameRsv(true, op, rsv, p)}
	}
	var out [][]byte
	for off := 0; off < len(p); off += size {
		end := min(off+size, len(p))
		o, r := frame.OpContinuation, byte(0)
		if off == 0 {
			o, r = op, rsv
		}
		out = append(out, cfFrameRsv(end == len(p), o, r, p[off:end]))
	}
	return out
}

// cfCase is one conformance case.
type cfCase struct {
	ab    string // the Autobahn|Testsuite case it follows; "-" for our own
	rfc   string // the RFC section that decides the expected behaviour
	name  string
	steps []cfStep
	lazy  func() []cfStep // builds large steps only when the case runs
}

func (c cfCase) title() string {
	if c.ab == "-" {
		return c.name
	}
	return c.ab + " " + c.name
}

// --- the test server ---

// cfServer accepts connections on 127.0.0.1 and hands them to the cases.
type cfServer struct {
	ln    net.Listener
	port  int
	conns chan net.Conn
	wg    sync.WaitGroup
}

func cfListen(t testing.TB) *cfServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &cfServer{ln: ln, port: ln.Addr().(*net.TCPAddr).Port, conns: make(chan net.Conn, 16)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(s.conns)
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns <- nc
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for nc := range s.conns {
			nc.Close()
		}
		s.wg.Wait()
	})
	return s
}

// cfRecorder records a Consumer's events.
type cfRecorder struct {
	mu          sync.Mutex
	opens       int
	disconnects []cfDisc
	errs        []error
}

type cfDisc struct {
	code   frame.CloseCode
	reason string
}

// cfMode says what the Consumer's OnMessage does with a message.
type cfMode int

const (
	cfEcho   cfMode = iota // sends it back, same type
	cfDigest               // sends back the text "<length>:<sha-256 hex>"
)

// cfDigestOf is the Consumer's reply to p in cfDigest mode.
func cfDigestOf(p []byte) string {
	sum := sha256.Sum256(p)
	return strconv.Itoa(len(p)) + ":" + hex.EncodeToString(sum[:])
}

// cfStartConsumer creates a Consumer for the server (never reconnecting
// during a case), starts connecting, and returns it with its recorder; the
// Consumer is destroyed when the test ends. connected receives Connect's
// result.
func cfStartConsumer(t testing.TB, srv *cfServer, mode cfMode, mod func(o *Options)) (*Consumer, *cfRecorder, chan error) {
	t.Helper()
	rec := &cfRecorder{}
	var c *Consumer
	o := Options{
		Host:      "127.0.0.1",
		Port:      srv.port,
		Reconnect: Reconnect{Interval: time.Hour, MaxInterval: time.Hour, NoJitter: true},
		OnOpen:    func() { rec.mu.Lock(); rec.opens++; rec.mu.Unlock() },
		OnDisconnect: func(code frame.CloseCode, reason string) {
			rec.mu.Lock()
			rec.disconnects = append(rec.disconnects, cfDisc{code, reason})
			rec.mu.Unlock()
		},
		OnError: func(err error) { rec.mu.Lock(); rec.errs = append(rec.errs, err); rec.mu.Unlock() },
		OnMessage: func(m Message) {
			switch {
			case mode == cfDigest:
				_ = c.Send(cfDigestOf(m.Data))
			case m.Binary:
				_ = c.SendBinary(m.Data)
			default:
				_ = c.SendText(m.Data)
			}
		},
	}
	if mod != nil {
		mod(&o)
	}
	var err error
	if c, err = New(o); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Destroy)
	connected := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), cfTimeout)
		defer cancel()
		connected <- c.Connect(ctx)
	}()
	return c, rec, connected
}

// cfSession is the server side of one case.
type cfSession struct {
	t     testing.TB
	where string // "[case, RFC]" for messages
	nc    net.Conn
	br    *bufio.Reader
	rec   *cfRecorder
	req   *http.Request
	limit int

	deflate bool                           // permessage-deflate was negotiated: RSV1 allowed
	infl    func(p []byte) ([]byte, error) // inflates RSV1 messages

	inMsg      bool
	op         frame.Opcode
	compressed bool
	buf        []byte

	sentClose    bool            // the server sent a close frame (first or in answer)
	serverCode   frame.CloseCode // code of the server's close if it was first
	consumerCode frame.CloseCode // code of the Consumer's close frame; 0 until it came
}

// cfAccept takes the next connection and reads its upgrade request.
func cfAccept(t testing.TB, srv *cfServer, rec *cfRecorder) *cfSession {
	t.Helper()
	var nc net.Conn
	select {
	case nc = <-srv.conns:
	case <-time.After(cfTimeout):
		t.Fatal("the Consumer did not connect")
	}
	t.Cleanup(func() { nc.Close() })
	s := &cfSession{t: t, nc: nc, br: bufio.NewReader(nc), rec: rec, limit: 64 << 20}
	_ = nc.SetReadDeadline(time.Now().Add(cfTimeout))
	req, err := http.ReadRequest(s.br)
	if err != nil {
		t.Fatalf("reading the upgrade request: %v", err)
	}
	s.req = req
	return s
}

// upgrade answers the request with 101 and the given extra header lines,
// after checking the request as RFC 6455 §4.1 requires.
func (s *cfSession) upgrade(extra ...string) {
	s.t.Helper()
	s.upgradeWith(nil, extra...)
}

// upgradeWith is upgrade with frames written in the same write as the
// response.
func (s *cfSession) upgradeWith(frames []byte, extra ...string) {
	s.t.Helper()
	r := s.req
	key := r.Header.Get("Sec-WebSocket-Key")
	if raw, err := base64.StdEncoding.DecodeString(key); err != nil || len(raw) != 16 {
		s.t.Fatalf("Sec-WebSocket-Key %q is not 16 bytes in base64 (RFC 6455 §4.1)", key)
	}
	if r.Method != http.MethodGet || !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") ||
		!strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade") || r.Header.Get("Sec-WebSocket-Version") != "13" {
		s.t.Fatalf("not an RFC 6455 §4.1 upgrade request: %s %v", r.Method, r.Header)
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	var b strings.Builder
	b.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
	b.WriteString("Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(sum[:]) + "\r\n")
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	s.writeRaw(append([]byte(b.String()), frames...))
}

// cfConnect accepts the Consumer's connection, upgrades it and waits until
// the Consumer reports it open.
func cfConnect(t testing.TB, srv *cfServer, mode cfMode, mod func(o *Options), extra ...string) (*Consumer, *cfSession) {
	t.Helper()
	c, rec, connected := cfStartConsumer(t, srv, mode, mod)
	s := cfAccept(t, srv, rec)
	s.upgrade(extra...)
	if err := <-connected; err != nil {
		t.Fatalf("Connect: %v", err)
	}
	return c, s
}

func (s *cfSession) fatalf(format string, a ...any) {
	s.t.Helper()
	s.t.Fatalf(s.where+" "+format, a...)
}

func (s *cfSession) writeRaw(b []byte) {
	s.t.Helper()
	_ = s.nc.SetWriteDeadline(time.Now().Add(cfTimeout))
	if _, err := s.nc.Write(b); err != nil {
		s.fatalf("write: %v", err)
	}
}

// write performs a step's writes.
func (s *cfSession) write(st cfStep) {
	s.t.Helper()
	if st.closes != 0 && !s.sentClose {
		s.sentClose, s.serverCode = true, st.closes
	}
	switch {
	case st.frames != nil:
		for _, f := range st.frames {
			s.writeRaw(f)
			time.Sleep(cfPause)
		}
	case st.chop > 0:
		pieces := (len(st.data) + st.chop - 1) / st.chop
		for off := 0; off < len(st.data); off += st.chop {
			s.writeRaw(st.data[off:min(off+st.chop, len(st.data))])
			if pieces <= 256 {
				time.Sleep(cfPause / 4)
			}
		}
	case len(st.data) > 0:
		s.writeRaw(st.data)
	}
}

// readFrame reads one frame from the Consumer and unmasks it. Parsing as a
// server holds the Consumer to RFC 6455 §5.1–§5.5: masked frames, no
// reserved bits or opcodes, control frames short and whole.
func (s *cfSession) readFrame() (frame.Header, []byte, error) {
	_ = s.nc.SetReadDeadline(time.Now().Add(cfTimeout))
	var hb [frame.MaxHeaderSize]byte
	n := 0
	for {
		h, hn, need, err := frame.ParseHeader(hb[:n], frame.ParseOptions{Role: frame.RoleServer, AllowRSV1: s.deflate})
		if err != nil {
			return h, nil, fmt.Errorf("the Consumer's frame: %w", err)
		}
		if need == 0 {
			_ = hn
			if h.Length > int64(s.limit) {
				return h, nil, fmt.Errorf("frame of %d bytes", h.Length)
			}
			p := make([]byte, h.Length)
			if _, err := io.ReadFull(s.br, p); err != nil {
				return h, nil, err
			}
			frame.Mask(p, h.Mask, 0)
			return h, p, nil
		}
		if _, err := io.ReadFull(s.br, hb[n:n+need]); err != nil {
			return h, nil, err
		}
		n += need
	}
}

// next reads frames until they make an event, checking the Consumer's
// framing on the way.
func (s *cfSession) next() (cfEvent, error) {
	for {
		h, p, err := s.readFrame()
		if err != nil {
			return cfEvent{}, err
		}
		if s.consumerCode != 0 {
			return cfEvent{}, fmt.Errorf("%v frame after the Consumer's close frame (RFC 6455 §5.5.1)", h.Op)
		}
		switch h.Op {
		case frame.OpPing:
			return cfEvent{}, errors.New("unexpected ping from the Consumer")
		case frame.OpPong:
			return cfEvent{kind: cfPong, data: p}, nil
		case frame.OpClose:
			code, reason, err := frame.ParseClose(p)
			if err != nil {
				return cfEvent{}, fmt.Errorf("the Consumer's close frame % x: %w", p, err)
			}
			s.consumerCode = code
			return cfEvent{kind: cfClose, codes: []frame.CloseCode{code}, data: reason}, nil
		case frame.OpContinuation:
			if !s.inMsg {
				return cfEvent{}, errors.New("continuation frame from the Consumer with no message in progress (RFC 6455 §5.4)")
			}
			if h.Rsv1() {
				return cfEvent{}, errors.New("RSV1 on a continuation frame from the Consumer (RFC 7692 §6.1)")
			}
		default:
			if s.inMsg {
				return cfEvent{}, errors.New("new data message from the Consumer inside a fragmented one (RFC 6455 §5.4)")
			}
			s.inMsg, s.op, s.compressed, s.buf = true, h.Op, h.Rsv1(), s.buf[:0]
		}
		if len(s.buf)+len(p) > s.limit {
			return cfEvent{}, fmt.Errorf("message of more than %d bytes", s.limit)
		}
		data := p
		if !h.Fin || len(s.buf) > 0 {
			s.buf = append(s.buf, p...)
			data = s.buf
		}
		if !h.Fin {
			continue
		}
		s.inMsg = false
		s.buf = s.buf[:0]
		if s.compressed {
			if data, err = s.infl(data); err != nil {
				return cfEvent{}, fmt.Errorf("inflating the Consumer's message: %w", err)
			}
		}
		if s.op == frame.OpText && !utf8.Valid(data) {
			return cfEvent{}, errors.New("text message from the Consumer that is not UTF-8 (RFC 6455 §8.1)")
		}
		// data is valid until the next call.
		return cfEvent{kind: cfMsg, op: s.op, data: data, compressed: s.compressed}, nil
	}
}

// run performs a case's steps, then finish.
func (s *cfSession) run(st []cfStep) {
	s.t.Helper()
	for i, step := range st {
		s.write(step)
		for _, want := range step.want {
			got, err := s.next()
			if err != nil {
				s.fatalf("step %d: waiting for %v: %v", i+1, want, err)
			}
			if !want.match(got) {
				s.fatalf("step %d: got %v, want %v", i+1, got, want)
			}
		}
		for _, b := range step.trail {
			s.writeRaw(b)
			time.Sleep(cfPause)
		}
		if s.consumerCode != 0 {
			s.answer()
		}
	}
	s.finish()
}

// answer completes a closing handshake the Consumer started (RFC 6455
// §5.5.1: echo its code).
func (s *cfSession) answer() {
	s.t.Helper()
	if s.sentClose {
		return
	}
	s.sentClose = true
	code := s.consumerCode
	if code == frame.CloseNoStatus {
		code = 0
	}
	s.writeRaw(cfCloseFrame(code, ""))
}

// finish closes (unless done), closes TCP first as a server should, checks
// that nothing follows the Consumer's close frame and that the Consumer
// closes TCP too, and checks the OnDisconnect event.
func (s *cfSession) finish() {
	s.t.Helper()
	if s.consumerCode == 0 {
		if !s.sentClose {
			s.write(cfSendClose(frame.CloseNormal))
		}
		got, err := s.next()
		if err != nil {
			s.fatalf("after the script: waiting for the close: %v", err)
		}
		if got.kind != cfClose {
			s.fatalf("after the script: got %v, want nothing before the close", got)
		}
		// RFC 6455 §5.5.1: the answer echoes the code (the Consumer does).
		if want := s.serverCode; got.codes[0] != want {
			s.fatalf("the Consumer answered close %v with %v", want, got.codes[0])
		}
	}
	// The server closes its side first (RFC 6455 §7.1.1); the Consumer
	// must send nothing more and close too.
	if tc, ok := s.nc.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	for i := 0; i < 100; i++ {
		h, _, err := s.readFrame()
		if err == nil {
			s.fatalf("%v frame after the closing handshake", h.Op)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			s.fatalf("the Consumer did not close TCP after the server did (RFC 6455 §7.1.1)")
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "connection reset") {
			break
		}
		s.fatalf("reading after the close: %v", err)
	}
	s.nc.Close()
	want := s.consumerCode
	if s.serverCode != 0 {
		want = s.serverCode
	}
	var got cfDisc
	deadline := time.Now().Add(cfTimeout)
	for {
		s.rec.mu.Lock()
		n := len(s.rec.disconnects)
		if n > 0 {
			got = s.rec.disconnects[n-1]
		}
		s.rec.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			s.fatalf("no OnDisconnect")
		}
		time.Sleep(time.Millisecond)
	}
	if got.code != want {
		s.fatalf("OnDisconnect code %v (%q), want %v", got.code, got.reason, want)
	}
}

// cfRun runs cases as subtests, each with a new Consumer of the server.
func cfRun(t *testing.T, srv *cfServer, mode cfMode, mod func(o *Options), cases []cfCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.title(), func(t *testing.T) {
			_, s := cfConnect(t, srv, mode, mod)
			s.where = "[" + c.ab + ", " + c.rfc + "]"
			st := c.steps
			if c.lazy != nil {
				st = c.lazy()
			}
			s.run(st)
		})
	}
}
