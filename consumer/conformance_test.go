package consumer

// Conformance cases of our own after the sections of Autobahn|Testsuite in
// its fuzzingserver mode (the suite is the server, the Consumer the client
// under test): framing (1), pings and pongs (2), reserved bits (3), opcodes
// (4), fragmentation (5), UTF-8 (6), closing (7), limits and large messages
// (9), auto-fragmentation (10) and permessage-deflate (12, 13) for every
// preset. Each case names the Autobahn case it follows (our own cases say
// "-") and the RFC section that decides what the Consumer must do. A raw
// test server (conformance_runner_test.go) upgrades the connection itself
// and sends exactly the frames of each case; the Consumer's OnMessage sends
// every message back (or, for the large messages of section 9, a digest of
// it), so the server sees what was delivered, in order.

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/networkcluster/networkcluster/compress"
	"github.com/networkcluster/networkcluster/frame"
)

const (
	cfOpText   = frame.OpText
	cfOpBinary = frame.OpBinary
	cfOpCont   = frame.OpContinuation
	cfOpPing   = frame.OpPing
	cfOpPong   = frame.OpPong
	cfOpClose  = frame.OpClose
)

// TestConformance runs sections 1 to 7 and 10 against Consumers of one
// test server.
func TestConformance(t *testing.T) {
	srv := cfListen(t)
	sections := []struct {
		name  string
		cases []cfCase
	}{
		{"1 framing", cfSection1()},
		{"2 pings and pongs", cfSection2()},
		{"3 reserved bits", cfSection3()},
		{"4 opcodes", cfSection4()},
		{"5 fragmentation", cfSection5()},
		{"6 UTF-8", append(cfSection6(), cfSection6Stream()...)},
		{"7 close", cfSection7()},
		{"10 auto-fragmentation", cfSection10()},
	}
	for _, sec := range sections {
		t.Run(sec.name, func(t *testing.T) { cfRun(t, srv, cfEcho, nil, sec.cases) })
	}
}

// TestConformanceUTF8VectorTable checks the table of UTF-8 vectors against
// the standard library, so that a typing mistake cannot hide a bug.
func TestConformanceUTF8VectorTable(t *testing.T) {
	for _, v := range cfUTF8Vectors() {
		if utf8.ValidString(v.data) != v.valid {
			t.Errorf("%s %s: marked valid=%v", v.ab, v.desc, v.valid)
		}
	}
	for n := 0; n < 200; n++ {
		if p := cfText(n); !utf8.Valid(p) || len(p) != n {
			t.Fatalf("cfText(%d) = %q", n, p)
		}
	}
}

// --- section 1: framing ---

func cfSection1() []cfCase {
	const rfc = "RFC 6455 §5.2, §5.6"
	var cs []cfCase
	sizes := []int{0, 125, 126, 127, 128, 65535, 65536}
	for i, n := range sizes {
		p := strings.Repeat("*", n)
		cs = append(cs, cfCase{"1.1." + strconv.Itoa(i+1), rfc, fmt.Sprintf("text, %d bytes", n),
			cfSteps(cfSend(cfF(true, cfOpText, p)).expect(evText(p))), nil})
	}
	big := strings.Repeat("*", 65536)
	cs = append(cs, cfCase{"1.1.8", rfc, "text, 65536 bytes, written in chops of 997", cfSteps(cfChop(997, cfF(true, cfOpText, big)).expect(evText(big))), nil})
	for i, n := range sizes {
		p := bytes.Repeat([]byte{0xfe}, n)
		cs = append(cs, cfCase{"1.2." + strconv.Itoa(i+1), rfc, fmt.Sprintf("binary, %d bytes", n),
			cfSteps(cfSend(cfFB(true, cfOpBinary, p)).expect(evBin(p))), nil})
	}
	bigb := bytes.Repeat([]byte{0xfe}, 65536)
	cs = append(cs, cfCase{"1.2.8", rfc, "binary, 65536 bytes, written in chops of 997", cfSteps(cfChop(997, cfFB(true, cfOpBinary, bigb)).expect(evBin(bigb))), nil})

	// Our own.
	hello := []byte("Hello")
	cs = append(cs,
		cfCase{"-", "RFC 6455 §5.2", "length 5 in the 16-bit form (longer than needed) is accepted",
			cfSteps(cfSend(cfRawFrame(0x81, []byte{126, 0, 5}, hello)).expect(evText("Hello"))), nil},
		cfCase{"-", "RFC 6455 §5.2", "length 5 in the 64-bit form is accepted",
			cfSteps(cfSend(cfRawFrame(0x82, []byte{127, 0, 0, 0, 0, 0, 0, 0, 5}, hello)).expect(evBin(hello))), nil},
		cfCase{"-", "RFC 6455 §5.2", "64-bit length with its most significant bit set",
			cfSteps(cfSend(cfRawFrame(0x82, []byte{127, 0x80, 0, 0, 0, 0, 0, 0, 5}, hello)).expect(evClose(frame.CloseProtocolError))), nil},
		cfCase{"-", "RFC 6455 §5.1", "masked frame from the server",
			cfSteps(cfSend(frame.AppendMaskedFrame(nil, true, cfOpText, false, hello, [4]byte{1, 2, 3, 4})).expect(evClose(frame.CloseProtocolError))), nil},
		cfCase{"-", "RFC 6455 §5.1", "masked frame with an all-zero key from the server",
			cfSteps(cfSend(frame.AppendMaskedFrame(nil, true, cfOpText, false, hello, [4]byte{})).expect(evClose(frame.CloseProtocolError))), nil},
		cfCase{"-", "RFC 6455 §5.2", "three messages and a ping in one write",
			cfSteps(cfSend(cfF(true, cfOpText, "one"), cfF(true, cfOpPing, "p"), cfFB(true, cfOpBinary, []byte{2}), cfF(true, cfOpText, "three")).
				expect(evText("one"), evPong("p"), evBin([]byte{2}), evText("three"))), nil},
	)
	return cs
}

// cfRawFrame builds an unmasked frame with the given first byte and length
// bytes (the 7-bit length and any extended length).
func cfRawFrame(b0 byte, length []byte, payload []byte) []byte {
	b := append([]byte{b0}, length...)
	return append(b, payload...)
}

// TestConformanceEarlyFrames: frames that arrive in the same packet as the
// upgrade response are not lost (RFC 6455 §4.1: the server may send data
// as soon as it has sent its response).
func TestConformanceEarlyFrames(t *testing.T) {
	srv := cfListen(t)
	_, rec, connected := cfStartConsumer(t, srv, cfEcho, nil)
	s := cfAccept(t, srv, rec)
	s.where = "[-, RFC 6455 §4.1]"
	// The frames go in the same write as the response.
	s.upgradeWith(append(cfF(true, cfOpText, "early"), cfF(true, cfOpPing, "bird")...))
	if err := <-connected; err != nil {
		t.Fatalf("Connect: %v", err)
	}
	s.run(cfSteps(cfWant(evText("early"), evPong("bird"))))
}

// cfWant is a step that writes nothing and waits for events.
func cfWant(ev ...cfEvent) cfStep { return cfStep{want: ev} }

// TestConformanceConsumerClose: the Consumer starts the closing handshake
// with Close (RFC 6455 §7.1.2): close 1000, nothing after it, it waits for
// the server's close and for the server to close TCP first (§7.1.1), and
// it reports 1000.
func TestConformanceConsumerClose(t *testing.T) {
	srv := cfListen(t)
	closed := make(chan cfDisc, 1)
	c, s := cfConnect(t, srv, cfEcho, func(o *Options) {
		o.OnClose = func(code frame.CloseCode, reason string) { closed <- cfDisc{code, reason} }
		o.CloseTimeout = 5 * time.Second
	})
	s.where = "[-, RFC 6455 §7.1.2]"
	s.write(cfSend(cfF(true, cfOpText, "hi")))
	if got, err := s.next(); err != nil || !evText("hi").match(got) {
		s.fatalf("echo: %v, %v", got, err)
	}
	done := make(chan struct{})
	go func() { c.Close(); close(done) }()
	got, err := s.next()
	if err != nil || got.kind != cfClose || got.codes[0] != frame.CloseNormal {
		s.fatalf("got %v, %v; want close 1000", got, err)
	}
	select {
	case <-done:
		s.fatalf("Close returned before the server answered")
	default:
	}
	s.answer()
	s.finish()
	<-done
	if ev := <-closed; ev.code != frame.CloseNormal {
		t.Fatalf("OnClose %v", ev)
	}
}

