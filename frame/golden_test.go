package frame

import (
	"bytes"
	"errors"
	"testing"
)

// golden is a frame with its exact wire bytes. The same table drives the
// encoder tests (fields → wire) and the decoder tests (wire → fields).
type golden struct {
	name    string
	wire    []byte // the complete frame as sent
	h       Header
	payload []byte // the unmasked payload
	encode  bool   // the wire form is what the encoder writes (minimal length)
}

func seq(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func maskedCopy(p []byte, key [4]byte) []byte {
	b := bytes.Clone(p)
	for i := range b {
		b[i] ^= key[i&3]
	}
	return b
}

var rfcKey = [4]byte{0x37, 0xfa, 0x21, 0x3d}

var goldens = func() []golden {
	hello := []byte("Hello")
	p125, p126, p65535, p65536, p256 := seq(125), seq(126), seq(65535), seq(65536), seq(256)
	k := [4]byte{0xde, 0xad, 0xbe, 0xef}
	return []golden{
		// RFC 6455 §5.7.
		{name: "rfc unmasked text", wire: []byte{0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f},
			h: Header{Fin: true, Op: OpText, Length: 5}, payload: hello, encode: true},
		{name: "rfc masked text", wire: []byte{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58},
			h: Header{Fin: true, Op: OpText, Masked: true, Mask: rfcKey, Length: 5}, payload: hello, encode: true},
		{name: "rfc fragment 1", wire: []byte{0x01, 0x03, 0x48, 0x65, 0x6c},
			h: Header{Op: OpText, Length: 3}, payload: []byte("Hel"), encode: true},
		{name: "rfc fragment 2", wire: []byte{0x80, 0x02, 0x6c, 0x6f},
			h: Header{Fin: true, Op: OpContinuation, Length: 2}, payload: []byte("lo"), encode: true},
		{name: "rfc unmasked ping", wire: []byte{0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f},
			h: Header{Fin: true, Op: OpPing, Length: 5}, payload: hello, encode: true},
		{name: "rfc masked pong", wire: []byte{0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58},
			h: Header{Fin: true, Op: OpPong, Masked: true, Mask: rfcKey, Length: 5}, payload: hello, encode: true},
		{name: "rfc 256 bytes binary", wire: cat([]byte{0x82, 0x7e, 0x01, 0x00}, p256),
			h: Header{Fin: true, Op: OpBinary, Length: 256}, payload: p256, encode: true},
		{name: "rfc 64KiB binary", wire: cat([]byte{0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0}, p65536),
			h: Header{Fin: true, Op: OpBinary, Length: 65536}, payload: p65536, encode: true},
		// RFC 7692 §7.2.3.1: "Hello" compressed, RSV1 set.
		{name: "rfc7692 compressed text", wire: []byte{0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00},
			h: Header{Fin: true, Rsv: 4, Op: OpText, Length: 7}, payload: []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}, encode: true},
		// Control frames.
		{name: "empty ping", wire: []byte{0x89, 0x00}, h: Header{Fin: true, Op: OpPing}, payload: []byte{}, encode: true},
		{name: "empty pong", wire: []byte{0x8a, 0x00}, h: Header{Fin: true, Op: OpPong}, payload: []byte{}, encode: true},
		{name: "empty close", wire: []byte{0x88, 0x00}, h: Header{Fin: true, Op: OpClose}, payload: []byte{}, encode: true},
		{name: "close 1000", wire: []byte{0x88, 0x02, 0x03, 0xe8}, h: Header{Fin: true, Op: OpClose, Length: 2}, payload: []byte{0x03, 0xe8}, encode: true},
		{name: "masked close 1001 bye", wire: cat([]byte{0x88, 0x85}, k[:], maskedCopy([]byte{0x03, 0xe9, 'b', 'y', 'e'}, k)),
			h: Header{Fin: true, Op: OpClose, Masked: true, Mask: k, Length: 5}, payload: []byte{0x03, 0xe9, 'b', 'y', 'e'}, encode: true},
		{name: "ping 125", wire: cat([]byte{0x89, 0x7d}, p125), h: Header{Fin: true, Op: OpPing, Length: 125}, payload: p125, encode: true},
		// Length boundaries, both directions.
		{name: "empty binary", wire: []byte{0x82, 0x00}, h: Header{Fin: true, Op: OpBinary}, payload: []byte{}, encode: true},
		{name: "masked empty text", wire: cat([]byte{0x81, 0x80}, k[:]), h: Header{Fin: true, Op: OpText, Masked: true, Mask: k}, payload: []byte{}, encode: true},
		{name: "125 unmasked", wire: cat([]byte{0x82, 0x7d}, p125), h: Header{Fin: true, Op: OpBinary, Length: 125}, payload: p125, encode: true},
		{name: "125 masked", wire: cat([]byte{0x82, 0xfd}, k[:], maskedCopy(p125, k)),
			h: Header{Fin: true, Op: OpBinary, Masked: true, Mask: k, Length: 125}, payload: p125, encode: true},
		{name: "126 unmasked", wire: cat([]byte{0x02, 0x7e, 0x00, 0x7e}, p126), h: Header{Op: OpBinary, Length: 126}, payload: p126, encode: true},
		{name: "126 masked", wire: cat([]byte{0x02, 0xfe, 0x00, 0x7e}, k[:], maskedCopy(p126, k)),
			h: Header{Op: OpBinary, Masked: true, Mask: k, Length: 126}, payload: p126, encode: true},
		{name: "65535 unmasked", wire: cat([]byte{0x80, 0x7e, 0xff, 0xff}, p65535), h: Header{Fin: true, Length: 65535}, payload: p65535, encode: true},
		{name: "65536 masked", wire: cat([]byte{0x80, 0xff, 0, 0, 0, 0, 0, 1, 0, 0}, k[:], maskedCopy(p65536, k)),
			h: Header{Fin: true, Masked: true, Mask: k, Length: 65536}, payload: p65536, encode: true},
		// Non-minimal length encodings: accepted on read, never written.
		{name: "16-bit length 5", wire: cat([]byte{0x82, 0x7e, 0x00, 0x05}, hello), h: Header{Fin: true, Op: OpBinary, Length: 5}, payload: hello},
		{name: "64-bit length 5", wire: cat([]byte{0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0, 5}, hello), h: Header{Fin: true, Op: OpBinary, Length: 5}, payload: hello},
		{name: "64-bit length 300 masked", wire: cat([]byte{0x82, 0xff, 0, 0, 0, 0, 0, 0, 1, 0x2c}, k[:], maskedCopy(seq(300), k)),
			h: Header{Fin: true, Op: OpBinary, Masked: true, Mask: k, Length: 300}, payload: seq(300)},
	}
}()

