package frame

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"unicode/utf8"
)

// refParseFull is a plain reading of RFC 6455 §5.2 for a buffer that holds
// the whole header: it returns the header and its size, or the close code.
func refParseFull(b []byte, o ParseOptions) (h Header, n int, code CloseCode) {
	b0, b1 := b[0], b[1]
	h.Fin = b0&0x80 != 0
	h.Rsv = (b0 >> 4) & 7
	h.Op = Opcode(b0 & 0x0f)
	h.Masked = b1&0x80 != 0
	l7 := b1 & 0x7f
	control := h.Op >= 8
	reserved := (h.Op >= 3 && h.Op <= 7) || h.Op >= 0xB
	n = 2
	var length uint64
	switch l7 {
	case 126:
		length = uint64(binary.BigEndian.Uint16(b[2:]))
		n += 2
	case 127:
		length = binary.BigEndian.Uint64(b[2:])
		n += 8
	default:
		length = uint64(l7)
	}
	if h.Masked {
		copy(h.Mask[:], b[n:])
		n += 4
	}
	rsvOK := h.Rsv == 0 || (h.Rsv == 4 && o.AllowRSV1 && !control)
	maskOK := h.Masked == (o.Role == RoleServer)
	if !rsvOK || reserved || (control && (!h.Fin || l7 > 125)) || length>>63 != 0 || !maskOK {
		return Header{}, 0, CloseProtocolError
	}
	h.Length = int64(length)
	if o.MaxPayload > 0 && !control && h.Length > o.MaxPayload {
		return Header{}, 0, CloseTooBig
	}
	return h, n, 0
}

// refHeaderSize is the header size announced by the first two bytes.
func refHeaderSize(b0, b1 byte) int {
	n := 2
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4
	}
	return n
}

func FuzzParseHeader(f *testing.F) {
	for _, g := range goldens {
		f.Add(g.wire[:min(len(g.wire), 16)], byte(roleFor(g.h.Masked))|2, int64(0))
	}
	for _, c := range badHeaders {
		var flags byte
		if c.o.Role == RoleClient {
			flags |= 1
		}
		if c.o.AllowRSV1 {
			flags |= 2
		}
		f.Add(c.b, flags, c.o.MaxPayload)
	}
	f.Add([]byte{}, byte(0), int64(0))
	f.Add([]byte{0x82}, byte(1), int64(10))
	f.Fuzz(func(t *testing.T, b []byte, flags byte, max int64) {
		o := ParseOptions{Role: Role(flags & 1), AllowRSV1: flags&2 != 0, MaxPayload: max}
		h, n, need, err := ParseHeader(b, o)
		switch {
		case err != nil:
			code := CloseStatus(err)
			if n != 0 || need != 0 || h != (Header{}) || (code != CloseProtocolError && code != CloseTooBig) {
				t.Fatalf("error %v with h %+v n %d need %d", err, h, n, need)
			}
		case need > 0:
			if n != 0 || h != (Header{}) {
				t.Fatalf("need %d with h %+v n %d", need, h, n)
			}
			if len(b) >= 2 && need != refHeaderSize(b[0], b[1])-len(b) {
				t.Fatalf("need %d, header size %d, have %d", need, refHeaderSize(b[0], b[1]), len(b))
			}
			if len(b) < 2 && need != 2-len(b) {
				t.Fatalf("need %d with %d bytes", need, len(b))
			}
		default:
			if n < 2 || n > MaxHeaderSize || n > len(b) {
				t.Fatalf("n = %d", n)
			}
		}
		// Against the reference, once the header is all there; before that,
		// an error must hold whatever the missing bytes are.
		if len(b) >= 2 {
			size := refHeaderSize(b[0], b[1])
			full := b
			if len(b) < size {
				full = append(bytes.Clone(b), make([]byte, size-len(b))...)
			}
			rh, rn, code := refParseFull(full, o)
			if len(b) >= size {
				if CloseStatus(err) != code || h != rh || n != rn {
					t.Fatalf("got %+v %d %v; reference %+v %d %d", h, n, err, rh, rn, code)
				}
			} else if err != nil && CloseStatus(err) != code {
				t.Fatalf("early error %v; reference on zero padding says %d", err, code)
			}
		}
		// Every prefix needs more bytes or gives the same result.
		for k := range min(len(b), MaxHeaderSize) {
			ph, pn, pneed, perr := ParseHeader(b[:k], o)
			if pneed > 0 {
				if pn != 0 {
					t.Fatalf("prefix %d: need and n", k)
				}
				continue
			}
			if CloseStatus(perr) != CloseStatus(err) || ph != h || pn != n {
				t.Fatalf("prefix %d: %+v %d %v; whole: %+v %d %v", k, ph, pn, perr, h, n, err)
			}
		}
		// A header in its minimal form encodes back to the same bytes.
		if err == nil && need == 0 && HeaderSize(h.Length, h.Masked) == n {
			if enc := AppendHeader(nil, h); !bytes.Equal(enc, b[:n]) {
				t.Fatalf("AppendHeader(%+v) = % x, parsed from % x", h, enc, b[:n])
			}
		}
	})
}

