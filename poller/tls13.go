package poller

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"net"
	"runtime"
	"sync"
	"time"
	"weak"
)

// The TLS 1.3 record layer (RFC 8446, section 5) that takes over a
// connection once crypto/tls has completed its handshake.
//
// crypto/tls does the whole handshake. It hands the application traffic
// secrets to its public Config.KeyLogWriter (the NSS key log lines
// CLIENT_TRAFFIC_SECRET_0 and SERVER_TRAFFIC_SECRET_0); each connection's
// handshake runs with a clone of the Config whose KeyLogWriter is that
// connection's layer. The secrets stay in the layer: they never leave the
// process (a user's own KeyLogWriter, if set, still gets every line, as
// crypto/tls would give it) and are zeroed when replaced (a KeyUpdate) or
// when the connection ends. From the secrets and the standard library's
// AES-GCM, the records of both directions are protected here (section
// 5.2), in place in pooled buffers, and the tls.Conn, its buffers and the
// handshake's goroutine are gone.
//
// The takeover needs the sequence numbers of both directions (section
// 5.3): the transport never hands crypto/tls bytes beyond the end of the
// record it is reading during the handshake, so when Handshake returns
// crypto/tls has read exactly the client's Finished and the next record is
// the client's first application-data record (sequence number 0). On the
// write side crypto/tls may have sent NewSessionTicket records under the
// server application key: the records it wrote during the handshake are
// kept, and the suffix that opens under that key, at sequence numbers
// 0, 1, ..., gives the write sequence number. The takeover happens only for
// TLS 1.3 with TLS_AES_128_GCM_SHA256 or TLS_AES_256_GCM_SHA384 when both
// secrets were seen, AES-GCM is available (cipher.NewGCM refuses in
// fips140=only mode) and the written records are consistent; otherwise
// crypto/tls keeps the connection (see tls.go).

// Record layer constants (RFC 8446).
const (
	recordHeaderLen   = 5           // section 5.1
	maxCiphertext13   = 1<<14 + 256 // section 5.2: TLSCiphertext.length
	maxInnerPlaintext = 1<<14 + 1   // section 5.2: TLSInnerPlaintext
	aeadTagLen        = 16          // AES-GCM (RFC 5116)
	aeadIVLen         = 12          // section 5.3: max(8, N_MIN)
	recordOverhead    = recordHeaderLen + 1 + aeadTagLen
	// maxUselessRecords bounds the records in a row that carry no
	// application data (empty ones, user_canceled alerts, KeyUpdates), as
	// crypto/tls bounds them.
	maxUselessRecords = 16
	// rekeyAfter is the number of records sealed under one key after which
	// the write side updates its key (section 5.5: AES-GCM keeps its safety
	// margin up to 2^24.5 full-size records).
	rekeyAfter = 1 << 24
)

// Content types (section 5.1, appendix B.1).
const (
	recChangeCipherSpec = 20
	recAlert            = 21
	recHandshake        = 22
	recApplicationData  = 23
)

// Handshake types seen after the handshake (section 4).
const (
	hsNewSessionTicket = 4
	hsKeyUpdate        = 24
)

// Alerts (section 6).
const (
	alertLevelWarning      = 1
	alertLevelFatal        = 2
	alertCloseNotify       = 0
	alertUnexpectedMessage = 10
	alertBadRecordMAC      = 20
	alertRecordOverflow    = 22
	alertIllegalParameter  = 47
	alertDecodeError       = 50
	alertProtocolVersion   = 70
	alertInternalError     = 80
	alertUserCanceled      = 90
)

// localAlert is the error of a record that ends the connection with the
// given alert sent to the peer; remoteAlert that of an alert received. Both
// match errors.As with a *tls.AlertError, as crypto/tls's errors do.
func localAlert(a uint8) error {
	return &net.OpError{Op: "local error", Err: tls.AlertError(a)}
}

func remoteAlert(a uint8) error {
	return &net.OpError{Op: "remote error", Err: tls.AlertError(a)}
}

// alertToSend returns the alert that err (from readRecords) asks to send.
func alertToSend(err error) (uint8, bool) {
	var oe *net.OpError
	var a tls.AlertError
	if errors.As(err, &oe) && oe.Op == "local error" && errors.As(err, &a) {
		return uint8(a), true
	}
	return 0, false
}

