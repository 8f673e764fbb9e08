// Package conformance holds what the conformance cases of the provider and
// consumer packages share. A case is a script: steps that each write bytes
// to the peer under test (raw frames, valid or not, written at once, in
// chops or frame by frame) and then expect events from it, in order
// (messages, pongs, its close frame). The cases after the sections of
// Autobahn|Testsuite that hold for a server and a client alike (framing,
// pings, reserved bits, opcodes, fragmentation, UTF-8, close, large
// messages and limits, auto-fragmentation) are written here once, for a
// Side: Client plays a client against the Provider (masked frames),
// Server a server against the Consumer (unmasked frames). A Session runs
// scripts over one connection whose raw I/O the package's runner supplies.
//
// It is a test helper: it fails the test it is given rather than returning
// errors, and nothing in it is safe for concurrent use.
package conformance

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/frame"
)

const (
	opText   = frame.OpText
	opBinary = frame.OpBinary
	opCont   = frame.OpContinuation
	opPing   = frame.OpPing
	opPong   = frame.OpPong
	opClose  = frame.OpClose
)

// Pause separates writes that a case wants to arrive on their own.
const Pause = time.Millisecond

// Kind is the kind of an Event.
type Kind uint8

// The kinds of events.
const (
	KindMsg   Kind = iota + 1 // a whole data message, however fragmented
	KindPong                  // a pong
	KindClose                 // the peer's close frame
)

// Event is something the peer under test sends: a whole data message
// (however fragmented), a pong, or its close frame. The Data of an event
// that Session.Next returns is valid until its next call.
type Event struct {
	Kind       Kind
	Op         frame.Opcode      // KindMsg
	Data       []byte            // KindMsg, KindPong: the payload; KindClose: the reason
	Codes      []frame.CloseCode // KindClose: the acceptable codes (CloseNoStatus: empty payload)
	Compressed bool              // KindMsg: it came with RSV1 (events read only)
}

// EvText expects the text message s.
func EvText(s string) Event { return Event{Kind: KindMsg, Op: opText, Data: []byte(s)} }

// EvTextB expects the text message b.
func EvTextB(b []byte) Event { return Event{Kind: KindMsg, Op: opText, Data: b} }

// EvBin expects the binary message b.
func EvBin(b []byte) Event { return Event{Kind: KindMsg, Op: opBinary, Data: b} }

// EvPong expects a pong with payload s.
func EvPong(s string) Event { return Event{Kind: KindPong, Data: []byte(s)} }

// EvClose expects a close frame with one of codes.
func EvClose(codes ...frame.CloseCode) Event { return Event{Kind: KindClose, Codes: codes} }

// Echo expects the echo of a message: EvTextB or EvBin.
func Echo(op frame.Opcode, p []byte) Event {
	if op == opText {
		return EvTextB(p)
	}
	return EvBin(p)
}

// Match reports whether got, an event read, is the event ev expects.
func (ev Event) Match(got Event) bool {
	if ev.Kind != got.Kind {
		return false
	}
	switch ev.Kind {
	case KindMsg:
		return ev.Op == got.Op && bytes.Equal(ev.Data, got.Data)
	case KindPong:
		return bytes.Equal(ev.Data, got.Data)
	}
	for _, c := range ev.Codes {
		if c == got.Codes[0] {
			return true
		}
	}
	return false
}

func (ev Event) String() string {
	show := func(b []byte) string {
		if len(b) > 40 {
			return fmt.Sprintf("%q... (%d bytes)", b[:40], len(b))
		}
		return fmt.Sprintf("%q", b)
	}
	switch ev.Kind {
	case KindMsg:
		return fmt.Sprintf("%v message %s", ev.Op, show(ev.Data))
	case KindPong:
		return "pong " + show(ev.Data)
	case KindClose:
		return fmt.Sprintf("close %v", ev.Codes)
	}
	return "nothing"
}

// Step writes bytes and then waits for events.
type Step struct {
	Data   []byte   // written in one write, or in pieces of Chop bytes
	Chop   int      // > 0: write Data in pieces of this size, each on its own
	Frames [][]byte // when set instead of Data: one write per frame, each on its own
	// Closes is the code of the valid close frame this step sends (the
	// test side starts the closing handshake; CloseNoStatus for an empty
	// payload), 0 if it sends none.
	Closes frame.CloseCode
	Want   []Event
	// Trail is written after the events arrived, before the test side
	// answers a close among them, each piece on its own: bytes it had in
	// flight when the peer closed.
	Trail [][]byte
}

// Expect returns st expecting ev too.
func (st Step) Expect(ev ...Event) Step { st.Want = append(st.Want, ev...); return st }

// Closing returns st marked as sending a close frame with code.
func (st Step) Closing(code frame.CloseCode) Step {
	st.Closes = code
	return st
}

// Send is a step that writes frames in one write.
func Send(frames ...[]byte) Step {
	if len(frames) == 1 {
		return Step{Data: frames[0]}
	}
	return Step{Data: bytes.Join(frames, nil)}
}

// Chop is a step that writes frames in pieces of n bytes, each on its own.
func Chop(n int, frames ...[]byte) Step { return Step{Data: bytes.Join(frames, nil), Chop: n} }

// Each is a step that writes each frame on its own.
func Each(frames ...[]byte) Step { return Step{Frames: frames} }

// Want is a step that writes nothing and waits for events.
func Want(ev ...Event) Step { return Step{Want: ev} }

// Steps returns its arguments, for tables.
func Steps(s ...Step) []Step { return s }

// SplitAt is a step that writes b in pieces cut at the given offsets, each
// on its own.
func SplitAt(b []byte, cuts ...int) Step {
	var pieces [][]byte
	prev := 0
	for _, c := range cuts {
		pieces = append(pieces, b[prev:c])
		prev = c
	}
	return Each(append(pieces, b[prev:])...)
}

// Case is one conformance case.
type Case struct {
	AB    string // the Autobahn|Testsuite case it follows; "-" for our own
	RFC   string // the RFC section that decides the expected behaviour
	Name  string
	Steps []Step
	Lazy  func() []Step // builds large steps only when the case runs
}

// Title is the case's subtest name.
func (c Case) Title() string {
	if c.AB == "-" {
		return c.Name
	}
	return c.AB + " " + c.Name
}

// Where is "[case, RFC]", the start of the case's failure messages.
func (c Case) Where() string { return "[" + c.AB + ", " + c.RFC + "]" }

// Script returns the case's steps, building them if they are lazy.
func (c Case) Script() []Step {
	if c.Lazy != nil {
		return c.Lazy()
	}
	return c.Steps
}

// Run runs cases as subtests of t; play runs one (on a new connection).
func Run(t *testing.T, cases []Case, play func(t *testing.T, c Case)) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.Title(), func(t *testing.T) { play(t, c) })
	}
}
