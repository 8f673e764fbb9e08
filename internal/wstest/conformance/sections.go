package conformance

// The cases after the sections of Autobahn|Testsuite that hold for a
// server and a client alike. Each case names the Autobahn case it follows
// (our own cases say "-") and the RFC section that decides what the peer
// must do; a peer answers each message with its echo (sections 9 and the
// limits take the answer as a parameter).

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/networkcluster/networkcluster/frame"
	tv "github.com/networkcluster/networkcluster/internal/testvectors"
)

// Section1 follows section 1, framing: messages of every length encoding,
// and lengths in a longer form than needed, the 64-bit length's top bit,
// masking the wrong way for the side, several frames in one write.
func Section1(sd Side) []Case {
	const rfc = "RFC 6455 §5.2, §5.6"
	var cs []Case
	sizes := []int{0, 125, 126, 127, 128, 65535, 65536}
	for i, n := range sizes {
		p := strings.Repeat("*", n)
		cs = append(cs, Case{"1.1." + strconv.Itoa(i+1), rfc, fmt.Sprintf("text, %d bytes", n),
			Steps(Send(sd.F(true, opText, p)).Expect(EvText(p))), nil})
	}
	big := strings.Repeat("*", 65536)
	cs = append(cs, Case{"1.1.8", rfc, "text, 65536 bytes, written in chops of 997", Steps(Chop(997, sd.F(true, opText, big)).Expect(EvText(big))), nil})
	for i, n := range sizes {
		p := bytes.Repeat([]byte{0xfe}, n)
		cs = append(cs, Case{"1.2." + strconv.Itoa(i+1), rfc, fmt.Sprintf("binary, %d bytes", n),
			Steps(Send(sd.FB(true, opBinary, p)).Expect(EvBin(p))), nil})
	}
	bigb := bytes.Repeat([]byte{0xfe}, 65536)
	cs = append(cs, Case{"1.2.8", rfc, "binary, 65536 bytes, written in chops of 997", Steps(Chop(997, sd.FB(true, opBinary, bigb)).Expect(EvBin(bigb))), nil})

	// Our own.
	hello := []byte("Hello")
	cs = append(cs,
		Case{"-", "RFC 6455 §5.2", "length 5 in the 16-bit form (longer than needed) is accepted",
			Steps(Send(sd.RawFrame(0x81, []byte{126, 0, 5}, hello)).Expect(EvText("Hello"))), nil},
		Case{"-", "RFC 6455 §5.2", "length 5 in the 64-bit form is accepted",
			Steps(Send(sd.RawFrame(0x82, []byte{127, 0, 0, 0, 0, 0, 0, 0, 5}, hello)).Expect(EvBin(hello))), nil},
		Case{"-", "RFC 6455 §5.2", "64-bit length with its most significant bit set",
			Steps(Send(sd.RawFrame(0x82, []byte{127, 0x80, 0, 0, 0, 0, 0, 0, 5}, hello)).Expect(EvClose(frame.CloseProtocolError))), nil},
	)
	if sd == Client {
		cs = append(cs,
			Case{"-", "RFC 6455 §5.1, §5.3", "unmasked frame from the client",
				Steps(Send(frame.AppendFrame(nil, true, opText, false, hello)).Expect(EvClose(frame.CloseProtocolError))), nil},
			Case{"-", "RFC 6455 §5.3", "all-zero masking key",
				Steps(Send(frame.AppendMaskedFrame(nil, true, opText, false, hello, [4]byte{})).Expect(EvText("Hello"))), nil})
	} else {
		cs = append(cs,
			Case{"-", "RFC 6455 §5.1", "masked frame from the server",
				Steps(Send(frame.AppendMaskedFrame(nil, true, opText, false, hello, [4]byte{1, 2, 3, 4})).Expect(EvClose(frame.CloseProtocolError))), nil},
			Case{"-", "RFC 6455 §5.1", "masked frame with an all-zero key from the server",
				Steps(Send(frame.AppendMaskedFrame(nil, true, opText, false, hello, [4]byte{})).Expect(EvClose(frame.CloseProtocolError))), nil})
	}
	cs = append(cs,
		Case{"-", "RFC 6455 §5.2", "three messages and a ping in one write",
			Steps(Send(sd.F(true, opText, "one"), sd.F(true, opPing, "p"), sd.FB(true, opBinary, []byte{2}), sd.F(true, opText, "three")).
				Expect(EvText("one"), EvPong("p"), EvBin([]byte{2}), EvText("three"))), nil},
	)
	return cs
}

