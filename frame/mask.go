package frame

import (
	"encoding/binary"
	"math/bits"
)

// Mask XORs b in place with the masking key (RFC 6455 §5.3), starting at
// byte pos%4 of the key, and returns the key offset for the byte after b.
// Masking and unmasking are the same operation. A payload that arrives in
// pieces is unmasked piece by piece:
//
//	pos := 0
//	pos = Mask(piece1, h.Mask, pos)
//	pos = Mask(piece2, h.Mask, pos)
//
// It works 8 bytes at a time (32 per loop step) and does not allocate. b is
// not retained.
func Mask(b []byte, key [4]byte, pos int) int {
	pos &= 3
	n := len(b)
	if n < 8 {
		for i := range b {
			b[i] ^= key[(pos+i)&3]
		}
		return (pos + n) & 3
	}
	// k32 holds the key rotated so that its low byte applies to b[0]; k64
	// repeats it for 8 bytes. Little-endian loads keep byte i at bits 8i.
	k32 := bits.RotateLeft32(binary.LittleEndian.Uint32(key[:]), -8*pos)
	k64 := uint64(k32) | uint64(k32)<<32
	i := 0
	for ; n-i >= 32; i += 32 {
		s := b[i : i+32 : i+32]
		binary.LittleEndian.PutUint64(s[0:8], binary.LittleEndian.Uint64(s[0:8])^k64)
		binary.LittleEndian.PutUint64(s[8:16], binary.LittleEndian.Uint64(s[8:16])^k64)
		binary.LittleEndian.PutUint64(s[16:24], binary.LittleEndian.Uint64(s[16:24])^k64)
		binary.LittleEndian.PutUint64(s[24:32], binary.LittleEndian.Uint64(s[24:32])^k64)
	}
	for ; n-i >= 8; i += 8 {
		s := b[i : i+8 : i+8]
		binary.LittleEndian.PutUint64(s, binary.LittleEndian.Uint64(s)^k64)
	}
	// i is a multiple of 8, so the key lines up with b[i] as with b[0].
	for j := range b[i:] {
		b[i+j] ^= byte(k32 >> (8 * (j & 3)))
	}
	return (pos + n) & 3
}
