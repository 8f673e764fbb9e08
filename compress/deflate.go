package compress

import (
	"encoding/binary"
	"math/bits"
	"sync"
)

// DefaultThreshold is the message size, in bytes, below which a sender
// should not compress: send such messages uncompressed (RSV1 clear). The
// caller applies it (with a per-send override); Compress compresses
// whatever it is given.
//
// 256 B, from BenchmarkRatioBySize on JSON-like messages: without context
// takeover (the shared compressor, broadcasts) 64 B grow by 3%, 128 B
// shrink by only 17% (22 B), while 256 B shrink by 46% and 1 KiB by 69%.
// With context takeover small messages gain more (128 B: 3.2×), so a
// caller with a dedicated compressor may lower it to 64–128 B; every
// compressed message costs a compressor and a decompressor pass
// (~2–3 µs at 128 B). Node's ws uses 1 KiB.
const DefaultThreshold = 256

const (
	maxBlockTokens = 1 << 14 // tokens per DEFLATE block
	sharedHashBits = 14      // match table of a compressor without context takeover
	skipLog        = 5       // skip faster through data that does not match,
	maxSkip        = 15      // but probe at least every 16th position
)

// Compressor compresses whole messages for permessage-deflate (RFC 7692
// §7.2.1) with the DEFLATE encoder of this package, which never refers
// further back than the configured window (1<<CompressWindowBits bytes),
// also inside one large message.
//
// With context takeover a Compressor keeps, between messages, a history of
// 2<<CompressWindowBits bytes (the window plus room to slide) and a match
// table of 2<<hashBits bytes, allocated on first use and never more than
// the preset's name (Retained tells). Without it, it keeps nothing: its
// work arrays come from a pool for the duration of a call.
//
// A Compressor without context takeover is safe for concurrent use, and
// its output may go to any connection whose Config.CompressWindowBits is
// at least this Compressor's (one compression for a broadcast; see
// Observe). With context takeover it belongs to one connection and is not
// safe for concurrent use.
type Compressor struct {
	window   int // 1 << bits
	bits     int
	hashBits int
	takeover bool
	st       *encState // takeover only; nil until first use and after Release
	released bool
}

// encState is what a compressor with context takeover keeps between
// messages.
type encState struct {
	// buf holds the plaintext history (its last window bytes are what the
	// peer's decompressor holds) followed by the chunk being compressed;
	// cap(buf) = 2*window.
	buf []byte
	// base is the absolute stream position of buf[0]; only its low 16 bits
	// matter, as table holds positions modulo 1<<16.
	base  uint32
	table []uint16 // hash of 4 bytes → low 16 bits of the last position seen
}

// encScratch is the per-call work memory, pooled.
type encScratch struct {
	toks  [maxBlockTokens]token
	bw    blockWriter
	table [1 << sharedHashBits]uint16
}

var scratchPool = sync.Pool{New: func() any { return new(encScratch) }}

// statePools holds released encStates by window bits (8..15) and hash bits
// (up to 16).
var statePools [8][17]sync.Pool

// NewCompressor returns a compressor for configuration c. Window bits
// outside 8..15 are taken as 15 (0) or clamped.
func NewCompressor(c Config) *Compressor {
	b := c.compressBits()
	return &Compressor{window: 1 << b, bits: b, hashBits: c.hashBits(), takeover: c.CompressContextTakeover}
}