func roleFor(masked bool) Role {
	if masked {
		return RoleServer
	}
	return RoleClient
}

func TestGoldenEncode(t *testing.T) {
	for _, g := range goldens {
		if !g.encode {
			continue
		}
		n := len(g.wire) - len(g.payload)
		if got := HeaderSize(g.h.Length, g.h.Masked); got != n {
			t.Errorf("%s: HeaderSize = %d, want %d", g.name, got, n)
		}
		prefix := []byte("prefix")
		if got := AppendHeader(bytes.Clone(prefix), g.h); !bytes.Equal(got, cat(prefix, g.wire[:n])) {
			t.Errorf("%s: AppendHeader = % x, want % x", g.name, got[len(prefix):], g.wire[:n])
		}
		var got []byte
		if g.h.Masked {
			got = AppendMaskedFrame(bytes.Clone(prefix), g.h.Fin, g.h.Op, g.h.Rsv1(), g.payload, g.h.Mask)
		} else {
			got = AppendFrame(bytes.Clone(prefix), g.h.Fin, g.h.Op, g.h.Rsv1(), g.payload)
		}
		if !bytes.Equal(got, cat(prefix, g.wire)) {
			t.Errorf("%s: Append(Masked)Frame differs from the golden bytes", g.name)
		}
		if !g.h.Masked && g.h.Fin {
			f := NewFrame(g.h.Op, g.payload, g.h.Rsv1())
			if !bytes.Equal(f.Bytes(), g.wire) || f.Len() != len(g.wire) {
				t.Errorf("%s: NewFrame differs from the golden bytes", g.name)
			}
		}
	}
}

func TestGoldenDecode(t *testing.T) {
	for _, g := range goldens {
		o := ParseOptions{Role: roleFor(g.h.Masked), AllowRSV1: true}
		n := len(g.wire) - len(g.payload)
		h, gotN, need, err := ParseHeader(g.wire, o)
		if err != nil || need != 0 || gotN != n || h != g.h {
			t.Errorf("%s: ParseHeader = %+v, %d, %d, %v; want %+v, %d", g.name, h, gotN, need, err, g.h, n)
			continue
		}
		p := bytes.Clone(g.wire[n:])
		if h.Masked {
			Mask(p, h.Mask, 0)
		}
		if !bytes.Equal(p, g.payload) {
			t.Errorf("%s: unmasked payload differs", g.name)
		}
		// Every shorter prefix of the header asks for exactly what it lacks.
		for k := 0; k < n; k++ {
			h, gotN, need, err := ParseHeader(g.wire[:k], o)
			want := n - k
			if k < 2 {
				want = 2 - k
			}
			if err != nil || gotN != 0 || need != want || h != (Header{}) {
				t.Errorf("%s: prefix %d: ParseHeader = %+v, %d, %d, %v; want need %d", g.name, k, h, gotN, need, err, want)
			}
		}
	}
}

