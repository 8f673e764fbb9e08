package compress

import (
	"bytes"
	stdflate "compress/flate"
	"errors"
	"math/rand/v2"
	"runtime"
	"testing"

	kflate "github.com/klauspost/compress/flate"
)

// TestDecompressStdlibInput inflates what the standard library's deflater
// produces, as a zlib-based peer (browsers, Node ws, Python) would send
// it: with and without context takeover, at several levels.
func TestDecompressStdlibInput(t *testing.T) {
	msgs := corpus(4)
	for _, level := range []int{stdflate.HuffmanOnly, stdflate.BestSpeed, stdflate.DefaultCompression, stdflate.BestCompression} {
		for _, takeover := range []bool{false, true} {
			payloads := stdDeflate(t, msgs, level, takeover)
			d := NewDecompressor(Config{DecompressContextTakeover: takeover})
			dst := make([]byte, 0, 64)
			for i, p := range payloads {
				var err error
				dst, err = d.Decompress(dst[:0], p, 1<<20)
				if err != nil || !bytes.Equal(dst, msgs[i]) {
					t.Fatalf("level %d takeover %v message %d: %v", level, takeover, i, err)
				}
			}
			d.Release()
		}
	}
}

// TestDecompressKlauspostInput does the same with klauspost/compress's
// deflater, and with its final-block style (Close instead of Flush), which
// RFC 7692 §7.2.3.4 allows.
func TestDecompressKlauspostInput(t *testing.T) {
	msgs := corpus(5)
	d := NewDecompressor(Config{})
	for _, final := range []bool{false, true} {
		for i, m := range msgs {
			var buf bytes.Buffer
			w, _ := kflate.NewWriter(&buf, 5)
			w.Write(m)
			p := buf.Bytes()
			if final {
				w.Close()
				p = buf.Bytes()
			} else {
				w.Flush()
				p = bytes.TrimSuffix(buf.Bytes(), []byte{0, 0, 0xff, 0xff})
			}
			got, err := d.Decompress(nil, p, 1<<20)
			if err != nil || !bytes.Equal(got, m) {
				t.Fatalf("final=%v message %d: %v", final, i, err)
			}
		}
	}
}

// TestDecompressWindow: with a window of 9 bits the decompressor keeps 512
// bytes; a peer that refers further back into an earlier message is caught
// as corrupt, while a 15-bit decompressor follows it.
func TestDecompressWindow(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	m1 := randomBytes(r, 2000)
	m2 := bytes.Clone(m1[:600]) // a match 2000 bytes back
	payloads := stdDeflate(t, [][]byte{m1, m2}, stdflate.BestSpeed, true)
	for _, bits := range []int{9, 15} {
		d := NewDecompressor(Config{DecompressWindowBits: bits, DecompressContextTakeover: true})
		if _, err := d.Decompress(nil, payloads[0], 1<<20); err != nil {
			t.Fatal(err)
		}
		if got := d.Retained(); got != 1<<bits {
			t.Errorf("w%d: Retained() = %d, want %d", bits, got, 1<<bits)
		}
		got, err := d.Decompress(nil, payloads[1], 1<<20)
		switch {
		case bits == 9 && !errors.Is(err, ErrCorrupt):
			t.Errorf("w9: %v, want ErrCorrupt", err)
		case bits == 15 && (err != nil || !bytes.Equal(got, m2)):
			t.Errorf("w15: %v", err)
		}
		if bits == 9 {
			if _, err := d.Decompress(nil, payloads[0], 1<<20); !errors.Is(err, ErrCorrupt) {
				t.Errorf("after a failure: %v, want ErrCorrupt", err)
			}
		}
		d.Release()
		if _, err := d.Decompress(nil, payloads[0], 1<<20); !errors.Is(err, ErrReleased) {
			t.Errorf("after Release: %v, want ErrReleased", err)
		}
	}
}

func TestDecompressCorrupt(t *testing.T) {
	good, _ := NewCompressor(Config{}).Compress(nil, jsonish(rand.New(rand.NewPCG(1, 1)), 2000))
	for _, tc := range []struct {
		name string
		p    []byte
	}{
		{"block type 3", []byte{0x07, 0x00}},
		{"stored length mismatch", []byte{0x00, 0x05, 0x00, 0x00, 0x00, 'H', 'e', 'l', 'l', 'o', 0x00}},
		{"distance before start", []byte{0x02, 0x13, 0x00, 0x00}}, // a match with no history
		{"truncated", good[:len(good)/2]},
		{"garbage", []byte("this is not deflate data at all, surely")},
		{"data after the final block", append([]byte{0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}, good...)},
	} {
		d := NewDecompressor(Config{})
		got, err := d.Decompress(nil, tc.p, 1<<20)
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %q, %v; want ErrCorrupt", tc.name, got, err)
		}
	}
	// Random input never panics, and fails only with the two errors.
	r := rand.New(rand.NewPCG(3, 3))
	d := NewDecompressor(Config{})
	for range 2000 {
		p := randomBytes(r, r.IntN(300))
		out, err := d.Decompress(nil, p, 4096)
		if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTooBig) {
			t.Fatalf("unexpected error %v", err)
		}
		if len(out) > 4097 {
			t.Fatalf("%d bytes of output with max 4096", len(out))
		}
	}
}

