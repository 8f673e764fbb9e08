package frame

import (
	"bytes"
	"strconv"
	"testing"
)

func BenchmarkParseHeader(b *testing.B) {
	cases := []struct {
		name string
		b    []byte
		o    ParseOptions
	}{
		{"7bit-masked", []byte{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d}, server},
		{"16bit-masked", []byte{0x82, 0xfe, 0x10, 0x00, 1, 2, 3, 4}, server},
		{"64bit-masked", []byte{0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4}, server},
		{"7bit-unmasked", []byte{0x81, 0x05}, client},
		{"incomplete", []byte{0x82, 0xfe, 0x10}, server},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var sink int64
			for b.Loop() {
				h, n, need, _ := ParseHeader(c.b, c.o)
				sink += h.Length + int64(n+need)
			}
			_ = sink
		})
	}
}

func BenchmarkMask(b *testing.B) {
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	for _, size := range []int{16, 125, 1024, 4096, 65536} {
		p := seq(size)
		b.Run(strconv.Itoa(size)+"/word", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				Mask(p, key, 1)
			}
		})
		b.Run(strconv.Itoa(size)+"/bytewise", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				maskRef(p, key, 1)
			}
		})
	}
}

func BenchmarkUTF8(b *testing.B) {
	ascii := bytes.Repeat([]byte("The quick brown fox jumps over the lazy dog. "), 100)[:4096]
	mixed := bytes.Repeat([]byte("Κόσμε €𝄞 ascii text "), 200)[:4096]
	for len(mixed) > 0 && !ValidUTF8(mixed) {
		mixed = mixed[:len(mixed)-1]
	}
	for _, c := range []struct {
		name string
		p    []byte
	}{{"ascii-4k", ascii}, {"mixed-4k", mixed}} {
		b.Run(c.name+"/ValidUTF8", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.p)))
			for b.Loop() {
				ValidUTF8(c.p)
			}
		})
		b.Run(c.name+"/UTF8.Write-1k-pieces", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.p)))
			var v UTF8
			for b.Loop() {
				v.Reset()
				for i := 0; i < len(c.p); i += 1000 {
					v.Write(c.p[i:min(i+1000, len(c.p))])
				}
			}
		})
	}
}

func BenchmarkEncode(b *testing.B) {
	key := [4]byte{1, 2, 3, 4}
	for _, size := range []int{16, 1024, 65536} {
		p := seq(size)
		buf := make([]byte, 0, size+MaxHeaderSize)
		b.Run(strconv.Itoa(size)+"/AppendFrame", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				buf = AppendFrame(buf[:0], true, OpBinary, false, p)
			}
		})
		b.Run(strconv.Itoa(size)+"/AppendMaskedFrame", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				buf = AppendMaskedFrame(buf[:0], true, OpBinary, false, p, key)
			}
		})
		b.Run(strconv.Itoa(size)+"/NewFrame", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				NewFrame(OpBinary, p, false)
			}
		})
	}
	b.Run("AppendHeader", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, MaxHeaderSize)
		for b.Loop() {
			buf = AppendHeader(buf[:0], Header{Fin: true, Op: OpText, Masked: true, Mask: key, Length: 300})
		}
	})
}

// BenchmarkAssembler runs a whole inbound message through the reader's
// steps: parse, unmask, Begin, Payload (UTF-8), End.
func BenchmarkAssembler(b *testing.B) {
	for _, size := range []int{64, 4096} {
		text := bytes.Repeat([]byte("a€"), size/4)
		frameBytes := AppendMaskedFrame(nil, true, OpText, false, text, [4]byte{1, 2, 3, 4})
		buf := make([]byte, len(frameBytes))
		b.Run("text-"+strconv.Itoa(size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(text)))
			var a Assembler
			a.SetMaxPayload(1 << 20)
			for b.Loop() {
				copy(buf, frameBytes)
				h, n, _, err := ParseHeader(buf, server)
				if err != nil {
					b.Fatal(err)
				}
				a.Begin(h)
				p := buf[n:]
				Mask(p, h.Mask, 0)
				a.Payload(p)
				if done, _, _, err := a.End(); !done || err != nil {
					b.Fatal("not done")
				}
			}
		})
	}
}

func BenchmarkQueue(b *testing.B) {
	hdr := AppendHeader(nil, Header{Fin: true, Op: OpText, Length: 100})
	payload := make([]byte, 100)
	shared := NewFrame(OpBinary, payload, false).Bytes()
	b.Run("append-drain-10-frames", func(b *testing.B) {
		b.ReportAllocs()
		var q Queue
		q.SetLimit(1 << 20)
		bufs := make([][]byte, 0, 64)
		b.SetBytes(int64(10 * (len(hdr) + len(payload))))
		for b.Loop() {
			for range 10 {
				q.Append(hdr, payload, false)
			}
			bufs = q.Buffers(bufs[:0], 0)
			q.Advance(q.Len())
		}
	})
	b.Run("shared-drain-10-frames", func(b *testing.B) {
		b.ReportAllocs()
		var q Queue
		bufs := make([][]byte, 0, 64)
		b.SetBytes(int64(10 * len(shared)))
		for b.Loop() {
			for range 10 {
				q.AppendShared(shared, false)
			}
			bufs = q.Buffers(bufs[:0], 0)
			q.Advance(q.Len())
		}
	})
	b.Run("append-1-drain-1", func(b *testing.B) {
		b.ReportAllocs()
		var q Queue
		bufs := make([][]byte, 0, 4)
		for b.Loop() {
			q.Append(hdr, payload, false)
			bufs = q.Buffers(bufs[:0], 0)
			q.Advance(q.Len())
		}
	})
}