// TestGoldenStream decodes all golden frames written back to back, in the
// order of the table, through the streaming reader, as one connection.
func TestGoldenStream(t *testing.T) {
	for _, masked := range []bool{false, true} {
		var wire []byte
		var want []event
		for _, g := range goldens {
			if g.h.Masked != masked || g.h.Op == OpClose || g.h.Rsv1() ||
				(g.h.Op == OpContinuation && g.name != "rfc fragment 2") {
				continue
			}
			wire = append(wire, g.wire...)
			switch {
			case g.h.Op.IsControl():
				want = append(want, event{op: g.h.Op, control: true, payload: string(g.payload)})
			case g.name == "rfc fragment 1":
			case g.name == "rfc fragment 2":
				want = append(want, event{op: OpText, payload: "Hello"})
			default:
				if !g.h.Fin {
					// Finish the message with an empty final continuation.
					wire = append(wire, 0x80, 0x00)
					if masked {
						wire[len(wire)-1] = 0x80
						wire = append(wire, 1, 2, 3, 4)
					}
				}
				want = append(want, event{op: g.h.Op, payload: string(g.payload)})
			}
		}
		r := newStreamReader(ParseOptions{Role: roleFor(masked)}, 0)
		if err := r.feed(wire); err != nil {
			t.Fatalf("masked=%v: %v", masked, err)
		}
		if !equalEvents(r.events, want) || !r.idle() {
			t.Fatalf("masked=%v: got %d events, want %d (idle %v)", masked, len(r.events), len(want), r.idle())
		}
	}
}

type badHeader struct {
	name string
	b    []byte
	o    ParseOptions
	code CloseCode
	at   int // the shortest prefix that shows the violation
}

var client = ParseOptions{Role: RoleClient}
var server = ParseOptions{Role: RoleServer}