func cfSection2() []cfCase {
	const rfc = "RFC 6455 §5.5.2, §5.5.3"
	bin := string([]byte{0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff})
	p125 := strings.Repeat("\xfe", 125)
	var ten, tenPongs []cfEvent
	var tenFrames [][]byte
	for i := 0; i < 10; i++ {
		pl := "payload-" + strconv.Itoa(i)
		tenFrames = append(tenFrames, cfF(true, cfOpPing, pl))
		ten = append(ten, evPong(pl))
	}
	tenPongs = ten
	return []cfCase{
		{"2.1", rfc, "ping without payload", cfSteps(cfSend(cfF(true, cfOpPing, "")).expect(evPong(""))), nil},
		{"2.2", rfc, "ping with a text payload", cfSteps(cfSend(cfF(true, cfOpPing, "Hello, world!")).expect(evPong("Hello, world!"))), nil},
		{"2.3", rfc, "ping with a binary payload", cfSteps(cfSend(cfF(true, cfOpPing, bin)).expect(evPong(bin))), nil},
		{"2.4", rfc, "ping with 125 bytes", cfSteps(cfSend(cfF(true, cfOpPing, p125)).expect(evPong(p125))), nil},
		{"2.5", "RFC 6455 §5.5", "ping with 126 bytes", cfSteps(cfSend(cfF(true, cfOpPing, p125+"\xfe")).expect(evClose(frame.CloseProtocolError))), nil},
		{"2.6", rfc, "ping with 125 bytes written 1 byte at a time", cfSteps(cfChop(1, cfF(true, cfOpPing, p125)).expect(evPong(p125))), nil},
		{"2.7", rfc, "unsolicited pong without payload is ignored", cfSteps(cfSend(cfF(true, cfOpPong, ""))), nil},
		{"2.8", rfc, "unsolicited pong with payload is ignored", cfSteps(cfSend(cfF(true, cfOpPong, "unsolicited pong payload"))), nil},
		{"2.9", rfc, "unsolicited pong, then ping", cfSteps(cfSend(cfF(true, cfOpPong, "unsolicited pong payload"), cfF(true, cfOpPing, "ping payload")).expect(evPong("ping payload"))), nil},
		// RFC 6455 §5.5.3 allows answering only the latest of several
		// pings; the Consumer answers each, in order.
		{"2.10", rfc, "10 pings, each answered in order", cfSteps(cfSend(tenFrames...).expect(tenPongs...)), nil},
		{"2.11", rfc, "10 pings written 1 byte at a time", cfSteps(cfChop(1, tenFrames...).expect(tenPongs...)), nil},
		{"-", rfc, "ping between the fragments of a binary message", cfSteps(cfSend(cfF(false, cfOpBinary, "ab"), cfF(true, cfOpPing, "x"), cfF(true, cfOpCont, "cd")).expect(evPong("x"), evBin([]byte("abcd")))), nil},
		{"-", "RFC 6455 §5.5", "pong with 126 bytes", cfSteps(cfSend(cfF(true, cfOpPong, p125+"\xfe")).expect(evClose(frame.CloseProtocolError))), nil},
	}
}

func cfSection3() []cfCase {
	const rfc = "RFC 6455 §5.2"
	bad := frame.CloseProtocolError
	hello := "Hello, world!"
	bin := string(cfBinary(256, 3))
	return []cfCase{
		{"3.1", rfc, "text with RSV3 (0x10)", cfSteps(cfSend(cfRsv(1, true, cfOpText, hello)).expect(evClose(bad))), nil},
		{"3.2", rfc, "text, then text with RSV2, then ping", cfSteps(cfSend(cfF(true, cfOpText, hello), cfRsv(2, true, cfOpText, hello), cfF(true, cfOpPing, "")).expect(evText(hello), evClose(bad))), nil},
		{"3.3", rfc, "3.2 frame by frame", cfSteps(cfEach(cfF(true, cfOpText, hello), cfRsv(3, true, cfOpText, hello), cfF(true, cfOpPing, "")).expect(evText(hello), evClose(bad))), nil},
		{"3.4", rfc, "3.2 byte by byte", cfSteps(cfChop(1, cfF(true, cfOpText, hello), cfRsv(4, true, cfOpText, hello), cfF(true, cfOpPing, "")).expect(evText(hello), evClose(bad))), nil},
		{"3.5", rfc, "binary with RSV1 and RSV3 (0x50)", cfSteps(cfSend(cfRsv(5, true, cfOpBinary, bin)).expect(evClose(bad))), nil},
		{"3.6", rfc, "ping with RSV1 and RSV2 (0x60)", cfSteps(cfSend(cfRsv(6, true, cfOpPing, hello)).expect(evClose(bad))), nil},
		{"3.7", rfc, "close with all reserved bits (0x70)", cfSteps(cfSend(cfRsvClose(7)).expect(evClose(bad))), nil},
		{"-", "RFC 6455 §5.2, RFC 7692 §6", "text with RSV1 when permessage-deflate was not negotiated", cfSteps(cfSend(cfRsv(4, true, cfOpText, hello)).expect(evClose(bad))), nil},
		{"-", rfc, "continuation with RSV2", cfSteps(cfSend(cfF(false, cfOpText, "a"), cfRsv(2, true, cfOpCont, "b")).expect(evClose(bad))), nil},
		{"-", rfc, "pong with RSV3", cfSteps(cfSend(cfRsv(1, true, cfOpPong, "")).expect(evClose(bad))), nil},
	}
}

func cfRsvClose(rsv byte) []byte {
	return cfFrameRsv(true, cfOpClose, rsv, frame.AppendClose(nil, frame.CloseNormal, ""))
}

func cfSection4() []cfCase {
	const rfc = "RFC 6455 §5.2"
	bad := frame.CloseProtocolError
	hello := "Hello, world!"
	ping := cfF(true, cfOpPing, "")
	var cs []cfCase
	for i, op := range []frame.Opcode{3, 4, 5, 6, 7, 11, 12, 13, 14, 15} {
		group, n := "4.1.", i+1
		if op > 7 {
			group, n = "4.2.", i-4
		}
		f := cfF(true, op, "")
		name := fmt.Sprintf("reserved opcode %d", op)
		if n%2 == 0 || n == 5 {
			f = cfF(true, op, "reserved opcode payload")
			name += " with payload"
		}
		st := cfSend(f).expect(evClose(bad))
		if n >= 3 {
			st = cfSend(cfF(true, cfOpText, hello), f, ping).expect(evText(hello), evClose(bad))
			name = "text, then " + name + ", then ping"
		}
		cs = append(cs, cfCase{group + strconv.Itoa(n), rfc, name, cfSteps(st), nil})
	}
	cs = append(cs,
		cfCase{"-", rfc, "reserved opcode 3 as the last fragment of a message", cfSteps(cfSend(cfF(false, cfOpText, "a"), cfF(true, 3, "b")).expect(evClose(bad))), nil},
		cfCase{"-", rfc, "reserved control opcode 11 between fragments", cfSteps(cfSend(cfF(false, cfOpText, "a"), cfF(true, 11, ""), cfF(true, cfOpCont, "b")).expect(evClose(bad))), nil},
	)
	return cs
}

