package provider

// An independent, strict RFC 1951 inflater for the permessage-deflate
// conformance cases, written from the RFC in the manner of zlib's puff.c.
// It inflates what the peer under test compresses without relying on the
// compress package under test, and it reports the furthest back-reference,
// so that a case can hold the peer to the LZ77 window it agreed to (RFC 7692
// §7.1.2). The same file lives in package consumer
// (conformance_inflate_test.go); keep the two in step.

import (
	"errors"
	"fmt"
)

var errCfInflateEOF = errors.New("inflate: unexpected end of input")

// cfInflater inflates one permessage-deflate message.
type cfInflater struct {
	in     []byte
	pos    int
	bitbuf uint32
	bitcnt uint
	out    []byte // history, then this message's output
	limit  int    // most bytes of output (after the history)
	hist   int    // bytes of history at the start of out
	maxDst int    // the furthest back-reference seen
	final  bool
}

// cfInflate inflates payload, the payload of a compressed message (its
// frames' payloads joined, RFC 7692 §7.2.2: without the 00 00 ff ff tail,
// which it appends). hist is the sliding window carried over from earlier
// messages (context takeover), or nil. It returns the message, the furthest
// back-reference distance used, and an error for anything a strict
// inflater rejects, or for output beyond limit bytes.
func cfInflate(hist, payload []byte, limit int) (msg []byte, maxDist int, err error) {
	in := make([]byte, 0, len(payload)+4)
	in = append(append(in, payload...), 0x00, 0x00, 0xff, 0xff)
	r := &cfInflater{in: in, limit: limit, hist: len(hist)}
	r.out = append(make([]byte, 0, len(hist)+min(limit, 4*len(payload)+64)), hist...)
	for !r.final {
		if r.pos == len(r.in) && r.bitcnt < 8 {
			break // the appended empty stored block ended the message
		}
		if err := r.block(); err != nil {
			return nil, r.maxDst, err
		}
	}
	if r.final {
		// RFC 7692 §7.2.3.4: a sender may end with a BFINAL block; only
		// zero padding may follow it (the tail we appended aside).
		for _, c := range r.in[min(r.pos, len(r.in)-4) : len(r.in)-4] {
			if c != 0 {
				return nil, r.maxDst, fmt.Errorf("inflate: data after the final block")
			}
		}
	}
	return r.out[r.hist:], r.maxDst, nil
}

func (r *cfInflater) bits(n uint) (int, error) {
	v := r.bitbuf
	for r.bitcnt < n {
		if r.pos == len(r.in) {
			return 0, errCfInflateEOF
		}
		v |= uint32(r.in[r.pos]) << r.bitcnt
		r.pos++
		r.bitcnt += 8
	}
	r.bitbuf = v >> n
	r.bitcnt -= n
	return int(v & (1<<n - 1)), nil
}

func (r *cfInflater) block() error {
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
		return r.codes(&cfFixedLit, &cfFixedDist)
	case 2:
		var lit, dist cfHuffman
		if err := r.dynamic(&lit, &dist); err != nil {
			return err
		}
		return r.codes(&lit, &dist)
	}
	return errors.New("inflate: block type 3")
}

func (r *cfInflater) stored() error {
	r.bitbuf, r.bitcnt = 0, 0 // to a byte boundary
	if r.pos+4 > len(r.in) {
		return errCfInflateEOF
	}
	n := int(r.in[r.pos]) | int(r.in[r.pos+1])<<8
	nc := int(r.in[r.pos+2]) | int(r.in[r.pos+3])<<8
	r.pos += 4
	if n != ^nc&0xffff {
		return errors.New("inflate: stored block length does not match its complement")
	}
	if r.pos+n > len(r.in) {
		return errCfInflateEOF
	}
	if len(r.out)-r.hist+n > r.limit {
		return errors.New("inflate: output over the limit")
	}
	r.out = append(r.out, r.in[r.pos:r.pos+n]...)
	r.pos += n
	return nil
}

// cfHuffman is a canonical Huffman code: the count of codes of each length
// and the symbols in code order.
type cfHuffman struct {
	count  [16]int
	symbol [288]int
}

// build returns 0 for a complete code, > 0 for an incomplete one and < 0
// for an over-subscribed one.
func (h *cfHuffman) build(lens []int) int {
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

func (r *cfInflater) decode(h *cfHuffman) (int, error) {
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

var (
	cfLenBase  = [29]int{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	cfLenExtra = [29]uint{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	cfDstBase  = [30]int{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	cfDstExtra = [30]uint{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}

	cfFixedLit, cfFixedDist = cfFixedCodes()
)

func cfFixedCodes() (lit, dist cfHuffman) {
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

func (r *cfInflater) codes(lit, dist *cfHuffman) error {
	for {
		sym, err := r.decode(lit)
		if err != nil {
			return err
		}
		switch {
		case sym < 256:
			if len(r.out)-r.hist >= r.limit {
				return errors.New("inflate: output over the limit")
			}
			r.out = append(r.out, byte(sym))
			continue
		case sym == 256:
			return nil
		}
		sym -= 257
		if sym >= 29 {
			return errors.New("inflate: invalid length symbol")
		}
		e, err := r.bits(cfLenExtra[sym])
		if err != nil {
			return err
		}
		n := cfLenBase[sym] + e
		ds, err := r.decode(dist)
		if err != nil {
			return err
		}
		if ds >= 30 {
			return errors.New("inflate: invalid distance symbol")
		}
		e, err = r.bits(cfDstExtra[ds])
		if err != nil {
			return err
		}
		d := cfDstBase[ds] + e
		if d > len(r.out) {
			return fmt.Errorf("inflate: distance %d too far back (%d bytes of history and output)", d, len(r.out))
		}
		r.maxDst = max(r.maxDst, d)
		if len(r.out)-r.hist+n > r.limit {
			return errors.New("inflate: output over the limit")
		}
		for ; n > 0; n-- {
			r.out = append(r.out, r.out[len(r.out)-d])
		}
	}
}

var cfCodeOrder = [19]int{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

func (r *cfInflater) dynamic(lit, dist *cfHuffman) error {
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
		lens[cfCodeOrder[i]] = v
	}
	var lencode cfHuffman
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
	if e := lit.build(lens[:nlen]); e < 0 || (e > 0 && nlen != lit.count[0]+lit.count[1]) {
		return errors.New("inflate: bad literal/length code")
	}
	if e := dist.build(lens[nlen : nlen+ndist]); e < 0 || (e > 0 && ndist != dist.count[0]+dist.count[1]) {
		return errors.New("inflate: bad distance code")
	}
	return nil
}
