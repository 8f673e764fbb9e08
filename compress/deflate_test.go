package compress

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	kflate "github.com/klauspost/compress/flate"
)

// checkStream decodes payloads (the output of one Compressor, in order)
// with the strict reference decoder holding only the last 1<<bits bytes of
// earlier messages (none without takeover), and checks the output and
// that no back-reference reaches further than 1<<bits.
func checkStream(t *testing.T, msgs, payloads [][]byte, bits int, takeover bool) {
	t.Helper()
	window := 1 << bits
	var hist []byte
	for i, p := range payloads {
		var h []byte
		if takeover {
			h = hist[max(0, len(hist)-window):]
		}
		r, err := refDecodeMessage(p, h)
		if err != nil {
			t.Fatalf("message %d (%d bytes): reference inflate: %v", i, len(msgs[i]), err)
		}
		if !bytes.Equal(r.out, msgs[i]) {
			t.Fatalf("message %d: reference inflate gave %d bytes, want %d", i, len(r.out), len(msgs[i]))
		}
		if r.maxDist > window {
			t.Fatalf("message %d: distance %d beyond the %d-bit window", i, r.maxDist, bits)
		}
		hist = append(hist, msgs[i]...)
	}
}

func TestCompressRoundTrip(t *testing.T) {
	msgs := corpus(1)
	for bits := 8; bits <= 15; bits++ {
		if (raceEnabled || testing.Short()) && bits != 8 && bits != 9 && bits != 12 && bits != 15 {
			continue // the race detector looks for races, not windows
		}
		for _, takeover := range []bool{false, true} {
			for _, mem := range []int{1, 8} {
				t.Run(fmt.Sprintf("w%d/takeover=%v/mem%d", bits, takeover, mem), func(t *testing.T) {
					cfg := Config{CompressWindowBits: bits, CompressContextTakeover: takeover, CompressMemLevel: mem,
						DecompressWindowBits: bits, DecompressContextTakeover: takeover}
					c := NewCompressor(cfg)
					d := NewDecompressor(cfg)
					defer c.Release()
					defer d.Release()
					var payloads [][]byte
					var in, out int
					for i, m := range msgs {
						p, err := c.Compress(nil, m)
						if err != nil {
							t.Fatal(err)
						}
						payloads = append(payloads, p)
						in, out = in+len(m), out+len(p)
						got, err := d.Decompress(nil, p, 1<<30)
						if err != nil || !bytes.Equal(got, m) {
							t.Fatalf("message %d: Decompress: %v (%d bytes, want %d)", i, err, len(got), len(m))
						}
					}
					checkStream(t, msgs, payloads, bits, takeover)
					// The standard library's inflater, as a peer: a continuous
					// stream with takeover, one stream per message without.
					if takeover {
						all := stdInflateStream(t, payloads)[0]
						if want := bytes.Join(msgs, nil); !bytes.Equal(all, want) {
							t.Fatalf("compress/flate stream: %d bytes, want %d", len(all), len(want))
						}
					} else {
						for i, p := range payloads {
							if got := stdInflateStream(t, [][]byte{p})[0]; !bytes.Equal(got, msgs[i]) {
								t.Fatalf("compress/flate message %d: %d bytes, want %d", i, len(got), len(msgs[i]))
							}
						}
					}
					t.Logf("%d → %d bytes (%.2f×)", in, out, float64(in)/float64(out))
				})
			}
		}
	}
}