func cfSection5() []cfCase {
	const rfc = "RFC 6455 §5.4"
	bad := frame.CloseProtocolError
	f1, f2 := cfF(false, cfOpText, "fragment1"), cfF(true, cfOpCont, "fragment2")
	ping := cfF(true, cfOpPing, "ping payload")
	contFin := cfF(true, cfOpCont, "non-continuation payload")
	contMore := cfF(false, cfOpCont, "non-continuation payload")
	text := cfF(true, cfOpText, "Hello, world!")
	twice := func(a, b, c []byte) [][]byte { return [][]byte{a, b, c, a, b, c} }
	cs := []cfCase{
		{"5.1", "RFC 6455 §5.4, §5.5", "ping in 2 fragments", cfSteps(cfSend(cfF(false, cfOpPing, "fragment1"), cfF(true, cfOpCont, "fragment2")).expect(evClose(bad))), nil},
		{"5.2", "RFC 6455 §5.4, §5.5", "pong in 2 fragments", cfSteps(cfSend(cfF(false, cfOpPong, "fragment1"), cfF(true, cfOpCont, "fragment2")).expect(evClose(bad))), nil},
		{"5.3", rfc, "text in 2 fragments", cfSteps(cfSend(f1, f2).expect(evText("fragment1fragment2"))), nil},
		{"5.4", rfc, "5.3 frame by frame", cfSteps(cfEach(f1, f2).expect(evText("fragment1fragment2"))), nil},
		{"5.5", rfc, "5.3 byte by byte", cfSteps(cfChop(1, f1, f2).expect(evText("fragment1fragment2"))), nil},
		{"5.6", rfc, "text in 2 fragments with a ping between", cfSteps(cfSend(f1, ping, f2).expect(evPong("ping payload"), evText("fragment1fragment2"))), nil},
		{"5.7", rfc, "5.6 frame by frame", cfSteps(cfEach(f1, ping, f2).expect(evPong("ping payload"), evText("fragment1fragment2"))), nil},
		{"5.8", rfc, "5.6 byte by byte", cfSteps(cfChop(1, f1, ping, f2).expect(evPong("ping payload"), evText("fragment1fragment2"))), nil},
		{"5.9", rfc, "final continuation with nothing to continue, then text", cfSteps(cfSend(contFin, f1, ping, f2).expect(evClose(bad))), nil},
		{"5.10", rfc, "5.9 frame by frame", cfSteps(cfEach(contFin, f1, ping, f2).expect(evClose(bad))), nil},
		{"5.11", rfc, "5.9 byte by byte", cfSteps(cfChop(1, contFin, f1, ping, f2).expect(evClose(bad))), nil},
		{"5.12", rfc, "non-final continuation with nothing to continue, then text", cfSteps(cfSend(contMore, f1, ping, f2).expect(evClose(bad))), nil},
		{"5.13", rfc, "5.12 frame by frame", cfSteps(cfEach(contMore, f1, ping, f2).expect(evClose(bad))), nil},
		{"5.14", rfc, "5.12 byte by byte", cfSteps(cfChop(1, contMore, f1, ping, f2).expect(evClose(bad))), nil},
		{"5.15", rfc, "text in 2 fragments, then a continuation with nothing to continue",
			cfSteps(cfSend(f1, f2, cfF(false, cfOpCont, "fragment3"), cfF(true, cfOpText, "fragment4")).expect(evText("fragment1fragment2"), evClose(bad))), nil},
		{"5.16", rfc, "twice: non-final continuation, text, continuation",
			cfSteps(cfSend(twice(cfF(false, cfOpCont, "fragment1"), cfF(false, cfOpText, "fragment2"), cfF(true, cfOpCont, "fragment3"))...).expect(evClose(bad))), nil},
		{"5.17", rfc, "twice: final continuation, text, continuation",
			cfSteps(cfSend(twice(cfF(true, cfOpCont, "fragment1"), cfF(false, cfOpText, "fragment2"), cfF(true, cfOpCont, "fragment3"))...).expect(evClose(bad))), nil},
		{"5.18", rfc, "text in 2 fragments that both carry the text opcode", cfSteps(cfSend(f1, cfF(true, cfOpText, "fragment2")).expect(evClose(bad))), nil},
	}
	// 5.19, 5.20: pings mid-message are answered at once, before the
	// message is complete.
	frags := func(i int, fin bool) []byte {
		op := cfOpCont
		if i == 1 {
			op = cfOpText
		}
		return cfF(fin, op, "fragment"+strconv.Itoa(i))
	}
	whole := evText("fragment1fragment2fragment3fragment4fragment5")
	p1, p2 := cfF(true, cfOpPing, "pongme 1!"), cfF(true, cfOpPing, "pongme 2!")
	cs = append(cs,
		cfCase{"5.19", rfc, "text in 5 fragments with 2 pings, answered before the message ends", cfSteps(
			cfSend(frags(1, false), frags(2, false), p1).expect(evPong("pongme 1!")),
			cfSend(frags(3, false), frags(4, false), p2).expect(evPong("pongme 2!")),
			cfSend(frags(5, true)).expect(whole)), nil},
		cfCase{"5.20", rfc, "5.19 frame by frame", cfSteps(
			cfEach(frags(1, false), frags(2, false), p1).expect(evPong("pongme 1!")),
			cfEach(frags(3, false), frags(4, false), p2).expect(evPong("pongme 2!")),
			cfEach(frags(5, true)).expect(whole)), nil},
		cfCase{"-", rfc, "binary in 3 fragments, the middle one empty", cfSteps(cfSend(cfF(false, cfOpBinary, "a"), cfF(false, cfOpCont, ""), cfF(true, cfOpCont, "b")).expect(evBin([]byte("ab")))), nil},
		cfCase{"-", rfc, "binary fragment, then a text frame", cfSteps(cfSend(cfF(false, cfOpBinary, "a"), text).expect(evClose(bad))), nil},
		cfCase{"-", rfc, "two messages back to back after a fragmented one", cfSteps(cfSend(f1, f2, text, cfF(true, cfOpBinary, "b")).expect(evText("fragment1fragment2"), evText("Hello, world!"), evBin([]byte("b")))), nil},
	)
	return cs
}

// cfKosmeBad is κόσμε, then U+D800 (a surrogate, invalid), then "edited":
// the message of Autobahn cases 6.3 and 6.4.
const cfKosmeBad = cfKosme + "\xed\xa0\x80edited"

