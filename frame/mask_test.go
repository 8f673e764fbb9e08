package frame

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// maskRef is the plain byte-by-byte masking of RFC 6455 §5.3.
func maskRef(b []byte, key [4]byte, pos int) int {
	for i := range b {
		b[i] ^= key[(pos+i)%4]
	}
	return (pos + len(b)) % 4
}

func TestMaskMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 0; n <= 100; n++ {
		for pos := 0; pos < 8; pos++ { // offsets past 3 are taken modulo 4
			for range 4 {
				var key [4]byte
				for i := range key {
					key[i] = byte(rng.Uint32())
				}
				// Mask a window inside a larger buffer, so that a write out
				// of bounds would show in the guard bytes.
				buf := make([]byte, n+16)
				for i := range buf {
					buf[i] = byte(rng.Uint32())
				}
				want := bytes.Clone(buf)
				wantPos := maskRef(want[8:8+n], key, pos)
				gotPos := Mask(buf[8:8+n], key, pos)
				if gotPos != wantPos || !bytes.Equal(buf, want) {
					t.Fatalf("n=%d pos=%d key=% x: got pos %d, want %d; bytes equal %v", n, pos, key, gotPos, wantPos, bytes.Equal(buf, want))
				}
			}
		}
	}
}

func TestMaskPiecewise(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	for range 200 {
		n := rng.IntN(5000)
		orig := make([]byte, n)
		for i := range orig {
			orig[i] = byte(rng.Uint32())
		}
		whole := bytes.Clone(orig)
		Mask(whole, key, 0)
		pieces := bytes.Clone(orig)
		pos := 0
		for i := 0; i < n; {
			k := min(n-i, 1+rng.IntN(70))
			pos = Mask(pieces[i:i+k], key, pos)
			i += k
		}
		if !bytes.Equal(whole, pieces) || pos != n%4 {
			t.Fatalf("n=%d: piecewise masking differs from whole", n)
		}
		// Masking is its own inverse.
		Mask(whole, key, 0)
		if !bytes.Equal(whole, orig) {
			t.Fatalf("n=%d: masking twice is not the identity", n)
		}
	}
}