// TestCompressWindowLimit feeds data whose only long matches lie just
// beyond the window: a random block of 2^W+d bytes, repeated, inside one
// message and across messages. An encoder that ignored the window would
// refer back 2^W+d bytes; ours must not, and must still compress data whose
// period fits the window.
func TestCompressWindowLimit(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for bits := 8; bits <= 15; bits++ {
		w := 1 << bits
		for _, period := range []int{w + 1, w + 50, 2 * w, w / 2, w} {
			blk := randomBytes(r, period)
			msg := bytes.Repeat(blk, 4+(3*w)/period)
			for _, takeover := range []bool{false, true} {
				cfg := Config{CompressWindowBits: bits, CompressContextTakeover: takeover}
				c := NewCompressor(cfg)
				msgs := [][]byte{msg, blk, blk[:period/2], msg}
				var payloads [][]byte
				for _, m := range msgs {
					p, _ := c.Compress(nil, m)
					payloads = append(payloads, p)
				}
				checkStream(t, msgs, payloads, bits, takeover)
				if period <= w && len(payloads[0]) > len(msg)/3 {
					t.Errorf("w%d period %d: %d → %d bytes: matches within the window were missed",
						bits, period, len(msg), len(payloads[0]))
				}
				c.Release()
			}
		}
	}
}

func TestCompressObserve(t *testing.T) {
	msgs := corpus(3)
	shared := NewCompressor(Config{CompressWindowBits: 10})
	cfg := Config{CompressWindowBits: 10, CompressContextTakeover: true, DecompressWindowBits: 10, DecompressContextTakeover: true}
	ded := NewCompressor(cfg)
	d := NewDecompressor(cfg)
	var payloads [][]byte
	for i, m := range msgs {
		var p []byte
		if i%3 == 1 {
			p, _ = shared.Compress(nil, m) // e.g. one compression of a broadcast
			ded.Observe(m)
		} else {
			p, _ = ded.Compress(nil, m)
		}
		payloads = append(payloads, p)
		got, err := d.Decompress(nil, p, 1<<30)
		if err != nil || !bytes.Equal(got, m) {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	checkStream(t, msgs, payloads, 10, true)
}

func TestCompressRelease(t *testing.T) {
	c := NewCompressor(Config{CompressContextTakeover: true})
	if _, err := c.Compress(nil, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if c.Retained() == 0 {
		t.Fatal("Retained() = 0 with context takeover after a message")
	}
	c.Release()
	c.Release()
	if _, err := c.Compress(nil, []byte("hello")); !errors.Is(err, ErrReleased) {
		t.Fatalf("after Release: %v, want ErrReleased", err)
	}
	if c.Retained() != 0 {
		t.Fatal("Retained() != 0 after Release")
	}
	s := NewCompressor(Config{})
	s.Release() // a shared compressor ignores Release
	if _, err := s.Compress(nil, []byte("hello")); err != nil {
		t.Fatal(err)
	}
}

// TestRFC7692Examples checks the examples of RFC 7692 §7.2.3.
func TestRFC7692Examples(t *testing.T) {
	c := NewCompressor(Config{CompressContextTakeover: true})
	p1, _ := c.Compress(nil, []byte("Hello"))
	if want := []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}; !bytes.Equal(p1, want) {
		t.Errorf("Hello: % x, want % x (§7.2.3.1)", p1, want)
	}
	// §7.2.3.2 shows f2 00 11 00 00 for the second "Hello" (a literal and
	// a match); one 5-byte match at distance 5 is as valid and shorter.
	p2, _ := c.Compress(nil, []byte("Hello"))
	if r, err := refDecodeMessage(p2, []byte("Hello")); err != nil || string(r.out) != "Hello" || len(p2) > 5 {
		t.Errorf("second Hello: % x (%q, %v), want a back-reference of at most 5 bytes (§7.2.3.2)", p2, r.out, err)
	}
	d := NewDecompressor(Config{DecompressContextTakeover: true})
	for _, tc := range []struct {
		name string
		p    []byte
	}{
		{"7.2.3.1", []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}},
		{"7.2.3.2", []byte{0xf2, 0x00, 0x11, 0x00, 0x00}},
		{"7.2.3.3 stored", []byte{0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00}},
		{"7.2.3.4 BFINAL", []byte{0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00}},
		{"7.2.3.5 two blocks", []byte{0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00}},
	} {
		got, err := d.Decompress(nil, tc.p, 1000)
		if err != nil || string(got) != "Hello" {
			t.Errorf("%s: %q, %v", tc.name, got, err)
		}
	}
}

func TestCompressAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	msg := jsonish(rand.New(rand.NewPCG(1, 2)), 1024)
	big := jsonish(rand.New(rand.NewPCG(1, 3)), 100000)
	for _, cfg := range []Config{
		{CompressWindowBits: 15},
		{CompressWindowBits: 9},
		{CompressWindowBits: 15, CompressContextTakeover: true},
		{CompressWindowBits: 9, CompressContextTakeover: true, CompressMemLevel: 1},
	} {
		c := NewCompressor(cfg)
		dst := make([]byte, 0, 200000)
		for _, m := range [][]byte{msg, big} {
			c.Compress(dst[:0], m) // warm the pools and the history
			if n := testing.AllocsPerRun(50, func() { c.Compress(dst[:0], m) }); n != 0 {
				t.Errorf("%+v, %d bytes: %v allocs per Compress", cfg, len(m), n)
			}
		}
		c.Release()
	}
}