func cfSection6() []cfCase {
	const rfc = "RFC 6455 §5.6, §8.1; RFC 3629"
	inval := frame.CloseInvalidPayload
	mixed := "Hello-µ@ßöäüàá-UTF-8!!"
	bytewise := func(s string) [][]byte {
		if s == "" {
			return [][]byte{cfF(true, cfOpText, "")}
		}
		var fs [][]byte
		for i := 0; i < len(s); i++ {
			op := cfOpCont
			if i == 0 {
				op = cfOpText
			}
			fs = append(fs, cfF(i == len(s)-1, op, s[i:i+1]))
		}
		return fs
	}
	cs := []cfCase{
		{"6.1.1", rfc, "empty text", cfSteps(cfSend(cfF(true, cfOpText, "")).expect(evText(""))), nil},
		{"6.1.2", rfc, "text in 3 empty fragments", cfSteps(cfSend(cfF(false, cfOpText, ""), cfF(false, cfOpCont, ""), cfF(true, cfOpCont, "")).expect(evText(""))), nil},
		{"6.1.3", rfc, "text in 3 fragments, the first and last empty", cfSteps(cfSend(cfF(false, cfOpText, ""), cfF(false, cfOpCont, "middle frame payload"), cfF(true, cfOpCont, "")).expect(evText("middle frame payload"))), nil},
		{"6.2.1", rfc, "valid UTF-8 in one frame", cfSteps(cfSend(cfF(true, cfOpText, mixed)).expect(evText(mixed))), nil},
		{"6.2.2", rfc, "valid UTF-8 in 2 fragments cut at a character boundary", cfSteps(cfSend(cfF(false, cfOpText, mixed[:13]), cfF(true, cfOpCont, mixed[13:])).expect(evText(mixed))), nil},
		{"6.2.3", rfc, "valid UTF-8 in fragments of 1 byte", cfSteps(cfSend(bytewise(mixed)...).expect(evText(mixed))), nil},
		{"6.2.4", rfc, "κόσμε in fragments of 1 byte", cfSteps(cfSend(bytewise(cfKosme)...).expect(evText(cfKosme))), nil},
		{"6.3.1", rfc, "invalid UTF-8 (a surrogate) in one frame", cfSteps(cfSend(cfF(true, cfOpText, cfKosmeBad)).expect(evClose(inval))), nil},
		{"6.3.2", rfc, "invalid UTF-8 (a surrogate) in fragments of 1 byte", cfSteps(cfSend(bytewise(cfKosmeBad)...).expect(evClose(inval))), nil},
		// 6.4: fail fast. The message is never finished: the Consumer must
		// fail the connection on the fragment that holds the bad byte.
		{"6.4.1", rfc, "fail fast: the fragment holding U+110000 fails the connection before the message ends", cfSteps(
			cfSend(cfF(false, cfOpText, cfKosme)),
			cfSend(cfF(false, cfOpCont, "\xf4\x90\x80\x80")).expect(evClose(inval))), nil},
		{"6.4.2", rfc, "fail fast: a fragment ending inside a character is accepted, the next byte fails", cfSteps(
			cfSend(cfF(false, cfOpText, cfKosme+"\xf4")),
			cfSend(cfF(false, cfOpCont, "\x90")).expect(evClose(inval))), nil},
		// 6.4.3, 6.4.4 cut one small frame into writes. The Consumer checks
		// a frame that fits its read buffer once it has all of it (Autobahn
		// rates this NON-STRICT); larger frames are checked piece by piece
		// (cfSection6Stream).
		{"6.4.3", rfc, "one frame written in 3 pieces, the 2nd holding the bad bytes (failed at the frame's end)", cfSteps(
			cfSplitAt(cfF(true, cfOpText, cfKosme+"\xf4\x90\x80\x80edited"), 2+len(cfKosme), 2+len(cfKosme)+4).expect(evClose(inval))), nil},
		{"6.4.4", rfc, "one frame written in 4 pieces, the 2nd a lone 0xf4 (failed at the frame's end)", cfSteps(
			cfSplitAt(cfF(true, cfOpText, cfKosme+"\xf4\x90\x80\x80edited"), 2+len(cfKosme), 2+len(cfKosme)+1, 2+len(cfKosme)+2).expect(evClose(inval))), nil},
		{"-", rfc, "fail fast: an overlong '/' in the first fragment fails before the message ends", cfSteps(
			cfSend(cfF(false, cfOpText, "ok so far \xc0\xaf")).expect(evClose(inval))), nil},
		{"-", rfc, "text ending inside a character", cfSteps(cfSend(cfF(true, cfOpText, "abc\xe2\x82")).expect(evClose(inval))), nil},
		{"-", rfc, "text ending inside a character, fragmented", cfSteps(cfSend(cfF(false, cfOpText, "abc\xe2"), cfF(true, cfOpCont, "\x82")).expect(evClose(inval))), nil},
		{"-", rfc, "a character split over 3 fragments with a ping inside", cfSteps(cfSend(cfF(false, cfOpText, "\xf0\x9f"), cfF(true, cfOpPing, "p"), cfF(false, cfOpCont, "\x8e"), cfF(true, cfOpCont, "\x89")).expect(evPong("p"), evText("🎉"))), nil},
		{"-", rfc, "invalid UTF-8 in a binary message is data, not text", cfSteps(cfSend(cfF(true, cfOpBinary, cfKosmeBad)).expect(evBin([]byte(cfKosmeBad)))), nil},
	}
	for _, v := range cfUTF8Vectors() {
		want := evText(v.data)
		if !v.valid {
			want = evClose(inval)
		}
		verdict := "invalid"
		if v.valid {
			verdict = "valid"
		}
		cs = append(cs,
			cfCase{v.ab, rfc, v.desc + " (" + verdict + "), one frame", cfSteps(cfSend(cfF(true, cfOpText, v.data)).expect(want)), nil},
			cfCase{v.ab, rfc, v.desc + " (" + verdict + "), fragments of 1 byte", cfSteps(cfSend(bytewise(v.data)...).expect(want)), nil})
	}
	return cs
}

// cfSplitAt is a step that writes b in pieces cut at the given offsets,
// each on its own.
func cfSplitAt(b []byte, cuts ...int) cfStep {
	var pieces [][]byte
	prev := 0
	for _, c := range cuts {
		pieces = append(pieces, b[prev:c])
		prev = c
	}
	return cfEach(append(pieces, b[prev:])...)
}

func cfSection7() []cfCase {
	const rfc = "RFC 6455 §5.5.1, §7.1"
	normal := frame.CloseNormal
	bad := frame.CloseProtocolError
	hw := "Hello World!"
	cl := cfCloseFrame(normal, "")
	cs := []cfCase{
		{"7.1.1", rfc, "echo, then a clean close", cfSteps(cfSend(cfF(true, cfOpText, hw)).expect(evText(hw)), cfSendClose(normal)), nil},
		{"7.1.2", rfc, "two close frames: the second is ignored", cfSteps(cfSend(cl, cl).closing(normal).expect(evClose(normal))), nil},
		{"7.1.3", rfc, "ping after close is not answered", cfSteps(cfSend(cl, cfF(true, cfOpPing, hw)).closing(normal).expect(evClose(normal))), nil},
		{"7.1.4", rfc, "text after close is not delivered", cfSteps(cfSend(cl, cfF(true, cfOpText, hw)).closing(normal).expect(evClose(normal))), nil},
		{"7.1.5", rfc, "close between the fragments of a message: the message is dropped", cfSteps(cfSend(cfF(false, cfOpText, "fragment1"), cl, cfF(true, cfOpCont, "fragment2")).closing(normal).expect(evClose(normal))), nil},
		{"7.1.6", rfc, "256 KiB message, close, ping: echo, close, no pong", nil, func() []cfStep {
			big := cfText(256 << 10)
			return cfSteps(cfSend(cfFB(true, cfOpText, big), cl, cfF(true, cfOpPing, hw)).closing(normal).expect(evTextB(big), evClose(normal)))
		}},
		{"7.3.1", "RFC 6455 §5.5.1, §7.1.5", "close without payload is answered without payload", cfSteps(cfSend(cfF(true, cfOpClose, "")).closing(frame.CloseNoStatus).expect(evClose(frame.CloseNoStatus))), nil},
		{"7.3.2", "RFC 6455 §5.5.1", "close with a 1-byte payload", cfSteps(cfSend(cfF(true, cfOpClose, "\x03")).expect(evClose(bad))), nil},
		{"7.3.3", rfc, "close 1000 without reason", cfSteps(cfSendClose(normal).expect(evClose(normal))), nil},
		{"7.3.4", rfc, "close 1000 with a reason", cfSteps(cfSend(cfCloseFrame(normal, hw)).closing(normal).expect(evClose(normal))), nil},
		{"7.3.5", rfc, "close 1000 with a 123-byte reason", cfSteps(cfSend(cfCloseFrame(normal, strings.Repeat("*", 123))).closing(normal).expect(evClose(normal))), nil},
		{"7.3.6", "RFC 6455 §5.5", "close with a 124-byte reason (126-byte payload)", cfSteps(cfSend(cfFB(true, cfOpClose, append([]byte{0x03, 0xe8}, strings.Repeat("*", 124)...))).expect(evClose(bad))), nil},
		{"7.5.1", "RFC 6455 §5.5.1, §8.1", "close reason that is not UTF-8", cfSteps(cfSend(cfFB(true, cfOpClose, append([]byte{0x03, 0xe8}, cfKosmeBad...))).expect(evClose(frame.CloseInvalidPayload))), nil},
	}
	for i, code := range []frame.CloseCode{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999} {
		cs = append(cs, cfCase{"7.7." + strconv.Itoa(i+1), "RFC 6455 §7.4", fmt.Sprintf("valid close code %d is echoed", code),
			cfSteps(cfSendClose(code).expect(evClose(code))), nil})
	}
	for _, code := range []frame.CloseCode{1012, 1013, 1014} {
		cs = append(cs, cfCase{"-", "RFC 6455 §7.4.2, IANA registry", fmt.Sprintf("registered close code %d is echoed", code),
			cfSteps(cfSendClose(code).expect(evClose(code))), nil})
	}
	for i, code := range []int{0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999} {
		cs = append(cs, cfCase{"7.9." + strconv.Itoa(i+1), "RFC 6455 §7.4", fmt.Sprintf("invalid close code %d", code),
			cfSteps(cfSend(cfRawClose(code)).expect(evClose(bad))), nil})
	}
	cs = append(cs,
		cfCase{"-", "RFC 6455 §7.4.1", "close code 1015 (reserved, never on the wire)", cfSteps(cfSend(cfRawClose(1015)).expect(evClose(bad))), nil},
		cfCase{"7.13.1", "RFC 6455 §7.4.2", "close code 5000 (outside every range)", cfSteps(cfSend(cfRawClose(5000)).expect(evClose(bad))), nil},
		cfCase{"7.13.2", "RFC 6455 §7.4.2", "close code 65535", cfSteps(cfSend(cfRawClose(65535)).expect(evClose(bad))), nil},
	)
	return cs
}

