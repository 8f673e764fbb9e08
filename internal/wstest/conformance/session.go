package conformance

import (
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
)

// Session is the test side of one case's connection. A package's runner
// makes one per connection, with the raw I/O of its side, and adds what
// only it can check (how the peer reports the close). Every failure
// message starts with Where.
type Session struct {
	T     testing.TB
	Side  Side   // the side the test plays
	Peer  string // the peer under test ("Provider", "Consumer"), for messages
	Where string // "[case, RFC]"

	// Write writes b in one write. ReadFrame reads one frame from the
	// peer, unmasked; its payload need only stay valid until the next call.
	Write     func(b []byte) error
	ReadFrame func() (frame.Header, []byte, error)

	Limit     int                            // largest frame and message accepted from the peer
	Inflate   func(p []byte) ([]byte, error) // inflates RSV1 messages; nil: RSV1 is an error
	OnMessage func(ev Event)                 // if set, sees every message Next returns
	// PongsAnyOrder is for a peer that answers pings on its reader and
	// messages from a handler that runs apart from it: a pong may then come
	// before the reply to a message sent earlier. Pongs keep their order
	// among pongs, messages and the close theirs among themselves.
	PongsAnyOrder bool
	// Finish, if set, ends a case after its script (Run): the closing
	// handshake and what the package checks after it.
	Finish func()

	SentClose bool            // the test side sent a close frame (first or in answer)
	OwnCode   frame.CloseCode // the code of the test side's close if it was first
	PeerCode  frame.CloseCode // the code of the peer's close frame; 0 until it came

	inMsg      bool
	op         frame.Opcode
	compressed bool
	buf        []byte
}

// Fatalf fails the test with a message that starts with Where.
func (s *Session) Fatalf(format string, a ...any) {
	s.T.Helper()
	s.T.Fatalf(s.Where+" "+format, a...)
}

// WriteStep performs a step's writes.
func (s *Session) WriteStep(st Step) {
	s.T.Helper()
	if st.Closes != 0 && !s.SentClose {
		s.SentClose, s.OwnCode = true, st.Closes
	}
	var err error
	switch {
	case st.Frames != nil:
		for _, f := range st.Frames {
			if err = s.Write(f); err != nil {
				break
			}
			time.Sleep(Pause)
		}
	case st.Chop > 0:
		pieces := (len(st.Data) + st.Chop - 1) / st.Chop
		for off := 0; off < len(st.Data) && err == nil; off += st.Chop {
			err = s.Write(st.Data[off:min(off+st.Chop, len(st.Data))])
			if pieces <= 256 {
				time.Sleep(Pause / 4)
			}
		}
	case len(st.Data) > 0:
		err = s.Write(st.Data)
	}
	if err != nil {
		s.Fatalf("write: %v", err)
	}
}

// Next reads frames until they make an event, checking the peer's framing
// on the way (RFC 6455 §5.1–§5.5: no reserved bits without an extension,
// fragments in order, nothing after its close frame; RFC 7692 §6.1: RSV1
// on first frames only; RFC 6455 §8.1: text valid UTF-8). The peer's
// pings are errors: the cases run without heartbeats.
func (s *Session) Next() (Event, error) {
	for {
		h, p, err := s.ReadFrame()
		if err != nil {
			return Event{}, err
		}
		if s.PeerCode != 0 {
			return Event{}, fmt.Errorf("%v frame after the %s's close frame (RFC 6455 §5.5.1)", h.Op, s.Peer)
		}
		if h.Length > int64(s.Limit) {
			return Event{}, fmt.Errorf("frame of %d bytes", h.Length)
		}
		switch h.Op {
		case opPing:
			return Event{}, fmt.Errorf("unexpected ping from the %s (the cases run without heartbeats)", s.Peer)
		case opPong:
			return Event{Kind: KindPong, Data: p}, nil
		case opClose:
			code, reason, err := frame.ParseClose(p)
			if err != nil {
				return Event{}, fmt.Errorf("the %s's close frame % x: %w", s.Peer, p, err)
			}
			s.PeerCode = code
			return Event{Kind: KindClose, Codes: []frame.CloseCode{code}, Data: reason}, nil
		case opCont:
			if !s.inMsg {
				return Event{}, fmt.Errorf("continuation frame from the %s with no message in progress (RFC 6455 §5.4)", s.Peer)
			}
			if h.Rsv1() {
				return Event{}, fmt.Errorf("RSV1 on a continuation frame from the %s (RFC 7692 §6.1)", s.Peer)
			}
		default:
			if s.inMsg {
				return Event{}, fmt.Errorf("new data message from the %s inside a fragmented one (RFC 6455 §5.4)", s.Peer)
			}
			if h.Rsv1() && s.Inflate == nil {
				return Event{}, fmt.Errorf("RSV1 from the %s without permessage-deflate (RFC 6455 §5.2)", s.Peer)
			}
			s.inMsg, s.op, s.compressed, s.buf = true, h.Op, h.Rsv1(), s.buf[:0]
		}
		if len(s.buf)+len(p) > s.Limit {
			return Event{}, fmt.Errorf("message of more than %d bytes", s.Limit)
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
			if data, err = s.Inflate(data); err != nil {
				return Event{}, fmt.Errorf("inflating the %s's message: %w", s.Peer, err)
			}
		}
		if s.op == opText && !utf8.Valid(data) {
			return Event{}, fmt.Errorf("text message from the %s that is not UTF-8 (RFC 6455 §8.1)", s.Peer)
		}
		// data is valid until the next call.
		ev := Event{Kind: KindMsg, Op: s.op, Data: data, Compressed: s.compressed}
		if s.OnMessage != nil {
			s.OnMessage(ev)
		}
		return ev, nil
	}
}

