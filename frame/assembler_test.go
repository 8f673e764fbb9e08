package frame

import (
	"bytes"
	"testing"
)

// fr is a test frame: the header fields that matter to the Assembler and a
// payload.
type fr struct {
	b0      byte // the first header byte: FIN, RSV bits and opcode
	payload string
}

const (
	fin  = 0x80
	rsv1 = 0x40
)

// wire encodes frames as a client would send them (masked).
func wire(frames ...fr) []byte {
	var b []byte
	key := [4]byte{9, 8, 7, 6}
	for _, f := range frames {
		b = AppendHeader(b, Header{Fin: f.b0&0x80 != 0, Rsv: f.b0 >> 4 & 7, Op: Opcode(f.b0 & 15),
			Masked: true, Mask: key, Length: int64(len(f.payload))})
		start := len(b)
		b = append(b, f.payload...)
		Mask(b[start:], key, 0)
	}
	return b
}

func TestAssembler(t *testing.T) {
	deflate := ParseOptions{AllowRSV1: true}
	cases := []struct {
		name   string
		o      ParseOptions
		max    int64
		frames []fr
		want   []event
		code   CloseCode // 0: no error
	}{
		{name: "single text", frames: []fr{{fin | 1, "hi"}}, want: []event{{op: OpText, payload: "hi"}}},
		{name: "single binary", frames: []fr{{fin | 2, "\xff\x00"}}, want: []event{{op: OpBinary, payload: "\xff\x00"}}},
		{name: "empty text", frames: []fr{{fin | 1, ""}}, want: []event{{op: OpText}}},
		{name: "fragmented text", frames: []fr{{1, "He"}, {0, "l"}, {fin, "lo"}}, want: []event{{op: OpText, payload: "Hello"}}},
		{name: "empty fragments", frames: []fr{{2, ""}, {0, ""}, {fin, ""}}, want: []event{{op: OpBinary}}},
		{name: "control frames interleaved", frames: []fr{{1, "a"}, {fin | 9, "p"}, {0, "b"}, {fin | 0xA, ""}, {fin, "c"}},
			want: []event{{op: OpPing, control: true, payload: "p"}, {op: OpPong, control: true}, {op: OpText, payload: "abc"}}},
		{name: "character split across fragments", frames: []fr{{1, "\xe2"}, {0, "\x82"}, {fin, "\xac"}}, want: []event{{op: OpText, payload: "€"}}},
		{name: "two messages", frames: []fr{{fin | 1, "a"}, {fin | 2, "b"}}, want: []event{{op: OpText, payload: "a"}, {op: OpBinary, payload: "b"}}},
		{name: "compressed text", o: deflate, frames: []fr{{rsv1 | 1, "x"}, {fin, "y"}}, want: []event{{op: OpText, compressed: true, payload: "xy"}}},

		{name: "continuation first", frames: []fr{{fin, "x"}}, code: CloseProtocolError},
		{name: "continuation after complete message", frames: []fr{{fin | 1, "a"}, {fin, "b"}}, want: []event{{op: OpText, payload: "a"}}, code: CloseProtocolError},
		{name: "text mid-message", frames: []fr{{1, "a"}, {fin | 1, "b"}}, code: CloseProtocolError},
		{name: "binary mid-message", frames: []fr{{2, "a"}, {fin | 2, "b"}}, code: CloseProtocolError},
		{name: "RSV1 on continuation", o: deflate, frames: []fr{{rsv1 | 1, "a"}, {rsv1 | fin, "b"}}, code: CloseProtocolError},
		{name: "RSV1 on ping", o: deflate, frames: []fr{{rsv1 | fin | 9, ""}}, code: CloseProtocolError},
		{name: "RSV1 not negotiated", frames: []fr{{rsv1 | fin | 1, "a"}}, code: CloseProtocolError},
		{name: "fragmented ping", frames: []fr{{9, ""}}, code: CloseProtocolError},

		{name: "bad UTF-8", frames: []fr{{fin | 1, "a\xffb"}}, code: CloseInvalidPayload},
		{name: "bad UTF-8 in first fragment", frames: []fr{{1, "\xc0"}, {fin, "\x80"}}, code: CloseInvalidPayload},
		{name: "text ending mid-character", frames: []fr{{fin | 1, "a\xe2\x82"}}, code: CloseInvalidPayload},
		{name: "fragmented text ending mid-character", frames: []fr{{1, "a"}, {fin, "\xf0"}}, code: CloseInvalidPayload},
		{name: "compressed text, bad inflated UTF-8", o: deflate, frames: []fr{{rsv1 | fin | 1, "\xff"}}, code: CloseInvalidPayload},
		{name: "compressed text ending mid-character", o: deflate, frames: []fr{{rsv1 | fin | 1, "\xe2"}}, code: CloseInvalidPayload},
		{name: "binary is not UTF-8 checked", frames: []fr{{fin | 2, "\xff"}}, want: []event{{op: OpBinary, payload: "\xff"}}},
		{name: "compressed binary", o: deflate, frames: []fr{{rsv1 | fin | 2, "\xff"}}, want: []event{{op: OpBinary, compressed: true, payload: "\xff"}}},
		{name: "close reason is not the Assembler's", frames: []fr{{1, "a"}, {fin | 8, "\x03\xe8\xff"}, {fin, "b"}},
			want: []event{{op: OpClose, control: true, payload: "\x03\xe8\xff"}, {op: OpText, payload: "ab"}}},

		{name: "at max", max: 4, frames: []fr{{1, "ab"}, {fin, "cd"}}, want: []event{{op: OpText, payload: "abcd"}}},
		{name: "over max across fragments", max: 4, frames: []fr{{1, "ab"}, {0, "cd"}, {fin, "e"}}, code: CloseTooBig},
		{name: "control frames do not count", max: 2, frames: []fr{{1, "ab"}, {fin | 9, "ping"}, {fin, ""}},
			want: []event{{op: OpPing, control: true, payload: "ping"}, {op: OpText, payload: "ab"}}},
		{name: "limit is per message", max: 2, frames: []fr{{fin | 1, "ab"}, {fin | 1, "cd"}}, want: []event{{op: OpText, payload: "ab"}, {op: OpText, payload: "cd"}}},
	}
	for _, c := range cases {
		// Every split of the stream into two chunks gives the same outcome.
		w := wire(c.frames...)
		for split := 0; split <= len(w); split++ {
			r := newStreamReader(c.o, c.max)
			err := r.feed(w[:split])
			if err == nil {
				err = r.feed(w[split:])
			}
			if CloseStatus(err) != c.code || (err != nil && c.code == 0) {
				t.Fatalf("%s (split %d): err %v, want code %d", c.name, split, err, c.code)
			}
			if !equalEvents(r.events, c.want) {
				t.Fatalf("%s (split %d): events %+v, want %+v", c.name, split, r.events, c.want)
			}
			if c.code == 0 && (!r.idle() || r.a.InMessage()) {
				t.Fatalf("%s: reader not idle after the stream", c.name)
			}
		}
	}
}