func TestBuildLengths(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	var hs huffScratch
	check := func(freq []uint32, maxBits int) {
		t.Helper()
		lens := make([]uint8, len(freq))
		var count [maxCodeBits + 1]uint16
		buildLengths(freq, lens, maxBits, &hs, &count)
		for l, n := range count {
			k := 0
			for _, x := range lens {
				if int(x) == l && l > 0 {
					k++
				}
			}
			if l > 0 && int(n) != k {
				t.Fatalf("count[%d] = %d, want %d", l, n, k)
			}
		}
		kraft, used := 0.0, 0
		for i, l := range lens {
			if int(l) > maxBits {
				t.Fatalf("length %d over %d", l, maxBits)
			}
			if freq[i] != 0 && l == 0 {
				t.Fatalf("symbol %d with frequency %d has no code", i, freq[i])
			}
			if l != 0 {
				kraft += 1 / float64(uint(1)<<l)
				used++
			}
		}
		if used < 2 || kraft != 1 {
			t.Fatalf("code of %d symbols is not complete: Kraft sum %v", used, kraft)
		}
	}
	for range 2000 {
		n := 2 + r.IntN(numLitLen-1)
		freq := make([]uint32, n)
		for i := range freq {
			if r.IntN(3) > 0 {
				freq[i] = uint32(r.IntN(1 << r.IntN(16)))
			}
		}
		check(freq, maxCodeBits)
		check(freq[:min(n, numCL)], maxCLBits)
	}
	// Fibonacci frequencies build the deepest trees: force the limit.
	fib := make([]uint32, 40)
	fib[0], fib[1] = 1, 1
	for i := 2; i < len(fib); i++ {
		fib[i] = fib[i-1] + fib[i-2]
	}
	check(fib, maxCodeBits)
	check(fib[:numCL], maxCLBits)
	check([]uint32{0, 0, 5}, maxCodeBits)
	check([]uint32{0, 0, 0}, maxCodeBits)
}

// TestInteropKlauspost decodes our output with klauspost/compress's
// inflater (the one Decompress uses, so also a check of the tail handling
// without our wrapper).
func TestInteropKlauspost(t *testing.T) {
	msgs := corpus(9)
	c := NewCompressor(Config{CompressContextTakeover: true})
	var stream bytes.Buffer
	for _, m := range msgs {
		p, _ := c.Compress(nil, m)
		stream.Write(p)
		stream.Write([]byte{0, 0, 0xff, 0xff})
	}
	stream.Write([]byte{1, 0, 0, 0xff, 0xff})
	var out bytes.Buffer
	if _, err := out.ReadFrom(kflate.NewReader(&stream)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), bytes.Join(msgs, nil)) {
		t.Fatal("klauspost inflater disagrees")
	}
}