func cfRawClose(code int) []byte {
	return cfFB(true, cfOpClose, []byte{byte(code >> 8), byte(code)})
}

// cfSection6Stream: the Consumer reads a frame larger than its read buffer
// in pieces and checks each piece as it arrives, so it fails fast inside
// one frame too (Autobahn's 6.4.3 and 6.4.4 rate this STRICT).
func cfSection6Stream() []cfCase {
	const rfc = "RFC 6455 §8.1"
	inval := frame.CloseInvalidPayload
	// A 64 KiB text frame whose byte 6000 is invalid; 8000 bytes are sent,
	// the rest only once the Consumer has failed the connection.
	bad := cfText(64 << 10)
	bad[6000] = 0xff
	f := cfFB(true, cfOpText, bad)
	st := cfSend(f[:8000]).expect(evClose(inval))
	for off := 8000; off < len(f); off += 16 << 10 {
		st.trail = append(st.trail, f[off:min(off+16<<10, len(f))])
	}
	split := cfText(64 << 10)
	copy(split[5000:], "\xf4\x90\x80\x80") // U+110000, inside one frame
	g := cfFB(true, cfOpText, split)
	n := frame.HeaderSize(int64(len(split)), false)
	// The first piece ends with 0xf4 (valid so far), the second is 0x90.
	st2 := cfEach(g[:n+5001], g[n+5001:n+5002]).expect(evClose(inval))
	st2.trail = [][]byte{g[n+5002:]}
	return []cfCase{
		{"6.4.3", rfc, "fail fast inside a 64 KiB frame: the rest of the frame is not needed", cfSteps(st), nil},
		{"6.4.4", rfc, "fail fast inside a 64 KiB frame at the byte that breaks a character", cfSteps(st2), nil},
	}
}

// --- section 10: auto-fragmentation ---

func cfSection10() []cfCase {
	const rfc = "RFC 6455 §5.4"
	var cs []cfCase
	add := func(ab, name string, op frame.Opcode, p []byte, size int) {
		want := evBin(p)
		if op == cfOpText {
			want = evTextB(p)
		}
		cs = append(cs, cfCase{ab, rfc, name, cfSteps(cfSend(cfFragments(op, 0, p, size)...).expect(want)), nil})
	}
	add("10.1.1", "text of 65536 bytes in fragments of 1300", cfOpText, cfText(65536), 1300)
	add("-", "binary of 65536 bytes in fragments of 1300", cfOpBinary, cfBinary(65536, 10), 1300)
	add("-", "text of 4096 bytes in fragments of 1 byte", cfOpText, cfText(4096), 1)
	for _, size := range []int{125, 126, 127, 65535} {
		add("-", fmt.Sprintf("text of 200000 bytes in fragments of %d (length-encoding boundaries)", size), cfOpText, cfText(200000), size)
	}
	// The Consumer's own large send: one frame, written in pieces.
	add("-", "binary of 1 MiB in fragments of 4096, echoed as one large frame", cfOpBinary, cfBinary(1<<20, 11), 4096)
	return cs
}

// --- section 9: limits and large messages ---

// TestConformanceLimits follows section 9: a Consumer with its default
// 16 MiB limit gets text messages of 64 KiB to 16 MiB (the limit itself)
// and binary ones to 4 MiB as single frames, messages in fragments of 64 B
// to 1 MiB, a frame written in small chops, and many small messages in
// turn; it answers each with a digest. The limit is checked on a Consumer
// whose MaxPayload is 1 MiB (RFC 6455 §10.4: a larger message fails the
// connection with 1009, §7.4.1).
func TestConformanceLimits(t *testing.T) {
	if testing.Short() {
		t.Skip("large messages")
	}
	srv := cfListen(t)
	t.Run("16 MiB", func(t *testing.T) { cfRun(t, srv, cfDigest, nil, cfSection9()) })
	const max = 1 << 20
	t.Run("limit", func(t *testing.T) {
		cfRun(t, srv, cfDigest, func(o *Options) { o.MaxPayload = max }, cfLimitCases(max))
	})
}

func cfSection9() []cfCase {
	const rfc = "RFC 6455 §5.2, §5.4, §10.4"
	var cs []cfCase
	kinds := []struct {
		op   frame.Opcode
		name string
		sub  int
	}{{cfOpText, "text", 0}, {cfOpBinary, "binary", 1}}
	// 9.1, 9.2: single frames (Autobahn's 9.x.5, 8 MiB, adds nothing).
	for _, k := range kinds {
		sizes := []int{64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20}
		if k.op == cfOpBinary {
			sizes = sizes[:4]
		}
		for i, n := range sizes {
			cs = append(cs, cfCase{fmt.Sprintf("9.%d.%d", 1+k.sub, []int{1, 2, 3, 4, 6}[i]), rfc, fmt.Sprintf("%s of %d bytes in one frame", k.name, n), nil,
				func() []cfStep {
					p, ev := cfMessage(k.op, n)
					return cfSteps(cfSend(cfFragments(k.op, 0, p, 0)...).expect(ev))
				}})
		}
	}
	// 9.3, 9.4: fragments of 64 B to 1 MiB (Autobahn sends 4 MiB each
	// time, and 4 MiB in one fragment is 9.x.4 again).
	for _, k := range kinds {
		for i, frag := range []int{64, 256, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20} {
			n := 1 << 20
			switch {
			case frag < 1<<10:
				n = 256 << 10
			case frag == 1<<20:
				n = 4 << 20
			}
			cs = append(cs, cfCase{fmt.Sprintf("9.%d.%d", 3+k.sub, i+1), rfc, fmt.Sprintf("%s of %d bytes in fragments of %d", k.name, n, frag), nil,
				func() []cfStep {
					p, ev := cfMessage(k.op, n)
					return cfSteps(cfSend(cfFragments(k.op, 0, p, frag)...).expect(ev))
				}})
		}
	}
	// 9.5, 9.6: one frame of 1 MiB written in chops of 64 B to 2 KiB.
	for _, k := range kinds {
		for i, c := range []int{64, 128, 256, 512, 1024, 2048} {
			if (i+k.sub)%2 == 1 {
				continue // half the chop sizes for each kind
			}
			cs = append(cs, cfCase{fmt.Sprintf("9.%d.%d", 5+k.sub, i+1), rfc, fmt.Sprintf("%s of 1 MiB in one frame, written in chops of %d", k.name, c), nil,
				func() []cfStep {
					p, ev := cfMessage(k.op, 1<<20)
					return cfSteps(cfChop(c, cfFragments(k.op, 0, p, 0)...).expect(ev))
				}})
		}
	}
	// 9.7, 9.8: many small messages, each answered before the next is sent.
	for _, k := range kinds {
		for i, n := range []int{0, 16, 64, 256, 1024, 4096} {
			cs = append(cs, cfCase{fmt.Sprintf("9.%d.%d", 7+k.sub, i+1), rfc, fmt.Sprintf("100 %s messages of %d bytes in turn", k.name, n), nil,
				func() []cfStep {
					var st []cfStep
					for j := 0; j < 100; j++ {
						p, ev := cfMessage(k.op, n)
						st = append(st, cfSend(cfFB(true, k.op, p)).expect(ev))
					}
					return st
				}})
		}
	}
	return cs
}

