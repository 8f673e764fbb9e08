package poller

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/networkcluster/networkcluster/frame"
)

// TLS on the event loop.
//
// crypto/tls runs over any net.Conn, and its record layer tolerates a read
// error that is a net.Error whose Temporary method reports true (the error
// of an expired read deadline): the partial record stays in its buffer and
// the next Read resumes where it stopped (crypto/tls conn.go,
// readRecordOrCCS). The handshake does not resume after such an error, so:
//
//   - The handshake runs on a goroutine of its own, started by the first
//     bytes of the peer (an accepted connection that sends nothing holds no
//     goroutine) and gone when the handshake ends. Its Read waits for the
//     bytes the event loop delivers.
//   - After a TLS 1.3 handshake with an AES-GCM suite (what Go, browsers
//     and OpenSSL negotiate on hardware with AES instructions), the
//     tls.Conn is dropped and the record layer of tls13.go protects the
//     records: the worker that got the ciphertext from netpoll decrypts it
//     in place, and the plaintext goes to the handler as the plain
//     engine's input does. An idle connection keeps its traffic keys and
//     its sequence numbers, not crypto/tls's buffers and state, and gives
//     up its AEAD states after a while (see aeadIdle).
//   - Otherwise (TLS 1.2, ChaCha20-Poly1305, fips140=only), crypto/tls
//     keeps the connection, decrypting on the same worker: Read hands it
//     the bytes and then answers errWouldBlock. No goroutine waits for an
//     idle connection either way.
//   - Writes are queued as plaintext, as for TCP, and encrypted by the
//     flush that sends them; the records wait in a second queue while the
//     socket is full, so that the outbound limit keeps applying to what the
//     handler queued.
//
// This is not a fork of crypto/tls: the stock package, with its security
// fixes, does every handshake (the hard, security-critical part:
// negotiation, certificates, key exchange, the key schedule, tickets),
// and hands over the application traffic secrets through its public
// KeyLogWriter API. What runs afterwards is the TLS 1.3 record layer,
// which RFC 8446 section 5 specifies in a few pages: a nonce from the
// sequence number, the standard library's AES-GCM (crypto/cipher), the
// inner content type and its padding, alerts, and KeyUpdate (section
// 4.6.3) with HKDF-Expand-Label (crypto/hkdf). The secrets never leave the
// process and are zeroed when replaced. The user's Config is cloned per
// handshake (with the capture as its KeyLogWriter; a user's own
// KeyLogWriter and GetConfigForClient are still called), and session
// tickets are sealed with the keys of one clone per user Config.

// DefaultTLSHandshakeTimeout bounds a TLS handshake when
// [Options.TLSHandshakeTimeout] is 0.
const DefaultTLSHandshakeTimeout = 10 * time.Second

// wouldBlock is what the TLS transport's Read returns when it has no more
// input: crypto/tls treats a temporary net.Error as "try again later".
type wouldBlock struct{}