// Section2 follows section 2, pings and pongs.
func Section2(sd Side) []Case {
	const rfc = "RFC 6455 §5.5.2, §5.5.3"
	bin := string([]byte{0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff})
	p125 := strings.Repeat("\xfe", 125)
	var ten, tenPongs []Event
	var tenFrames [][]byte
	for i := 0; i < 10; i++ {
		pl := "payload-" + strconv.Itoa(i)
		tenFrames = append(tenFrames, sd.F(true, opPing, pl))
		ten = append(ten, EvPong(pl))
	}
	tenPongs = ten
	return []Case{
		{"2.1", rfc, "ping without payload", Steps(Send(sd.F(true, opPing, "")).Expect(EvPong(""))), nil},
		{"2.2", rfc, "ping with a text payload", Steps(Send(sd.F(true, opPing, "Hello, world!")).Expect(EvPong("Hello, world!"))), nil},
		{"2.3", rfc, "ping with a binary payload", Steps(Send(sd.F(true, opPing, bin)).Expect(EvPong(bin))), nil},
		{"2.4", rfc, "ping with 125 bytes", Steps(Send(sd.F(true, opPing, p125)).Expect(EvPong(p125))), nil},
		{"2.5", "RFC 6455 §5.5", "ping with 126 bytes", Steps(Send(sd.F(true, opPing, p125+"\xfe")).Expect(EvClose(frame.CloseProtocolError))), nil},
		{"2.6", rfc, "ping with 125 bytes written 1 byte at a time", Steps(Chop(1, sd.F(true, opPing, p125)).Expect(EvPong(p125))), nil},
		{"2.7", rfc, "unsolicited pong without payload is ignored", Steps(Send(sd.F(true, opPong, ""))), nil},
		{"2.8", rfc, "unsolicited pong with payload is ignored", Steps(Send(sd.F(true, opPong, "unsolicited pong payload"))), nil},
		{"2.9", rfc, "unsolicited pong, then ping", Steps(Send(sd.F(true, opPong, "unsolicited pong payload"), sd.F(true, opPing, "ping payload")).Expect(EvPong("ping payload"))), nil},
		// RFC 6455 §5.5.3 allows answering only the latest of several
		// pings; the Provider and the Consumer answer each, in order.
		{"2.10", rfc, "10 pings, each answered in order", Steps(Send(tenFrames...).Expect(tenPongs...)), nil},
		{"2.11", rfc, "10 pings written 1 byte at a time", Steps(Chop(1, tenFrames...).Expect(tenPongs...)), nil},
		{"-", rfc, "ping between the fragments of a binary message", Steps(Send(sd.F(false, opBinary, "ab"), sd.F(true, opPing, "x"), sd.F(true, opCont, "cd")).Expect(EvPong("x"), EvBin([]byte("abcd")))), nil},
		{"-", "RFC 6455 §5.5", "pong with 126 bytes", Steps(Send(sd.F(true, opPong, p125+"\xfe")).Expect(EvClose(frame.CloseProtocolError))), nil},
	}
}

// Section3 follows section 3, reserved bits.
func Section3(sd Side) []Case {
	const rfc = "RFC 6455 §5.2"
	bad := frame.CloseProtocolError
	hello := "Hello, world!"
	bin := string(tv.Binary(256, 3))
	return []Case{
		{"3.1", rfc, "text with RSV3 (0x10)", Steps(Send(sd.Rsv(1, true, opText, hello)).Expect(EvClose(bad))), nil},
		{"3.2", rfc, "text, then text with RSV2, then ping", Steps(Send(sd.F(true, opText, hello), sd.Rsv(2, true, opText, hello), sd.F(true, opPing, "")).Expect(EvText(hello), EvClose(bad))), nil},
		{"3.3", rfc, "3.2 frame by frame", Steps(Each(sd.F(true, opText, hello), sd.Rsv(3, true, opText, hello), sd.F(true, opPing, "")).Expect(EvText(hello), EvClose(bad))), nil},
		{"3.4", rfc, "3.2 byte by byte", Steps(Chop(1, sd.F(true, opText, hello), sd.Rsv(4, true, opText, hello), sd.F(true, opPing, "")).Expect(EvText(hello), EvClose(bad))), nil},
		{"3.5", rfc, "binary with RSV1 and RSV3 (0x50)", Steps(Send(sd.Rsv(5, true, opBinary, bin)).Expect(EvClose(bad))), nil},
		{"3.6", rfc, "ping with RSV1 and RSV2 (0x60)", Steps(Send(sd.Rsv(6, true, opPing, hello)).Expect(EvClose(bad))), nil},
		{"3.7", rfc, "close with all reserved bits (0x70)", Steps(Send(sd.RsvClose(7)).Expect(EvClose(bad))), nil},
		{"-", "RFC 6455 §5.2, RFC 7692 §6", "text with RSV1 when permessage-deflate was not negotiated", Steps(Send(sd.Rsv(4, true, opText, hello)).Expect(EvClose(bad))), nil},
		{"-", rfc, "continuation with RSV2", Steps(Send(sd.F(false, opText, "a"), sd.Rsv(2, true, opCont, "b")).Expect(EvClose(bad))), nil},
		{"-", rfc, "pong with RSV3", Steps(Send(sd.Rsv(1, true, opPong, "")).Expect(EvClose(bad))), nil},
	}
}

