package consumer

import (
	"bytes"
	"net"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/networkcluster/networkcluster/compress"
	"github.com/networkcluster/networkcluster/frame"
)

// fakeConn is a net.Conn that reads a fixed byte string and records writes.
type fakeConn struct {
	r      *bytes.Reader
	writes bytes.Buffer
}

func (f *fakeConn) Read(b []byte) (int, error) {
	if len(b) > 7 {
		b = b[:7] // short reads exercise every resumption point
	}
	return f.r.Read(b)
}
func (f *fakeConn) Write(b []byte) (int, error)      { return f.writes.Write(b) }
func (f *fakeConn) Close() error                     { return nil }
func (f *fakeConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (f *fakeConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (f *fakeConn) SetDeadline(time.Time) error      { return nil }
func (f *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (f *fakeConn) SetWriteDeadline(time.Time) error { return nil }

// runReader feeds in to a Consumer's read loop as the server's byte stream
// and returns the disconnect code, the messages delivered and what the
// Consumer wrote back.
func runReader(t testing.TB, in []byte, mod func(*Options)) (frame.CloseCode, []Message, []byte) {
	return runReaderDeflate(t, in, mod, false)
}

// runReaderDeflate is runReader on a connection with permessage-deflate
// negotiated (context takeover inbound, 15 window bits) when deflate is set.
func runReaderDeflate(t testing.TB, in []byte, mod func(*Options), deflate bool) (frame.CloseCode, []Message, []byte) {
	var msgs []Message
	o := Options{
		MaxPayloadLength: 1 << 12,
		ReadBufferSize:   MinReadBufferSize,
		OnMessage: func(m Message) {
			msgs = append(msgs, Message{Binary: m.Binary, Data: bytes.Clone(m.Data)})
		},
	}
	if mod != nil {
		mod(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	fc := &fakeConn{r: bytes.NewReader(in)}
	s := &session{nc: fc, interval: 0}
	if deflate {
		cfg := compress.NewConfig(compress.DedicatedDecompressor|compress.SharedCompressor, compress.Params{}, false)
		s.deflate = true
		s.dec = compress.NewDecompressor(cfg)
		defer s.release()
	}
	c.wc = fc
	c.rd.reset(c.cfg, s)
	code, _ := c.readLoop(fc)
	c.disp.finish()
	c.rd.release()
	return code, msgs, fc.writes.Bytes()
}

func FuzzReadFrames(f *testing.F) {
	f.Add(rawFrame(true, 0, 1, false, []byte("hello")))
	f.Add(append(rawFrame(false, 0, 2, false, []byte("ab")), rawFrame(true, 0, 0, false, []byte("cd"))...))
	f.Add(append(rawFrame(false, 0, 1, false, []byte("a\xc3")), append(rawFrame(true, 0, 9, false, []byte("p")), rawFrame(true, 0, 0, false, []byte("\xa9"))...)...))
	f.Add(rawFrame(true, 0, 8, false, []byte{0x03, 0xe8, 'o', 'k'}))
	f.Add(rawFrame(true, 0, 2, false, bytes.Repeat([]byte{7}, 1000)))
	f.Add(rawFrame(true, 0, 1, false, []byte("PROVIDER_HEARTBEAT|1000")))
	f.Add([]byte{0x81, 0x7f, 0, 0, 0, 0, 0, 0, 0x10, 0})
	f.Add([]byte{0x8a, 0x00, 0x89, 0x01, 'x', 0x01, 0x00})
	f.Fuzz(func(t *testing.T, in []byte) {
		code, msgs, out := runReader(t, in, nil)
		for _, m := range msgs {
			if len(m.Data) > 1<<12 {
				t.Fatalf("delivered %d bytes over MaxPayloadLength", len(m.Data))
			}
			if !m.Binary && !utf8.Valid(m.Data) {
				t.Fatalf("delivered invalid UTF-8 text %q", m.Data)
			}
		}
		if code == 0 {
			t.Fatal("no disconnect code")
		}
		checkClientFrames(t, out)
	})
}

// checkClientFrames parses what the Consumer wrote: masked, well-formed
// frames, nothing after a close frame.
func checkClientFrames(t testing.TB, out []byte) {
	opts := frame.ParseOptions{Role: frame.RoleServer}
	closed := false
	for len(out) > 0 {
		h, n, need, err := frame.ParseHeader(out, opts)
		if err != nil || need > 0 || int64(len(out)-n) < h.Length {
			t.Fatalf("the Consumer wrote a bad frame: %v need %d (% x)", err, need, out)
		}
		if closed {
			t.Fatalf("a frame after the close frame")
		}
		p := bytes.Clone(out[n : n+int(h.Length)])
		frame.Mask(p, h.Mask, 0)
		if h.Op == frame.OpClose {
			closed = true
			if _, _, err := frame.ParseClose(p); err != nil {
				t.Fatalf("the Consumer sent a bad close payload % x: %v", p, err)
			}
		}
		out = out[n+int(h.Length):]
	}
}

func FuzzReadFramesDeflate(f *testing.F) {
	z := deflateRaw(f, []byte("hello hello hello"))
	f.Add(rawFrame(true, 4, 1, false, z))
	f.Add(append(rawFrame(true, 4, 2, false, z), rawFrame(true, 4, 1, false, deflateRaw(f, []byte("hello again")))...))
	f.Add(append(rawFrame(false, 4, 1, false, z[:3]), rawFrame(true, 0, 0, false, z[3:])...))
	f.Add(rawFrame(true, 4, 2, false, deflateRaw(f, make([]byte, 8000))))
	f.Add(rawFrame(true, 4, 1, false, []byte{0x01, 0x00, 0x00, 0xff, 0xff}))
	f.Fuzz(func(t *testing.T, in []byte) {
		code, msgs, out := runReaderDeflate(t, in, nil, true)
		for _, m := range msgs {
			if len(m.Data) > 1<<12 {
				t.Fatalf("delivered %d bytes over MaxPayloadLength", len(m.Data))
			}
			if !m.Binary && !utf8.Valid(m.Data) {
				t.Fatalf("delivered invalid UTF-8 text %q", m.Data)
			}
		}
		if code == 0 {
			t.Fatal("no disconnect code")
		}
		checkClientFrames(t, out)
	})
}

func TestReaderStreams(t *testing.T) {
	// Golden cases through the fake connection with 7-byte reads.
	big := bytes.Repeat([]byte("0123456789"), 300) // larger than the 256-byte read buffer
	in := append(rawFrame(true, 0, 2, false, big), rawFrame(false, 0, 1, false, []byte("x"))...)
	in = append(in, rawFrame(true, 0, 9, false, []byte("ping"))...)
	in = append(in, rawFrame(true, 0, 0, false, big)...)
	in = append(in, rawFrame(true, 0, 8, false, []byte{0x0f, 0xa0, 'b', 'y', 'e'})...)
	code, msgs, out := runReader(t, in, nil)
	if code != 4000 || len(msgs) != 2 || !bytes.Equal(msgs[0].Data, big) || string(msgs[1].Data) != "x"+string(big) {
		t.Fatalf("code %d, %d messages", code, len(msgs))
	}
	checkClientFrames(t, out)
	// The pong echoes the ping's payload, then the close is echoed.
	opts := frame.ParseOptions{Role: frame.RoleServer}
	h, n, _, _ := frame.ParseHeader(out, opts)
	p := bytes.Clone(out[n : n+int(h.Length)])
	frame.Mask(p, h.Mask, 0)
	if h.Op != frame.OpPong || string(p) != "ping" {
		t.Fatalf("first frame written %v %q", h.Op, p)
	}
	out = out[n+int(h.Length):]
	h, n, _, _ = frame.ParseHeader(out, opts)
	p = bytes.Clone(out[n : n+int(h.Length)])
	frame.Mask(p, h.Mask, 0)
	if h.Op != frame.OpClose || string(p) != "\x0f\xa0bye" {
		t.Fatalf("second frame written %v %q", h.Op, p)
	}
	// A stream that ends mid-frame is an abnormal closure.
	if code, _, _ := runReader(t, in[:50], nil); code != frame.CloseAbnormal {
		t.Fatalf("truncated stream: code %d", code)
	}
}