func (wouldBlock) Error() string   { return "poller: no TLS input for now" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

var errWouldBlock net.Error = wouldBlock{}

const (
	tlsNew       uint8 = iota // accepted; no byte from the peer yet
	tlsHandshake              // the handshake goroutine runs
	tlsOpen                   // handshake done; crypto/tls decrypts input where it arrives
	tlsOpen13                 // handshake done; the record layer (rec13) took over
)

const (
	// sealChunk is the plaintext encrypted per crypto/tls Write when
	// several queued slices are coalesced (the largest TLS record).
	sealChunk = 16 << 10
	// sealMax bounds the plaintext encrypted ahead of the socket: the
	// records wait in the TLS output queue while the socket is full.
	sealMax = 64 << 10
	// maxTLSPlaintext is the most plaintext one TLS record carries.
	maxTLSPlaintext = 16 << 10
)

// tlsLayer is the TLS state of a netpoll-engine connection. It is also the
// net.Conn that crypto/tls reads from and writes to.
type tlsLayer struct {
	c   *Conn
	cfg *tls.Config // the user's
	tc  *tls.Conn   // set with the first input; nil after a takeover
	r   *rec13      // the TLS 1.3 record layer: secrets during the handshake, all after a takeover

	// hsw holds what crypto/tls wrote during the handshake, for takeover
	// (handshake goroutine only).
	hsw []byte

	// out holds encrypted records not yet written, and outPlain the
	// plaintext they carry, at most (it drops by each byte written); both
	// guarded by c.mu.
	out      frame.Queue
	outPlain int

	mu     sync.Mutex
	state  uint8
	busy   bool    // a goroutine is decrypting (tlsOpen)
	shut   bool    // the connection is closed: Read fails
	notify bool    // close_notify was queued (guarded by c.mu)
	src    []byte  // the transport's bytes being read (busy holder)
	raw    *buffer // input not yet read, after src: raw.b[off:n]
	off, n int     //

	// Record framing of the input, to know when a complete record may be
	// unread (see decrypt), and of what Read handed crypto/tls during the
	// handshake (rdf), so that it never gets bytes past its record's end.
	scan       framing
	rdf        framing
	complete   int64         // records the input completed
	consumed   int64         // records crypto/tls read, at least
	calibrated bool          // consumed is meaningful (set by the first failing Read)
	sig        chan struct{} // wakes the handshake's Read
	timer      *time.Timer   // the handshake deadline
}

func newTLSLayer(c *Conn, cfg *tls.Config, timeout time.Duration) *tlsLayer {
	l := &tlsLayer{c: c, cfg: cfg}
	l.timer = time.AfterFunc(timeout, l.expire)
	return l
}

// expire closes a connection whose handshake did not end in time.
func (l *tlsLayer) expire() {
	l.mu.Lock()
	open := l.state >= tlsOpen
	l.mu.Unlock()
	if !open && l.c.Close(ErrTLSHandshakeTimeout) == nil && l.c.p.log != nil {
		l.c.p.log.Debug("poller: TLS handshake timed out", "remote", l.c.RemoteAddr().String())
	}
}

// appendLocked keeps in for a later Read; l.mu is held.
func (l *tlsLayer) appendLocked(in []byte) {
	if l.raw != nil && l.off > 0 && len(l.raw.b)-l.n < len(in) {
		l.n = copy(l.raw.b, l.raw.b[l.off:l.n])
		l.off = 0
	}
	l.raw = appendBuffer(l.raw, l.n, in)
	l.n += len(in)
}

// shutdown makes Read fail and wakes a waiting handshake; called with
// c.mu held.
func (l *tlsLayer) shutdown() {
	l.mu.Lock()
	l.shut = true
	if l.sig != nil {
		select {
		case l.sig <- struct{}{}:
		default:
		}
	}
	t := l.timer
	l.timer = nil
	l.mu.Unlock()
	if t != nil {
		t.Stop()
	}
}

// release returns the input buffer to the pool once the connection is done.
func (l *tlsLayer) release() {
	l.mu.Lock()
	putBuffer(l.raw)
	l.raw, l.off, l.n = nil, 0, 0
	r := l.r
	took := l.state == tlsOpen13
	l.mu.Unlock()
	if took {
		l.unlistIdle()
		r.wmu.Lock()
		r.wrDone = true
		r.wipe()
		r.wmu.Unlock()
	}
}

// deliverTLS takes ciphertext from the event loop: during the handshake it
// is kept for the handshake goroutine (the first bytes start it); after,
// it is decrypted here, unless another goroutine is decrypting, which then
// takes these bytes too.
func (c *Conn) deliverTLS(in []byte) {
	if len(in) == 0 {
		return
	}
	l := c.tls()
	l.mu.Lock()
	if l.shut {
		l.mu.Unlock()
		return
	}
	if l.state != tlsOpen13 {
		l.scanLocked(in)
	}
	switch {
	case l.state == tlsNew:
		l.appendLocked(in)
		l.state = tlsHandshake
		l.busy = true // the handshake goroutine owns the input until it ends
		l.sig = make(chan struct{}, 1)
		l.tc = tls.Server(l, serverConfig(l.cfg))
		c.p.gor.Add(1)
		l.mu.Unlock()
		go l.handshake()
		return
	case l.state == tlsHandshake || l.busy:
		l.appendLocked(in)
		if l.sig != nil {
			select {
			case l.sig <- struct{}{}:
			default:
			}
		}
		l.mu.Unlock()
		return
	}
	l.busy = true
	if l.state == tlsOpen13 {
		if l.n > l.off {
			l.appendLocked(in) // after a partial record kept earlier
			in = nil
		}
		l.mu.Unlock()
		l.decrypt13(in)
		return
	}
	if l.n > l.off {
		l.appendLocked(in) // after a partial record kept earlier
	} else {
		l.src = in // read in place
	}
	l.mu.Unlock()
	l.decrypt()
}

// handshake runs the server handshake, then opens the connection and
// decrypts what arrived meanwhile. It holds l.busy from the start, so that
// OnClose waits for it: a peer that completed its handshake, sent data and
// closed at once still gets OnOpen, OnData with that data, then OnClose,
// as over TCP.
func (l *tlsLayer) handshake() {
	c := l.c
	defer c.p.gor.Done()
	err := l.tc.Handshake()
	took := err == nil && l.takeover()
	if !took && l.r != nil {
		l.r.wipe()
		l.r = nil
	}
	l.hsw = nil
	l.mu.Lock()
	l.sig = nil
	t := l.timer
	l.timer = nil
	if took {
		l.state = tlsOpen13 // busy stays set: decrypt13 comes next
	} else if err == nil {
		l.state = tlsOpen // busy stays set: decrypt comes next
	} else {
		l.busy = false
	}
	l.mu.Unlock()
	if t != nil {
		t.Stop()
	}
	if err != nil {
		if c.p.log != nil {
			c.p.log.Debug("poller: TLS handshake failed", "remote", c.RemoteAddr().String(), "err", err)
		}
		_ = c.Close(&opError{op: "tls handshake", err: err})
		c.tlsIdle()
		return
	}
	if !c.openTLS() {
		l.mu.Lock()
		l.busy = false
		l.mu.Unlock()
		c.closeTransport()
		c.tlsIdle()
		return
	}
	if took {
		l.listIdle()
		l.decrypt13(nil)
		return
	}
	l.decrypt()
}

// openTLS calls OnOpen once the handshake is done, as open does, also when
// the peer has closed since (its data is still to be given to OnData); it
// reports false if the connection was closed locally.
func (c *Conn) openTLS() bool {
	c.mu.Lock()
	if c.has(fClosed) && !c.tlsLateLocked() {
		c.mu.Unlock()
		return false
	}
	c.set(fOpened)
	c.set(fDispatching)
	c.mu.Unlock()
	c.dispatch(nil, false, true)
	return true
}

// decrypt reads plaintext and gives it to the handler (through deliver,
// so the dispatch rules are those of TCP) for as long as complete records
// arrive; the bytes of a partial record wait in raw. The caller set
// l.busy; decrypt clears it. Each crypto/tls Read is given room for a
// whole record's plaintext, so each successful Read consumed at least one
// record: consumed is a lower bound of the records crypto/tls took, made
// exact (calibrated) whenever a Read finds no more input. A Read is only
// made while a complete record may be unread, which spares the failing
// Read (and crypto/tls's allocation in it) after every message.
func (l *tlsLayer) decrypt() {
	c := l.c
	pb := getBuffer(2 * maxTLSPlaintext)
	n := 0
	for {
		l.mu.Lock()
		idle := l.calibrated && l.complete <= l.consumed
		if idle && n == 0 {
			if len(l.src) > 0 {
				l.keepSrcLocked()
			}
			l.busy = false
			l.mu.Unlock()
			break
		}
		l.mu.Unlock()
		if idle || len(pb.b)-n < maxTLSPlaintext {
			c.deliver(pb.b[:n])
			n = 0
			continue
		}
		m, err := l.tc.Read(pb.b[n:])
		n += m
		if err == nil {
			l.mu.Lock()
			l.consumed++
			l.mu.Unlock()
			continue
		}
		if err == errWouldBlock {
			l.mu.Lock()
			if len(l.src) == 0 && l.n == l.off {
				// Everything that arrived was read: crypto/tls holds no
				// complete record.
				l.consumed, l.calibrated = l.complete, true
			}
			l.mu.Unlock()
			continue
		}
		if n > 0 {
			c.deliver(pb.b[:n])
		}
		// A close_notify (io.EOF) or a bad record, for which crypto/tls
		// queued an alert: it is written if the socket takes it at once,
		// and the connection closes, as a TCP reset or EOF closes it.
		if errors.Is(err, net.ErrClosed) {
			err = io.EOF
		}
		c.tlsInputEnded(err)
		l.mu.Lock()
		l.src = nil
		l.busy = false
		l.mu.Unlock()
		break
	}
	putBuffer(pb)
	// crypto/tls may have queued records while reading (an answer to a
	// KeyUpdate); they go out now.
	c.Flush()
	c.tlsIdle()
}

// keepSrcLocked moves the unread transport bytes (older than raw's) into
// raw, before the transport takes them back.
func (l *tlsLayer) keepSrcLocked() {
	if l.n == l.off {
		l.appendLocked(l.src)
	} else {
		b := getBuffer(len(l.src) + l.n - l.off)
		k := copy(b.b, l.src)
		k += copy(b.b[k:], l.raw.b[l.off:l.n])
		putBuffer(l.raw)
		l.raw, l.off, l.n = b, 0, k
	}
	l.src = nil
}

// scanLocked counts the TLS records that in completes (the record layer's
// framing: a 5-byte header whose last two bytes are the length).
func (l *tlsLayer) scanLocked(in []byte) {
	for len(in) > 0 {
		k, done := l.scan.advance(in)
		in = in[k:]
		if done {
			l.complete++
		}
	}
}

// framing follows the record boundaries of a byte stream.
type framing struct {
	hdr  [recordHeaderLen]byte
	hdrN int
	body int // bytes of the current record's body still to come
}

// limit is how many bytes the current record still has, at most (its
// header's rest, or its body's rest); never 0.
func (f *framing) limit() int {
	if f.hdrN < recordHeaderLen {
		return recordHeaderLen - f.hdrN
	}
	return f.body
}

// advance takes the bytes of b that belong to the current record and
// reports how many, and whether they complete it.
func (f *framing) advance(b []byte) (int, bool) {
	k := 0
	if f.hdrN < recordHeaderLen {
		k = copy(f.hdr[f.hdrN:], b)
		f.hdrN += k
		if f.hdrN < recordHeaderLen {
			return k, false
		}
		f.body = int(f.hdr[3])<<8 | int(f.hdr[4])
	}
	m := min(f.body, len(b)-k)
	f.body -= m
	if f.body > 0 {
		return k + m, false
	}
	f.hdrN = 0
	return k + m, true
}

// seal encrypts up to sealMax bytes of bufs (the plaintext queue) into the
// output queue and returns how many it took. c.mu is not held; the caller
// owns the flush.
func (l *tlsLayer) seal(bufs [][]byte) (int, error) {
	if l.r != nil {
		return l.seal13(bufs)
	}
	if len(bufs) == 1 || len(bufs[0]) >= sealChunk {
		b := bufs[0]
		if len(b) > sealMax {
			b = b[:sealMax]
		}
		return l.tc.Write(b)
	}
	pb := getBuffer(sealChunk)
	total, n := 0, 0
	var err error
	for _, b := range bufs {
		for len(b) > 0 && total < sealMax && err == nil {
			m := copy(pb.b[n:min(len(pb.b), n+sealMax-total)], b)
			n += m
			total += m
			b = b[m:]
			if n == len(pb.b) || total == sealMax {
				_, err = l.tc.Write(pb.b[:n])
				n = 0
			}
		}
		if total == sealMax || err != nil {
			break
		}
	}
	if n > 0 && err == nil {
		_, err = l.tc.Write(pb.b[:n])
	}
	putBuffer(pb)
	return total, err
}

// --- the net.Conn that crypto/tls uses ---

// Read gives crypto/tls the input the event loop delivered. During the
// handshake it waits for more; after, it answers errWouldBlock.
func (l *tlsLayer) Read(p []byte) (int, error) {
	l.mu.Lock()
	if l.state == tlsHandshake && len(p) > l.rdf.limit() {
		// Never past the end of the record crypto/tls reads: when the
		// handshake ends, what follows the client's Finished is ours.
		p = p[:l.rdf.limit()]
	}
	for {
		if len(l.src) > 0 {
			n := copy(p, l.src)
			if l.state == tlsHandshake {
				l.rdf.advance(l.src[:n])
			}
			l.src = l.src[n:]
			l.mu.Unlock()
			return n, nil
		}
		if l.n > l.off {
			n := copy(p, l.raw.b[l.off:l.n])
			if l.state == tlsHandshake {
				l.rdf.advance(l.raw.b[l.off : l.off+n])
			}
			l.off += n
			if l.off == l.n {
				putBuffer(l.raw)
				l.raw, l.off, l.n = nil, 0, 0
			}
			l.mu.Unlock()
			return n, nil
		}
		if l.shut {
			l.mu.Unlock()
			return 0, net.ErrClosed
		}
		if l.state != tlsHandshake || l.sig == nil {
			l.mu.Unlock()
			return 0, errWouldBlock
		}
		sig := l.sig
		l.mu.Unlock()
		<-sig
		l.mu.Lock()
	}
}

// Write queues records of crypto/tls. The handshake's are written at once;
// later ones (records sealed by a flush, an alert or a KeyUpdate answer)
// go out with the flush that runs or follows. It never flushes inline
// after the handshake: crypto/tls may hold its write lock here.
func (l *tlsLayer) Write(p []byte) (int, error) {
	c := l.c
	c.mu.Lock()
	if c.has(fClosed) {
		c.mu.Unlock()
		return 0, net.ErrClosed
	}
	_ = l.out.Append(p, nil, true)
	if !c.has(fOpened) && l.tc != nil {
		l.hsw = append(l.hsw, p...) // the handshake's records, for takeover
	}
	if !c.has(fOpened) && !c.has(fFlushing) {
		c.set(fFlushing)
		c.directFlushLocked()
		return len(p), nil
	}
	c.mu.Unlock()
	return len(p), nil
}

// Close is called by crypto/tls only on a failed handshake's path; the
// handshake goroutine closes the connection itself.
func (l *tlsLayer) Close() error                     { return nil }
func (l *tlsLayer) LocalAddr() net.Addr              { return l.c.nc.LocalAddr() }
func (l *tlsLayer) RemoteAddr() net.Addr             { return l.c.RemoteAddr() }
func (l *tlsLayer) SetDeadline(time.Time) error      { return nil }
func (l *tlsLayer) SetReadDeadline(time.Time) error  { return nil }
func (l *tlsLayer) SetWriteDeadline(time.Time) error { return nil }

// --- the Conn side ---

// tlsLateLocked reports whether input may still be given to OnData on a
// closed connection: plaintext of records the peer sent before it closed,
// decrypted after the close was seen (a plain connection's input never
// trails its close), for as long as OnClose is not due.
func (c *Conn) tlsLateLocked() bool {
	return c.tls() != nil && c.has(fPeerClosed) && !c.has(fFinished)
}

// tlsBusyLocked reports whether a goroutine is decrypting c's input, which
// holds OnClose back until that input has been given to OnData.
func (c *Conn) tlsBusyLocked() bool {
	if c.tls() == nil {
		return false
	}
	c.tls().mu.Lock()
	busy := c.tls().busy
	c.tls().mu.Unlock()
	return busy
}

// tlsIdle is called by a decrypting goroutine once it cleared l.busy: an
// OnClose held back meanwhile is due now.
func (c *Conn) tlsIdle() {
	c.mu.Lock()
	fire := c.finishLocked()
	c.mu.Unlock()
	if fire {
		c.fireClose()
	}
}

// outLenLocked is what is queued and unwritten: plaintext, and records.
func (c *Conn) outLenLocked() int {
	n := c.q.Len()
	if c.tls() != nil {
		n += c.tls().out.Len()
	}
	return n
}

// tlsAdmitLocked applies the outbound limit to the plaintext and the
// records queued together, as frame.Queue applies it to its own bytes: an
// empty connection admits anything, force admits regardless.
func (c *Conn) tlsAdmitLocked(size int, force bool) bool {
	limit, n := c.q.Limit(), c.bufferedLocked()
	return force || limit == 0 || c.outLenLocked() == 0 || n+size <= limit
}

// bufferedLocked is what Buffered reports: the plaintext queued, and for
// TLS the plaintext of the records not yet written (not the records'
// overhead, so that the outbound limit counts what the handler queued).
func (c *Conn) bufferedLocked() int {
	n := c.q.Len()
	if c.tls() != nil {
		n += min(c.tls().out.Len(), c.tls().outPlain)
	}
	return n
}

// resetOutLocked drops everything queued.
func (c *Conn) resetOutLocked() {
	c.q.Reset()
	if c.tls() != nil {
		c.tls().out.Reset()
		c.tls().outPlain = 0
	}
}

// tlsNotifyLocked queues a close_notify alert before the write side is
// shut down (RFC 8446, section 6.1), once; it reports whether it did, in
// which case it has flushed and released c.mu. Called with c.mu held and
// the queue empty.
func (c *Conn) tlsNotifyLocked() bool {
	l := c.tls()
	if l == nil || l.notify || !c.has(fOpened) {
		return false
	}
	l.notify = true
	c.set(fFlushing)
	c.mu.Unlock()
	if l.r != nil {
		l.sendAlert13(alertCloseNotify)
	} else {
		_ = l.tc.CloseWrite()
	}
	c.mu.Lock()
	c.directFlushLocked()
	return true
}

// tlsInputEnded ends a TLS connection's input with err: io.EOF for the
// peer's close_notify, else the error that failed a record (after which the
// queued alert is written if the socket takes it at once). The connection
// closes, unless it is kept writable after EOF (see KeepWritableAfterEOF):
// then a close_notify is the peer's half-close, no more input comes, and
// the TCP half-close that follows keeps it writable.
func (c *Conn) tlsInputEnded(err error) {
	c.mu.Lock()
	first := !c.has(fClosed) && !(err == io.EOF && c.has(fHoldEOF))
	if first && err != io.EOF {
		c.writeAlertLocked()
	}
	if first {
		c.peerClosedLocked(err)
	}
	c.mu.Unlock()
	if first {
		c.closeTransport()
	}
}
