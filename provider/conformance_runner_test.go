package provider

// The runner of the conformance cases. A case (internal/wstest/conformance)
// is a script of writes (raw bytes, masked as a client must, written at
// once, chopped into small writes, or frame by frame) and of the events it
// then expects from the Provider, in order: echoed messages, pongs, its
// close frame. After the script the client closes with 1000 unless a close
// was already exchanged, and every case ends by checking that nothing
// follows the close frames, that the Provider closes TCP first (RFC 6455
// §7.1.1), and that OnClose reported the code of the close that ended the
// connection.

import (
	"testing"

	"github.com/networkcluster/networkcluster/internal/wstest"
	cf "github.com/networkcluster/networkcluster/internal/wstest/conformance"
)

// cfSession is the client side of one case.
type cfSession struct {
	cf.Session
	c    *wstest.Client
	conn *Connection
	e    *events
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
	s := &cfSession{
		Session: cf.Session{T: t, Side: cf.Client, Peer: "Provider", PongsAnyOrder: true, Write: c.Write, ReadFrame: c.ReadFrame, Limit: 64 << 20},
		c:       c, conn: conn, e: e,
	}
	s.Finish = s.finish
	return s
}

// finish closes (unless done), checks that nothing follows the close
// frames and that the Provider closes TCP, and checks the OnClose event.
func (s *cfSession) finish() {
	s.T.Helper()
	s.CloseHandshake()
	s.ExpectEOF()
	// The server half-closed after its last byte; the client closes too,
	// which lets the Provider release the connection.
	_ = s.c.Close()
	// OnClose reports the code of the close that came first.
	want := s.FirstCode()
	var got closed
	s.e.wait(s.T, "OnClose", func(e *events) bool {
		for _, cl := range e.closes {
			if cl.c == s.conn {
				got = cl
				return true
			}
		}
		return false
	})
	if got.code != want {
		s.Fatalf("OnClose code %v, want %v", got.code, want)
	}
}

// cfRun runs cases as subtests, each on a new connection to the Provider
// at addr.
func cfRun(t *testing.T, e *events, addr string, cases []cf.Case) {
	t.Helper()
	cf.Run(t, cases, func(t *testing.T, c cf.Case) {
		s := cfOpen(t, e, addr, "/connect")
		s.Where = c.Where()
		s.Run(c.Script())
	})
}