// Section4 follows section 4, reserved opcodes.
func Section4(sd Side) []Case {
	const rfc = "RFC 6455 §5.2"
	bad := frame.CloseProtocolError
	hello := "Hello, world!"
	ping := sd.F(true, opPing, "")
	var cs []Case
	for i, op := range []frame.Opcode{3, 4, 5, 6, 7, 11, 12, 13, 14, 15} {
		group, n := "4.1.", i+1
		if op > 7 {
			group, n = "4.2.", i-4
		}
		f := sd.F(true, op, "")
		name := fmt.Sprintf("reserved opcode %d", op)
		if n%2 == 0 || n == 5 {
			f = sd.F(true, op, "reserved opcode payload")
			name += " with payload"
		}
		st := Send(f).Expect(EvClose(bad))
		if n >= 3 {
			st = Send(sd.F(true, opText, hello), f, ping).Expect(EvText(hello), EvClose(bad))
			name = "text, then " + name + ", then ping"
		}
		cs = append(cs, Case{group + strconv.Itoa(n), rfc, name, Steps(st), nil})
	}
	cs = append(cs,
		Case{"-", rfc, "reserved opcode 3 as the last fragment of a message", Steps(Send(sd.F(false, opText, "a"), sd.F(true, 3, "b")).Expect(EvClose(bad))), nil},
		Case{"-", rfc, "reserved control opcode 11 between fragments", Steps(Send(sd.F(false, opText, "a"), sd.F(true, 11, ""), sd.F(true, opCont, "b")).Expect(EvClose(bad))), nil},
	)
	return cs
}

