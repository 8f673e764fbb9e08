package provider

// Conformance cases of our own after the sections of Autobahn|Testsuite
// (its fuzzingclient mode: the suite is the client, the Provider the server
// under test): framing (1), pings and pongs (2), reserved bits (3), opcodes
// (4), fragmentation (5), UTF-8 (6), closing (7), limits and large messages
// (9) and auto-fragmentation (10); permessage-deflate (12, 13) is in
// conformance_deflate_test.go. Each case names the Autobahn case it follows
// (our own cases say "-") and the RFC section that decides what the
// Provider must do. The Provider echoes every message; the raw client of
// internal/wstest sends exactly the bytes of each case over a real socket
// (see conformance_runner_test.go).

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/networkcluster/networkcluster/frame"
	"github.com/networkcluster/networkcluster/internal/wstest"
)

const (
	cfOpText   = frame.OpText
	cfOpBinary = frame.OpBinary
	cfOpCont   = frame.OpContinuation
	cfOpPing   = frame.OpPing
	cfOpPong   = frame.OpPong
	cfOpClose  = frame.OpClose
)

// cfEchoProvider starts an echo Provider for the conformance cases: no
// heartbeat (no pings interleave with the cases) and a 1 MiB message limit.
func cfEchoProvider(t *testing.T, o Options) (*Provider, *events, string) {
	mustEcho(&o)
	o.Heartbeat.Mode = HeartbeatOff
	if o.MaxPayloadLength == 0 {
		o.MaxPayloadLength = 1 << 20
	}
	return start(t, o)
}

// TestConformance runs sections 1 to 7 and 10 against one Provider.
func TestConformance(t *testing.T) {
	_, e, addr := cfEchoProvider(t, Options{})
	sections := []struct {
		name  string
		cases []cfCase
	}{
		{"1 framing", cfSection1()},
		{"2 pings and pongs", cfSection2()},
		{"3 reserved bits", cfSection3()},
		{"4 opcodes", cfSection4()},
		{"5 fragmentation", cfSection5()},
		{"6 UTF-8", cfSection6()},
		{"7 close", cfSection7()},
		{"10 auto-fragmentation", cfSection10()},
	}
	for _, sec := range sections {
		t.Run(sec.name, func(t *testing.T) { cfRun(t, e, addr, sec.cases) })
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, m := range e.messages {
		if !m.bin && !utf8.ValidString(m.data) {
			t.Errorf("invalid UTF-8 delivered to OnMessage: %q", m.data)
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
		cfCase{"-", "RFC 6455 §5.1, §5.3", "unmasked frame from the client",
			cfSteps(cfSend(frame.AppendFrame(nil, true, cfOpText, false, hello)).expect(evClose(frame.CloseProtocolError))), nil},
		cfCase{"-", "RFC 6455 §5.3", "all-zero masking key",
			cfSteps(cfSend(frame.AppendMaskedFrame(nil, true, cfOpText, false, hello, [4]byte{})).expect(evText("Hello"))), nil},
		cfCase{"-", "RFC 6455 §5.2", "three messages and a ping in one write",
			cfSteps(cfSend(cfF(true, cfOpText, "one"), cfF(true, cfOpPing, "p"), cfFB(true, cfOpBinary, []byte{2}), cfF(true, cfOpText, "three")).
				expect(evText("one"), evPong("p"), evBin([]byte{2}), evText("three"))), nil},
	)
	return cs
}

// cfRawFrame builds a masked frame with the given first byte and length
// bytes (the 7-bit length and any extended length, without the mask bit).
func cfRawFrame(b0 byte, length []byte, payload []byte) []byte {
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	b := []byte{b0, 0x80 | length[0]}
	b = append(b, length[1:]...)
	b = append(b, key[:]...)
	start := len(b)
	b = append(b, payload...)
	frame.Mask(b[start:], key, 0)
	return b
}

// --- section 2: pings and pongs ---

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
		// pings; the Provider answers each, in order.
		{"2.10", rfc, "10 pings, each answered in order", cfSteps(cfSend(tenFrames...).expect(tenPongs...)), nil},
		{"2.11", rfc, "10 pings written 1 byte at a time", cfSteps(cfChop(1, tenFrames...).expect(tenPongs...)), nil},
		{"-", rfc, "ping between the fragments of a binary message", cfSteps(cfSend(cfF(false, cfOpBinary, "ab"), cfF(true, cfOpPing, "x"), cfF(true, cfOpCont, "cd")).expect(evPong("x"), evBin([]byte("abcd")))), nil},
		{"-", "RFC 6455 §5.5", "pong with 126 bytes", cfSteps(cfSend(cfF(true, cfOpPong, p125+"\xfe")).expect(evClose(frame.CloseProtocolError))), nil},
	}
}

// --- section 3: reserved bits ---

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
	return wstest.Frame(true, cfOpClose, rsv, frame.AppendClose(nil, frame.CloseNormal, ""))
}

// --- section 4: opcodes ---

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

// --- section 5: fragmentation ---

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