// Compress appends the compressed form of msg, a whole message, to dst and
// returns the extended slice: DEFLATE blocks ending with an empty stored
// block whose final 00 00 ff ff is removed (RFC 7692 §7.2.1), ready to be
// the payload of a frame with RSV1 set (or split over several frames, RSV1
// on the first). msg is read only during the call and must not overlap
// dst's spare capacity. With a reused dst of enough capacity it allocates
// nothing (after the first call with context takeover).
//
// With context takeover, msg joins the history the next messages refer to,
// so the result must be sent, compressed, before anything else this
// Compressor produces, and every compressed message on the connection must
// come from it (or be passed to Observe). Sending a message uncompressed
// instead is fine only if it was never given to Compress.
//
// The only error is ErrReleased.
func (c *Compressor) Compress(dst, msg []byte) ([]byte, error) {
	if c.released {
		return dst, ErrReleased
	}
	sc := scratchPool.Get().(*encScratch)
	sc.bw.reset()
	e := encoder{sc: sc, w: bitWriter{out: dst}, msg: msg, window: c.window}
	if c.takeover {
		st := c.state()
		for off := 0; off < len(msg); {
			st.slideIfFull(c.window)
			n := min(len(msg)-off, cap(st.buf)-len(st.buf))
			cur := len(st.buf)
			st.buf = append(st.buf, msg[off:off+n]...)
			e.compress(st.buf, cur, st.base, st.table, c.hashBits)
			off += n
		}
	} else {
		hb := min(c.hashBits, sharedHashBits, max(8, bits.Len(uint(len(msg)))))
		e.compress(msg, 0, 0, sc.table[:1<<hb], hb)
	}
	e.flushBlock()
	// The empty stored block that ends the message, minus its LEN and
	// NLEN (00 00 ff ff), which RFC 7692 strips.
	e.w.write(0, 3)
	e.w.align()
	out := e.w.out
	scratchPool.Put(sc)
	return out, nil
}

// Observe records msg as sent compressed on this connection by another
// compressor (for example one compression of a broadcast, made by a
// Compressor without context takeover): the peer's decompressor has it in
// its window, so with context takeover it must join this Compressor's
// history too. Without context takeover Observe does nothing. msg is not
// retained. It allocates nothing after the first use.
func (c *Compressor) Observe(msg []byte) {
	if !c.takeover || c.released {
		return
	}
	st := c.state()
	if len(msg) >= c.window {
		// The history becomes msg's last window bytes; earlier table
		// entries fall outside it and are rejected by the distance check.
		st.base += uint32(len(st.buf) + len(msg) - c.window)
		st.buf = append(st.buf[:0], msg[len(msg)-c.window:]...)
		return
	}
	for len(msg) > 0 {
		st.slideIfFull(c.window)
		n := min(len(msg), cap(st.buf)-len(st.buf))
		st.buf = append(st.buf, msg[:n]...)
		msg = msg[n:]
	}
}

// Retained returns the bytes this Compressor keeps between messages: 0
// without context takeover (and before the first message or after
// Release), otherwise its history and match table.
func (c *Compressor) Retained() int {
	if c.st == nil {
		return 0
	}
	return cap(c.st.buf) + 2*len(c.st.table)
}

// Release returns the history of a Compressor with context takeover to a
// pool when its connection ends; further use returns ErrReleased. It must
// not run concurrently with Compress. On a Compressor without context
// takeover (which may be shared) it does nothing.
func (c *Compressor) Release() {
	if !c.takeover || c.released {
		return
	}
	c.released = true
	if st := c.st; st != nil {
		c.st = nil
		st.buf = st.buf[:0]
		statePools[c.bits-8][c.hashBits].Put(st)
	}
}

// state returns the compressor's history, taking one from the pool or
// allocating it on first use.
func (c *Compressor) state() *encState {
	if c.st != nil {
		return c.st
	}
	if v := statePools[c.bits-8][c.hashBits].Get(); v != nil {
		c.st = v.(*encState)
		// A pooled table holds positions of another stream; they are
		// harmless (every candidate is checked against the bytes).
		return c.st
	}
	c.st = &encState{buf: make([]byte, 0, 2*c.window), table: make([]uint16, 1<<c.hashBits)}
	return c.st
}

// slideIfFull drops all but the last window bytes of a full history.
func (st *encState) slideIfFull(window int) {
	if len(st.buf) < cap(st.buf) {
		return
	}
	drop := len(st.buf) - window
	copy(st.buf, st.buf[drop:])
	st.buf = st.buf[:window]
	st.base += uint32(drop)
}