// Section5 follows section 5, fragmentation.
func Section5(sd Side) []Case {
	const rfc = "RFC 6455 §5.4"
	bad := frame.CloseProtocolError
	f1, f2 := sd.F(false, opText, "fragment1"), sd.F(true, opCont, "fragment2")
	ping := sd.F(true, opPing, "ping payload")
	contFin := sd.F(true, opCont, "non-continuation payload")
	contMore := sd.F(false, opCont, "non-continuation payload")
	text := sd.F(true, opText, "Hello, world!")
	twice := func(a, b, c []byte) [][]byte { return [][]byte{a, b, c, a, b, c} }
	cs := []Case{
		{"5.1", "RFC 6455 §5.4, §5.5", "ping in 2 fragments", Steps(Send(sd.F(false, opPing, "fragment1"), sd.F(true, opCont, "fragment2")).Expect(EvClose(bad))), nil},
		{"5.2", "RFC 6455 §5.4, §5.5", "pong in 2 fragments", Steps(Send(sd.F(false, opPong, "fragment1"), sd.F(true, opCont, "fragment2")).Expect(EvClose(bad))), nil},
		{"5.3", rfc, "text in 2 fragments", Steps(Send(f1, f2).Expect(EvText("fragment1fragment2"))), nil},
		{"5.4", rfc, "5.3 frame by frame", Steps(Each(f1, f2).Expect(EvText("fragment1fragment2"))), nil},
		{"5.5", rfc, "5.3 byte by byte", Steps(Chop(1, f1, f2).Expect(EvText("fragment1fragment2"))), nil},
		{"5.6", rfc, "text in 2 fragments with a ping between", Steps(Send(f1, ping, f2).Expect(EvPong("ping payload"), EvText("fragment1fragment2"))), nil},
		{"5.7", rfc, "5.6 frame by frame", Steps(Each(f1, ping, f2).Expect(EvPong("ping payload"), EvText("fragment1fragment2"))), nil},
		{"5.8", rfc, "5.6 byte by byte", Steps(Chop(1, f1, ping, f2).Expect(EvPong("ping payload"), EvText("fragment1fragment2"))), nil},
		{"5.9", rfc, "final continuation with nothing to continue, then text", Steps(Send(contFin, f1, ping, f2).Expect(EvClose(bad))), nil},
		{"5.10", rfc, "5.9 frame by frame", Steps(Each(contFin, f1, ping, f2).Expect(EvClose(bad))), nil},
		{"5.11", rfc, "5.9 byte by byte", Steps(Chop(1, contFin, f1, ping, f2).Expect(EvClose(bad))), nil},
		{"5.12", rfc, "non-final continuation with nothing to continue, then text", Steps(Send(contMore, f1, ping, f2).Expect(EvClose(bad))), nil},
		{"5.13", rfc, "5.12 frame by frame", Steps(Each(contMore, f1, ping, f2).Expect(EvClose(bad))), nil},
		{"5.14", rfc, "5.12 byte by byte", Steps(Chop(1, contMore, f1, ping, f2).Expect(EvClose(bad))), nil},
		{"5.15", rfc, "text in 2 fragments, then a continuation with nothing to continue",
			Steps(Send(f1, f2, sd.F(false, opCont, "fragment3"), sd.F(true, opText, "fragment4")).Expect(EvText("fragment1fragment2"), EvClose(bad))), nil},
		{"5.16", rfc, "twice: non-final continuation, text, continuation",
			Steps(Send(twice(sd.F(false, opCont, "fragment1"), sd.F(false, opText, "fragment2"), sd.F(true, opCont, "fragment3"))...).Expect(EvClose(bad))), nil},
		{"5.17", rfc, "twice: final continuation, text, continuation",
			Steps(Send(twice(sd.F(true, opCont, "fragment1"), sd.F(false, opText, "fragment2"), sd.F(true, opCont, "fragment3"))...).Expect(EvClose(bad))), nil},
		{"5.18", rfc, "text in 2 fragments that both carry the text opcode", Steps(Send(f1, sd.F(true, opText, "fragment2")).Expect(EvClose(bad))), nil},
	}
	// 5.19, 5.20: pings mid-message are answered at once, before the
	// message is complete.
	frags := func(i int, fin bool) []byte {
		op := opCont
		if i == 1 {
			op = opText
		}
		return sd.F(fin, op, "fragment"+strconv.Itoa(i))
	}
	whole := EvText("fragment1fragment2fragment3fragment4fragment5")
	p1, p2 := sd.F(true, opPing, "pongme 1!"), sd.F(true, opPing, "pongme 2!")
	cs = append(cs,
		Case{"5.19", rfc, "text in 5 fragments with 2 pings, answered before the message ends", Steps(
			Send(frags(1, false), frags(2, false), p1).Expect(EvPong("pongme 1!")),
			Send(frags(3, false), frags(4, false), p2).Expect(EvPong("pongme 2!")),
			Send(frags(5, true)).Expect(whole)), nil},
		Case{"5.20", rfc, "5.19 frame by frame", Steps(
			Each(frags(1, false), frags(2, false), p1).Expect(EvPong("pongme 1!")),
			Each(frags(3, false), frags(4, false), p2).Expect(EvPong("pongme 2!")),
			Each(frags(5, true)).Expect(whole)), nil},
		Case{"-", rfc, "binary in 3 fragments, the middle one empty", Steps(Send(sd.F(false, opBinary, "a"), sd.F(false, opCont, ""), sd.F(true, opCont, "b")).Expect(EvBin([]byte("ab")))), nil},
		Case{"-", rfc, "binary fragment, then a text frame", Steps(Send(sd.F(false, opBinary, "a"), text).Expect(EvClose(bad))), nil},
		Case{"-", rfc, "two messages back to back after a fragmented one", Steps(Send(f1, f2, text, sd.F(true, opBinary, "b")).Expect(EvText("fragment1fragment2"), EvText("Hello, world!"), EvBin([]byte("b")))), nil},
	)
	return cs
}

