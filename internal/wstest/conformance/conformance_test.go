package conformance

import (
	"bytes"
	"testing"

	"github.com/networkcluster/networkcluster/frame"
)

// parse parses the frames in b as the peer under test of side sd would
// (a server parses masked frames, a client unmasked ones) and returns
// their headers and unmasked payloads.
func parse(t *testing.T, sd Side, b []byte) (hs []frame.Header, ps [][]byte) {
	t.Helper()
	role := frame.RoleClient
	if sd == Client {
		role = frame.RoleServer
	}
	for len(b) > 0 {
		h, n, need, err := frame.ParseHeader(b, frame.ParseOptions{Role: role, AllowRSV1: true})
		if err != nil || need != 0 {
			t.Fatalf("% x: %v (need %d)", b, err, need)
		}
		p := append([]byte(nil), b[n:n+int(h.Length)]...)
		if h.Masked {
			frame.Mask(p, h.Mask, 0)
		}
		hs, ps = append(hs, h), append(ps, p)
		b = b[n+int(h.Length):]
	}
	return hs, ps
}

// TestSides: each side's frames parse as its peer must read them, with
// the header size HeaderSize gives, and Fragments splits a message with
// RSV1 on the first frame only.
func TestSides(t *testing.T) {
	msg := bytes.Repeat([]byte("0123456789"), 30)
	for _, sd := range []Side{Client, Server} {
		f := sd.FB(true, frame.OpText, msg)
		if len(f) != sd.HeaderSize(len(msg))+len(msg) {
			t.Fatalf("side %d: %d bytes, header %d", sd, len(f), sd.HeaderSize(len(msg)))
		}
		hs, ps := parse(t, sd, bytes.Join(sd.Fragments(frame.OpBinary, 4, msg, 128), nil))
		if len(hs) != 3 || !hs[0].Rsv1() || hs[1].Rsv1() || hs[1].Op != frame.OpContinuation || !hs[2].Fin || hs[1].Fin ||
			!bytes.Equal(bytes.Join(ps, nil), msg) {
			t.Fatalf("side %d: fragments %+v", sd, hs)
		}
		hs, ps = parse(t, sd, sd.RawFrame(0x81, []byte{126, 0, 5}, []byte("Hello")))
		if len(hs) != 1 || string(ps[0]) != "Hello" {
			t.Fatalf("side %d: raw frame %+v %q", sd, hs, ps)
		}
		hs, ps = parse(t, sd, sd.CloseFrame(frame.CloseGoingAway, "bye"))
		if code, reason, err := frame.ParseClose(ps[0]); err != nil || hs[0].Op != frame.OpClose || code != frame.CloseGoingAway || string(reason) != "bye" {
			t.Fatalf("side %d: close %v %q %v", sd, code, reason, err)
		}
	}
}

// TestEvents: Match compares kind, opcode, payload and accepts any of a
// close's codes.
func TestEvents(t *testing.T) {
	got := Event{Kind: KindClose, Codes: []frame.CloseCode{frame.CloseProtocolError}}
	if !EvClose(frame.CloseMandatoryExtension, frame.CloseProtocolError).Match(got) || EvClose(frame.CloseNormal).Match(got) {
		t.Fatal("close codes")
	}
	if !Echo(frame.OpText, []byte("a")).Match(EvText("a")) || Echo(frame.OpBinary, []byte("a")).Match(EvText("a")) || EvPong("a").Match(EvText("a")) {
		t.Fatal("messages")
	}
	if c := (Case{AB: "6.4.3", RFC: "RFC 6455 §8.1", Name: "x", Lazy: func() []Step { return Steps(Want()) }}); c.Title() != "6.4.3 x" ||
		c.Where() != "[6.4.3, RFC 6455 §8.1]" || len(c.Script()) != 1 {
		t.Fatalf("case %q %q", c.Title(), c.Where())
	}
}