func TestAssemblerFailsAtFirstBadByte(t *testing.T) {
	// The invalid byte arrives in the second fragment; the rest of the
	// message is never needed to fail it.
	var a Assembler
	steps := []struct {
		h    Header
		p    string
		code CloseCode
	}{
		{Header{Op: OpText, Length: 4}, "abcd", 0},
		{Header{Op: OpContinuation, Length: 1000}, "ef\xed\xa0", CloseInvalidPayload},
	}
	for i, s := range steps {
		if err := a.Begin(s.h); err != nil {
			t.Fatal(err)
		}
		if err := a.Payload([]byte(s.p)); CloseStatus(err) != s.code {
			t.Fatalf("step %d: %v", i, err)
		}
		if s.code == 0 {
			if done, _, _, err := a.End(); done || err != nil {
				t.Fatalf("step %d: End = %v, %v", i, done, err)
			}
		}
	}
}

func TestAssemblerState(t *testing.T) {
	var a Assembler
	if a.InMessage() {
		t.Fatal("zero Assembler in a message")
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.Begin(Header{Op: OpBinary, Length: 3}))
	must(a.Payload([]byte{1, 2, 3}))
	if done, _, _, err := a.End(); done || err != nil || !a.InMessage() {
		t.Fatalf("unfinished binary: done %v, err %v, in message %v", done, err, a.InMessage())
	}
	// A control frame, with End called or not, leaves the message alone.
	must(a.Begin(Header{Fin: true, Op: OpPing, Length: 1}))
	must(a.Payload([]byte{0xff}))
	if done, _, _, err := a.End(); done || err != nil || !a.InMessage() {
		t.Fatal("ping disturbed the message")
	}
	must(a.Begin(Header{Fin: true, Op: OpPong}))
	must(a.Begin(Header{Fin: true, Op: OpContinuation, Length: 0}))
	done, op, compressed, err := a.End()
	if !done || op != OpBinary || compressed || err != nil || a.InMessage() {
		t.Fatalf("End = %v %v %v %v", done, op, compressed, err)
	}
	// Reset abandons a message and keeps the limit.
	a.SetMaxPayload(10)
	must(a.Begin(Header{Op: OpText, Length: 1}))
	a.Reset()
	if a.InMessage() {
		t.Fatal("Reset kept the message")
	}
	if err := a.Begin(Header{Fin: true, Op: OpText, Length: 11}); CloseStatus(err) != CloseTooBig {
		t.Fatalf("limit lost by Reset: %v", err)
	}
	// Headers ParseHeader never returns are still refused.
	a.Reset()
	for _, h := range []Header{
		{Fin: true, Op: 3}, {Fin: true, Op: OpText, Rsv: 2}, {Fin: true, Op: OpText, Length: -1},
		{Op: OpPing}, {Fin: true, Op: OpClose, Length: 126},
	} {
		if err := a.Begin(h); CloseStatus(err) != CloseProtocolError {
			t.Errorf("Begin(%+v) = %v", h, err)
		}
	}
	// Without a limit, huge fragment lengths saturate instead of wrapping.
	var b Assembler
	must(b.Begin(Header{Op: OpBinary, Length: 1<<63 - 1}))
	b.End()
	must(b.Begin(Header{Op: OpContinuation, Length: 1<<63 - 1}))
	var c Assembler
	c.SetMaxPayload(1 << 62)
	must(c.Begin(Header{Op: OpBinary, Length: 1 << 62}))
	c.End()
	if err := c.Begin(Header{Op: OpContinuation, Length: 1<<63 - 1}); CloseStatus(err) != CloseTooBig {
		t.Fatalf("over the limit near 2^63: %v", err)
	}
}

