package provider

// The runner of the conformance cases: a case is a script of writes (raw
// bytes, masked as a client must, written at once, chopped into small
// writes, or frame by frame) and of the events it then expects from the
// Provider, in order: echoed messages, pongs, its close frame. After the
// script the client closes with 1000 unless a close was already exchanged,
// and every case ends by checking that nothing follows the close frames,
// that the Provider closes TCP first (RFC 6455 §7.1.1), and that OnClose
// reported the code of the close that ended the connection.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/networkcluster/networkcluster/frame"
	"github.com/networkcluster/networkcluster/internal/wstest"
)

// cfPause separates writes that a case wants to arrive on their own.
const cfPause = time.Millisecond

type cfKind uint8

const (
	cfMsg cfKind = iota + 1
	cfPong
	cfClose
)

// cfEvent is something the Provider sends: a whole data message (however
// fragmented), a pong, or its close frame.
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
	// client starts the closing handshake; CloseNoStatus for an empty
	// payload), 0 if it sends none.
	closes frame.CloseCode
	want   []cfEvent
	// trail is written after the events arrived, before the client
	// answers a close among them, each piece on its own: bytes the client
	// had in flight when the Provider closed.
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
func cfWant(ev ...cfEvent) cfStep             { return cfStep{want: ev} }
func cfSteps(s ...cfStep) []cfStep            { return s }
func cfSendClose(code frame.CloseCode) cfStep { return cfSend(cfCloseFrame(code, "")).closing(code) }
func cfF(fin bool, op frame.Opcode, p string) []byte {
	return wstest.Frame(fin, op, 0, []byte(p))
}
func cfFB(fin bool, op frame.Opcode, p []byte) []byte { return wstest.Frame(fin, op, 0, p) }
func cfRsv(rsv byte, fin bool, op frame.Opcode, p string) []byte {
	return wstest.Frame(fin, op, rsv, []byte(p))
}
func cfCloseFrame(code frame.CloseCode, reason string) []byte {
	return wstest.Frame(true, frame.OpClose, 0, frame.AppendClose(nil, code, reason))
}

// cfFragments splits a message into frames of size bytes (the last may be
// shorter); rsv goes on the first frame only.
func cfFragments(op frame.Opcode, rsv byte, p []byte, size int) [][]byte {
	if size <= 0 || size >= len(p) {
		return [][]byte{wstest.Frame(true, op, rsv, p)}
	}
	var out [][]byte
	for off := 0; off < len(p); off += size {
		end := min(off+size, len(p))
		o, r := frame.OpContinuation, byte(0)
		if off == 0 {
			o, r = op, rsv
		}
		out = append(out, wstest.Frame(end == len(p), o, r, p[off:end]))
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

// cfSession is the client side of one case.
type cfSession struct {
	t     testing.TB
	where string // "[case, RFC]" for messages
	c     *wstest.Client
	conn  *Connection
	e     *events
	limit int                            // largest message accepted from the Provider
	infl  func(p []byte) ([]byte, error) // inflates RSV1 messages; nil: RSV1 is an error
	onMsg func(ev cfEvent)               // sees every message (for compression checks)

	inMsg      bool
	op         frame.Opcode
	compressed bool
	buf        []byte

	sentClose  bool            // the client sent a close frame (first or in answer)
	clientCode frame.CloseCode // code of the client's close if it was first
	serverCode frame.CloseCode // code of the Provider's close frame; 0 until it came
}

// cfOpen dials the Provider and waits for its side of the connection.
func cfOpen(t testing.TB, e *events, addr, target string, extra ...string) *cfSession {
	t.Helper()
	n := e.nOpened()
	c := dial(t, addr, target, extra...)
	var conn *Connection
	e.wait(t, "the connection to open", func(e *events) bool {
		if len(e.opened) > n {
			conn = e.opened[n]
			return true
		}
		return false
	})
	return &cfSession{t: t, c: c, conn: conn, e: e, limit: 64 << 20}
}

func (s *cfSession) fatalf(format string, a ...any) {
	s.t.Helper()
	s.t.Fatalf(s.where+" "+format, a...)
}

// write performs a step's writes.
func (s *cfSession) write(st cfStep) {
	s.t.Helper()
	if st.closes != 0 && !s.sentClose {
		s.sentClose, s.clientCode = true, st.closes
	}
	var err error
	switch {
	case st.frames != nil:
		for _, f := range st.frames {
			if err = s.c.Write(f); err != nil {
				break
			}
			time.Sleep(cfPause)
		}
	case st.chop > 0:
		pieces := (len(st.data) + st.chop - 1) / st.chop
		for off := 0; off < len(st.data) && err == nil; off += st.chop {
			err = s.c.Write(st.data[off:min(off+st.chop, len(st.data))])
			if pieces <= 256 {
				time.Sleep(cfPause / 4)
			}
		}
	case len(st.data) > 0:
		err = s.c.Write(st.data)
	}
	if err != nil {
		s.fatalf("write: %v", err)
	}
}

// next reads frames until they make an event, checking the Provider's
// framing on the way (RFC 6455 §5.1–§5.5: unmasked, no reserved bits or
// opcodes, control frames short and whole, fragments in order, text valid
// UTF-8).
func (s *cfSession) next() (cfEvent, error) {
	for {
		h, p, err := s.c.ReadFrame()
		if err != nil {
			return cfEvent{}, err
		}
		if s.serverCode != 0 {
			return cfEvent{}, fmt.Errorf("%v frame after the Provider's close frame (RFC 6455 §5.5.1)", h.Op)
		}
		if h.Length > int64(s.limit) {
			return cfEvent{}, fmt.Errorf("frame of %d bytes", h.Length)
		}
		switch h.Op {
		case frame.OpPing:
			return cfEvent{}, errors.New("unexpected ping from the Provider (heartbeat is off)")
		case frame.OpPong:
			return cfEvent{kind: cfPong, data: p}, nil
		case frame.OpClose:
			code, reason, err := frame.ParseClose(p)
			if err != nil {
				return cfEvent{}, fmt.Errorf("the Provider's close frame % x: %w", p, err)
			}
			s.serverCode = code
			return cfEvent{kind: cfClose, codes: []frame.CloseCode{code}, data: reason}, nil
		case frame.OpContinuation:
			if !s.inMsg {
				return cfEvent{}, errors.New("continuation frame from the Provider with no message in progress (RFC 6455 §5.4)")
			}
			if h.Rsv1() {
				return cfEvent{}, errors.New("RSV1 on a continuation frame from the Provider (RFC 7692 §6.1)")
			}
		default:
			if s.inMsg {
				return cfEvent{}, errors.New("new data message from the Provider inside a fragmented one (RFC 6455 §5.4)")
			}
			if h.Rsv1() && s.infl == nil {
				return cfEvent{}, errors.New("RSV1 from the Provider without permessage-deflate (RFC 6455 §5.2)")
			}
			s.inMsg, s.op, s.compressed, s.buf = true, h.Op, h.Rsv1(), s.buf[:0]
		}
		if len(s.buf)+len(p) > s.limit {
			return cfEvent{}, fmt.Errorf("message of more than %d bytes", s.limit)
		}
		data := p // a whole message in one frame is not copied
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
				return cfEvent{}, fmt.Errorf("inflating the Provider's message: %w", err)
			}
		}
		if s.op == frame.OpText && !utf8.Valid(data) {
			return cfEvent{}, errors.New("text message from the Provider that is not UTF-8 (RFC 6455 §8.1)")
		}
		// data is valid until the next call.
		ev := cfEvent{kind: cfMsg, op: s.op, data: data, compressed: s.compressed}
		if s.onMsg != nil {
			s.onMsg(ev)
		}
		return ev, nil
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
		if step.trail != nil {
			for _, b := range step.trail {
				if err := s.c.Write(b); err != nil {
					s.fatalf("step %d: writing what was in flight: %v", i+1, err)
				}
				time.Sleep(cfPause)
			}
		}
		if s.serverCode != 0 {
			s.answer()
		}
	}
	s.finish()
}