// Section6 follows section 6, UTF-8 (and every vector of
// testvectors.UTF8Vectors, in one frame and byte by byte). The Consumer
// adds cases for frames larger than its read buffer.
func Section6(sd Side) []Case {
	const rfc = "RFC 6455 §5.6, §8.1; RFC 3629"
	inval := frame.CloseInvalidPayload
	mixed := "Hello-µ@ßöäüàá-UTF-8!!"
	bad := sd.HeaderSize(len(tv.Kosme)+4+6) + len(tv.Kosme) // the offset of the bad bytes in 6.4.3, 6.4.4
	bytewise := func(s string) [][]byte {
		if s == "" {
			return [][]byte{sd.F(true, opText, "")}
		}
		var fs [][]byte
		for i := 0; i < len(s); i++ {
			op := opCont
			if i == 0 {
				op = opText
			}
			fs = append(fs, sd.F(i == len(s)-1, op, s[i:i+1]))
		}
		return fs
	}
	cs := []Case{
		{"6.1.1", rfc, "empty text", Steps(Send(sd.F(true, opText, "")).Expect(EvText(""))), nil},
		{"6.1.2", rfc, "text in 3 empty fragments", Steps(Send(sd.F(false, opText, ""), sd.F(false, opCont, ""), sd.F(true, opCont, "")).Expect(EvText(""))), nil},
		{"6.1.3", rfc, "text in 3 fragments, the first and last empty", Steps(Send(sd.F(false, opText, ""), sd.F(false, opCont, "middle frame payload"), sd.F(true, opCont, "")).Expect(EvText("middle frame payload"))), nil},
		{"6.2.1", rfc, "valid UTF-8 in one frame", Steps(Send(sd.F(true, opText, mixed)).Expect(EvText(mixed))), nil},
		{"6.2.2", rfc, "valid UTF-8 in 2 fragments cut at a character boundary", Steps(Send(sd.F(false, opText, mixed[:13]), sd.F(true, opCont, mixed[13:])).Expect(EvText(mixed))), nil},
		{"6.2.3", rfc, "valid UTF-8 in fragments of 1 byte", Steps(Send(bytewise(mixed)...).Expect(EvText(mixed))), nil},
		{"6.2.4", rfc, "κόσμε in fragments of 1 byte", Steps(Send(bytewise(tv.Kosme)...).Expect(EvText(tv.Kosme))), nil},
		{"6.3.1", rfc, "invalid UTF-8 (a surrogate) in one frame", Steps(Send(sd.F(true, opText, tv.KosmeBad)).Expect(EvClose(inval))), nil},
		{"6.3.2", rfc, "invalid UTF-8 (a surrogate) in fragments of 1 byte", Steps(Send(bytewise(tv.KosmeBad)...).Expect(EvClose(inval))), nil},
		// 6.4: fail fast. The message is never finished: the peer must fail
		// the connection on the fragment that holds the bad byte.
		{"6.4.1", rfc, "fail fast: the fragment holding U+110000 fails the connection before the message ends", Steps(
			Send(sd.F(false, opText, tv.Kosme)),
			Send(sd.F(false, opCont, "\xf4\x90\x80\x80")).Expect(EvClose(inval))), nil},
		{"6.4.2", rfc, "fail fast: a fragment ending inside a character is accepted, the next byte fails", Steps(
			Send(sd.F(false, opText, tv.Kosme+"\xf4")),
			Send(sd.F(false, opCont, "\x90")).Expect(EvClose(inval))), nil},
		// 6.4.3, 6.4.4 cut one small frame into writes (cases6_4_3 below).
		{"-", rfc, "fail fast: an overlong '/' in the first fragment fails before the message ends", Steps(
			Send(sd.F(false, opText, "ok so far \xc0\xaf")).Expect(EvClose(inval))), nil},
		{"-", rfc, "text ending inside a character", Steps(Send(sd.F(true, opText, "abc\xe2\x82")).Expect(EvClose(inval))), nil},
		{"-", rfc, "text ending inside a character, fragmented", Steps(Send(sd.F(false, opText, "abc\xe2"), sd.F(true, opCont, "\x82")).Expect(EvClose(inval))), nil},
		{"-", rfc, "a character split over 3 fragments with a ping inside", Steps(Send(sd.F(false, opText, "\xf0\x9f"), sd.F(true, opPing, "p"), sd.F(false, opCont, "\x8e"), sd.F(true, opCont, "\x89")).Expect(EvPong("p"), EvText("🎉"))), nil},
		{"-", rfc, "invalid UTF-8 in a binary message is data, not text", Steps(Send(sd.F(true, opBinary, tv.KosmeBad)).Expect(EvBin([]byte(tv.KosmeBad)))), nil},
	}
	cs = append(cs, cases6_4_3(sd, bad)...)
	for _, v := range tv.UTF8Vectors() {
		want := EvText(v.Data)
		if !v.Valid {
			want = EvClose(inval)
		}
		verdict := "invalid"
		if v.Valid {
			verdict = "valid"
		}
		cs = append(cs,
			Case{v.AB, rfc, v.Desc + " (" + verdict + "), one frame", Steps(Send(sd.F(true, opText, v.Data)).Expect(want)), nil},
			Case{v.AB, rfc, v.Desc + " (" + verdict + "), fragments of 1 byte", Steps(Send(bytewise(v.Data)...).Expect(want)), nil})
	}
	return cs
}