// encoder is the state of one Compress call.
type encoder struct {
	sc     *encScratch
	w      bitWriter
	msg    []byte // the message, for stored blocks
	window int
	ntok   int
	start  int // msg offset where the current block starts
	pos    int // msg offset of the next token
}

// compress finds matches for buf[cur:] (buf[:cur] is history the peer
// holds) and emits tokens. base is the absolute position of buf[0]. Every
// match is verified byte for byte against buf and has distance at most
// e.window and not beyond buf[0], so stale table entries only cost a
// comparison.
func (e *encoder) compress(buf []byte, cur int, base uint32, table []uint16, hashBits int) {
	shift := uint(32 - hashBits)
	end := len(buf)
	limit := end - minMatch
	i, lit := cur, cur
	for i <= limit {
		v := binary.LittleEndian.Uint32(buf[i:])
		h := (v * 0x1E35A7BD) >> shift
		p := uint16(base + uint32(i))
		cand := table[h]
		table[h] = p
		d := int(p - cand)
		if d == 0 || d > e.window || d > i || binary.LittleEndian.Uint32(buf[i-d:]) != v {
			i += 1 + min((i-lit)>>skipLog, maxSkip)
			continue
		}
		j := i - d
		l := minMatch + matchLen(buf[i+minMatch:min(end, i+maxMatch)], buf[j+minMatch:])
		for i > lit && j > 0 && l < maxMatch && buf[i-1] == buf[j-1] {
			i--
			j--
			l++
		}
		e.literals(buf[lit:i])
		e.match(l, d)
		i += l
		// A long repeat is cut into matches of at most 258 bytes: continue
		// at the same distance without needing a table hit.
		for l == maxMatch && i+minMatch <= end && binary.LittleEndian.Uint32(buf[i:]) == binary.LittleEndian.Uint32(buf[i-d:]) {
			l = minMatch + matchLen(buf[i+minMatch:min(end, i+maxMatch)], buf[i-d+minMatch:])
			e.match(l, d)
			i += l
		}
		lit = i
		// Index the position just before the next one, so runs that
		// repeat with a short period keep matching.
		if k := i - 2; k <= limit {
			table[(binary.LittleEndian.Uint32(buf[k:])*0x1E35A7BD)>>shift] = uint16(base + uint32(k))
		}
	}
	e.literals(buf[lit:end])
}

func (e *encoder) literals(b []byte) {
	bw := &e.sc.bw
	for len(b) > 0 {
		n := min(len(b), maxBlockTokens-e.ntok)
		toks := e.sc.toks[e.ntok : e.ntok+n]
		for k, c := range b[:n] {
			toks[k] = token(c)
			bw.litFreq[c]++
		}
		e.ntok += n
		e.pos += n
		b = b[n:]
		if e.ntok == maxBlockTokens {
			e.flushBlock()
		}
	}
}

func (e *encoder) match(l, d int) {
	e.sc.toks[e.ntok] = matchToken(l, d)
	e.sc.bw.litFreq[257+int(lenCodeOf[l-3])]++
	e.sc.bw.distFreq[distCode(uint32(d-1))]++
	e.ntok++
	e.pos += l
	if e.ntok == maxBlockTokens {
		e.flushBlock()
	}
}

// flushBlock writes the tokens gathered so far as one block.
func (e *encoder) flushBlock() {
	if e.ntok == 0 {
		return
	}
	bw := &e.sc.bw
	bw.writeBlock(&e.w, e.sc.toks[:e.ntok], e.msg[e.start:e.pos])
	bw.reset()
	e.ntok = 0
	e.start = e.pos
}

// matchLen returns the length of the common prefix of a and b
// (len(b) ≥ len(a)).
func matchLen(a, b []byte) int {
	n := 0
	for len(a) >= 8 {
		x := binary.LittleEndian.Uint64(a) ^ binary.LittleEndian.Uint64(b)
		if x != 0 {
			return n + bits.TrailingZeros64(x)>>3
		}
		a, b = a[8:], b[8:]
		n += 8
	}
	for k := range a {
		if a[k] != b[k] {
			return n + k
		}
	}
	return n + len(a)
}