// cfMessage returns a message of n bytes and the digest the Consumer
// answers it with.
func cfMessage(op frame.Opcode, n int) ([]byte, cfEvent) {
	p := cfBinary(n, uint64(n))
	if op == cfOpText {
		p = cfText(n)
	}
	return p, evText(cfDigestOf(p))
}

// cfLimitCases hold a Consumer whose MaxPayload is max to it: exactly max
// passes; one byte more fails with 1009, judged from the header where it
// can be.
func cfLimitCases(max int) []cfCase {
	const rfc = "RFC 6455 §7.4.1, §10.4"
	over := max + 1
	hdr64 := func(n int64) []byte {
		return []byte{127, byte(n >> 56), byte(n >> 48), byte(n >> 40), byte(n >> 32), byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	}
	return []cfCase{
		{"-", rfc, "text of exactly the limit in one frame", nil, func() []cfStep {
			p, ev := cfMessage(cfOpText, max)
			return cfSteps(cfSend(cfFB(true, cfOpText, p)).expect(ev))
		}},
		{"-", rfc, "binary of exactly the limit in fragments of 100000", nil, func() []cfStep {
			p, ev := cfMessage(cfOpBinary, max)
			return cfSteps(cfSend(cfFragments(cfOpBinary, 0, p, 100000)...).expect(ev))
		}},
		{"-", rfc, "frame header announcing the limit + 1 (payload never sent)", cfSteps(
			cfSend(cfRawFrame(0x82, hdr64(int64(over)), nil)).expect(evClose(frame.CloseTooBig))), nil},
		{"-", rfc, "frame header announcing 2^63-1 bytes", cfSteps(
			cfSend(cfRawFrame(0x82, hdr64(1<<63-1), nil)).expect(evClose(frame.CloseTooBig))), nil},
		{"-", rfc + "; MaxPayload doc", "fragments adding up to the limit + 1: failed at the last header, before its payload", nil, func() []cfStep {
			first := cfFB(false, cfOpBinary, cfBinary(max/2, 1))
			second := cfFB(true, cfOpCont, cfBinary(max/2+1, 2))
			header := second[:frame.HeaderSize(int64(max/2+1), false)] // its payload is never sent
			return cfSteps(cfSend(first, header).expect(evClose(frame.CloseTooBig)))
		}},
		{"-", "RFC 6455 §7.1.7, §10.4", "frame of the limit + 1: failed at its header; the payload in flight is discarded", nil, func() []cfStep {
			f := cfFB(true, cfOpBinary, cfBinary(over, 2))
			n := frame.HeaderSize(int64(over), false)
			st := cfSend(f[:n+1000]).expect(evClose(frame.CloseTooBig))
			for off := n + 1000; off < len(f); off += len(f) / 16 {
				st.trail = append(st.trail, f[off:min(off+len(f)/16, len(f))])
			}
			return cfSteps(st)
		}},
		{"-", rfc, "text of the limit + 1 in fragments", nil, func() []cfStep {
			return cfSteps(cfSend(cfFragments(cfOpText, 0, cfText(over), max/2)...).expect(evClose(frame.CloseTooBig)))
		}},
	}
}

// --- sections 12, 13: permessage-deflate ---

// cfPresets are every compressor and decompressor preset, alone and in
// some combinations (the same list as the Provider's cases).
var cfPresets = []compress.Preset{
	compress.SharedCompressor,
	compress.SharedDecompressor,
	compress.SharedCompressor | compress.SharedDecompressor,
	compress.DedicatedCompressor3KB,
	compress.DedicatedCompressor4KB,
	compress.DedicatedCompressor8KB,
	compress.DedicatedCompressor16KB,
	compress.DedicatedCompressor32KB,
	compress.DedicatedCompressor64KB,
	compress.DedicatedCompressor128KB,
	compress.DedicatedCompressor256KB,
	compress.DedicatedDecompressor512B,
	compress.DedicatedDecompressor1KB,
	compress.DedicatedDecompressor2KB,
	compress.DedicatedDecompressor4KB,
	compress.DedicatedDecompressor8KB,
	compress.DedicatedDecompressor16KB,
	compress.DedicatedDecompressor32KB,
	compress.DedicatedCompressor4KB | compress.DedicatedDecompressor,
	compress.DedicatedCompressor | compress.DedicatedDecompressor512B,
	compress.DedicatedCompressor | compress.DedicatedDecompressor,
	compress.SharedCompressor | compress.DedicatedDecompressor4KB,
}

// cfResponses are the responses a server may give to offer, after the
// server sides of Autobahn's section 13 (accept as offered; ask for no
// client context; ask for a client window of 8 or 15 bits; both) and ours
// (no server context, or a smaller server window, without being asked).
func cfResponses(offer compress.Params) []struct {
	ab   string
	resp compress.Params
} {
	base := compress.Params{ServerNoContextTakeover: offer.ServerNoContextTakeover, ServerMaxWindowBits: offer.ServerMaxWindowBits}
	type r = struct {
		ab   string
		resp compress.Params
	}
	out := []r{{"13.1", base}}
	noCtx := base
	noCtx.ClientNoContextTakeover = true
	out = append(out, r{"13.2", noCtx})
	if offer.ClientMaxWindowBits != 0 {
		b8, b15 := base, base
		b8.ClientMaxWindowBits = 8
		b15.ClientMaxWindowBits = 15
		if offer.ClientMaxWindowBits > 0 {
			b15.ClientMaxWindowBits = offer.ClientMaxWindowBits
		}
		n8, n15 := b8, b15
		n8.ClientNoContextTakeover, n15.ClientNoContextTakeover = true, true
		out = append(out, r{"13.3", b8}, r{"13.4", b15}, r{"13.5", n8}, r{"13.6", n15})
	}
	sctx := base
	sctx.ServerNoContextTakeover = true
	small := base
	small.ServerMaxWindowBits = 9
	if base.ServerMaxWindowBits > 0 && base.ServerMaxWindowBits < 9 {
		small.ServerMaxWindowBits = base.ServerMaxWindowBits
	}
	return append(out, r{"-", sctx}, r{"-", small})
}

// cfDeflate is the server's side of a permessage-deflate connection.
type cfDeflate struct {
	offer  compress.Params
	resp   compress.Params
	comp   *compress.Compressor
	inBits int    // the window the Consumer must keep to
	inCtx  bool   // the Consumer may refer to earlier messages
	hist   []byte // the last 1<<inBits bytes it sent, with context takeover
}

// cfDeflateConnect connects a Consumer with preset p, answers its offer
// with resp and sets up the server's codec.
func cfDeflateConnect(t *testing.T, srv *cfServer, p compress.Preset, resp compress.Params, mod func(o *Options)) (*Consumer, *cfSession, *cfDeflate) {
	t.Helper()
	c, s := cfConnect(t, srv, cfEcho, func(o *Options) {
		o.Compressor = p
		o.CompressThreshold = 1
		if mod != nil {
			mod(o)
		}
	}, "Sec-WebSocket-Extensions: "+resp.String())
	offers, err := compress.ParseOffers(s.req.Header.Values("Sec-WebSocket-Extensions"))
	if err != nil || len(offers) != 1 || offers[0].Err != nil {
		t.Fatalf("the Consumer's offer %q: %v %v", s.req.Header.Values("Sec-WebSocket-Extensions"), offers, err)
	}
	d := &cfDeflate{offer: offers[0], resp: resp}
	bits := 15
	if resp.ServerMaxWindowBits > 0 {
		bits = resp.ServerMaxWindowBits
	}
	d.comp = compress.NewCompressor(compress.Config{CompressWindowBits: bits, CompressContextTakeover: !resp.ServerNoContextTakeover, CompressMemLevel: 8})
	t.Cleanup(d.comp.Release)
	d.inBits = 15
	if resp.ClientMaxWindowBits > 0 {
		d.inBits = resp.ClientMaxWindowBits
	}
	// The Consumer keeps to the response and to its own offer's hint.
	d.inCtx = !resp.ClientNoContextTakeover && !d.offer.ClientNoContextTakeover
	s.deflate, s.infl = true, d.inflate
	return c, s, d
}

// frames returns the frames of a compressed message in fragments of frag
// bytes of compressed payload (0: one frame), RSV1 on the first.
func (d *cfDeflate) frames(op frame.Opcode, msg []byte, frag int) [][]byte {
	payload, err := d.comp.Compress(nil, msg)
	if err != nil {
		panic(err)
	}
	return cfFragments(op, 4, payload, frag)
}

// inflate inflates a message from the Consumer with the independent
// inflater and holds it to the window and context it agreed to.
func (d *cfDeflate) inflate(p []byte) ([]byte, error) {
	var hist []byte
	if d.inCtx {
		hist = d.hist
	}
	out, dist, err := cfInflate(hist, p, 64<<20)
	if err != nil {
		return nil, err
	}
	if dist > 1<<d.inBits {
		return nil, fmt.Errorf("back-reference of %d bytes beyond the agreed window of %d bits (RFC 7692 §7.1.2.2)", dist, d.inBits)
	}
	if d.inCtx {
		d.hist = append(d.hist, out...)
		if w := 1 << d.inBits; len(d.hist) > w {
			d.hist = append(d.hist[:0], d.hist[len(d.hist)-w:]...)
		}
	}
	return out, nil
}

// cfDeflateEcho sends msgs compressed (in fragments of frag bytes) and
// checks the compressed echoes.
func cfDeflateEcho(s *cfSession, d *cfDeflate, op frame.Opcode, msgs [][]byte, frag int) {
	s.t.Helper()
	for i, m := range msgs {
		want := evBin(m)
		if op == cfOpText {
			want = evTextB(m)
		}
		s.write(cfSend(d.frames(op, m, frag)...))
		got, err := s.next()
		if err != nil {
			s.fatalf("message %d: %v", i+1, err)
		}
		if !want.match(got) {
			s.fatalf("message %d: got %v, want %v", i+1, got, want)
		}
		if len(m) > 0 && !got.compressed {
			s.fatalf("message %d: echo of %d bytes not compressed with CompressThreshold 1", i+1, len(m))
		}
	}
}

// cfSlices cuts n messages of size bytes from data, one after the other
// (wrapping around), as Autobahn's section 12 does; text stays valid UTF-8.
func cfSlices(data []byte, size, n int, text bool) [][]byte {
	var out [][]byte
	pos := 0
	for i := 0; i < n; i++ {
		m := make([]byte, 0, size)
		for text && pos < len(data) && !utf8.RuneStart(data[pos]) {
			pos++ // start at a character
		}
		for len(m) < size {
			if pos == len(data) {
				pos = 0
			}
			k := min(size-len(m), len(data)-pos)
			m = append(m, data[pos:pos+k]...)
			pos += k
		}
		if text {
			m = cfTrimUTF8(m)
			for len(m) < size {
				m = append(m, '.')
			}
		}
		out = append(out, m)
	}
	return out
}

// TestConformanceDeflate follows sections 12 and 13 with the roles of
// Autobahn's fuzzingserver: for every preset of the Consumer, the server
// answers its offer in each way Autobahn's server does (and two more),
// then sends compressed messages, whole and auto-fragmented, which the
// Consumer inflates and sends back compressed. Under the first response
// the kinds and sizes of section 12 (16 B to 128 KiB) rotate over the
// presets.
func TestConformanceDeflate(t *testing.T) {
	kinds := []struct {
		kind string
		op   frame.Opcode
	}{{"json", cfOpText}, {"html", cfOpText}, {"text", cfOpText}, {"bitmap", cfOpBinary}, {"random", cfOpBinary}}
	corpus := map[string][]byte{}
	for _, k := range kinds {
		corpus[k.kind] = cfCorpus(k.kind, 192<<10)
	}
	sizes12 := []struct{ size, frag int }{
		{16, 0}, {64, 0}, {256, 0}, {1024, 0}, {4096, 0}, {8192, 0}, {16384, 0}, {32768, 0}, {65536, 0}, {131072, 0},
		{8192, 256}, {16384, 256}, {32768, 256}, {65536, 256}, {131072, 256}, {131072, 1024}, {131072, 4096}, {131072, 32768},
	}
	sizes13 := []struct{ size, frag int }{{16, 0}, {300, 0}, {4096, 256}}
	srv := cfListen(t)
	for pi, p := range cfPresets {
		t.Run(p.String(), func(t *testing.T) {
			for ri, r := range cfResponses(p.Offer()) {
				t.Run(fmt.Sprintf("%s response %q", r.ab, r.resp.String()), func(t *testing.T) {
					_, s, d := cfDeflateConnect(t, srv, p, r.resp, nil)
					for j, sz := range sizes13 {
						s.where = fmt.Sprintf("[%s.%d, RFC 7692 §7.1]", r.ab, j+1)
						cfDeflateEcho(s, d, cfOpText, cfSlices(corpus["json"], sz.size, 2, true), sz.frag)
					}
					if ri == 0 {
						// Section 12: one kind of data per size and preset.
						for j, sz := range sizes12 {
							if sz.size > 4096 && (j+pi)%4 != 0 && j != 9 {
								continue
							}
							k := kinds[(j+pi)%len(kinds)]
							s.where = fmt.Sprintf("[12.%d.%d %s, RFC 7692 §6, §7.2]", (j+pi)%len(kinds)+1, j+1, k.kind)
							cfDeflateEcho(s, d, k.op, cfSlices(corpus[k.kind], sz.size, 2, k.op == cfOpText), sz.frag)
						}
					}
					s.where = "[" + r.ab + ", RFC 6455 §7.1]"
					s.finish()
				})
			}
		})
	}
}

// TestConformanceDeflateResponses: a response the Consumer cannot accept
// fails the connection before it opens (RFC 6455 §4.1, §9.1; RFC 7692 §5,
// §7.1): it sends a close frame and never reports the connection open.
func TestConformanceDeflateResponses(t *testing.T) {
	srv := cfListen(t)
	pre := compress.DedicatedCompressor4KB | compress.DedicatedDecompressor4KB // offers client_max_window_bits=9; server_max_window_bits=12
	shared := compress.SharedCompressor | compress.SharedDecompressor          // offers server_no_context_takeover; client_no_context_takeover
	cases := []struct {
		rfc, name string
		preset    compress.Preset
		header    string
	}{
		{"RFC 6455 §9.1", "an extension that was not offered", pre, "x-foo"},
		{"RFC 6455 §4.1", "permessage-deflate when nothing was offered", compress.Disabled, "permessage-deflate"},
		{"RFC 7692 §5", "two permessage-deflate elements", pre, "permessage-deflate; server_max_window_bits=12, permessage-deflate; server_max_window_bits=12"},
		{"RFC 7692 §5", "an unknown parameter", pre, "permessage-deflate; server_max_window_bits=12; foo"},
		{"RFC 7692 §7.1.2.1", "server_max_window_bits above the offered 12", pre, "permessage-deflate; server_max_window_bits=13"},
		{"RFC 7692 §7.1.2.1", "server_max_window_bits missing though offered", pre, "permessage-deflate"},
		{"RFC 7692 §7.1.2.1", "server_max_window_bits=7", pre, "permessage-deflate; server_max_window_bits=7"},
		{"RFC 7692 §7.1.2.2", "client_max_window_bits above the offered 9", pre, "permessage-deflate; server_max_window_bits=12; client_max_window_bits=10"},
		{"RFC 7692 §7.1.2.2", "client_max_window_bits without a value", pre, "permessage-deflate; server_max_window_bits=12; client_max_window_bits"},
		{"RFC 7692 §7.1.2.2", "client_max_window_bits that was not offered", shared, "permessage-deflate; server_no_context_takeover; client_max_window_bits=10"},
		{"RFC 7692 §7.1.1.1", "server_no_context_takeover missing though offered", shared, "permessage-deflate"},
		{"RFC 7692 §7.1.1.1", "server_no_context_takeover with a value", shared, "permessage-deflate; server_no_context_takeover=1"},
		{"RFC 7692 §7", "a duplicate parameter", shared, "permessage-deflate; server_no_context_takeover; server_no_context_takeover"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, rec, connected := cfStartConsumer(t, srv, cfEcho, func(o *Options) { o.Compressor = c.preset })
			s := cfAccept(t, srv, rec)
			s.where = "[-, " + c.rfc + "]"
			s.upgrade("Sec-WebSocket-Extensions: " + c.header)
			// The connection is not established yet, so failing it may
			// mean closing TCP without a close frame (RFC 6455 §4.1,
			// §7.1.7); a close frame, if any, carries 1010 or 1002.
			got, err := s.next()
			switch {
			case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			case err != nil:
				s.fatalf("waiting for the Consumer to fail the connection: %v", err)
			case !evClose(frame.CloseMandatoryExtension, frame.CloseProtocolError).match(got):
				s.fatalf("got %v, want close 1010 or 1002, or TCP closed", got)
			}
			select {
			case err := <-connected:
				s.fatalf("Connect returned %v for a connection that must not open", err)
			default:
			}
			rec.mu.Lock()
			opens := rec.opens
			rec.mu.Unlock()
			if opens != 0 {
				s.fatalf("OnOpen ran")
			}
		})
	}
}

