package compress

import (
	"errors"
	"fmt"
)

// refInflate is a plain, strict RFC 1951 decoder in the manner of zlib's
// puff.c, written for the tests: it reports every back-reference distance
// so that tests can prove the encoder keeps to its window, and it rejects
// what a strict inflater rejects (incomplete or oversubscribed codes,
// distances beyond the history it holds, bad stored lengths).
type refInflate struct {
	in     []byte
	pos    int // next byte of in
	bitbuf uint32
	bitcnt uint

	hist    []byte // history given before the stream (the peer's window)
	out     []byte
	maxDist int
	blocks  [3]int // count of stored, fixed, dynamic blocks
	final   bool   // a block with BFINAL was decoded
}

var errRefEOF = errors.New("ref: unexpected end of input")

func (r *refInflate) bits(n uint) (int, error) {
	v := r.bitbuf
	for r.bitcnt < n {
		if r.pos == len(r.in) {
			return 0, errRefEOF
		}
		v |= uint32(r.in[r.pos]) << r.bitcnt
		r.pos++
		r.bitcnt += 8
	}
	r.bitbuf = v >> n
	r.bitcnt -= n
	return int(v & (1<<n - 1)), nil
}

type refHuff struct {
	count  [16]int
	symbol [320]int
}

// build returns 0 for a complete code, > 0 for an incomplete one, < 0 for
// an oversubscribed one.
func (h *refHuff) build(lens []int) int {
	h.count = [16]int{}
	for _, l := range lens {
		h.count[l]++
	}
	if h.count[0] == len(lens) {
		return 0
	}
	left := 1
	for l := 1; l <= 15; l++ {
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
	for s, l := range lens {
		if l != 0 {
			h.symbol[offs[l]] = s
			offs[l]++
		}
	}
	return left
}

func (r *refInflate) decode(h *refHuff) (int, error) {
	code, first, index := 0, 0, 0
	for l := 1; l <= 15; l++ {
		b, err := r.bits(1)
		if err != nil {
			return 0, err
		}
		code |= b
		count := h.count[l]
		if code-count < first {
			return h.symbol[index+(code-first)], nil
		}
		index += count
		first += count
		first <<= 1
		code <<= 1
	}
	return 0, errors.New("ref: ran out of codes")
}

// run decodes blocks until a final block or until the input ends exactly
// at a block boundary (when stopAtEnd), and returns the output.
func (r *refInflate) run(stopAtEnd bool) error {
	for !r.final {
		if stopAtEnd && r.pos == len(r.in) && r.bitcnt < 8 && r.bitbuf == 0 {
			return nil
		}
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
			err = r.stored()
		case 1:
			err = r.codes(&fixedLitRef, &fixedDistRef)
		case 2:
			err = r.dynamic()
		default:
			err = errors.New("ref: invalid block type 3")
		}
		if err != nil {
			return err
		}
		r.blocks[typ]++
	}
	return nil
}

func (r *refInflate) stored() error {
	r.bitbuf, r.bitcnt = 0, 0 // drop to a byte boundary
	if r.pos+4 > len(r.in) {
		return errRefEOF
	}
	n := int(r.in[r.pos]) | int(r.in[r.pos+1])<<8
	nn := int(r.in[r.pos+2]) | int(r.in[r.pos+3])<<8
	if n != ^nn&0xFFFF {
		return errors.New("ref: stored length does not match its complement")
	}
	r.pos += 4
	if r.pos+n > len(r.in) {
		return errRefEOF
	}
	r.out = append(r.out, r.in[r.pos:r.pos+n]...)
	r.pos += n
	return nil
}

var fixedLitRef, fixedDistRef = func() (l, d refHuff) {
	var lens [288]int
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
	l.build(lens[:])
	var dl [30]int
	for i := range dl {
		dl[i] = 5
	}
	d.build(dl[:])
	return
}()

func (r *refInflate) codes(lit, dist *refHuff) error {
	for {
		s, err := r.decode(lit)
		if err != nil {
			return err
		}
		switch {
		case s < 256:
			r.out = append(r.out, byte(s))
			continue
		case s == 256:
			return nil
		case s > 285:
			return fmt.Errorf("ref: invalid length symbol %d", s)
		}
		s -= 257
		e, err := r.bits(uint(lenExtra[s]))
		if err != nil {
			return err
		}
		length := int(lenBase[s]) + e
		ds, err := r.decode(dist)
		if err != nil {
			return err
		}
		if ds > 29 {
			return fmt.Errorf("ref: invalid distance symbol %d", ds)
		}
		e, err = r.bits(uint(distExtra[ds]))
		if err != nil {
			return err
		}
		d := int(distBase[ds]) + e
		if d > len(r.hist)+len(r.out) {
			return fmt.Errorf("ref: distance %d too far back (history %d)", d, len(r.hist)+len(r.out))
		}
		r.maxDist = max(r.maxDist, d)
		for range length {
			var c byte
			if k := len(r.out) - d; k >= 0 {
				c = r.out[k]
			} else {
				c = r.hist[len(r.hist)+k]
			}
			r.out = append(r.out, c)
		}
	}
}

func (r *refInflate) dynamic() error {
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
		return errors.New("ref: bad counts")
	}
	var lens [320]int
	for i := range ncode {
		v, err := r.bits(3)
		if err != nil {
			return err
		}
		lens[clOrder[i]] = v
	}
	var lencode, distcode refHuff
	if lencode.build(lens[:19]) != 0 {
		return errors.New("ref: incomplete code-length code")
	}
	lens = [320]int{}
	for i := 0; i < nlen+ndist; {
		s, err := r.decode(&lencode)
		if err != nil {
			return err
		}
		if s < 16 {
			lens[i] = s
			i++
			continue
		}
		var l, rep int
		switch s {
		case 16:
			if i == 0 {
				return errors.New("ref: repeat with no first length")
			}
			l = lens[i-1]
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
			return errors.New("ref: too many lengths")
		}
		for range rep {
			lens[i] = l
			i++
		}
	}
	if lens[256] == 0 {
		return errors.New("ref: no end-of-block code")
	}
	if e := lencode.build(lens[:nlen]); e < 0 || (e > 0 && nlen-lencode.count[0] != 1) {
		return errors.New("ref: bad literal/length code")
	}
	if e := distcode.build(lens[nlen : nlen+ndist]); e < 0 || (e > 0 && ndist-distcode.count[0] != 1) {
		return errors.New("ref: bad distance code")
	}
	return r.codes(&lencode, &distcode)
}

// refDecodeMessage decodes one permessage-deflate payload as RFC 7692
// §7.2.2 says (append 00 00 ff ff, inflate), holding only hist as the
// peer's window, and requires the message to end at the empty stored block.
func refDecodeMessage(payload, hist []byte) (*refInflate, error) {
	r := &refInflate{in: append(append([]byte(nil), payload...), 0, 0, 0xff, 0xff), hist: hist}
	if err := r.run(true); err != nil {
		return r, err
	}
	if r.pos != len(r.in) {
		return r, fmt.Errorf("ref: %d bytes after the final block", len(r.in)-r.pos)
	}
	return r, nil
}
