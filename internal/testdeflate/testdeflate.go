// Package testdeflate is an independent, strict RFC 1951 inflater for
// tests, written from the RFC in the manner of zlib's puff.c. It inflates
// one permessage-deflate message (RFC 7692 §7.2.2) without relying on the
// compress package under test or on klauspost/compress, reports the furthest
// back-reference so that a test can hold the sender to the LZ77 window it
// agreed to (RFC 7692 §7.1.2), and rejects what a strict inflater rejects:
// block type 3, stored lengths that do not match their complement,
// oversubscribed codes, incomplete codes other than a single code of one
// bit (as zlib), references into history it was not given, and output
// beyond a limit.
//
// It is meant for tests: it is simple rather than fast and allocates per
// message.
package testdeflate

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
)

// errEOF reports input that ends inside a block.
var errEOF = errors.New("inflate: unexpected end of input")

// Options says what Inflate accepts. The zero value is the strictest.
type Options struct {
	// Limit is the most bytes a message may inflate to (the history not
	// counted); more is an error. 0 means no limit.
	Limit int
	// AllowFinal accepts a message that ends with a block whose BFINAL bit
	// is set, followed by nothing but zero bytes, as RFC 7692 §7.2.3.4 lets
	// a sender do. Without it, bytes left after a final block (the empty
	// stored block Inflate appends among them) are an error: the message
	// must end at that empty stored block, as the messages of a sender that
	// keeps its context always do.
	AllowFinal bool
}

// Inflate inflates payload, the payload of one compressed message (its
// frames' payloads joined, without the 00 00 ff ff tail, which Inflate
// appends as RFC 7692 §7.2.2 says). hist is the sliding window carried
// over from earlier messages (context takeover), or nil: a back-reference
// further back than hist and the output so far is an error. It returns
// the message (a new slice; hist and payload are only read, and not kept),
// the furthest back-reference distance it used, and an error for anything
// a strict inflater rejects.
func Inflate(hist, payload []byte, o Options) (msg []byte, maxDist int, err error) {
	in := make([]byte, 0, len(payload)+4)
	in = append(append(in, payload...), 0x00, 0x00, 0xff, 0xff)
	r := &inflater{in: in, limit: o.Limit, hist: len(hist)}
	guess := 4*len(payload) + 64
	if o.Limit > 0 {
		guess = min(o.Limit, guess)
	}
	r.out = append(make([]byte, 0, len(hist)+guess), hist...)
	for !r.final {
		if r.pos == len(r.in) && r.bitcnt < 8 && r.bitbuf == 0 {
			break // the appended empty stored block ended the message
		}
		if err := r.block(); err != nil {
			return nil, r.maxDist, err
		}
	}
	if r.final {
		if !o.AllowFinal {
			if r.pos != len(r.in) {
				return nil, r.maxDist, fmt.Errorf("inflate: %d bytes after the final block", len(r.in)-r.pos)
			}
		} else {
			// Only zero padding may follow the final block (the tail
			// appended above aside).
			for _, c := range r.in[min(r.pos, len(r.in)-4) : len(r.in)-4] {
				if c != 0 {
					return nil, r.maxDist, errors.New("inflate: data after the final block")
				}
			}
		}
	}
	return r.out[r.hist:], r.maxDist, nil
}

// Deflate compresses msg with the standard library's compress/flate at
// level (-2 to 9), with dict as the window, and returns the payload of a
// permessage-deflate message: the sync-flushed stream without its final
// 00 00 ff ff (RFC 7692 §7.2.1). It panics on a bad level. The result is
// new memory; dict and msg are only read.
func Deflate(level int, dict, msg []byte) []byte {
	var b bytes.Buffer
	w, err := flate.NewWriterDict(&b, level, dict)
	if err != nil {
		panic(err)
	}
	_, _ = w.Write(msg) // a bytes.Buffer does not fail
	_ = w.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}