// bomb returns a permessage-deflate payload of about n/4 bytes that
// inflates to 1+258n zero bytes: one dynamic block whose length-258 code
// and distance-1 code take one bit each (the densest DEFLATE allows,
// ~1032:1).
func bomb(n int) []byte {
	var b blockWriter
	b.litLen[0], b.litLen[endOfBlock], b.litLen[285] = 2, 2, 1
	b.distLen[0], b.distLen[1] = 1, 1
	nrle := b.runLengths(numLitLen, 2)
	for _, l := range b.litLen {
		b.litCount[l]++
	}
	b.litCount[0] = 0
	b.distCount[1] = 2
	buildLengths(b.clFreq[:], b.clLen[:], maxCLBits, &b.hs, &b.clCount)
	hclen := numCL
	for hclen > 4 && b.clLen[clOrder[hclen-1]] == 0 {
		hclen--
	}
	w := bitWriter{out: make([]byte, 0, n/4+64)}
	b.writeDynamicHeader(&w, numLitLen, 2, hclen, nrle)
	c := b.litCode[0]
	w.write(uint32(c.code), uint(c.len))
	m, dc := b.litCode[285], b.distCode[0]
	pair := uint32(m.code) | uint32(dc.code)<<1 // 2 bits per 258 bytes
	var word uint32
	for i := range 16 {
		word |= pair << (2 * i)
	}
	for ; n >= 16; n -= 16 {
		w.write(word, 32)
	}
	for ; n > 0; n-- {
		w.write(pair, 2)
	}
	c = b.litCode[endOfBlock]
	w.write(uint32(c.code), uint(c.len))
	w.write(0, 3)
	w.align()
	return w.out
}

func TestDecompressBomb(t *testing.T) {
	small := bomb(4000) // ~1 KB → ~1 MB
	if len(small) > 1100 {
		t.Fatalf("bomb of %d bytes", len(small))
	}
	if r, err := refDecodeMessage(small, nil); err != nil || len(r.out) != 1+258*4000 {
		t.Fatalf("the bomb itself is not valid: %v", err)
	}
	d := NewDecompressor(Config{DecompressContextTakeover: true})
	if out, err := d.Decompress(nil, small, 1+258*4000); err != nil || len(out) != 1+258*4000 {
		t.Fatalf("at exactly the limit: %d bytes, %v", len(out), err)
	}
	for _, tc := range []struct {
		name  string
		p     []byte
		max   int
		alloc uint64 // bytes the call may allocate
	}{
		{"1KB to 1MB, max 64KB", small, 64 << 10, 256 << 10},
		{"1KB to 1MB, max 1 byte less", small, 258 * 4000, 4 << 20},
		{"1MB to 1GB, max 1MB", bomb(1 << 30 / 258), 1 << 20, 4 << 20},
	} {
		d := NewDecompressor(Config{})
		d.Decompress(nil, []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}, 100) // warm the pool
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		out, err := d.Decompress(nil, tc.p, tc.max)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrTooBig) {
			t.Errorf("%s: %v, want ErrTooBig", tc.name, err)
		}
		if len(out) > tc.max+1 {
			t.Errorf("%s: %d bytes of output, max %d", tc.name, len(out), tc.max)
		}
		if a := after.TotalAlloc - before.TotalAlloc; a > tc.alloc {
			t.Errorf("%s: allocated %d bytes, want ≤ %d", tc.name, a, tc.alloc)
		}
	}
}

func TestDecompressAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	r := rand.New(rand.NewPCG(8, 8))
	msgs := [][]byte{jsonish(r, 1024), jsonish(r, 1024), jsonish(r, 50000)}
	for _, takeover := range []bool{false, true} {
		cfg := Config{CompressContextTakeover: takeover, DecompressContextTakeover: takeover, DecompressWindowBits: 12, CompressWindowBits: 12}
		c, d := NewCompressor(cfg), NewDecompressor(cfg)
		dst := make([]byte, 0, 64<<10)
		for _, m := range msgs {
			p, _ := c.Compress(nil, m)
			if takeover {
				// Inflate each message once in order, as a connection would,
				// measuring a copy of the decompressor's state each time.
				if _, err := d.Decompress(dst[:0], p, 1<<20); err != nil {
					t.Fatal(err)
				}
				continue
			}
			d.Decompress(dst[:0], p, 1<<20)
			if n := testing.AllocsPerRun(50, func() { d.Decompress(dst[:0], p, 1<<20) }); n != 0 {
				t.Errorf("takeover=%v, %d bytes: %v allocs per Decompress", takeover, len(m), n)
			}
		}
		if takeover {
			// Same message stream, repeated: each run inflates the next
			// compressed message, in order.
			var ps [][]byte
			for range 60 {
				p, _ := c.Compress(nil, msgs[0])
				ps = append(ps, p)
			}
			i := 0
			if n := testing.AllocsPerRun(50, func() {
				if _, err := d.Decompress(dst[:0], ps[i], 1<<20); err != nil {
					t.Fatal(err)
				}
				i++
			}); n != 0 {
				t.Errorf("takeover: %v allocs per Decompress", n)
			}
		}
	}
}

// FuzzDecompress feeds arbitrary payloads to a decompressor with context
// takeover: it must never panic, never return more than max+1 bytes, and
// fail only with ErrCorrupt or ErrTooBig.
func FuzzDecompress(f *testing.F) {
	f.Add([]byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}, []byte{0xf2, 0x00, 0x11, 0x00, 0x00})
	f.Add([]byte{0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00}, []byte{0x07})
	f.Add(bomb(100), bomb(3))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		d := NewDecompressor(Config{DecompressWindowBits: 10, DecompressContextTakeover: true})
		for _, p := range [][]byte{a, b} {
			out, err := d.Decompress(nil, p, 10000)
			if len(out) > 10001 {
				t.Fatalf("%d bytes", len(out))
			}
			if err != nil {
				if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTooBig) {
					t.Fatal(err)
				}
				return
			}
		}
	})
}