// Section7 follows section 7, close: closing handshakes, frames after a
// close, close payloads and every kind of close code.
func Section7(sd Side) []Case {
	const rfc = "RFC 6455 §5.5.1, §7.1"
	normal := frame.CloseNormal
	bad := frame.CloseProtocolError
	hw := "Hello World!"
	cl := sd.CloseFrame(normal, "")
	cs := []Case{
		{"7.1.1", rfc, "echo, then a clean close", Steps(Send(sd.F(true, opText, hw)).Expect(EvText(hw)), sd.SendClose(normal)), nil},
		{"7.1.2", rfc, "two close frames: the second is ignored", Steps(Send(cl, cl).Closing(normal).Expect(EvClose(normal))), nil},
		{"7.1.3", rfc, "ping after close is not answered", Steps(Send(cl, sd.F(true, opPing, hw)).Closing(normal).Expect(EvClose(normal))), nil},
		{"7.1.4", rfc, "text after close is not delivered", Steps(Send(cl, sd.F(true, opText, hw)).Closing(normal).Expect(EvClose(normal))), nil},
		{"7.1.5", rfc, "close between the fragments of a message: the message is dropped", Steps(Send(sd.F(false, opText, "fragment1"), cl, sd.F(true, opCont, "fragment2")).Closing(normal).Expect(EvClose(normal))), nil},
		{"7.1.6", rfc, "256 KiB message, close, ping: echo, close, no pong", nil, func() []Step {
			big := tv.Text(256 << 10)
			return Steps(Send(sd.FB(true, opText, big), cl, sd.F(true, opPing, hw)).Closing(normal).Expect(EvTextB(big), EvClose(normal)))
		}},
		{"7.3.1", "RFC 6455 §5.5.1, §7.1.5", "close without payload is answered without payload", Steps(Send(sd.F(true, opClose, "")).Closing(frame.CloseNoStatus).Expect(EvClose(frame.CloseNoStatus))), nil},
		{"7.3.2", "RFC 6455 §5.5.1", "close with a 1-byte payload", Steps(Send(sd.F(true, opClose, "\x03")).Expect(EvClose(bad))), nil},
		{"7.3.3", rfc, "close 1000 without reason", Steps(sd.SendClose(normal).Expect(EvClose(normal))), nil},
		{"7.3.4", rfc, "close 1000 with a reason", Steps(Send(sd.CloseFrame(normal, hw)).Closing(normal).Expect(EvClose(normal))), nil},
		{"7.3.5", rfc, "close 1000 with a 123-byte reason", Steps(Send(sd.CloseFrame(normal, strings.Repeat("*", 123))).Closing(normal).Expect(EvClose(normal))), nil},
		{"7.3.6", "RFC 6455 §5.5", "close with a 124-byte reason (126-byte payload)", Steps(Send(sd.FB(true, opClose, append([]byte{0x03, 0xe8}, strings.Repeat("*", 124)...))).Expect(EvClose(bad))), nil},
		{"7.5.1", "RFC 6455 §5.5.1, §8.1", "close reason that is not UTF-8", Steps(Send(sd.FB(true, opClose, append([]byte{0x03, 0xe8}, tv.KosmeBad...))).Expect(EvClose(frame.CloseInvalidPayload))), nil},
	}
	for i, code := range []frame.CloseCode{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999} {
		cs = append(cs, Case{"7.7." + strconv.Itoa(i+1), "RFC 6455 §7.4", fmt.Sprintf("valid close code %d is echoed", code),
			Steps(sd.SendClose(code).Expect(EvClose(code))), nil})
	}
	for _, code := range []frame.CloseCode{1012, 1013, 1014} {
		cs = append(cs, Case{"-", "RFC 6455 §7.4.2, IANA registry", fmt.Sprintf("registered close code %d is echoed", code),
			Steps(sd.SendClose(code).Expect(EvClose(code))), nil})
	}
	for i, code := range []int{0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999} {
		cs = append(cs, Case{"7.9." + strconv.Itoa(i+1), "RFC 6455 §7.4", fmt.Sprintf("invalid close code %d", code),
			Steps(Send(sd.RawClose(code)).Expect(EvClose(bad))), nil})
	}
	cs = append(cs,
		Case{"-", "RFC 6455 §7.4.1", "close code 1015 (reserved, never on the wire)", Steps(Send(sd.RawClose(1015)).Expect(EvClose(bad))), nil},
		Case{"7.13.1", "RFC 6455 §7.4.2", "close code 5000 (outside every range)", Steps(Send(sd.RawClose(5000)).Expect(EvClose(bad))), nil},
		Case{"7.13.2", "RFC 6455 §7.4.2", "close code 65535", Steps(Send(sd.RawClose(65535)).Expect(EvClose(bad))), nil},
	)
	return cs
}

// Answer is the event with which the peer under test answers a message:
// Echo, or a digest of it, say.
type Answer func(op frame.Opcode, p []byte) Event