// inflater is the state of one Inflate call.
type inflater struct {
	in      []byte
	pos     int // next byte of in
	bitbuf  uint32
	bitcnt  uint
	out     []byte // history, then this message's output
	hist    int    // bytes of history at the start of out
	limit   int    // most bytes of output after the history; 0: none
	maxDist int    // the furthest back-reference seen
	final   bool   // a block with BFINAL was decoded
}

func (r *inflater) bits(n uint) (int, error) {
	v := r.bitbuf
	for r.bitcnt < n {
		if r.pos == len(r.in) {
			return 0, errEOF
		}
		v |= uint32(r.in[r.pos]) << r.bitcnt
		r.pos++
		r.bitcnt += 8
	}
	r.bitbuf = v >> n
	r.bitcnt -= n
	return int(v & (1<<n - 1)), nil
}

// room reports whether n more bytes of output keep within the limit.
func (r *inflater) room(n int) error {
	if r.limit > 0 && len(r.out)-r.hist+n > r.limit {
		return errors.New("inflate: output over the limit")
	}
	return nil
}

func (r *inflater) block() error {
	last, err := r.bits(1)
	if err != nil {
		return err
	}
	typ, err := r.bits(2)
	if err != nil {
		return err
	}
	r.final = last == 1
	switch typ {
	case 0:
		return r.stored()
	case 1:
		return r.codes(&fixedLit, &fixedDist)
	case 2:
		var lit, dist huffman
		if err := r.dynamic(&lit, &dist); err != nil {
			return err
		}
		return r.codes(&lit, &dist)
	}
	return errors.New("inflate: block type 3")
}

func (r *inflater) stored() error {
	r.bitbuf, r.bitcnt = 0, 0 // to a byte boundary
	if r.pos+4 > len(r.in) {
		return errEOF
	}
	n := int(r.in[r.pos]) | int(r.in[r.pos+1])<<8
	nc := int(r.in[r.pos+2]) | int(r.in[r.pos+3])<<8
	r.pos += 4
	if n != ^nc&0xffff {
		return errors.New("inflate: stored block length does not match its complement")
	}
	if r.pos+n > len(r.in) {
		return errEOF
	}
	if err := r.room(n); err != nil {
		return err
	}
	r.out = append(r.out, r.in[r.pos:r.pos+n]...)
	r.pos += n
	return nil
}

// huffman is a canonical Huffman code: the count of codes of each length
// and the symbols in code order.
type huffman struct {
	count  [16]int
	symbol [288]int
}

// build returns 0 for a complete code, > 0 for an incomplete one and < 0
// for an oversubscribed one.
func (h *huffman) build(lens []int) int {
	h.count = [16]int{}
	for _, l := range lens {
		h.count[l]++
	}
	if h.count[0] == len(lens) {
		return 0
	}
	left := 1
	for l := 1; l < 16; l++ {
		left <<= 1
		left -= h.count[l]
		if left < 0 {
			return left
		}
	}
	var offs [16]int
	for l := 1; l < 15; l++ {
		offs[l+1] = offs[l] + h.count[l]
	}
	for sym, l := range lens {
		if l != 0 {
			h.symbol[offs[l]] = sym
			offs[l]++
		}
	}
	return left
}

func (r *inflater) decode(h *huffman) (int, error) {
	code, first, index := 0, 0, 0
	for l := 1; l < 16; l++ {
		b, err := r.bits(1)
		if err != nil {
			return 0, err
		}
		code |= b
		count := h.count[l]
		if code-count < first {
			return h.symbol[index+code-first], nil
		}
		index += count
		first += count
		first <<= 1
		code <<= 1
	}
	return 0, errors.New("inflate: invalid Huffman code")
}