var errSeqExhausted = errors.New("poller: TLS sequence number exhausted")

// dir13 is one direction's traffic keys (section 7.3) and sequence number.
type dir13 struct {
	aead   cipher.AEAD // nil once released by the idle sweep; rebuilt from key on use
	seq    uint64
	keyLen uint8
	used   bool     // the AEAD was used since the last sweep
	secret [48]byte // the current application traffic secret
	key    [32]byte
	iv     [aeadIVLen]byte
	nonce  [aeadIVLen]byte // scratch: a nonce on the stack would escape to the heap through the AEAD interface
}

// rec13 is the record layer of a connection after the takeover. The read
// half belongs to the goroutine holding tlsLayer.busy; the write half is
// guarded by wmu.
type rec13 struct {
	client    bool  // the client's role (tests' peer); the Conn's is the server's
	secretLen uint8 // 32 (SHA-256) or 48 (SHA-384): the suite's hash size
	keyLen    uint8 // 16 or 32
	seen      uint8 // key log lines seen: 1 client, 2 server

	// Read side.
	rd      dir13
	hs      [4]byte // a post-handshake message's header being read
	hsN     uint8
	hsLeft  int // body bytes of that message still to come
	useless uint8
	asked   bool // a KeyUpdate asked for ours (the reader's note of kuOwed)

	wmu    sync.Mutex
	wr     dir13
	kuOwed bool // a KeyUpdate answer is owed before the next application data
	wrDone bool // close_notify or a fatal alert was sent

	next io.Writer // the user's KeyLogWriter, during the handshake

	// The idle sweep's list (guarded by idleSweep.mu).
	prev, nextL *tlsLayer
	listed      bool
}

func (r *rec13) hash() func() hash.Hash {
	if r.secretLen == sha512.Size384 {
		return sha512.New384
	}
	return sha256.New
}