func FuzzMask(f *testing.F) {
	f.Add([]byte("Hello"), uint32(0x37fa213d), 0, 3)
	f.Add(bytes.Repeat([]byte{0xaa}, 100), uint32(1), 3, 37)
	f.Fuzz(func(t *testing.T, b []byte, k uint32, pos, split int) {
		key := [4]byte{byte(k >> 24), byte(k >> 16), byte(k >> 8), byte(k)}
		pos &= 0xff
		want := bytes.Clone(b)
		wantPos := maskRef(want, key, pos)
		got := bytes.Clone(b)
		split = min(max(split, 0), len(b))
		p := Mask(got[:split], key, pos)
		p = Mask(got[split:], key, p)
		if p != wantPos || !bytes.Equal(got, want) {
			t.Fatalf("Mask differs from the reference")
		}
	})
}

func FuzzUTF8(f *testing.F) {
	for _, c := range utf8Cases {
		f.Add([]byte(c.s), uint64(1))
	}
	f.Add([]byte("κόσμε\xed\xa0\x80edited"), uint64(7))
	f.Fuzz(func(t *testing.T, b []byte, seed uint64) {
		if ValidUTF8(b) != utf8.Valid(b) {
			t.Fatal("ValidUTF8 differs from utf8.Valid")
		}
		var w UTF8
		if w.Write(b) && w.Complete() != utf8.Valid(b) {
			t.Fatal("one Write: Complete differs from utf8.Valid")
		}
		// The oracle is quadratic: check every prefix of a bounded input.
		if len(b) > 64 {
			b = b[:64]
		}
		// Byte by byte, Write fails exactly at the first byte after which no
		// valid continuation exists, and never succeeds after that.
		// (Once a prefix has no valid continuation, no longer one has, so
		// the oracle is only asked until it first says no.)
		var v UTF8
		alive := true
		for i := range b {
			alive = alive && extendable(b[:i+1])
			if got := v.Write(b[i : i+1]); got != alive {
				t.Fatalf("% x: Write of byte %d = %v, want %v", b, i, got, alive)
			}
		}
		if v.Complete() != utf8.Valid(b) {
			t.Fatal("Complete differs from utf8.Valid")
		}
		// In random pieces, each Write answers for the stream so far.
		rng := rand.New(rand.NewPCG(seed, 0))
		var u UTF8
		alive = true
		for i := 0; i < len(b); {
			k := min(len(b)-i, rng.IntN(9))
			alive = alive && extendable(b[:i+k])
			if got := u.Write(b[i : i+k]); got != alive {
				t.Fatalf("% x: Write of [%d:%d] = %v, want %v", b, i, i+k, got, alive)
			}
			i += k
		}
		if u.Complete() != utf8.Valid(b) {
			t.Fatal("pieces: Complete differs from utf8.Valid")
		}
	})
}