// --- section 6: UTF-8 ---

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
		// 6.4: fail fast. The message is never finished: the Provider must
		// fail the connection on the fragment that holds the bad byte.
		{"6.4.1", rfc, "fail fast: the fragment holding U+110000 fails the connection before the message ends", cfSteps(
			cfSend(cfF(false, cfOpText, cfKosme)),
			cfSend(cfF(false, cfOpCont, "\xf4\x90\x80\x80")).expect(evClose(inval))), nil},
		{"6.4.2", rfc, "fail fast: a fragment ending inside a character is accepted, the next byte fails", cfSteps(
			cfSend(cfF(false, cfOpText, cfKosme+"\xf4")),
			cfSend(cfF(false, cfOpCont, "\x90")).expect(evClose(inval))), nil},
		// 6.4.3, 6.4.4 cut one frame into writes. The Provider checks a
		// frame once it has all of it (Autobahn rates this NON-STRICT); the
		// connection is failed at the end of the frame.
		{"6.4.3", rfc, "one frame written in 3 pieces, the 2nd holding the bad bytes (failed at the frame's end)", cfSteps(
			cfSplitAt(cfF(true, cfOpText, cfKosme+"\xf4\x90\x80\x80edited"), 6+len(cfKosme), 6+len(cfKosme)+4).expect(evClose(inval))), nil},
		{"6.4.4", rfc, "one frame written in 4 pieces, the 2nd a lone 0xf4 (failed at the frame's end)", cfSteps(
			cfSplitAt(cfF(true, cfOpText, cfKosme+"\xf4\x90\x80\x80edited"), 6+len(cfKosme), 6+len(cfKosme)+1, 6+len(cfKosme)+2).expect(evClose(inval))), nil},
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

// --- section 7: close ---

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

// TestConformanceServerClose: the Provider starts the closing handshake
// (RFC 6455 §7.1.2): its close frame carries the code and reason, it sends
// nothing after it, data the client sent before seeing it is not
// delivered, and it closes TCP once the client answers.
func TestConformanceServerClose(t *testing.T) {
	o := Options{}
	o.Heartbeat.Mode = HeartbeatOff
	o.OnMessage = func(c *Connection, m Message) {
		if string(m.Data) == "close please" {
			_ = c.Close(frame.CloseGoingAway, "bye now")
			if err := c.Send("after close"); err == nil {
				t.Error("Send after Close succeeded")
			}
			return
		}
		_ = c.SendText(m.Data)
	}
	_, e, addr := start(t, o)
	s := cfOpen(t, e, addr, "/connect")
	s.where = "[-, RFC 6455 §7.1.2]"
	s.run(cfSteps(
		cfSend(cfF(true, cfOpText, "first")).expect(evText("first")),
		// The client's message after "close please" crosses the close frame.
		cfSend(cfF(true, cfOpText, "close please"), cfF(true, cfOpText, "in flight")).expect(evClose(frame.CloseGoingAway)),
	))
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, m := range e.messages {
		if m.data == "in flight" {
			t.Error("a message that arrived after the Provider's close was delivered")
		}
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
	return cs
}

// --- section 9: limits and large messages ---

// TestConformanceLimits follows section 9 against a Provider whose limit is
// raised to 16 MiB: text messages of 64 KiB to 16 MiB (the limit itself)
// and binary ones to 4 MiB as single frames, messages in fragments of 64 B
// to 1 MiB, a frame written in small chops, and many small messages in
// turn. The limit is checked against a second Provider with a 1 MiB limit
// (RFC 6455 §10.4: a larger message fails the connection with 1009,
// §7.4.1). The sizes keep the run short under the race detector; every
// frame-length encoding and every fragment size of Autobahn's section 9 is
// covered.
func TestConformanceLimits(t *testing.T) {
	if testing.Short() {
		t.Skip("large messages")
	}
	t.Run("16 MiB", func(t *testing.T) {
		const max = 16 << 20
		_, e, addr := cfEchoProvider(t, Options{MaxPayloadLength: max, MaxBackpressure: 2 * max})
		cfRun(t, e, addr, cfSection9())
	})
	t.Run("limit", func(t *testing.T) {
		const max = 1 << 20
		_, e, addr := cfEchoProvider(t, Options{MaxPayloadLength: max})
		cfRun(t, e, addr, cfLimitCases(max))
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
				n = 256 << 10 // 4 Ki frames of 64 B, 1 Ki of 256 B
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
	// 9.7, 9.8: many small messages, each echoed before the next is sent.
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

// cfMessage returns a message of n bytes and the event of its echo.
func cfMessage(op frame.Opcode, n int) ([]byte, cfEvent) {
	if op == cfOpText {
		p := cfText(n)
		return p, evTextB(p)
	}
	p := cfBinary(n, uint64(n))
	return p, evBin(p)
}

// cfLimitCases hold a Provider whose MaxPayloadLength is max to it: exactly
// max passes; one byte more fails with 1009, judged from the header where
// it can be.
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
		{"-", rfc + "; MaxPayloadLength doc", "fragments adding up to the limit + 1: failed at the last header, before its payload", nil, func() []cfStep {
			first := cfFB(false, cfOpBinary, cfBinary(max/2, 1))
			second := cfFB(true, cfOpCont, cfBinary(max/2+1, 2))
			header := second[:frame.HeaderSize(int64(max/2+1), true)] // its payload is never sent
			return cfSteps(cfSend(first, header).expect(evClose(frame.CloseTooBig)))
		}},
		{"-", "RFC 6455 §7.1.7, §10.4", "frame of the limit + 1: failed at its header; the payload in flight is not parsed as frames", nil, func() []cfStep {
			f := cfFB(true, cfOpBinary, cfBinary(over, 2))
			n := frame.HeaderSize(int64(over), true)
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