// expandLabel is HKDF-Expand-Label(secret, label, "", length) (section 7.1).
func expandLabel(h func() hash.Hash, secret []byte, label string, length int) ([]byte, error) {
	var info [2 + 1 + 6 + 16 + 1]byte
	b := append(info[:0], byte(length>>8), byte(length), byte(6+len(label)))
	b = append(b, "tls13 "...)
	b = append(b, label...)
	b = append(b, 0) // empty context
	return hkdf.Expand(h, secret, string(b), length)
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// setKeys derives d's key and iv from d.secret (section 7.3) and resets its
// sequence number (section 5.3).
func (r *rec13) setKeys(d *dir13) error {
	h := r.hash()
	secret := d.secret[:r.secretLen]
	key, err := expandLabel(h, secret, "key", int(r.keyLen))
	if err != nil {
		return err
	}
	iv, err := expandLabel(h, secret, "iv", aeadIVLen)
	if err != nil {
		clear(key)
		return err
	}
	copy(d.key[:], key)
	copy(d.iv[:], iv)
	clear(key)
	clear(iv)
	d.keyLen = r.keyLen
	d.aead, err = newAEAD(d.key[:r.keyLen])
	d.seq = 0
	return err
}

// ready makes sure d has its AEAD state (rebuilt after an idle release)
// and marks it used.
func (d *dir13) ready() error {
	d.used = true
	if d.aead != nil {
		return nil
	}
	var err error
	d.aead, err = newAEAD(d.key[:d.keyLen])
	return err
}

// update moves d to the next generation of its traffic secret (section
// 7.2), zeroing the one it replaces.
func (r *rec13) update(d *dir13) error {
	next, err := expandLabel(r.hash(), d.secret[:r.secretLen], "traffic upd", int(r.secretLen))
	if err != nil {
		return err
	}
	copy(d.secret[:], next)
	clear(next)
	return r.setKeys(d)
}

// wipe zeroes the secrets and keys and drops the AEAD states.
func (r *rec13) wipe() {
	for _, d := range []*dir13{&r.rd, &r.wr} {
		clear(d.secret[:])
		clear(d.key[:])
		clear(d.iv[:])
		clear(d.nonce[:])
		d.aead = nil
	}
}

// nonceFor returns the per-record nonce: the iv XORed with the sequence
// number, left-padded to the iv's length (section 5.3).
func (d *dir13) nonceFor() []byte {
	d.nonce = d.iv
	for i := 0; i < 8; i++ {
		d.nonce[aeadIVLen-8+i] ^= byte(d.seq >> (56 - 8*i))
	}
	return d.nonce[:]
}

// sealRecord protects, in place, the n bytes of content at rec[5:] with
// the inner content type typ: rec must have room for the header, the
// content, the type and the tag. It returns the record's length. No
// padding is added (section 5.4 leaves it to the sender).
func (d *dir13) sealRecord(rec []byte, n int, typ byte) (int, error) {
	if d.seq == ^uint64(0) {
		// Section 5.3: a sequence number must not wrap.
		return 0, errSeqExhausted
	}
	if err := d.ready(); err != nil {
		return 0, err
	}
	rec[recordHeaderLen+n] = typ
	length := n + 1 + aeadTagLen
	// Section 5.2: the outer type is application_data, the legacy version
	// 0x0303; the header is the additional data.
	rec[0], rec[1], rec[2] = recApplicationData, 3, 3
	rec[3], rec[4] = byte(length>>8), byte(length)
	body := rec[recordHeaderLen : recordHeaderLen+n+1]
	d.aead.Seal(body[:0], d.nonceFor(), body, rec[:recordHeaderLen])
	d.seq++
	return recordHeaderLen + length, nil
}

// openRecord removes, in place, the protection of rec (a whole record, its
// header checked) and returns the inner content type and content (section
// 5.2, 5.4).
func (d *dir13) openRecord(rec []byte) (byte, []byte, error) {
	if d.seq == ^uint64(0) {
		return 0, nil, errSeqExhausted
	}
	if err := d.ready(); err != nil {
		return 0, nil, localAlert(alertInternalError)
	}
	body := rec[recordHeaderLen:]
	if len(body) < aeadTagLen {
		return 0, nil, localAlert(alertBadRecordMAC)
	}
	pt, err := d.aead.Open(body[:0], d.nonceFor(), body, rec[:recordHeaderLen])
	if err != nil {
		// Section 5.2: a record that fails deprotection ends the
		// connection with bad_record_mac.
		return 0, nil, localAlert(alertBadRecordMAC)
	}
	d.seq++
	if len(pt) > maxInnerPlaintext {
		return 0, nil, localAlert(alertRecordOverflow)
	}
	// Section 5.4: the content type is the last non-zero byte; the zeros
	// after it are padding. No non-zero byte: unexpected_message.
	i := len(pt) - 1
	for i >= 0 && pt[i] == 0 {
		i--
	}
	if i < 0 {
		return 0, nil, localAlert(alertUnexpectedMessage)
	}
	return pt[i], pt[:i], nil
}

// readRecords processes the complete records at the start of b in place,
// and moves the application data they carry to b[:w]. It stops before an
// incomplete record, and after a close_notify (io.EOF) or an error; n is
// the bytes of b it consumed. An error that asks for an alert to be sent
// is a localAlert.
func (r *rec13) readRecords(b []byte) (n, w int, err error) {
	for len(b)-n >= recordHeaderLen {
		hdr := b[n : n+recordHeaderLen]
		length := int(hdr[3])<<8 | int(hdr[4])
		// Section 5.1: TLS 1.3 records carry the legacy version 0x0303
		// (crypto/tls, too, refuses any other with protocol_version).
		if hdr[1] != 3 || hdr[2] != 3 {
			return n, w, localAlert(alertProtocolVersion)
		}
		// Section 5.2: over 2^14 + 256 bytes: record_overflow.
		if length > maxCiphertext13 {
			return n, w, localAlert(alertRecordOverflow)
		}
		// Section 5: after the handshake every record is protected, so its
		// outer type is application_data; a change_cipher_spec after the
		// peer's Finished, or any plaintext record, is an unexpected record.
		if hdr[0] != recApplicationData {
			return n, w, localAlert(alertUnexpectedMessage)
		}
		if len(b)-n < recordHeaderLen+length {
			break
		}
		typ, content, err := r.rd.openRecord(b[n : n+recordHeaderLen+length])
		if err != nil {
			return n, w, err
		}
		n += recordHeaderLen + length
		// Section 5.1: handshake messages are not interleaved with other
		// record types.
		if typ != recHandshake && (r.hsN > 0 || r.hsLeft > 0) {
			return n, w, localAlert(alertUnexpectedMessage)
		}
		switch typ {
		case recApplicationData:
			if len(content) == 0 {
				// Section 5.4 allows empty application data; a run of
				// them is bounded, as crypto/tls bounds it.
				if err := r.uselessRecord(); err != nil {
					return n, w, err
				}
				continue
			}
			r.useless = 0
			w += copy(b[w:], content)
		case recAlert:
			// Section 5.1: a record of type alert holds exactly one alert.
			if len(content) != 2 {
				return n, w, localAlert(alertUnexpectedMessage)
			}
			switch content[1] {
			case alertCloseNotify:
				return n, w, io.EOF // section 6.1: the peer closed its side
			case alertUserCanceled:
				// Section 6.1: a closure alert, not an error; crypto/tls
				// drops it (its close_notify is to follow).
				if err := r.uselessRecord(); err != nil {
					return n, w, err
				}
			default:
				// Section 6: every other alert, whatever its level, is an
				// error alert.
				return n, w, remoteAlert(content[1])
			}
		case recHandshake:
			// Section 5.1: no zero-length handshake fragments.
			if len(content) == 0 {
				return n, w, localAlert(alertUnexpectedMessage)
			}
			if err := r.postHandshake(content); err != nil {
				return n, w, err
			}
		default:
			// A protected change_cipher_spec (section 5) or an unknown
			// type.
			return n, w, localAlert(alertUnexpectedMessage)
		}
	}
	return n, w, nil
}

func (r *rec13) uselessRecord() error {
	r.useless++
	if r.useless > maxUselessRecords {
		return localAlert(alertUnexpectedMessage)
	}
	return nil
}

// postHandshake takes the content of a handshake record (section 4.6). A
// server accepts only KeyUpdate; the client role (tests) also skips
// NewSessionTicket. Messages may span records, but a KeyUpdate must end
// its record, as the key changes after it (section 5.1).
func (r *rec13) postHandshake(p []byte) error {
	for len(p) > 0 {
		if r.hsLeft > 0 { // the body of a ticket the client role skips
			k := min(r.hsLeft, len(p))
			r.hsLeft -= k
			p = p[k:]
			if r.hsLeft == 0 {
				r.hsN = 0
			}
			continue
		}
		if r.hsN < uint8(len(r.hs)) {
			first := r.hsN == 0
			k := copy(r.hs[r.hsN:], p)
			r.hsN += uint8(k)
			p = p[k:]
			if first && !(r.hs[0] == hsKeyUpdate || r.client && r.hs[0] == hsNewSessionTicket) {
				// Section 4.6: a server gets no NewSessionTicket, and it
				// asked for no post-handshake authentication.
				return localAlert(alertUnexpectedMessage)
			}
			if r.hsN < uint8(len(r.hs)) {
				continue
			}
			length := int(r.hs[1])<<16 | int(r.hs[2])<<8 | int(r.hs[3])
			if r.hs[0] == hsNewSessionTicket {
				if length == 0 {
					return localAlert(alertDecodeError)
				}
				r.hsLeft = length
				if err := r.uselessRecord(); err != nil {
					return err
				}
				continue
			}
			// Section 4.6.3: struct { KeyUpdateRequest request_update; }.
			if length != 1 {
				return localAlert(alertDecodeError)
			}
			if len(p) == 0 {
				return nil // the request byte comes in the next record
			}
		}
		req := p[0]
		p = p[1:]
		r.hsN = 0
		if req > 1 {
			// Section 4.6.3: any other value is illegal_parameter.
			return localAlert(alertIllegalParameter)
		}
		if len(p) > 0 {
			// Section 5.1: the key changes after a KeyUpdate, so it ends
			// its record.
			return localAlert(alertUnexpectedMessage)
		}
		if err := r.uselessRecord(); err != nil {
			return err
		}
		if req == 1 {
			// Section 4.6.3: update_requested: send a KeyUpdate of our own
			// before the next application data (sealed with the current
			// key, after which the write key moves on).
			r.wmu.Lock()
			r.kuOwed = true
			r.wmu.Unlock()
			r.asked = true
		}
		if err := r.update(&r.rd); err != nil {
			return localAlert(alertInternalError)
		}
	}
	return nil
}

// keyUpdateLen is the length of a record that carries a KeyUpdate.
const keyUpdateLen = recordOverhead + 5

// sealKeyUpdate seals a KeyUpdate(req) into rec (keyUpdateLen bytes) with
// the current write key, then moves the write key on (section 4.6.3).
// r.wmu is held.
func (r *rec13) sealKeyUpdate(rec []byte, req byte) (int, error) {
	m := rec[recordHeaderLen:]
	m[0], m[1], m[2], m[3], m[4] = hsKeyUpdate, 0, 0, 1, req
	n, err := r.wr.sealRecord(rec, 5, recHandshake)
	if err != nil {
		return 0, err
	}
	if err := r.update(&r.wr); err != nil {
		return 0, err
	}
	return n, nil
}

// sealBufs seals the plaintext of bufs, up to max bytes, into records of
// at most maxTLSPlaintext bytes in dst, after a KeyUpdate if one is owed or
// the key has protected rekeyAfter records. dst must have room for
// sealedLen(total). r.wmu is held. It returns the plaintext taken and the
// bytes of dst used.
func (r *rec13) sealBufs(dst []byte, bufs [][]byte, total int) (int, error) {
	off := 0
	if r.kuOwed || r.wr.seq >= rekeyAfter {
		k, err := r.sealKeyUpdate(dst, 0) // update_not_requested
		if err != nil {
			return 0, err
		}
		r.kuOwed = false
		off += k
	}
	bi, left := 0, total
	for left > 0 {
		n := min(left, maxTLSPlaintext)
		rec := dst[off:]
		m := 0
		for m < n {
			for len(bufs[bi]) == 0 {
				bi++
			}
			k := copy(rec[recordHeaderLen+m:recordHeaderLen+n], bufs[bi])
			bufs[bi] = bufs[bi][k:]
			m += k
		}
		k, err := r.wr.sealRecord(rec, n, recApplicationData)
		if err != nil {
			return 0, err
		}
		off += k
		left -= n
	}
	return off, nil
}

// sealedLen is the most room sealBufs needs for total bytes of plaintext.
func sealedLen(total int) int {
	return keyUpdateLen + total + (total+maxTLSPlaintext-1)/maxTLSPlaintext*recordOverhead
}

// sealAlert seals an alert record into rec (recordOverhead+2 bytes).
// r.wmu is held; after it nothing more is sealed.
func (r *rec13) sealAlert(rec []byte, desc uint8) (int, error) {
	if r.wrDone {
		return 0, nil
	}
	r.wrDone = true
	level := byte(alertLevelFatal)
	if desc == alertCloseNotify || desc == alertUserCanceled {
		level = alertLevelWarning // as crypto/tls sends closure alerts
	}
	rec[recordHeaderLen], rec[recordHeaderLen+1] = level, desc
	return r.wr.sealRecord(rec, 2, recAlert)
}

// --- the key log capture ---

// keyLogTap is a tlsLayer seen as the KeyLogWriter of its handshake.
type keyLogTap tlsLayer

// Write takes the traffic secrets of crypto/tls's key log lines ("LABEL
// <client random> <secret>", hex) and passes every line on to the user's
// KeyLogWriter, if any.
func (t *keyLogTap) Write(p []byte) (int, error) {
	r := t.r
	if r == nil {
		return len(p), nil
	}
	r.logLine(p)
	if r.next != nil {
		return r.next.Write(p)
	}
	return len(p), nil
}

// logLine keeps the application traffic secrets of one key log line.
func (r *rec13) logLine(p []byte) {
	f := bytes.Fields(p)
	if len(f) != 3 {
		return
	}
	var d *dir13
	var bit uint8
	switch string(f[0]) {
	case "CLIENT_TRAFFIC_SECRET_0":
		d, bit = &r.rd, 1
		if r.client {
			d = &r.wr
		}
	case "SERVER_TRAFFIC_SECRET_0":
		d, bit = &r.wr, 2
		if r.client {
			d = &r.rd
		}
	default:
		return
	}
	s := f[2]
	if len(s) != 2*sha256.Size && len(s) != 2*sha512.Size384 {
		return
	}
	if n, err := hex.Decode(d.secret[:], s); err != nil || (r.secretLen != 0 && int(r.secretLen) != n) {
		clear(d.secret[:])
		r.seen = 0
		return
	}
	r.secretLen = uint8(len(s) / 2)
	r.seen |= bit
}

// init prepares r for cs, the negotiated suite, once both secrets were
// seen; it reports false when the record layer cannot take this
// connection.
func (r *rec13) init(version, suite uint16) bool {
	if r.seen != 3 || version != tls.VersionTLS13 {
		return false
	}
	switch suite {
	case tls.TLS_AES_128_GCM_SHA256:
		r.keyLen = 16
		if r.secretLen != sha256.Size {
			return false
		}
	case tls.TLS_AES_256_GCM_SHA384:
		r.keyLen = 32
		if r.secretLen != sha512.Size384 {
			return false
		}
	default:
		return false // TLS_CHACHA20_POLY1305_SHA256: not in the standard library's API
	}
	return r.setKeys(&r.rd) == nil && r.setKeys(&r.wr) == nil
}

// trialSeq finds the write sequence number from the records crypto/tls
// wrote during the handshake (w, their bytes): those under the handshake
// key do not open with the application key, the ones after (session
// tickets) open at sequence numbers 0, 1, ... and must all be handshake
// messages. It reports false when w is not that.
func (r *rec13) trialSeq(w []byte) (uint64, bool) {
	var found uint64
	for len(w) > 0 {
		if len(w) < recordHeaderLen {
			return 0, false
		}
		n := recordHeaderLen + (int(w[3])<<8 | int(w[4]))
		if len(w) < n {
			return 0, false
		}
		rec := w[:n]
		w = w[n:]
		if rec[0] != recApplicationData {
			if found > 0 {
				return 0, false
			}
			continue
		}
		r.wr.seq = found
		typ, _, err := r.wr.openRecord(rec)
		if err != nil {
			if found > 0 {
				return 0, false
			}
			continue
		}
		if typ != recHandshake {
			return 0, false
		}
		found++
	}
	r.wr.seq = found
	return found, true
}

// --- the Config crypto/tls runs with ---

// tlsWrappers maps a user's Config (weakly) to the Config given to
// tls.Server: a clone whose GetConfigForClient gives each handshake its own
// clone with the key log capture. Session tickets are encrypted with the
// wrapper's keys (crypto/tls uses the Config passed to tls.Server for
// them), so there is one wrapper per user Config, shared by its
// connections.
var tlsWrappers sync.Map // weak.Pointer[tls.Config] -> *tls.Config

func serverConfig(user *tls.Config) *tls.Config {
	k := weak.Make(user)
	if v, ok := tlsWrappers.Load(k); ok {
		return v.(*tls.Config)
	}
	w := user.Clone()
	w.GetConfigForClient = configForClient
	v, loaded := tlsWrappers.LoadOrStore(k, w)
	if !loaded {
		runtime.AddCleanup(user, func(k weak.Pointer[tls.Config]) { tlsWrappers.Delete(k) }, k)
	}
	return v.(*tls.Config)
}

// configForClient gives a handshake a clone of the user's Config (or of
// what the user's GetConfigForClient returns) whose KeyLogWriter is the
// connection's layer.
func configForClient(chi *tls.ClientHelloInfo) (*tls.Config, error) {
	l, ok := chi.Conn.(*tlsLayer)
	if !ok {
		return nil, nil
	}
	base := l.cfg
	if base.GetConfigForClient != nil {
		cfg, err := base.GetConfigForClient(chi)
		if err != nil {
			return nil, err
		}
		if cfg != nil {
			base = cfg
		}
	}
	cfg := base.Clone()
	cfg.GetConfigForClient = nil
	l.r = &rec13{next: base.KeyLogWriter}
	cfg.KeyLogWriter = (*keyLogTap)(l)
	return cfg, nil
}

// --- the layer's side ---

// takeover decides, once crypto/tls's handshake succeeded, whether the
// record layer takes the connection; if so crypto/tls's state is dropped.
// Only the handshake goroutine calls it, before the state changes.
func (l *tlsLayer) takeover() bool {
	r, w := l.r, l.hsw
	l.r, l.hsw = nil, nil
	if r == nil {
		return false
	}
	r.next = nil
	st := l.tc.ConnectionState()
	ok := l.rdf.hdrN == 0 && r.init(st.Version, st.CipherSuite)
	if ok {
		_, ok = r.trialSeq(w)
	}
	clear(w)
	if !ok {
		r.wipe()
		return false
	}
	l.r, l.tc = r, nil
	return true
}

// decrypt13 reads the records of a connection the record layer took: in
// (the transport's bytes, valid during the call) in place, then whatever
// arrived meanwhile; a partial record waits in l.raw. The caller set
// l.busy, and l.raw holds nothing older than in; decrypt13 clears busy.
func (l *tlsLayer) decrypt13(in []byte) {
	c, r := l.c, l.r
	var cur *buffer // the bytes being read: cur.b[:curN]
	curN := 0
	var err error
	ask := false // a KeyUpdate asked for ours
	for {
		var b []byte
		fromIn := in != nil
		if fromIn {
			b, in = in, nil
		} else {
			l.mu.Lock()
			if l.n == l.off {
				putBuffer(l.raw)
				l.raw, l.off, l.n = nil, 0, 0
				if curN > 0 {
					l.raw, l.n = cur, curN // a partial record, for the next input
				} else {
					putBuffer(cur)
				}
				l.busy = false
				l.mu.Unlock()
				break
			}
			if curN == 0 {
				putBuffer(cur)
				cur, curN = l.raw, copy(l.raw.b, l.raw.b[l.off:l.n])
			} else {
				cur = appendBuffer(cur, curN, l.raw.b[l.off:l.n])
				curN += l.n - l.off
				putBuffer(l.raw)
			}
			l.raw, l.off, l.n = nil, 0, 0
			l.mu.Unlock()
			b = cur.b[:curN]
		}
		n, w, e := r.readRecords(b)
		if r.asked { // read-side state: look while busy is held
			r.asked = false
			ask = true
		}
		if w > 0 {
			c.deliver(b[:w])
		}
		if e != nil {
			err = e
			break
		}
		rest := b[n:]
		switch {
		case !fromIn:
			curN = copy(cur.b, rest)
		case len(rest) > 0:
			// Room for the whole record, so that the rest of it is
			// appended without a move.
			need := len(rest)
			if len(rest) >= recordHeaderLen {
				need = max(need, recordHeaderLen+(int(rest[3])<<8|int(rest[4])))
			}
			cur = getBuffer(need)
			curN = copy(cur.b, rest)
		}
	}
	if err != nil {
		putBuffer(cur)
		// A close_notify (io.EOF) or a bad record, for which an alert is
		// queued: it is written if the socket takes it at once, and the
		// connection closes, as a TCP reset or EOF closes it.
		if a, ok := alertToSend(err); ok {
			l.sendAlert13(a)
		}
		c.tlsInputEnded(err)
		l.mu.Lock()
		l.shut = true // nothing after a close_notify or an error is read
		putBuffer(l.raw)
		l.raw, l.off, l.n = nil, 0, 0
		l.busy = false
		l.mu.Unlock()
	}
	if ask {
		l.answerKeyUpdate()
	}
	c.Flush()
	c.tlsIdle()
}

// appendOut queues sealed records; r.wmu is held, so that records are
// queued in the order of their sequence numbers.
func (l *tlsLayer) appendOut(p []byte) error {
	c := l.c
	c.mu.Lock()
	if c.has(fClosed) {
		c.mu.Unlock()
		return net.ErrClosed
	}
	_ = l.out.Append(p, nil, true)
	c.mu.Unlock()
	return nil
}

// seal13 seals up to sealMax bytes of bufs into the output queue and
// returns how many it took (see seal).
func (l *tlsLayer) seal13(bufs [][]byte) (int, error) {
	r := l.r
	total := 0
	for _, b := range bufs {
		total += len(b)
		if total >= sealMax {
			total = sealMax
			break
		}
	}
	pb := getBuffer(sealedLen(total))
	r.wmu.Lock()
	var n int
	err := net.ErrClosed
	if !r.wrDone {
		n, err = r.sealBufs(pb.b, bufs, total)
	}
	if err == nil {
		err = l.appendOut(pb.b[:n])
	}
	r.wmu.Unlock()
	putBuffer(pb)
	if err != nil {
		return 0, err
	}
	return total, nil
}

// answerKeyUpdate queues the KeyUpdate owed to the peer (section 4.6.3)
// when no application data took it along.
func (l *tlsLayer) answerKeyUpdate() {
	r := l.r
	r.wmu.Lock()
	if r.kuOwed && !r.wrDone {
		rec := make([]byte, keyUpdateLen) // rare: not on the per-message path
		if n, err := r.sealKeyUpdate(rec, 0); err == nil {
			r.kuOwed = false
			_ = l.appendOut(rec[:n])
		}
	}
	r.wmu.Unlock()
}

// sendAlert13 queues an alert (close_notify, or the error alert before
// closing), the last record sent.
func (l *tlsLayer) sendAlert13(desc uint8) {
	r := l.r
	rec := make([]byte, recordOverhead+2)
	r.wmu.Lock()
	if n, err := r.sealAlert(rec, desc); err == nil && n > 0 {
		_ = l.appendOut(rec[:n])
	}
	r.wmu.Unlock()
}

// --- releasing the AEAD states of idle connections ---

// aeadIdle is the idle sweep's period: a connection whose read (write)
// side went a whole period without a record gives up its AEAD state
// (about 1.5 KB each way with AES-GCM), kept as its 16- or 32-byte key
// and rebuilt by the next record. A connection busier than that never
// rebuilds; one that only exchanges a heartbeat every few seconds rebuilds
// once per heartbeat.
const aeadIdle = 2 * time.Second

// idleSweep lists the connections the record layer took; a timer (no
// goroutine while it waits) sweeps them every aeadIdle while any is
// listed.
var idleSweep struct {
	mu    sync.Mutex
	head  *tlsLayer
	timer *time.Timer
}

func (l *tlsLayer) listIdle() {
	s := &idleSweep
	s.mu.Lock()
	r := l.r
	r.listed, r.prev, r.nextL = true, nil, s.head
	if s.head != nil {
		s.head.r.prev = l
	}
	s.head = l
	if s.timer == nil {
		s.timer = time.AfterFunc(aeadIdle, sweepIdle)
	}
	s.mu.Unlock()
}

func (l *tlsLayer) unlistIdle() {
	s := &idleSweep
	s.mu.Lock()
	r := l.r
	if r.listed {
		if r.prev != nil {
			r.prev.r.nextL = r.nextL
		} else {
			s.head = r.nextL
		}
		if r.nextL != nil {
			r.nextL.r.prev = r.prev
		}
		r.listed, r.prev, r.nextL = false, nil, nil
	}
	s.mu.Unlock()
}

func sweepIdle() {
	s := &idleSweep
	s.mu.Lock()
	for l := s.head; l != nil; l = l.r.nextL {
		l.sweep()
	}
	if s.head != nil {
		s.timer.Reset(aeadIdle)
	} else {
		s.timer = nil
	}
	s.mu.Unlock()
}

// sweep releases the AEAD state of a side unused since the last sweep. The
// read side belongs to the goroutine holding l.busy, the write side to
// r.wmu's holder: a side in use is skipped.
func (l *tlsLayer) sweep() {
	r := l.r
	l.mu.Lock()
	if !l.busy {
		if r.rd.used {
			r.rd.used = false
		} else {
			r.rd.aead = nil
		}
	}
	l.mu.Unlock()
	if r.wmu.TryLock() {
		if r.wr.used {
			r.wr.used = false
		} else {
			r.wr.aead = nil
		}
		r.wmu.Unlock()
	}
}
