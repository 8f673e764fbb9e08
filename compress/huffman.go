package compress

import (
	"encoding/binary"
	"math/bits"
)

// This file writes DEFLATE blocks (RFC 1951 §3.2): stored, fixed-Huffman
// and dynamic-Huffman, picking the smallest for each block.

const (
	numLitLen   = 286 // literal/length alphabet in use (0..285)
	numDist     = 30  // distance alphabet in use
	numCL       = 19  // code-length alphabet
	endOfBlock  = 256
	maxCodeBits = 15
	maxCLBits   = 7
	minMatch    = 4 // the matcher's minimum (DEFLATE allows 3)
	maxMatch    = 258
)

// A token is a literal byte (value < 256) or a match:
// matchFlag | (length-3)<<16 | (distance-1).
type token uint32

const matchFlag token = 1 << 31

func matchToken(length, dist int) token {
	return matchFlag | token(length-3)<<16 | token(dist-1)
}

// Length and distance code tables (RFC 1951 §3.2.5), computed once.
var (
	lenBase   = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lenExtra  = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	distBase  = [30]uint16{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtra = [30]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
	// clOrder is the order code-length code lengths are sent in.
	clOrder = [numCL]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

	lenCodeOf  = buildLenCodes()  // length-3 → length code index 0..28
	distCodeOf = buildDistCodes() // see distCode
	fixedLit   = buildFixedLit()
)

func buildLenCodes() (t [256]uint8) {
	for c := range 29 {
		n := 1 << lenExtra[c]
		for i := range n {
			if l := int(lenBase[c]) - 3 + i; l < 256 {
				t[l] = uint8(c)
			}
		}
	}
	t[255] = 28 // 258 has its own code
	return t
}

// buildDistCodes maps distance-1 to its code: d < 256 directly, larger
// distances by (d>>7) at index 256+.
func buildDistCodes() (t [512]uint8) {
	for c := range 30 {
		for i := range 1 << distExtra[c] {
			d := int(distBase[c]) - 1 + i
			if d < 256 {
				t[d] = uint8(c)
			} else {
				t[256+d>>7] = uint8(c)
			}
		}
	}
	return t
}

func distCode(d uint32) uint32 { // d = distance-1
	if d < 256 {
		return uint32(distCodeOf[d])
	}
	return uint32(distCodeOf[256+d>>7])
}

type huffCode struct {
	code uint16 // bit-reversed, ready to write LSB first
	len  uint8
}

func buildFixedLit() (t [288]huffCode) {
	var lens [288]uint8
	for i := range lens {
		switch {
		case i < 144:
			lens[i] = 8
		case i < 256:
			lens[i] = 9
		case i < 280:
			lens[i] = 7
		default:
			lens[i] = 8
		}
	}
	var count [maxCodeBits + 1]uint16
	for _, l := range lens {
		count[l]++
	}
	canonical(lens[:], t[:], &count)
	return t
}

// canonical assigns the canonical codes of RFC 1951 §3.2.2 for lens,
// bit-reversed for an LSB-first writer; count[l] is the number of codes of
// length l. Unused symbols (length 0) keep whatever codes held.
func canonical(lens []uint8, codes []huffCode, count *[maxCodeBits + 1]uint16) {
	var next [maxCodeBits + 1]uint16
	code := uint16(0)
	for b := 1; b <= maxCodeBits; b++ {
		if b > 1 {
			code += count[b-1]
		}
		code <<= 1
		next[b] = code
	}
	for i, l := range lens {
		if l == 0 {
			continue
		}
		l &= 15
		codes[i] = huffCode{code: bits.Reverse16(next[l]) >> (16 - l), len: l}
		next[l]++
	}
}

// huffScratch holds the per-block work arrays of buildLengths.
type huffScratch struct {
	keys [numLitLen]uint64
	tmp  [numLitLen]uint64
	a    [numLitLen]int32
}

// sortKeys sorts keys (frequency<<16 | symbol, frequency < 1<<16) by
// frequency, symbols in order among equals: insertion sort for a few, a
// stable radix sort on the frequency bytes otherwise (one pass when all
// frequencies are below 256, as in small blocks).
func (hs *huffScratch) sortKeys(keys []uint64) {
	if len(keys) <= 24 {
		for i := 1; i < len(keys); i++ {
			k := keys[i]
			j := i
			for ; j > 0 && keys[j-1]>>16 > k>>16; j-- {
				keys[j] = keys[j-1]
			}
			keys[j] = k
		}
		return
	}
	var hi uint64
	for _, k := range keys {
		hi |= k
	}
	src, dst := keys, hs.tmp[:len(keys)]
	for shift := uint(16); shift < 32; shift += 8 {
		if shift == 24 && hi>>24 == 0 {
			break
		}
		var count [256]uint16
		for _, k := range src {
			count[byte(k>>shift)]++
		}
		pos := uint16(0)
		for i, c := range count {
			count[i] = pos
			pos += c
		}
		for _, k := range src {
			b := byte(k >> shift)
			dst[count[b]] = k
			count[b]++
		}
		src, dst = dst, src
	}
	if &src[0] != &keys[0] {
		copy(keys, src)
	}
}

// buildLengths sets lens[i] to the code length of symbol i for an optimal
// prefix code of freq limited to maxBits bits (0 for unused symbols), and
// count[l] to the number of codes of length l. At least two symbols get a
// code, as zlib does, so every code is complete and a single used symbol
// still has a 1-bit code.
func buildLengths(freq []uint32, lens []uint8, maxBits int, hs *huffScratch, count *[maxCodeBits + 1]uint16) {
	*count = [maxCodeBits + 1]uint16{}
	keys := hs.keys[:0]
	for i, f := range freq {
		lens[i] = 0
		if f != 0 {
			keys = append(keys, uint64(f)<<16|uint64(i))
		}
	}
	switch len(keys) {
	case 0:
		lens[0], lens[1] = 1, 1
		count[1] = 2
		return
	case 1:
		s := int(keys[0] & 0xFFFF)
		lens[s] = 1
		if s == 0 {
			lens[1] = 1
		} else {
			lens[0] = 1
		}
		count[1] = 2
		return
	}
	hs.sortKeys(keys)
	n := len(keys)
	a := hs.a[:n]
	shift := uint(0)
	for {
		for i, k := range keys {
			// Halving frequencies (rounding up, so none becomes 0) keeps
			// their order and flattens the tree until it fits maxBits.
			f := k >> 16
			a[i] = int32((f + (1<<shift - 1)) >> shift)
		}
		moffat(a)
		if int(a[0]) <= maxBits {
			break
		}
		shift++
	}
	for i, k := range keys {
		lens[k&0xFFFF] = uint8(a[i])
		count[a[i]&15]++
	}
}

// moffat replaces the non-decreasing weights in a (len ≥ 2) with the code
// lengths of a minimum-redundancy code, in place (Moffat and Katajainen,
// "In-place calculation of minimum-redundancy codes", 1995). a[0] gets the
// longest code.
func moffat(a []int32) {
	n := int32(len(a))
	// Phase 1: left to right, build the tree, internal nodes hold weights
	// and then parent pointers.
	a[0] += a[1]
	root, leaf := int32(0), int32(2)
	for next := int32(1); next < n-1; next++ {
		if leaf >= n || a[root] < a[leaf] {
			a[next] = a[root]
			a[root] = next
			root++
		} else {
			a[next] = a[leaf]
			leaf++
		}
		if leaf >= n || (root < next && a[root] < a[leaf]) {
			a[next] += a[root]
			a[root] = next
			root++
		} else {
			a[next] += a[leaf]
			leaf++
		}
	}
	// Phase 2: right to left, internal node depths.
	a[n-2] = 0
	for next := n - 3; next >= 0; next-- {
		a[next] = a[a[next]] + 1
	}
	// Phase 3: right to left, leaf depths.
	avail, used, depth := int32(1), int32(0), int32(0)
	root, next := n-2, n-1
	for avail > 0 {
		for root >= 0 && a[root] == depth {
			used++
			root--
		}
		for avail > used {
			a[next] = depth
			next--
			avail--
		}
		avail = 2 * used
		depth++
		used = 0
	}
}

// bitWriter appends an LSB-first bit stream to out.
type bitWriter struct {
	out  []byte
	bits uint64
	n    uint // bits held in bits, < 32 between calls
}

// write appends the low nb bits of v (nb ≤ 32, v has no higher bits set).
func (w *bitWriter) write(v uint32, nb uint) {
	w.bits |= uint64(v) << w.n
	w.n += nb
	if w.n >= 32 {
		w.out = binary.LittleEndian.AppendUint32(w.out, uint32(w.bits))
		w.bits >>= 32
		w.n -= 32
	}
}

// align pads with zero bits to a byte boundary and writes out whole bytes.
func (w *bitWriter) align() {
	w.n = (w.n + 7) &^ 7
	for w.n > 0 {
		w.out = append(w.out, byte(w.bits))
		w.bits >>= 8
		w.n -= 8
	}
}

// blockWriter holds the statistics and codes of the block being built.
type blockWriter struct {
	litFreq   [numLitLen]uint32
	distFreq  [numDist]uint32
	litLen    [numLitLen]uint8
	distLen   [numDist]uint8
	litCount  [maxCodeBits + 1]uint16
	distCount [maxCodeBits + 1]uint16
	clCount   [maxCodeBits + 1]uint16
	litCode   [numLitLen]huffCode
	distCode  [numDist]huffCode
	clFreq    [numCL]uint32
	clLen     [numCL]uint8
	clCode    [numCL]huffCode
	rle       [numLitLen + numDist]uint16 // symbol | extra<<8
	hs        huffScratch
}

func (b *blockWriter) reset() {
	b.litFreq = [numLitLen]uint32{}
	b.distFreq = [numDist]uint32{}
}

// writeBlock writes one non-final block holding toks, whose plaintext is
// raw, as a stored, fixed or dynamic block, whichever is smallest. The
// frequencies must have been counted for toks (without end-of-block).
func (b *blockWriter) writeBlock(w *bitWriter, toks []token, raw []byte) {
	b.litFreq[endOfBlock]++
	extra := 0
	for c := range 29 {
		extra += int(b.litFreq[257+c]) * int(lenExtra[c])
	}
	for c := range numDist {
		extra += int(b.distFreq[c]) * int(distExtra[c])
	}

	// Stored: header, pad to a byte, LEN and NLEN, the bytes.
	storedBits := 1 << 62
	if len(raw) <= 0xFFFF {
		storedBits = 3 + int((8-(w.n+3)%8)%8) + 32 + 8*len(raw)
	}

	// Fixed Huffman.
	fixedBits := 3 + extra
	for s, f := range b.litFreq {
		fixedBits += int(f) * int(fixedLit[s].len)
	}
	for _, f := range b.distFreq {
		fixedBits += int(f) * 5
	}

	// Dynamic Huffman.
	buildLengths(b.litFreq[:], b.litLen[:], maxCodeBits, &b.hs, &b.litCount)
	buildLengths(b.distFreq[:], b.distLen[:], maxCodeBits, &b.hs, &b.distCount)
	hlit := numLitLen
	for hlit > 257 && b.litLen[hlit-1] == 0 {
		hlit--
	}
	hdist := numDist
	for hdist > 1 && b.distLen[hdist-1] == 0 {
		hdist--
	}
	nrle := b.runLengths(hlit, hdist)
	buildLengths(b.clFreq[:], b.clLen[:], maxCLBits, &b.hs, &b.clCount)
	hclen := numCL
	for hclen > 4 && b.clLen[clOrder[hclen-1]] == 0 {
		hclen--
	}
	dynBits := 3 + 5 + 5 + 4 + 3*hclen + extra
	for s, f := range b.clFreq {
		dynBits += int(f) * int(b.clLen[s])
	}
	dynBits += 2*int(b.clFreq[16]) + 3*int(b.clFreq[17]) + 7*int(b.clFreq[18])
	for s, f := range b.litFreq {
		dynBits += int(f) * int(b.litLen[s])
	}
	for s, f := range b.distFreq {
		dynBits += int(f) * int(b.distLen[s])
	}

	switch {
	case storedBits <= fixedBits && storedBits <= dynBits:
		w.write(0, 3) // BFINAL=0, BTYPE=00
		w.align()
		n := uint32(len(raw))
		w.out = binary.LittleEndian.AppendUint32(w.out, n|(^n)<<16)
		w.out = append(w.out, raw...)
	case fixedBits <= dynBits:
		w.write(1<<1, 3) // BTYPE=01
		writeTokens(w, toks, fixedLit[:numLitLen], fixedDist[:])
	default:
		b.writeDynamicHeader(w, hlit, hdist, hclen, nrle)
		writeTokens(w, toks, b.litCode[:], b.distCode[:])
	}
}

// writeDynamicHeader writes the header of a dynamic block (BTYPE=10) for
// b.litLen and b.distLen, whose code lengths runLengths has encoded (nrle
// entries) and for which b.clLen holds the code-length code, and computes
// b.litCode and b.distCode.
func (b *blockWriter) writeDynamicHeader(w *bitWriter, hlit, hdist, hclen, nrle int) {
	w.write(2<<1, 3)
	canonical(b.litLen[:], b.litCode[:], &b.litCount)
	canonical(b.distLen[:], b.distCode[:], &b.distCount)
	canonical(b.clLen[:], b.clCode[:], &b.clCount)
	w.write(uint32(hlit-257)|uint32(hdist-1)<<5|uint32(hclen-4)<<10, 14)
	for _, s := range clOrder[:hclen] {
		w.write(uint32(b.clLen[s]), 3)
	}
	for _, r := range b.rle[:nrle] {
		s := r & 0xFF
		c := b.clCode[s]
		switch s {
		case 16:
			w.write(uint32(c.code)|uint32(r>>8)<<c.len, uint(c.len)+2)
		case 17:
			w.write(uint32(c.code)|uint32(r>>8)<<c.len, uint(c.len)+3)
		case 18:
			w.write(uint32(c.code)|uint32(r>>8)<<c.len, uint(c.len)+7)
		default:
			w.write(uint32(c.code), uint(c.len))
		}
	}
}

var fixedDist = func() (t [numDist]huffCode) {
	for i := range t {
		t[i] = huffCode{code: bits.Reverse16(uint16(i)) >> 11, len: 5}
	}
	return t
}()

// runLengths encodes the code lengths of the literal/length and distance
// codes as one sequence with the repeat codes 16, 17 and 18 (RFC 1951
// §3.2.7) into b.rle, counts b.clFreq, and returns the number of entries.
func (b *blockWriter) runLengths(hlit, hdist int) int {
	b.clFreq = [numCL]uint32{}
	var seq [numLitLen + numDist]uint8
	copy(seq[:], b.litLen[:hlit])
	copy(seq[hlit:], b.distLen[:hdist])
	lens := seq[:hlit+hdist]
	n := 0
	emit := func(sym, extra uint16) {
		b.rle[n] = sym | extra<<8
		b.clFreq[sym]++
		n++
	}
	for i := 0; i < len(lens); {
		v := lens[i]
		run := 1
		for i+run < len(lens) && lens[i+run] == v {
			run++
		}
		i += run
		if v == 0 {
			for run >= 11 {
				r := min(run, 138)
				emit(18, uint16(r-11))
				run -= r
			}
			if run >= 3 {
				emit(17, uint16(run-3))
				run = 0
			}
		} else {
			emit(uint16(v), 0)
			run--
			for run >= 3 {
				r := min(run, 6)
				emit(16, uint16(r-3))
				run -= r
			}
		}
		for ; run > 0; run-- {
			emit(uint16(v), 0)
		}
	}
	return n
}

// writeTokens writes toks and the end-of-block code with the given codes.
func writeTokens(w *bitWriter, toks []token, lit, dist []huffCode) {
	// The writer's state lives in locals here, and is flushed 32 bits at a
	// time once 32 or more are held: fewer than 32 before each code of at
	// most 28 bits (with its extra bits), so the 64-bit accumulator never
	// overflows.
	acc, n, out := w.bits, w.n, w.out
	lit = lit[:numLitLen]
	for _, t := range toks {
		if t < matchFlag {
			c := lit[byte(t)]
			acc |= uint64(c.code) << n
			n += uint(c.len)
		} else {
			l := uint32(t>>16) & 0xFF
			lc := lenCodeOf[l]
			c := lit[257+uint(lc)%29]
			acc |= uint64(uint32(c.code)|(l+3-uint32(lenBase[lc%29]))<<c.len) << n
			n += uint(c.len) + uint(lenExtra[lc%29])
			if n >= 32 {
				out = binary.LittleEndian.AppendUint32(out, uint32(acc))
				acc >>= 32
				n -= 32
			}
			d := uint32(t) & 0xFFFF
			dc := distCode(d) % numDist
			c = dist[dc]
			acc |= uint64(uint32(c.code)|(d+1-uint32(distBase[dc]))<<c.len) << n
			n += uint(c.len) + uint(distExtra[dc])
		}
		if n >= 32 {
			out = binary.LittleEndian.AppendUint32(out, uint32(acc))
			acc >>= 32
			n -= 32
		}
	}
	w.bits, w.n, w.out = acc, n, out
	c := lit[endOfBlock]
	w.write(uint32(c.code), uint(c.len))
}