// FuzzCompressRoundTrip splits the input into messages and compresses them
// in sequence with context takeover and a window of 8..15 bits, checking
// the result with Decompress and with the strict reference decoder
// (distances within the window).
func FuzzCompressRoundTrip(f *testing.F) {
	f.Add(byte(0x17), []byte("Hello, Hello, Hello; a message and another message"))
	f.Add(byte(0x08), bytes.Repeat([]byte("abcdefghij"), 100))
	f.Add(byte(0xff), []byte{0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, ctl byte, data []byte) {
		bits := 8 + int(ctl&7)
		takeover := ctl&8 == 0
		cut := 1 + int(ctl>>4)*17 // message size
		cfg := Config{CompressWindowBits: bits, CompressContextTakeover: takeover, CompressMemLevel: 1 + int(ctl>>5),
			DecompressWindowBits: bits, DecompressContextTakeover: takeover}
		c, d := NewCompressor(cfg), NewDecompressor(cfg)
		var msgs, payloads [][]byte
		for len(data) > 0 {
			n := min(cut, len(data))
			msgs = append(msgs, data[:n])
			data = data[n:]
		}
		msgs = append(msgs, nil)
		for i, m := range msgs {
			p, err := c.Compress(nil, m)
			if err != nil {
				t.Fatal(err)
			}
			payloads = append(payloads, p)
			got, err := d.Decompress(nil, p, len(m))
			if err != nil || !bytes.Equal(got, m) {
				t.Fatalf("message %d: %v", i, err)
			}
		}
		checkStream(t, msgs, payloads, bits, takeover)
	})
}

// TestSharedConcurrent uses one Compressor and one Decompressor without
// context takeover from several goroutines, as a broadcast does; the race
// detector checks the claim that they are safe for concurrent use.
func TestSharedConcurrent(t *testing.T) {
	c := NewCompressor(Config{CompressWindowBits: 12})
	d := NewDecompressor(Config{})
	msgs := corpus(6)
	done := make(chan error, 4)
	for g := range 4 {
		go func() {
			for i := range 40 {
				m := msgs[(g+i)%len(msgs)]
				p, err := c.Compress(nil, m)
				if err == nil {
					var got []byte
					got, err = d.Decompress(nil, p, 1<<20)
					if err == nil && !bytes.Equal(got, m) {
						err = errors.New("round trip differs")
					}
				}
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestWriteTokens compares the optimised token writer with a plain one
// writing each field through bitWriter.write, on random tokens and codes
// of up to 15 bits (the longest codes with the most extra bits are where
// a bit accumulator overflows).
func TestWriteTokens(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	var lit [numLitLen]huffCode
	var dist [numDist]huffCode
	for range 200 {
		for i := range lit {
			l := uint8(1 + r.IntN(15))
			lit[i] = huffCode{code: uint16(r.IntN(1 << l)), len: l}
		}
		for i := range dist {
			l := uint8(1 + r.IntN(15))
			dist[i] = huffCode{code: uint16(r.IntN(1 << l)), len: l}
		}
		toks := make([]token, 500)
		for i := range toks {
			if r.IntN(2) == 0 {
				toks[i] = token(r.IntN(256))
			} else {
				toks[i] = matchToken(3+r.IntN(256), 1+r.IntN(32768))
			}
		}
		lead := uint(r.IntN(32))
		fast := bitWriter{}
		fast.write(uint32(r.Uint64())&(1<<lead-1), lead)
		slow := fast
		writeTokens(&fast, toks, lit[:], dist[:])
		for _, tk := range toks {
			if tk < matchFlag {
				slow.write(uint32(lit[tk].code), uint(lit[tk].len))
				continue
			}
			l, d := int(tk>>16&0xFF)+3, int(tk&0xFFFF)+1
			lc := lenCodeOf[l-3]
			slow.write(uint32(lit[257+int(lc)].code), uint(lit[257+int(lc)].len))
			slow.write(uint32(l-int(lenBase[lc])), uint(lenExtra[lc]))
			dc := distCode(uint32(d - 1))
			slow.write(uint32(dist[dc].code), uint(dist[dc].len))
			slow.write(uint32(d-int(distBase[dc])), uint(distExtra[dc]))
		}
		slow.write(uint32(lit[endOfBlock].code), uint(lit[endOfBlock].len))
		fast.align()
		slow.align()
		if !bytes.Equal(fast.out, slow.out) {
			t.Fatal("writeTokens differs from the plain writer")
		}
	}
}