func FuzzParseClose(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x03})
	f.Add([]byte{0x03, 0xe8})
	f.Add([]byte{0x03, 0xe8, 'b', 'y', 'e'})
	f.Add([]byte{0x03, 0xed})
	f.Add([]byte{0x0f, 0xa0, 0xff})
	f.Fuzz(func(t *testing.T, p []byte) {
		code, reason, err := ParseClose(p)
		switch {
		case len(p) == 0:
			if code != CloseNoStatus || err != nil {
				t.Fatal("empty payload")
			}
		case len(p) == 1:
			if CloseStatus(err) != CloseProtocolError {
				t.Fatal("1-byte payload accepted")
			}
		case !CloseCode(binary.BigEndian.Uint16(p)).ValidOnWire():
			if CloseStatus(err) != CloseProtocolError {
				t.Fatalf("invalid code accepted: %v", err)
			}
		case !utf8.Valid(p[2:]):
			if CloseStatus(err) != CloseInvalidPayload {
				t.Fatalf("bad reason accepted: %v", err)
			}
		default:
			if err != nil || !bytes.Equal(reason, p[2:]) {
				t.Fatalf("valid payload refused: %v", err)
			}
			if len(reason) <= MaxCloseReason && !bytes.Equal(AppendClose(nil, code, string(reason)), p) {
				t.Fatal("AppendClose does not round-trip")
			}
		}
	})
}

// refFrame is one frame of an Assembler fuzz input.
type refFrame struct {
	b0        byte // FIN, RSV bits and opcode, as on the wire
	wrongMask bool // masked the wrong way for the role
	payload   []byte
}

// decodeFrames turns fuzz bytes into frames: per frame a first header byte,
// a byte with the wrong-mask flag (0x80) and the length (low 5 bits), then
// the payload.
func decodeFrames(data []byte) []refFrame {
	var frames []refFrame
	for len(data) >= 2 && len(frames) < 64 {
		f := refFrame{b0: data[0], wrongMask: data[1]&0x80 != 0}
		n := min(int(data[1]&0x1f), len(data)-2)
		f.payload = data[2 : 2+n]
		data = data[2+n:]
		frames = append(frames, f)
	}
	return frames
}