func TestAssemblerCompressedText(t *testing.T) {
	// The caller inflates after End and validates the inflated text.
	var a Assembler
	a.Begin(Header{Fin: true, Op: OpText, Rsv: 4, Length: 3})
	if err := a.Payload([]byte{0xff, 0xfe, 0x00}); err != nil {
		t.Fatalf("Payload checked deflate bytes: %v", err)
	}
	done, op, compressed, err := a.End()
	if !done || op != OpText || !compressed || err != nil {
		t.Fatalf("End = %v %v %v %v", done, op, compressed, err)
	}
	for _, piece := range bytes.SplitAfter([]byte("inflated €ext"), []byte{0x82}) {
		if err := a.ValidateText(piece); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.EndText(); err != nil {
		t.Fatal(err)
	}
	// For binary and uncompressed text, ValidateText and EndText do nothing.
	a.Begin(Header{Fin: true, Op: OpBinary, Rsv: 4})
	a.End()
	if a.ValidateText([]byte{0xff}) != nil || a.EndText() != nil {
		t.Fatal("ValidateText checked a binary message")
	}
	a.Begin(Header{Fin: true, Op: OpText, Length: 1})
	a.Payload([]byte{'a'})
	a.End()
	if a.ValidateText([]byte{0xff}) != nil || a.EndText() != nil {
		t.Fatal("ValidateText checked an uncompressed text message")
	}
}