// answer completes a closing handshake the Provider started (RFC 6455
// §5.5.1: echo its code).
func (s *cfSession) answer() {
	s.t.Helper()
	if s.sentClose {
		return
	}
	s.sentClose = true
	code := s.serverCode
	if code == frame.CloseNoStatus {
		code = 0
	}
	if err := s.c.Write(cfCloseFrame(code, "")); err != nil {
		s.fatalf("answering the close: %v", err)
	}
}

// finish closes (unless done), checks that nothing follows the close
// frames and that the Provider closes TCP, and checks the OnClose event.
func (s *cfSession) finish() {
	s.t.Helper()
	if s.serverCode == 0 {
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
		// RFC 6455 §5.5.1: the answer echoes the code (the Provider does).
		if want := s.clientCode; got.codes[0] != want {
			s.fatalf("the Provider answered close %v with %v", want, got.codes[0])
		}
	}
	// Nothing after the close frames; the Provider closes TCP first.
	for i := 0; i < 100; i++ {
		h, _, err := s.c.ReadFrame()
		if err == nil {
			s.fatalf("%v frame after the closing handshake", h.Op)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			s.fatalf("the Provider did not close TCP after the closing handshake (RFC 6455 §7.1.1)")
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
			strings.Contains(err.Error(), "connection reset") {
			break
		}
		s.fatalf("reading after the close: %v", err)
	}
	// The server half-closed after its last byte; the client closes too,
	// which lets the Provider release the connection.
	_ = s.c.Close()
	// OnClose reports the code of the close that came first.
	want := s.serverCode
	if s.clientCode != 0 {
		want = s.clientCode
	}
	var got closed
	s.e.wait(s.t, "OnClose", func(e *events) bool {
		for _, cl := range e.closes {
			if cl.c == s.conn {
				got = cl
				return true
			}
		}
		return false
	})
	if got.code != want {
		s.fatalf("OnClose code %v, want %v", got.code, want)
	}
}

// cfRun runs cases as subtests, each on a new connection to the Provider
// at addr.
func cfRun(t *testing.T, e *events, addr string, cases []cfCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.title(), func(t *testing.T) {
			s := cfOpen(t, e, addr, "/connect")
			s.where = "[" + c.ab + ", " + c.rfc + "]"
			st := c.steps
			if c.lazy != nil {
				st = c.lazy()
			}
			s.run(st)
		})
	}
}
