package compress

import (
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/flate"
)

// Decompressor inflates the messages of one connection (RFC 7692 §7.2.2)
// with a pooled klauspost/compress flate reader. With context takeover it
// keeps the last 1<<DecompressWindowBits bytes of inflated output between
// messages (nothing else, allocated on first use); without it, nothing.
//
// A Decompressor with context takeover belongs to one connection and is
// not safe for concurrent use; without context takeover it is.
type Decompressor struct {
	window   int
	bits     int
	takeover bool
	hist     *[]byte // takeover only: last ≤ window bytes of output
	broken   bool    // a failed message left the history unusable
	released bool
}

// inflater is a pooled flate reader with its input. (Copying small
// payloads into a bytes.Reader, klauspost's fastest input path, measured no
// faster than reading them in place.)
type inflater struct {
	src tailReader
	fr  io.ReadCloser // implements flate.Resetter
}

var inflaterPool = sync.Pool{New: func() any {
	f := new(inflater)
	f.fr = flate.NewReader(&f.src)
	return f
}}

var histPools [8]sync.Pool // *[]byte with cap 1<<(bits), by bits-8

// tail is appended to every message: the 00 00 ff ff that RFC 7692 §7.2.2
// asks for, completing the sender's empty stored block, then a final
// empty stored block, so that a well-formed message ends the stream with
// io.EOF and a truncated one does not.
var tail = [...]byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// tailReader reads p and then tail, as an io.ByteReader so that the flate
// reader reads no further than it needs.
type tailReader struct {
	p []byte
	i int // offset into p, then len(p)+offset into tail
}

func (r *tailReader) ReadByte() (byte, error) {
	if r.i < len(r.p) {
		c := r.p[r.i]
		r.i++
		return c, nil
	}
	if k := r.i - len(r.p); k < len(tail) {
		r.i++
		return tail[k], nil
	}
	return 0, io.EOF
}

func (r *tailReader) Read(b []byte) (int, error) {
	n := 0
	if r.i < len(r.p) {
		n = copy(b, r.p[r.i:])
		r.i += n
	}
	if k := r.i - len(r.p); n < len(b) && k < len(tail) {
		m := copy(b[n:], tail[k:])
		r.i += m
		n += m
	}
	if n == 0 && len(b) > 0 {
		return 0, io.EOF
	}
	return n, nil
}

// NewDecompressor returns a decompressor for configuration c. Window bits
// outside 8..15 are taken as 15 (0) or clamped.
func NewDecompressor(c Config) *Decompressor {
	b := c.decompressBits()
	return &Decompressor{window: 1 << b, bits: b, takeover: c.DecompressContextTakeover}
}

// Decompress inflates p, the payload of one whole compressed message (all
// its frames' payloads concatenated, without the 00 00 ff ff tail, which
// Decompress adds itself), appends the result to dst and returns the
// extended slice. p is read only during the call and must not overlap
// dst's spare capacity.
//
// The output is bounded while inflating: as soon as the message would
// exceed max bytes (max ≤ 0: no limit) it stops with an error wrapping
// ErrTooBig (close 1009), having written at most max+1 bytes to dst and
// allocated no more than that. Data that is not valid DEFLATE, or that
// refers to history beyond what was kept, returns an error wrapping
// ErrCorrupt (close 1007). After either error a Decompressor with context
// takeover is unusable (every later call returns ErrCorrupt): the
// connection must close. A message may end with a final (BFINAL) block
// (RFC 7692 §7.2.3.4); zero bytes after it are ignored, other data after
// it is ErrCorrupt rather than dropped (the inflater may have read a byte
// or two past the block, which go unchecked). An empty payload is an empty
// message.
//
// With a reused dst of enough capacity it allocates nothing (after the
// first call with context takeover).
func (d *Decompressor) Decompress(dst, p []byte, max int) ([]byte, error) {
	switch {
	case d.released:
		return dst, ErrReleased
	case d.broken:
		return dst, fmt.Errorf("%w: an earlier message failed", ErrCorrupt)
	case len(p) == 0:
		return dst, nil
	}
	var dict []byte
	if d.takeover && d.hist != nil {
		dict = *d.hist
	}
	f := inflaterPool.Get().(*inflater)
	f.src = tailReader{p: p}
	if err := f.fr.(flate.Resetter).Reset(&f.src, dict); err != nil {
		f.src = tailReader{}
		inflaterPool.Put(f)
		return dst, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	start := len(dst)
	limit := -1
	if max > 0 {
		limit = start + max + 1
	}
	var err error
	for {
		if len(dst) == cap(dst) {
			dst = grow(dst, start, limit, len(p))
		}
		room := cap(dst)
		if limit >= 0 && room > limit {
			room = limit
		}
		var n int
		n, err = f.fr.Read(dst[len(dst):room])
		dst = dst[:len(dst)+n]
		if limit >= 0 && len(dst) >= limit {
			err = fmt.Errorf("%w: more than %d bytes", ErrTooBig, max)
			break
		}
		if err != nil {
			if err == io.EOF {
				err = trailing(p[min(f.src.i, len(p)):])
			} else {
				err = fmt.Errorf("%w: %v", ErrCorrupt, err)
			}
			break
		}
	}
	f.src = tailReader{}
	inflaterPool.Put(f)
	if err != nil {
		if d.takeover {
			d.broken = true
		}
		return dst, err
	}
	if d.takeover {
		d.remember(dst[start:])
	}
	return dst, nil
}

// trailing checks what the inflater left unread after a final block: the
// zero byte of the empty stored block that a sender ending with BFINAL
// still appends (RFC 7692 §7.2.3.4) is fine; anything else would be data
// silently dropped.
func trailing(rest []byte) error {
	for _, c := range rest {
		if c != 0 {
			return fmt.Errorf("%w: %d bytes of data after the final block", ErrCorrupt, len(rest))
		}
	}
	return nil
}

// grow extends dst's capacity for more output, never beyond limit (when ≥ 0).
func grow(dst []byte, start, limit, inLen int) []byte {
	out := len(dst) - start
	want := max(out, 4*inLen, 512) // double, or guess from the input
	if limit >= 0 && len(dst)+want > limit {
		want = limit - len(dst)
	}
	return append(dst, make([]byte, want)...)[:len(dst)]
}

// remember keeps the last window bytes of inflated output.
func (d *Decompressor) remember(out []byte) {
	if d.hist == nil {
		if v := histPools[d.bits-8].Get(); v != nil {
			d.hist = v.(*[]byte)
			*d.hist = (*d.hist)[:0]
		} else {
			b := make([]byte, 0, d.window)
			d.hist = &b
		}
	}
	h := *d.hist
	switch {
	case len(out) >= d.window:
		h = append(h[:0], out[len(out)-d.window:]...)
	case len(h)+len(out) <= d.window:
		h = append(h, out...)
	default:
		keep := d.window - len(out)
		copy(h, h[len(h)-keep:])
		h = append(h[:keep], out...)
	}
	*d.hist = h
}

// Retained returns the bytes this Decompressor keeps between messages: 0
// without context takeover (and before the first message or after
// Release), otherwise the capacity of its window.
func (d *Decompressor) Retained() int {
	if d.hist == nil {
		return 0
	}
	return cap(*d.hist)
}

// Release returns the window of a Decompressor with context takeover to a
// pool when its connection ends; further use returns ErrReleased. It must
// not run concurrently with Decompress. Without context takeover it does
// nothing.
func (d *Decompressor) Release() {
	if !d.takeover || d.released {
		return
	}
	d.released = true
	if h := d.hist; h != nil {
		d.hist = nil
		histPools[d.bits-8].Put(h)
	}
}