// Section9 follows section 9, large messages, for a peer whose limit is at
// least 16 MiB: text messages of 64 KiB to 16 MiB and binary ones to 4 MiB
// as single frames, messages in fragments of 64 B to 1 MiB, a frame written
// in small chops, and many small messages in turn, each answered with
// answer. The sizes keep the run short under the race detector; every
// frame-length encoding and every fragment size of Autobahn's section 9 is
// covered.
func Section9(sd Side, answer Answer) []Case {
	const rfc = "RFC 6455 §5.2, §5.4, §10.4"
	var cs []Case
	kinds := []struct {
		op   frame.Opcode
		name string
		sub  int
	}{{opText, "text", 0}, {opBinary, "binary", 1}}
	// 9.1, 9.2: single frames (Autobahn's 9.x.5, 8 MiB, adds nothing).
	for _, k := range kinds {
		sizes := []int{64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20}
		if k.op == opBinary {
			sizes = sizes[:4]
		}
		for i, n := range sizes {
			cs = append(cs, Case{fmt.Sprintf("9.%d.%d", 1+k.sub, []int{1, 2, 3, 4, 6}[i]), rfc, fmt.Sprintf("%s of %d bytes in one frame", k.name, n), nil,
				func() []Step {
					p, ev := message(answer, k.op, n)
					return Steps(Send(sd.Fragments(k.op, 0, p, 0)...).Expect(ev))
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
			cs = append(cs, Case{fmt.Sprintf("9.%d.%d", 3+k.sub, i+1), rfc, fmt.Sprintf("%s of %d bytes in fragments of %d", k.name, n, frag), nil,
				func() []Step {
					p, ev := message(answer, k.op, n)
					return Steps(Send(sd.Fragments(k.op, 0, p, frag)...).Expect(ev))
				}})
		}
	}
	// 9.5, 9.6: one frame of 1 MiB written in chops of 64 B to 2 KiB.
	for _, k := range kinds {
		for i, c := range []int{64, 128, 256, 512, 1024, 2048} {
			if (i+k.sub)%2 == 1 {
				continue // half the chop sizes for each kind
			}
			cs = append(cs, Case{fmt.Sprintf("9.%d.%d", 5+k.sub, i+1), rfc, fmt.Sprintf("%s of 1 MiB in one frame, written in chops of %d", k.name, c), nil,
				func() []Step {
					p, ev := message(answer, k.op, 1<<20)
					return Steps(Chop(c, sd.Fragments(k.op, 0, p, 0)...).Expect(ev))
				}})
		}
	}
	// 9.7, 9.8: many small messages, each answered before the next is sent.
	for _, k := range kinds {
		for i, n := range []int{0, 16, 64, 256, 1024, 4096} {
			cs = append(cs, Case{fmt.Sprintf("9.%d.%d", 7+k.sub, i+1), rfc, fmt.Sprintf("100 %s messages of %d bytes in turn", k.name, n), nil,
				func() []Step {
					var st []Step
					for j := 0; j < 100; j++ {
						p, ev := message(answer, k.op, n)
						st = append(st, Send(sd.FB(true, k.op, p)).Expect(ev))
					}
					return st
				}})
		}
	}
	return cs
}

// message returns a message of n bytes, text or binary as op says, and
// the answer to it.
func message(answer Answer, op frame.Opcode, n int) ([]byte, Event) {
	p := tv.Binary(n, uint64(n))
	if op == opText {
		p = tv.Text(n)
	}
	return p, answer(op, p)
}

// LimitCases hold a peer whose message limit (its option named option) is
// max to it: exactly max passes, answered with answer; one byte more fails
// with 1009, judged from the header where it can be (RFC 6455 §10.4,
// §7.4.1).
func LimitCases(sd Side, max int, option string, answer Answer) []Case {
	const rfc = "RFC 6455 §7.4.1, §10.4"
	over := max + 1
	inFlight := "discarded"
	if sd == Client {
		inFlight = "not parsed as frames"
	}
	hdr64 := func(n int64) []byte {
		return []byte{127, byte(n >> 56), byte(n >> 48), byte(n >> 40), byte(n >> 32), byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	}
	return []Case{
		{"-", rfc, "text of exactly the limit in one frame", nil, func() []Step {
			p, ev := message(answer, opText, max)
			return Steps(Send(sd.FB(true, opText, p)).Expect(ev))
		}},
		{"-", rfc, "binary of exactly the limit in fragments of 100000", nil, func() []Step {
			p, ev := message(answer, opBinary, max)
			return Steps(Send(sd.Fragments(opBinary, 0, p, 100000)...).Expect(ev))
		}},
		{"-", rfc, "frame header announcing the limit + 1 (payload never sent)", Steps(
			Send(sd.RawFrame(0x82, hdr64(int64(over)), nil)).Expect(EvClose(frame.CloseTooBig))), nil},
		{"-", rfc, "frame header announcing 2^63-1 bytes", Steps(
			Send(sd.RawFrame(0x82, hdr64(1<<63-1), nil)).Expect(EvClose(frame.CloseTooBig))), nil},
		{"-", rfc + "; " + option + " doc", "fragments adding up to the limit + 1: failed at the last header, before its payload", nil, func() []Step {
			first := sd.FB(false, opBinary, tv.Binary(max/2, 1))
			second := sd.FB(true, opCont, tv.Binary(max/2+1, 2))
			header := second[:sd.HeaderSize(max/2+1)] // its payload is never sent
			return Steps(Send(first, header).Expect(EvClose(frame.CloseTooBig)))
		}},
		{"-", "RFC 6455 §7.1.7, §10.4", "frame of the limit + 1: failed at its header; the payload in flight is " + inFlight, nil, func() []Step {
			f := sd.FB(true, opBinary, tv.Binary(over, 2))
			n := sd.HeaderSize(over)
			st := Send(f[:n+1000]).Expect(EvClose(frame.CloseTooBig))
			for off := n + 1000; off < len(f); off += len(f) / 16 {
				st.Trail = append(st.Trail, f[off:min(off+len(f)/16, len(f))])
			}
			return Steps(st)
		}},
		{"-", rfc, "text of the limit + 1 in fragments", nil, func() []Step {
			return Steps(Send(sd.Fragments(opText, 0, tv.Text(over), max/2)...).Expect(EvClose(frame.CloseTooBig)))
		}},
	}
}

// Section10 follows section 10, auto-fragmentation: messages in fragments
// of 1 byte to 65535, across the length encodings.
func Section10(sd Side) []Case {
	const rfc = "RFC 6455 §5.4"
	var cs []Case
	add := func(ab, name string, op frame.Opcode, p []byte, size int) {
		cs = append(cs, Case{ab, rfc, name, Steps(Send(sd.Fragments(op, 0, p, size)...).Expect(Echo(op, p))), nil})
	}
	add("10.1.1", "text of 65536 bytes in fragments of 1300", opText, tv.Text(65536), 1300)
	add("-", "binary of 65536 bytes in fragments of 1300", opBinary, tv.Binary(65536, 10), 1300)
	add("-", "text of 4096 bytes in fragments of 1 byte", opText, tv.Text(4096), 1)
	for _, size := range []int{125, 126, 127, 65535} {
		add("-", fmt.Sprintf("text of 200000 bytes in fragments of %d (length-encoding boundaries)", size), opText, tv.Text(200000), size)
	}
	return cs
}

// cases6_4_3 are 6.4.3 and 6.4.4: one small text frame written in pieces,
// one of them holding the bytes that make the text invalid. The Provider
// is strict: it takes a frame's payload as it arrives and fails the
// connection as soon as the bad bytes are in, before the rest of the frame
// is written (the rest follows its close frame). The Consumer checks a
// frame that fits its read buffer once it has all of it (Autobahn rates
// this NON-STRICT): it fails the connection at the end of the frame.
func cases6_4_3(sd Side, bad int) []Case {
	const rfc = "RFC 6455 §5.6, §8.1; RFC 3629"
	inval := frame.CloseInvalidPayload
	f := func() []byte { return sd.F(true, opText, tv.Kosme+"\xf4\x90\x80\x80edited") }
	strict := func(cuts ...int) []Step {
		b := f()
		var pieces [][]byte
		prev := 0
		for _, c := range cuts {
			pieces = append(pieces, b[prev:c])
			prev = c
		}
		st := Each(pieces...).Expect(EvClose(inval))
		st.Trail = [][]byte{b[prev:]}
		return Steps(st)
	}
	if sd == Client {
		return []Case{
			{"6.4.3", rfc, "one frame written in 3 pieces, the 2nd holding the bad bytes (failed on the 2nd)", strict(bad, bad+4), nil},
			{"6.4.4", rfc, "one frame written in 4 pieces, the 2nd a lone 0xf4 (failed on the 3rd, 0x90)", strict(bad, bad+1, bad+2), nil},
		}
	}
	return []Case{
		{"6.4.3", rfc, "one frame written in 3 pieces, the 2nd holding the bad bytes (failed at the frame's end)", Steps(
			SplitAt(f(), bad, bad+4).Expect(EvClose(inval))), nil},
		{"6.4.4", rfc, "one frame written in 4 pieces, the 2nd a lone 0xf4 (failed at the frame's end)", Steps(
			SplitAt(f(), bad, bad+1, bad+2).Expect(EvClose(inval))), nil},
	}
}