var badHeaders = []badHeader{
	{"RSV1 without extension", []byte{0xc1, 0x00}, client, CloseProtocolError, 1},
	{"RSV2", []byte{0xa1, 0x00}, ParseOptions{Role: RoleClient, AllowRSV1: true}, CloseProtocolError, 1},
	{"RSV3", []byte{0x91, 0x00}, ParseOptions{Role: RoleClient, AllowRSV1: true}, CloseProtocolError, 1},
	{"RSV1 on ping with extension", []byte{0xc9, 0x00}, ParseOptions{Role: RoleClient, AllowRSV1: true}, CloseProtocolError, 1},
	{"opcode 3", []byte{0x83, 0x00}, client, CloseProtocolError, 1},
	{"opcode 7", []byte{0x87, 0x00}, client, CloseProtocolError, 1},
	{"opcode 0xB", []byte{0x8b, 0x00}, client, CloseProtocolError, 1},
	{"opcode 0xF", []byte{0x8f, 0x00}, client, CloseProtocolError, 1},
	{"fragmented ping", []byte{0x09, 0x00}, client, CloseProtocolError, 1},
	{"fragmented close", []byte{0x08, 0x00}, client, CloseProtocolError, 1},
	{"ping 126", []byte{0x89, 0x7e, 0x00, 0x7e}, client, CloseProtocolError, 2},
	{"close 16-bit length 2", []byte{0x88, 0x7e, 0x00, 0x02}, client, CloseProtocolError, 2},
	{"pong 64-bit length", []byte{0x8a, 0x7f, 0, 0, 0, 0, 0, 0, 0, 1}, client, CloseProtocolError, 2},
	{"64-bit top bit", []byte{0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0}, client, CloseProtocolError, 3},
	{"64-bit all ones", []byte{0x82, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4}, server, CloseProtocolError, 3},
	{"unmasked to server", []byte{0x81, 0x05}, server, CloseProtocolError, 2},
	{"masked to client", []byte{0x81, 0x85, 1, 2, 3, 4}, client, CloseProtocolError, 2},
	{"over max 7-bit", []byte{0x82, 0x0b}, ParseOptions{Role: RoleClient, MaxPayload: 10}, CloseTooBig, 2},
	{"over max 16-bit", []byte{0x82, 0xfe, 0x01, 0x00, 1, 2, 3, 4}, ParseOptions{MaxPayload: 255}, CloseTooBig, 8},
	{"over max 2^63-1", []byte{0x02, 0x7f, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, ParseOptions{Role: RoleClient, MaxPayload: 1 << 20}, CloseTooBig, 10},
	{"continuation over max", []byte{0x00, 0x7e, 0x10, 0x00}, ParseOptions{Role: RoleClient, MaxPayload: 4095}, CloseTooBig, 4},
}

func TestParseHeaderViolations(t *testing.T) {
	for _, c := range badHeaders {
		for k := 0; k <= len(c.b); k++ {
			h, n, need, err := ParseHeader(c.b[:k], c.o)
			if k < c.at {
				if err != nil || need == 0 {
					t.Errorf("%s: prefix %d: need %d, err %v; want need > 0", c.name, k, need, err)
				}
				continue
			}
			var ce *CloseError
			if !errors.As(err, &ce) || ce.Code != c.code || CloseStatus(err) != c.code {
				t.Errorf("%s: prefix %d: err %v, want code %d", c.name, k, err, c.code)
			}
			if n != 0 || need != 0 || h != (Header{}) {
				t.Errorf("%s: prefix %d: got %+v, n %d, need %d alongside the error", c.name, k, h, n, need)
			}
		}
	}
}

func TestParseHeaderAccepts(t *testing.T) {
	cases := []struct {
		name string
		b    []byte
		o    ParseOptions
	}{
		{"RSV1 text with extension", []byte{0xc1, 0x00}, ParseOptions{Role: RoleClient, AllowRSV1: true}},
		{"RSV1 continuation (Assembler judges)", []byte{0xc0, 0x00}, ParseOptions{Role: RoleClient, AllowRSV1: true}},
		{"at max", []byte{0x82, 0x0a}, ParseOptions{Role: RoleClient, MaxPayload: 10}},
		{"control over a small max", []byte{0x89, 0x7d}, ParseOptions{Role: RoleClient, MaxPayload: 10}},
		{"2^63-1 with no max", []byte{0x02, 0x7f, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, client},
		{"unfinished text", []byte{0x01, 0x00}, client},
	}
	for _, c := range cases {
		if _, n, need, err := ParseHeader(c.b, c.o); err != nil || need != 0 || n != len(c.b) {
			t.Errorf("%s: n %d, need %d, err %v", c.name, n, need, err)
		}
	}
}

func TestAppendHeaderPanicsOnNegativeLength(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	AppendHeader(nil, Header{Length: -1})
}

func TestControlFrames(t *testing.T) {
	if !bytes.Equal(PingFrame(), []byte{0x89, 0x00}) || !bytes.Equal(PongFrame(), []byte{0x8a, 0x00}) {
		t.Fatal("ping/pong frames")
	}
	if cap(PingFrame()) != 2 || cap(PongFrame()) != 2 || cap(CloseFrame(CloseNormal)) != 4 {
		t.Fatal("precompiled frames have spare capacity: an append would overwrite shared bytes")
	}
	for c := CloseCode(0); c < 5100; c++ {
		got := CloseFrame(c)
		want := []byte{0x88, 0x00}
		if c.ValidOnWire() {
			want = []byte{0x88, 0x02, byte(c >> 8), byte(c)}
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("CloseFrame(%d) = % x, want % x", c, got, want)
		}
		if !bytes.Equal(AppendCloseFrame(nil, c, ""), want) {
			t.Fatalf("AppendCloseFrame(%d) differs from CloseFrame", c)
		}
	}
	for _, c := range []CloseCode{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014} {
		if &CloseFrame(c)[0] != &CloseFrame(c)[0] {
			t.Errorf("CloseFrame(%d) is not precompiled", c)
		}
	}
	// A close frame with a reason parses back to the same code and reason.
	long := string(bytes.Repeat([]byte("é"), 100)) // 200 bytes, cut to 122 at a rune boundary
	for _, reason := range []string{"", "bye", long} {
		b := AppendCloseFrame([]byte{0xff}, CloseGoingAway, reason)[1:]
		h, n, _, err := ParseHeader(b, client)
		if err != nil || int64(len(b)-n) != h.Length || h.Op != OpClose || !h.Fin {
			t.Fatalf("reason %q: %+v %v", reason, h, err)
		}
		code, got, err := ParseClose(b[n:])
		if err != nil || code != CloseGoingAway || len(got) > MaxCloseReason || !bytes.HasPrefix([]byte(reason), got) {
			t.Fatalf("reason %q: %d %q %v", reason, code, got, err)
		}
	}
}
