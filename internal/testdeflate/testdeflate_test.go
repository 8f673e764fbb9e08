package testdeflate

import (
	"bytes"
	"compress/flate"
	"io"
	"strings"
	"testing"

	"github.com/networkcluster/networkcluster/internal/testvectors"
)

// TestInflateStdlib checks the inflater against the standard library's
// deflater: every block type, with and without a dictionary, the
// distances it reports and the output limit.
func TestInflateStdlib(t *testing.T) {
	for _, kind := range []string{"json", "text", "bitmap", "random"} {
		data := testvectors.Corpus(kind, 100<<10)
		dict, msg := data[:5000], data[5000:]
		for _, level := range []int{flate.NoCompression, flate.BestSpeed, flate.DefaultCompression, flate.HuffmanOnly} {
			for _, d := range [][]byte{nil, dict} {
				p := Deflate(level, d, msg)
				out, dist, err := Inflate(d, p, Options{Limit: 1 << 20})
				if err != nil || !bytes.Equal(out, msg) {
					t.Fatalf("%s level %d dict %v: %v (%d bytes)", kind, level, d != nil, err, len(out))
				}
				if dist > 32768 {
					t.Fatalf("distance %d", dist)
				}
				if _, _, err := Inflate(d, p, Options{Limit: len(msg)}); err != nil {
					t.Fatalf("%s level %d: output of exactly the limit: %v", kind, level, err)
				}
				if _, _, err := Inflate(d, p, Options{Limit: len(msg) - 1}); err == nil {
					t.Fatalf("%s level %d: output over the limit accepted", kind, level)
				}
			}
		}
	}
	if out, _, err := Inflate(nil, Deflate(flate.BestSpeed, nil, nil), Options{}); err != nil || len(out) != 0 {
		t.Fatalf("empty message: %q %v", out, err)
	}
}

// TestInflateRFC7692 checks the examples of RFC 7692 §7.2.3 and what a
// strict inflater refuses.
func TestInflateRFC7692(t *testing.T) {
	hello := []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}
	final := []byte{0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00} // §7.2.3.4: BFINAL, then a padding byte
	ok := []struct {
		name       string
		hist, p    []byte
		allowFinal bool
		dist       int
	}{
		{"7.2.3.1", nil, hello, false, 0},
		{"7.2.3.2", []byte("Hello"), []byte{0xf2, 0x00, 0x11, 0x00, 0x00}, false, 5},
		{"7.2.3.3 stored", nil, []byte{0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00}, false, 0},
		{"7.2.3.4 BFINAL", nil, final, true, 0},
		{"7.2.3.5 two blocks", nil, []byte{0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00}, false, 0},
	}
	for _, c := range ok {
		out, dist, err := Inflate(c.hist, c.p, Options{AllowFinal: c.allowFinal})
		if err != nil || string(out) != "Hello" || dist != c.dist {
			t.Errorf("%s: %q %d %v", c.name, out, dist, err)
		}
	}
	bad := []struct {
		name string
		hist []byte
		p    []byte
		o    Options
	}{
		{"reference into missing history", nil, []byte{0xf2, 0x00, 0x11, 0x00, 0x00}, Options{}},
		{"block type 3", nil, []byte{0xff, 0xff}, Options{}},
		{"stored length and complement differ", nil, bytes.Repeat([]byte{0}, 10), Options{}},
		{"BFINAL without AllowFinal", nil, final, Options{}},
		{"data after the final block", nil, append(append([]byte{}, final[:7]...), 'x'), Options{AllowFinal: true}},
		{"truncated", nil, hello[:3], Options{}},
		{"over the limit", nil, hello, Options{Limit: 4}},
		// A dynamic block whose literal/length code is a single code of two
		// bits: incomplete, which zlib refuses (only one 1-bit code may be).
		{"incomplete code", nil, dynamicSingle(2), Options{}},
	}
	for _, c := range bad {
		if out, _, err := Inflate(c.hist, c.p, c.o); err == nil {
			t.Errorf("%s: accepted (%q)", c.name, out)
		}
	}
	// The same block with a 1-bit code is what zlib allows.
	if out, _, err := Inflate(nil, dynamicSingle(1), Options{}); err != nil || len(out) != 0 {
		t.Errorf("a single 1-bit literal/length code: %q, %v", out, err)
	}
}

// dynamicSingle returns a dynamic block (then the empty stored block's
// header) whose literal/length code has only the end-of-block symbol, with
// a code of bits bits (1 or 2), and whose distance code is empty.
func dynamicSingle(bits int) []byte {
	var w bitWriter
	w.put(0, 1)  // BFINAL 0
	w.put(2, 2)  // dynamic
	w.put(0, 5)  // HLIT: 257 codes
	w.put(0, 5)  // HDIST: 1 code
	w.put(15, 4) // HCLEN: 19 code length codes
	// Code length code: symbols 0 and bits (and 18) get 2 bits.
	var cl [19]int
	cl[0], cl[bits], cl[18] = 2, 2, 2
	if bits == 2 {
		cl[1] = 2
	} else {
		cl[3] = 2
	}
	for _, s := range codeOrder {
		w.put(uint32(cl[s]), 3)
	}
	// The canonical codes of those four symbols in order: 00, 01, 10, 11.
	var syms []int
	for s, l := range cl {
		if l != 0 {
			syms = append(syms, s)
		}
	}
	code := func(sym int) {
		for i, s := range syms {
			if s == sym {
				w.put(uint32(i>>1|(i&1)<<1), 2) // MSB first
			}
		}
	}
	code(18) // 138 zeros
	w.put(127, 7)
	code(18) // 118 zeros: symbols 0-255
	w.put(107, 7)
	code(bits)           // symbol 256
	code(0)              // the one distance code length: 0
	w.put(0, uint(bits)) // end of block: the only literal/length code, all zeros
	w.put(0, 3)          // the empty stored block's BFINAL and BTYPE
	return w.bytes()
}

type bitWriter struct {
	b    []byte
	bits uint32
	n    uint
}

func (w *bitWriter) put(v uint32, n uint) {
	w.bits |= v << w.n
	w.n += n
	for w.n >= 8 {
		w.b = append(w.b, byte(w.bits))
		w.bits >>= 8
		w.n -= 8
	}
}

func (w *bitWriter) bytes() []byte {
	if w.n > 0 {
		return append(w.b, byte(w.bits))
	}
	return w.b
}

// FuzzInflate: any input is inflated or refused, never a panic, and what
// is inflated agrees with the standard library.
func FuzzInflate(f *testing.F) {
	f.Add([]byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}, false)
	f.Add([]byte{0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00}, true)
	f.Add(Deflate(flate.DefaultCompression, nil, []byte(strings.Repeat("abcabcabd", 50))), false)
	f.Fuzz(func(t *testing.T, p []byte, allowFinal bool) {
		out, dist, err := Inflate(nil, p, Options{Limit: 1 << 20, AllowFinal: allowFinal})
		if err != nil {
			return
		}
		if len(out) > 1<<20 || dist > len(out) {
			t.Fatalf("%d bytes, distance %d", len(out), dist)
		}
		in := append(append([]byte{}, p...), 0, 0, 0xff, 0xff)
		std, _ := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(in)), 1<<20+1))
		if !bytes.Equal(std, out) {
			t.Fatalf("standard library inflates %d bytes, we %d", len(std), len(out))
		}
	})
}