// firstBad returns the index of the first byte of p after which p has no
// valid continuation, or -1. extendable is monotone, so a binary search
// finds it.
func firstBad(p []byte) int {
	if extendable(p) {
		return -1
	}
	lo, hi := 0, len(p)-1 // p[:lo] is extendable, p[:hi+1] is not
	for lo < hi {
		mid := (lo + hi) / 2
		if extendable(p[:mid+1]) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// refAssemble is a plain model of RFC 6455 §5.2–5.5 and §8.1 for a frame
// sequence: the events a reader delivers, then the close code it fails with
// (0 if none) and, for 1007, the message byte at which it must fail (the
// message length if the text ends mid-character).
func refAssemble(frames []refFrame, o ParseOptions, maxMsg int64) (events []event, code CloseCode, bad int, inMsg bool) {
	var msg []byte
	var msgOp Opcode
	var compressed bool
	for _, f := range frames {
		fin := f.b0&0x80 != 0
		rsv := f.b0 >> 4 & 7
		op := Opcode(f.b0 & 15)
		control := op >= 8
		reserved := (op >= 3 && op <= 7) || op >= 0xB
		if (rsv != 0 && (rsv != 4 || !o.AllowRSV1 || control)) || reserved || (control && !fin) || f.wrongMask {
			return events, CloseProtocolError, 0, inMsg
		}
		if o.MaxPayload > 0 && !control && int64(len(f.payload)) > o.MaxPayload {
			return events, CloseTooBig, 0, inMsg
		}
		if control {
			events = append(events, event{op: op, control: true, payload: string(f.payload)})
			continue
		}
		if op == OpContinuation {
			if !inMsg || rsv != 0 {
				return events, CloseProtocolError, 0, inMsg
			}
		} else {
			if inMsg {
				return events, CloseProtocolError, 0, inMsg
			}
			inMsg, msgOp, compressed, msg = true, op, rsv != 0, nil
		}
		if maxMsg > 0 && int64(len(msg)+len(f.payload)) > maxMsg {
			return events, CloseTooBig, 0, inMsg
		}
		msg = append(msg, f.payload...)
		if msgOp == OpText {
			if i := firstBad(msg); i >= 0 {
				return events, CloseInvalidPayload, i, inMsg
			}
		}
		if fin {
			if msgOp == OpText && !utf8.Valid(msg) {
				return events, CloseInvalidPayload, len(msg), inMsg
			}
			events = append(events, event{op: msgOp, compressed: compressed, payload: string(msg)})
			inMsg = false
		}
	}
	return events, 0, 0, inMsg
}

func FuzzAssembler(f *testing.F) {
	add := func(flags, frameMax, msgMax byte, seed uint64, frames ...fr) {
		var data []byte
		for _, fr := range frames {
			data = append(data, fr.b0, byte(len(fr.payload)))
			data = append(data, fr.payload...)
		}
		f.Add(flags, frameMax, msgMax, seed, data)
	}
	add(0, 0, 0, 1, fr{fin | 1, "Hello"})
	add(0, 0, 0, 2, fr{1, "He"}, fr{fin | 9, "ping"}, fr{0, "l"}, fr{fin, "lo"})
	add(0, 0, 0, 3, fr{1, "\xe2"}, fr{0, "\x82"}, fr{fin, "\xac"})
	add(0, 0, 0, 4, fr{1, "κόσμε\xed"}, fr{fin, "\xa0\x80edited"})
	add(0, 0, 0, 5, fr{fin | 1, "a\xe2\x82"})
	add(1, 0, 0, 6, fr{rsv1 | 1, "x"}, fr{fin, "y"}, fr{rsv1 | fin | 2, "z"})
	add(1, 0, 0, 7, fr{rsv1 | 1, "x"}, fr{rsv1 | fin, "y"})
	add(0, 4, 8, 8, fr{2, "abcd"}, fr{0, "efgh"}, fr{fin, "i"})
	add(0, 3, 0, 9, fr{fin | 2, "abcd"})
	add(2, 0, 0, 10, fr{fin | 1, "client"}, fr{fin | 8, "\x03\xe8"})
	add(0, 0, 0, 11, fr{fin, "x"})
	add(0, 0, 0, 12, fr{1, "a"}, fr{fin | 1, "b"})
	add(0, 0, 0, 13, fr{fin | 3, ""}, fr{9, ""})
	f.Fuzz(func(t *testing.T, flags, frameMax, msgMax byte, seed uint64, data []byte) {
		o := ParseOptions{AllowRSV1: flags&1 != 0, Role: Role(flags >> 1 & 1), MaxPayload: int64(frameMax & 63)}
		maxMsg := int64(msgMax & 127)
		frames := decodeFrames(data)
		wantEvents, wantCode, wantBad, wantInMsg := refAssemble(frames, o, maxMsg)

		// Encode the frames as the peer would send them.
		var stream []byte
		key := [4]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)}
		for _, fr := range frames {
			masked := (o.Role == RoleServer) != fr.wrongMask
			stream = AppendHeader(stream, Header{Fin: fr.b0&0x80 != 0, Rsv: fr.b0 >> 4 & 7, Op: Opcode(fr.b0 & 15),
				Masked: masked, Mask: key, Length: int64(len(fr.payload))})
			start := len(stream)
			stream = append(stream, fr.payload...)
			if masked {
				Mask(stream[start:], key, 0)
			}
		}
		// Feed it in random chunks.
		r := newStreamReader(o, maxMsg)
		rng := rand.New(rand.NewPCG(seed, 1))
		var err error
		for i := 0; i < len(stream) && err == nil; {
			k := min(len(stream)-i, 1+rng.IntN(24))
			err = r.feed(stream[i : i+k])
			i += k
		}
		if CloseStatus(err) != wantCode || (err != nil && wantCode == 0) {
			t.Fatalf("err %v, reference code %d", err, wantCode)
		}
		if !equalEvents(r.events, wantEvents) {
			t.Fatalf("events %+v, reference %+v", r.events, wantEvents)
		}
		if wantCode == CloseInvalidPayload {
			if !(r.failLo <= wantBad && wantBad < r.failHi) && !(r.failLo == r.failHi && r.failLo == wantBad) {
				t.Fatalf("1007 found in message bytes [%d, %d), reference says at %d", r.failLo, r.failHi, wantBad)
			}
		}
		if wantCode == 0 && (!r.idle() || r.a.InMessage() != wantInMsg) {
			t.Fatalf("after the stream: idle %v, in message %v, reference %v", r.idle(), r.a.InMessage(), wantInMsg)
		}
	})
}