// The tables of RFC 1951 §3.2.5, written out here rather than taken from
// the compress package, so that the two cannot share a mistake.
var (
	lenBase  = [29]int{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lenExtra = [29]uint{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	dstBase  = [30]int{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	dstExtra = [30]uint{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}

	// codeOrder is the order of the code length code lengths (§3.2.7).
	codeOrder = [19]int{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

	fixedLit, fixedDist = fixedCodes()
)

// fixedCodes returns the codes of RFC 1951 §3.2.6.
func fixedCodes() (lit, dist huffman) {
	var l [288]int
	for i := range l {
		switch {
		case i < 144:
			l[i] = 8
		case i < 256:
			l[i] = 9
		case i < 280:
			l[i] = 7
		default:
			l[i] = 8
		}
	}
	lit.build(l[:])
	var d [30]int
	for i := range d {
		d[i] = 5
	}
	dist.build(d[:])
	return lit, dist
}

func (r *inflater) codes(lit, dist *huffman) error {
	for {
		sym, err := r.decode(lit)
		if err != nil {
			return err
		}
		switch {
		case sym < 256:
			if err := r.room(1); err != nil {
				return err
			}
			r.out = append(r.out, byte(sym))
			continue
		case sym == 256:
			return nil
		}
		sym -= 257
		if sym >= 29 {
			return fmt.Errorf("inflate: invalid length symbol %d", sym+257)
		}
		e, err := r.bits(lenExtra[sym])
		if err != nil {
			return err
		}
		n := lenBase[sym] + e
		ds, err := r.decode(dist)
		if err != nil {
			return err
		}
		if ds >= 30 {
			return fmt.Errorf("inflate: invalid distance symbol %d", ds)
		}
		e, err = r.bits(dstExtra[ds])
		if err != nil {
			return err
		}
		d := dstBase[ds] + e
		if d > len(r.out) {
			return fmt.Errorf("inflate: distance %d too far back (%d bytes of history and output)", d, len(r.out))
		}
		r.maxDist = max(r.maxDist, d)
		if err := r.room(n); err != nil {
			return err
		}
		for ; n > 0; n-- {
			r.out = append(r.out, r.out[len(r.out)-d])
		}
	}
}

func (r *inflater) dynamic(lit, dist *huffman) error {
	nlen, err := r.bits(5)
	if err != nil {
		return err
	}
	ndist, err := r.bits(5)
	if err != nil {
		return err
	}
	ncode, err := r.bits(4)
	if err != nil {
		return err
	}
	nlen, ndist, ncode = nlen+257, ndist+1, ncode+4
	if nlen > 286 || ndist > 30 {
		return errors.New("inflate: bad code counts")
	}
	var lens [320]int
	for i := 0; i < ncode; i++ {
		v, err := r.bits(3)
		if err != nil {
			return err
		}
		lens[codeOrder[i]] = v
	}
	var lencode huffman
	if lencode.build(lens[:19]) != 0 {
		return errors.New("inflate: incomplete code-length code")
	}
	lens = [320]int{}
	for i := 0; i < nlen+ndist; {
		sym, err := r.decode(&lencode)
		if err != nil {
			return err
		}
		if sym < 16 {
			lens[i] = sym
			i++
			continue
		}
		val, rep := 0, 0
		switch sym {
		case 16:
			if i == 0 {
				return errors.New("inflate: repeat with no previous length")
			}
			val = lens[i-1]
			rep, err = r.bits(2)
			rep += 3
		case 17:
			rep, err = r.bits(3)
			rep += 3
		default:
			rep, err = r.bits(7)
			rep += 11
		}
		if err != nil {
			return err
		}
		if i+rep > nlen+ndist {
			return errors.New("inflate: too many lengths")
		}
		for ; rep > 0; rep-- {
			lens[i] = val
			i++
		}
	}
	if lens[256] == 0 {
		return errors.New("inflate: no end-of-block code")
	}
	// An incomplete code is allowed only as a single code of one bit
	// (zlib's inflate_table, puff.c).
	if e := lit.build(lens[:nlen]); e < 0 || (e > 0 && nlen != lit.count[0]+lit.count[1]) {
		return errors.New("inflate: bad literal/length code")
	}
	if e := dist.build(lens[nlen : nlen+ndist]); e < 0 || (e > 0 && ndist != dist.count[0]+dist.count[1]) {
		return errors.New("inflate: bad distance code")
	}
	return nil
}
