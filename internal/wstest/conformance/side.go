package conformance

import (
	"fmt"

	"github.com/networkcluster/networkcluster/compress"
	"github.com/networkcluster/networkcluster/frame"
	"github.com/networkcluster/networkcluster/internal/testdeflate"
	"github.com/networkcluster/networkcluster/internal/wstest"
)

// Side is the end of the connection a test plays; it decides how the
// frames the test sends are masked (RFC 6455 §5.1, §5.3). The frame
// builders return new memory.
type Side uint8

const (
	// Client plays a client against a server under test (the Provider):
	// its frames are masked, each with a new random key (wstest.Frame).
	Client Side = iota + 1
	// Server plays a server against a client under test (the Consumer):
	// its frames are unmasked.
	Server
)

func (sd Side) masked() bool { return sd == Client }

// Frame returns a frame with the reserved bits rsv (RSV1 = 4, RSV2 = 2,
// RSV3 = 1).
func (sd Side) Frame(fin bool, op frame.Opcode, rsv byte, p []byte) []byte {
	if sd.masked() {
		return wstest.Frame(fin, op, rsv, p)
	}
	b := frame.AppendHeader(make([]byte, 0, frame.MaxHeaderSize+len(p)), frame.Header{Fin: fin, Rsv: rsv, Op: op, Length: int64(len(p))})
	return append(b, p...)
}

// F returns a frame with payload p.
func (sd Side) F(fin bool, op frame.Opcode, p string) []byte { return sd.Frame(fin, op, 0, []byte(p)) }

// FB returns a frame with payload p.
func (sd Side) FB(fin bool, op frame.Opcode, p []byte) []byte { return sd.Frame(fin, op, 0, p) }

// Rsv returns a frame with the reserved bits rsv.
func (sd Side) Rsv(rsv byte, fin bool, op frame.Opcode, p string) []byte {
	return sd.Frame(fin, op, rsv, []byte(p))
}

// CloseFrame returns a close frame with code and reason (code 0: no
// payload).
func (sd Side) CloseFrame(code frame.CloseCode, reason string) []byte {
	return sd.FB(true, opClose, frame.AppendClose(nil, code, reason))
}

// SendClose is a step that sends a close frame with code and no reason.
func (sd Side) SendClose(code frame.CloseCode) Step {
	return Send(sd.CloseFrame(code, "")).Closing(code)
}

// RawClose returns a close frame with any 16-bit code, valid or not.
func (sd Side) RawClose(code int) []byte {
	return sd.FB(true, opClose, []byte{byte(code >> 8), byte(code)})
}

// RsvClose returns a close frame 1000 with the reserved bits rsv.
func (sd Side) RsvClose(rsv byte) []byte {
	return sd.Frame(true, opClose, rsv, frame.AppendClose(nil, frame.CloseNormal, ""))
}

// RawFrame returns a frame with the given first byte and length bytes (the
// 7-bit length and any extended length, without the mask bit), which
// need not be the shortest form; the Client masks it with a fixed key.
func (sd Side) RawFrame(b0 byte, length []byte, payload []byte) []byte {
	if !sd.masked() {
		b := append([]byte{b0}, length...)
		return append(b, payload...)
	}
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	b := []byte{b0, 0x80 | length[0]}
	b = append(b, length[1:]...)
	b = append(b, key[:]...)
	start := len(b)
	b = append(b, payload...)
	frame.Mask(b[start:], key, 0)
	return b
}

// HeaderSize returns the size of the header of a frame of n bytes.
func (sd Side) HeaderSize(n int) int { return frame.HeaderSize(int64(n), sd.masked()) }

// Fragments splits a message into frames of size bytes (the last may be
// shorter; size <= 0: one frame); rsv goes on the first frame only.
func (sd Side) Fragments(op frame.Opcode, rsv byte, p []byte, size int) [][]byte {
	if size <= 0 || size >= len(p) {
		return [][]byte{sd.Frame(true, op, rsv, p)}
	}
	var out [][]byte
	for off := 0; off < len(p); off += size {
		end := min(off+size, len(p))
		o, r := opCont, byte(0)
		if off == 0 {
			o, r = op, rsv
		}
		out = append(out, sd.Frame(end == len(p), o, r, p[off:end]))
	}
	return out
}

// Compressed returns the frames of msg compressed with c, in fragments of
// frag bytes of compressed payload (0: one frame), RSV1 on the first. It
// panics if c fails.
func (sd Side) Compressed(c *compress.Compressor, op frame.Opcode, msg []byte, frag int) [][]byte {
	payload, err := c.Compress(nil, msg)
	if err != nil {
		panic(err)
	}
	return sd.Fragments(op, 4, payload, frag)
}

// Presets returns every compressor and decompressor preset, alone and in
// some combinations: the presets the permessage-deflate cases run under.
// The slice is new.
func Presets() []compress.Preset {
	return []compress.Preset{
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
}

// Inflater inflates the compressed messages of the peer under test with the
// independent, strict inflater of internal/testdeflate and holds the peer
// to the LZ77 window and the context it agreed to (RFC 7692 §7.1.1,
// §7.1.2). Make one with Side.Inflater.
type Inflater struct {
	bits    int    // the peer's window, in bits
	context bool   // the peer may refer to earlier messages
	limit   int    // the most bytes a message may inflate to
	param   string // the RFC 7692 section of the peer's window parameter
	hist    []byte // the last 1<<bits bytes the peer sent, with context
}

// Inflater returns an Inflater for a peer that keeps to a window of bits
// bits, with or without context takeover, and whose messages inflate to
// at most limit bytes (0: no limit). The peer under test is the server
// (server_max_window_bits) when sd is Client, the client otherwise.
func (sd Side) Inflater(bits int, context bool, limit int) *Inflater {
	param := "RFC 7692 §7.1.2.2"
	if sd == Client {
		param = "RFC 7692 §7.1.2.1"
	}
	return &Inflater{bits: bits, context: context, limit: limit, param: param}
}

// Inflate inflates the payload of one message (its frames' payloads
// joined). It accepts a final block (RFC 7692 §7.2.3.4). The result is
// new memory.
func (in *Inflater) Inflate(p []byte) ([]byte, error) {
	var hist []byte
	if in.context {
		hist = in.hist
	}
	out, dist, err := testdeflate.Inflate(hist, p, testdeflate.Options{Limit: in.limit, AllowFinal: true})
	if err != nil {
		return nil, err
	}
	if dist > 1<<in.bits {
		return nil, fmt.Errorf("back-reference of %d bytes beyond the agreed window of %d bits (%s)", dist, in.bits, in.param)
	}
	if in.context {
		in.hist = append(in.hist, out...)
		if w := 1 << in.bits; len(in.hist) > w {
			in.hist = append(in.hist[:0], in.hist[len(in.hist)-w:]...)
		}
	}
	return out, nil
}