// Play performs steps: each step's writes, the events it expects, then
// what it had in flight; once the peer has sent its close frame, it
// answers it.
func (s *Session) Play(steps []Step) {
	s.T.Helper()
	for i, step := range steps {
		s.WriteStep(step)
		pending := append([]Event(nil), step.Want...)
		for len(pending) > 0 {
			got, err := s.Next()
			if err != nil {
				s.Fatalf("step %d: waiting for %v: %v", i+1, pending[0], err)
			}
			j := 0
			if s.PongsAnyOrder {
				// The first wanted pong matches a pong; the first wanted
				// other event matches anything else.
				for j < len(pending)-1 && (pending[j].Kind == KindPong) != (got.Kind == KindPong) {
					j++
				}
			}
			if !pending[j].Match(got) {
				s.Fatalf("step %d: got %v, want %v", i+1, got, pending[j])
			}
			pending = append(pending[:j], pending[j+1:]...)
		}
		for _, b := range step.Trail {
			if err := s.Write(b); err != nil {
				s.Fatalf("step %d: writing what was in flight: %v", i+1, err)
			}
			time.Sleep(Pause)
		}
		if s.PeerCode != 0 {
			s.Answer()
		}
	}
}

// Run plays steps, then calls Finish.
func (s *Session) Run(steps []Step) {
	s.T.Helper()
	s.Play(steps)
	if s.Finish != nil {
		s.Finish()
	}
}

// Answer completes a closing handshake the peer started (RFC 6455 §5.5.1:
// echo its code), unless the test side has sent its close frame.
func (s *Session) Answer() {
	s.T.Helper()
	if s.SentClose {
		return
	}
	s.SentClose = true
	code := s.PeerCode
	if code == frame.CloseNoStatus {
		code = 0
	}
	if err := s.Write(s.Side.CloseFrame(code, "")); err != nil {
		s.Fatalf("answering the close: %v", err)
	}
}

// CloseHandshake ends the closing handshake after a script: unless the
// peer has sent its close frame, the test side closes with 1000 (if it has
// not closed already) and the peer's close frame must come next and echo
// the code (RFC 6455 §5.5.1).
func (s *Session) CloseHandshake() {
	s.T.Helper()
	if s.PeerCode != 0 {
		return
	}
	if !s.SentClose {
		s.WriteStep(s.Side.SendClose(frame.CloseNormal))
	}
	got, err := s.Next()
	if err != nil {
		s.Fatalf("after the script: waiting for the close: %v", err)
	}
	if got.Kind != KindClose {
		s.Fatalf("after the script: got %v, want nothing before the close", got)
	}
	if want := s.OwnCode; got.Codes[0] != want {
		s.Fatalf("the %s answered close %v with %v", s.Peer, want, got.Codes[0])
	}
}

// ExpectEOF checks that nothing follows the close frames and that the peer
// closes TCP (RFC 6455 §7.1.1) before ReadFrame's deadline.
func (s *Session) ExpectEOF() {
	s.T.Helper()
	h, _, err := s.ReadFrame()
	switch {
	case err == nil:
		s.Fatalf("%v frame after the closing handshake", h.Op)
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.Fatalf("the %s did not close TCP after the closing handshake (RFC 6455 §7.1.1)", s.Peer)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		strings.Contains(err.Error(), "connection reset"):
	default:
		s.Fatalf("reading after the close: %v", err)
	}
}

// FirstCode is the code of the close that came first, which the peer must
// report.
func (s *Session) FirstCode() frame.CloseCode {
	if s.OwnCode != 0 {
		return s.OwnCode
	}
	return s.PeerCode
}
