package frame

import (
	"encoding/binary"
	"slices"
)

// AppendFrame appends a complete unmasked frame (server to client) to dst
// and returns the extended slice; it allocates only when dst lacks the
// capacity. payload is copied, not retained. rsv1 marks the first frame of
// a compressed message. The caller keeps the rules of RFC 6455 §5.5: a
// control frame has fin set and at most 125 payload bytes.
func AppendFrame(dst []byte, fin bool, op Opcode, rsv1 bool, payload []byte) []byte {
	h := Header{Fin: fin, Op: op, Length: int64(len(payload))}
	if rsv1 {
		h.Rsv = 4
	}
	dst = slices.Grow(dst, HeaderSize(h.Length, false)+len(payload))
	dst = AppendHeader(dst, h)
	return append(dst, payload...)
}

// AppendMaskedFrame appends a complete frame masked with key (client to
// server) to dst and returns the extended slice; it allocates only when dst
// lacks the capacity. payload is copied into dst and masked there; payload
// itself is not modified or retained. The key must come from a strong source
// of randomness (RFC 6455 §5.3), chosen anew for each frame.
func AppendMaskedFrame(dst []byte, fin bool, op Opcode, rsv1 bool, payload []byte, key [4]byte) []byte {
	h := Header{Fin: fin, Op: op, Masked: true, Mask: key, Length: int64(len(payload))}
	if rsv1 {
		h.Rsv = 4
	}
	dst = slices.Grow(dst, HeaderSize(h.Length, true)+len(payload))
	dst = AppendHeader(dst, h)
	start := len(dst)
	dst = append(dst, payload...)
	Mask(dst[start:], key, 0)
	return dst
}

// AppendCloseFrame appends an unmasked close frame carrying code and reason
// (see [AppendClose]: the reason is cut to [MaxCloseReason] bytes at a rune
// boundary) and returns the extended slice. A code that may not appear on
// the wire (not [CloseCode.ValidOnWire], such as 0, [CloseNoStatus] or
// [CloseAbnormal]) gives a close frame with an empty payload and no reason.
func AppendCloseFrame(dst []byte, code CloseCode, reason string) []byte {
	if !code.ValidOnWire() {
		return append(dst, 0x80|byte(OpClose), 0)
	}
	start := len(dst)
	dst = append(dst, 0x80|byte(OpClose), 0)
	dst = AppendClose(dst, code, reason)
	dst[start+1] = byte(len(dst) - start - 2) // at most 125
	return dst
}

// Frame is a complete, unmasked, final (FIN set) frame encoded once so that
// the same bytes can be queued on many connections without a copy each:
//
//	f := frame.NewFrame(frame.OpText, msg, false)
//	for _, q := range queues {
//		err := q.AppendShared(f.Bytes(), false)
//		...
//	}
//
// A Frame is immutable and safe for concurrent use.
type Frame struct {
	b []byte
}

// NewFrame encodes a final unmasked frame with op and payload. payload is
// copied, not retained. rsv1 marks a compressed message (payload already
// deflated). The caller keeps the rules of RFC 6455 §5.5 for control frames
// (at most 125 payload bytes).
func NewFrame(op Opcode, payload []byte, rsv1 bool) *Frame {
	b := make([]byte, 0, HeaderSize(int64(len(payload)), false)+len(payload))
	return &Frame{b: AppendFrame(b, true, op, rsv1, payload)}
}

// Bytes returns the encoded frame. The slice is shared by every user of f
// and must not be modified; it stays valid for as long as it is referenced.
func (f *Frame) Bytes() []byte { return f.b[:len(f.b):len(f.b)] }

// Len returns the size of the encoded frame in bytes.
func (f *Frame) Len() int { return len(f.b) }

// Precompiled server control frames, built once at package initialisation
// and never modified.
var (
	pingFrame  = [2]byte{0x80 | byte(OpPing), 0}
	pongFrame  = [2]byte{0x80 | byte(OpPong), 0}
	closeEmpty = [2]byte{0x80 | byte(OpClose), 0}
	// closeFrames[c-1000] is the close frame with code c and no reason, for
	// the codes 1000–1014 that may be sent; the others are left empty.
	closeFrames = func() (t [15][4]byte) {
		for i := range t {
			c := CloseCode(1000 + i)
			if c.ValidOnWire() {
				t[i] = [4]byte{0x80 | byte(OpClose), 2}
				binary.BigEndian.PutUint16(t[i][2:], uint16(c))
			}
		}
		return t
	}()
)

// PingFrame returns an unmasked ping frame with an empty payload. The slice
// is shared and must not be modified; it has no spare capacity, so appending
// to it copies.
func PingFrame() []byte { return pingFrame[:2:2] }

// PongFrame returns an unmasked pong frame with an empty payload. The slice
// is shared and must not be modified; it has no spare capacity.
func PongFrame() []byte { return pongFrame[:2:2] }

// CloseFrame returns an unmasked close frame carrying code and no reason.
// Codes 1000–1003 and 1007–1014 come precompiled, shared and must not be
// modified (the slice has no spare capacity); other codes valid on the wire
// (3000–4999) are encoded into a new 4-byte slice. A code that may not
// appear on the wire (not [CloseCode.ValidOnWire], such as 0,
// [CloseNoStatus] or [CloseAbnormal]) gives a close frame with an empty
// payload.
func CloseFrame(code CloseCode) []byte {
	if code >= 1000 && code < 1000+CloseCode(len(closeFrames)) && code.ValidOnWire() {
		return closeFrames[code-1000][:4:4]
	}
	if !code.ValidOnWire() {
		return closeEmpty[:2:2]
	}
	b := make([]byte, 4)
	b[0], b[1] = 0x80|byte(OpClose), 2
	binary.BigEndian.PutUint16(b[2:], uint16(code))
	return b
}