// TestConformanceDeflateErrors: what a Consumer with permessage-deflate
// must refuse, and the examples of RFC 7692 §7.2.3 byte for byte.
func TestConformanceDeflateErrors(t *testing.T) {
	srv := cfListen(t)
	const max = 64 << 10
	hello := []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}
	history := cfBinary(2000, 9)
	deflated := func(level int, dict, msg []byte) []byte {
		var b bytes.Buffer
		w, _ := flate.NewWriterDict(&b, level, dict)
		w.Write(msg)
		w.Flush()
		return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
	}
	rsv1 := func(fin bool, op frame.Opcode, payload ...byte) []byte {
		r := byte(4)
		if op == cfOpCont {
			r = 0
		}
		return cfFrameRsv(fin, op, r, payload)
	}
	// A Consumer that keeps the server's context, in a 512-byte window.
	pre := compress.DedicatedCompressor4KB | compress.DedicatedDecompressor512B
	resp := compress.Params{ServerMaxWindowBits: 9, ClientMaxWindowBits: 9}
	bad, inval := frame.CloseProtocolError, frame.CloseInvalidPayload
	helloEv := evText("Hello")
	cases := []struct {
		rfc, name string
		build     func(d *cfDeflate) []cfStep
	}{
		{"RFC 7692 §7.2.3.1", "one compressed block", func(d *cfDeflate) []cfStep {
			return cfSteps(cfSend(rsv1(true, cfOpText, hello...)).expect(helloEv))
		}},
		{"RFC 7692 §7.2.3.1", "one compressed block in 2 fragments", func(d *cfDeflate) []cfStep {
			return cfSteps(cfSend(rsv1(false, cfOpText, hello[:3]...), rsv1(true, cfOpCont, hello[3:]...)).expect(helloEv))
		}},
		{"RFC 7692 §7.2.3.2", "second message refers to the first (context takeover)", func(d *cfDeflate) []cfStep {
			return cfSteps(cfSend(rsv1(true, cfOpText, hello...)).expect(helloEv), cfSend(rsv1(true, cfOpText, 0xf2, 0x00, 0x11, 0x00, 0x00)).expect(helloEv))
		}},
		{"RFC 7692 §7.2.3.3", "stored block", func(d *cfDeflate) []cfStep {
			return cfSteps(cfSend(rsv1(true, cfOpText, 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00)).expect(helloEv))
		}},
		{"RFC 7692 §7.2.3.4", "block with BFINAL set", func(d *cfDeflate) []cfStep {
			return cfSteps(cfSend(rsv1(true, cfOpText, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00)).expect(helloEv))
		}},
		{"RFC 7692 §7.2.3.5", "two blocks", func(d *cfDeflate) []cfStep {
			return cfSteps(cfSend(rsv1(true, cfOpText, 0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00)).expect(helloEv))
		}},
		{"RFC 7692 §7.2.3.3, §7.2.1", "empty message as an empty stored block", func(d *cfDeflate) []cfStep {
			return cfSteps(cfSend(rsv1(true, cfOpBinary, 0x00)).expect(evBin([]byte{})))
		}},
		{"RFC 7692 §6", "uncompressed message on a compressed connection", func(d *cfDeflate) []cfStep {
			return cfSteps(cfSend(cfF(true, cfOpText, "plain")).expect(evText("plain")))
		}},
		{"RFC 7692 §6.1", "RSV1 on a continuation frame", func(d *cfDeflate) []cfStep {
			return cfSteps(cfSend(cfFrameRsv(false, cfOpText, 4, hello[:3]), cfFrameRsv(true, cfOpCont, 4, hello[3:])).expect(evClose(bad)))
		}},
		{"RFC 7692 §6.1, RFC 6455 §5.5", "RSV1 on a ping", func(d *cfDeflate) []cfStep {
			return cfSteps(cfSend(cfFrameRsv(true, cfOpPing, 4, nil)).expect(evClose(bad)))
		}},
		{"RFC 6455 §5.2", "RSV2 on a compressed frame", func(d *cfDeflate) []cfStep {
			return cfSteps(cfSend(cfFrameRsv(true, cfOpText, 6, hello)).expect(evClose(bad)))
		}},
		{"RFC 7692 §7.2.2", "corrupt deflate data (block type 3)", func(d *cfDeflate) []cfStep {
			return cfSteps(cfSend(cfFrameRsv(true, cfOpBinary, 4, []byte{0xff, 0xff, 0xff})).expect(evClose(inval)))
		}},
		{"RFC 7692 §7.2.3.4", "data after a final block", func(d *cfDeflate) []cfStep {
			return cfSteps(cfSend(cfFrameRsv(true, cfOpText, 4, append([]byte{0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}, hello...))).expect(evClose(inval)))
		}},
		{"RFC 6455 §8.1, RFC 7692 §6", "compressed text that inflates to invalid UTF-8", func(d *cfDeflate) []cfStep {
			return cfSteps(cfSend(d.frames(cfOpText, []byte(cfKosmeBad), 0)...).expect(evClose(inval)))
		}},
		{"RFC 6455 §7.4.1, §10.4", "compression bomb: 1 MiB of zeros in a few hundred bytes", func(d *cfDeflate) []cfStep {
			return cfSteps(cfSend(cfFrameRsv(true, cfOpBinary, 4, deflated(9, nil, make([]byte, 1<<20)))).expect(evClose(frame.CloseTooBig)))
		}},
		{"RFC 6455 §7.4.1, §10.4", "inflates to exactly the limit", func(d *cfDeflate) []cfStep {
			z := make([]byte, max)
			return cfSteps(cfSend(cfFrameRsv(true, cfOpBinary, 4, deflated(9, nil, z))).expect(evBin(z)))
		}},
		{"RFC 7692 §7.1.2.1", "back-reference beyond the server window the Consumer asked for", func(d *cfDeflate) []cfStep {
			// 2000 bytes stored, then their first 200 bytes as a
			// back-reference 2000 bytes long: beyond 512.
			return cfSteps(
				cfSend(cfFrameRsv(true, cfOpBinary, 4, deflated(0, nil, history))).expect(evBin(history)),
				cfSend(cfFrameRsv(true, cfOpBinary, 4, deflated(9, history, history[:200]))).expect(evClose(inval)))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, s, d := cfDeflateConnect(t, srv, pre, resp, func(o *Options) { o.MaxPayload = max })
			s.where = "[-, " + c.rfc + "]"
			s.run(c.build(d))
		})
	}
}
