//go:build linux

package poller

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/internal/testcert"
)

// tookOver reports whether the record layer serves c (the TLS 1.3
// takeover) rather than crypto/tls.
func tookOver(c *Conn) bool {
	c.tls.mu.Lock()
	defer c.tls.mu.Unlock()
	return c.tls.state == tlsOpen13 && c.tls.tc == nil && c.tls.r != nil
}

// openConns is a testHandler that echoes and sends each opened Conn to
// the returned channel.
func openConns(t *testing.T) (*testHandler, chan *Conn) {
	conns := make(chan *Conn, 16)
	h := &testHandler{tb: t, data: echo, closes: make(chan closeEvent, 16)}
	h.open = func(c *Conn) {
		select {
		case conns <- c:
		default: // a test that does not look at its Conns
		}
	}
	return h, conns
}

// echoRound writes msg in pieces of at most piece bytes and reads the echo.
func echoRound(t *testing.T, c net.Conn, msg []byte, piece int) {
	t.Helper()
	c.SetDeadline(time.Now().Add(waitLimit))
	errc := make(chan error, 1)
	go func() {
		for off := 0; off < len(msg); off += piece {
			if _, err := c.Write(msg[off:min(len(msg), off+piece)]); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("%d bytes: %v", len(msg), err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("%d bytes: echo differs", len(msg))
	}
}

// TestTLS13Takeover: a TLS 1.3 connection (AES-128-GCM, as Go clients
// choose) is served by the record layer after crypto/tls's handshake:
// messages of every size, as one write and as many small ones, then
// close_notify both ways.
func TestTLS13Takeover(t *testing.T) {
	checkLeaks(t)
	h, conns := openConns(t)
	p := startNetpollTLS(t, h, Options{})
	for _, peerCloses := range []bool{true, false} {
		c := dialTLS(t, p.Addr().String())
		sc := recvConn(t, conns)
		if cs := c.(*tls.Conn).ConnectionState(); cs.Version != tls.VersionTLS13 || cs.CipherSuite != tls.TLS_AES_128_GCM_SHA256 {
			t.Fatalf("negotiated %x %x", cs.Version, cs.CipherSuite)
		}
		for i, size := range []int{1, 125, 16<<10 - 1, 16 << 10, 16<<10 + 1, 100 << 10, 1 << 20} {
			echoRound(t, c, pattern(size, i), size)
		}
		echoRound(t, c, pattern(3000, 9), 1) // one byte per record
		echoRound(t, c, pattern(200<<10, 7), 7000)
		if !tookOver(sc) {
			t.Fatal("the record layer did not take the connection")
		}
		if peerCloses {
			// The client's close_notify: OnClose(io.EOF).
			c.Close()
			ev := recvClose(t, h.closes)
			if !errors.Is(ev.err, io.EOF) {
				t.Fatalf("OnClose(%v), want io.EOF", ev.err)
			}
			continue
		}
		// Ours: CloseAfterFlush sends close_notify, the client reads EOF.
		if err := sc.Write([]byte("bye"), nil, false); err != nil {
			t.Fatal(err)
		}
		sc.CloseAfterFlush(0)
		b, err := io.ReadAll(c)
		if err != nil || string(b) != "bye" {
			t.Fatalf("read %q, %v; want bye then EOF (close_notify)", b, err)
		}
		c.Close()
		if ev := recvClose(t, h.closes); ev.err != nil {
			t.Fatalf("OnClose(%v), want nil", ev.err)
		}
	}
	waitFor(t, "connections gone", func() bool { return p.Len() == 0 })
}

// TestTLS13Fallback: TLS 1.2 stays with crypto/tls (and works).
func TestTLS13Fallback(t *testing.T) {
	checkLeaks(t)
	h, conns := openConns(t)
	p := startNetpollTLS(t, h, Options{})
	cfg := clientTLS(t).Clone()
	cfg.MaxVersion = tls.VersionTLS12
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: waitLimit}, "tcp", p.Addr().String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc := recvConn(t, conns)
	echoRound(t, c, pattern(40<<10, 1), 40<<10)
	if tookOver(sc) || sc.tls.tc == nil {
		t.Fatal("TLS 1.2 was taken over")
	}
}

// TestTLS13Resumption: a second connection resumes with the ticket of the
// first (sent by crypto/tls under the application key, before the
// takeover) and is taken over too.
func TestTLS13Resumption(t *testing.T) {
	checkLeaks(t)
	h, conns := openConns(t)
	p := startNetpollTLS(t, h, Options{})
	cfg := clientTLS(t).Clone()
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	for i := 0; i < 2; i++ {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: waitLimit}, "tcp", p.Addr().String(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		sc := recvConn(t, conns)
		echoRound(t, c, pattern(300, i), 300) // the client reads the ticket here
		if resumed := c.ConnectionState().DidResume; resumed != (i == 1) {
			t.Fatalf("connection %d: resumed %v", i, resumed)
		}
		if !tookOver(sc) {
			t.Fatalf("connection %d not taken over", i)
		}
		c.Close()
	}
}

// TestTLS13ClientCert: with client certificates required, crypto/tls sends
// its ticket after the client's certificate; the takeover still finds the
// write sequence number.
func TestTLS13ClientCert(t *testing.T) {
	checkLeaks(t)
	h, conns := openConns(t)
	scfg := serverTLS(t).Clone()
	scfg.ClientAuth = tls.RequireAnyClientCert
	p := startNetpoll(t, h, Options{TLS: scfg})
	cfg := clientTLS(t).Clone()
	cfg.Certificates = testcert.New(t).ServerConfig().Certificates // presented as a client certificate: RequireAnyClientCert does not verify it
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: waitLimit}, "tcp", p.Addr().String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc := recvConn(t, conns)
	for i := 0; i < 3; i++ {
		echoRound(t, c, pattern(20<<10, i), 5000)
	}
	if !tookOver(sc) {
		t.Fatal("not taken over")
	}
	r := sc.tls.r
	r.wmu.Lock()
	seq := r.wr.seq
	r.wmu.Unlock()
	if seq < 2 {
		t.Fatalf("write sequence number %d after a ticket and data", seq)
	}
}

// TestTLS13HelloRetry: a handshake with a HelloRetryRequest (the client's
// key share is not for the server's group) reads two ClientHellos through
// the record-bounded transport and is taken over.
func TestTLS13HelloRetry(t *testing.T) {
	checkLeaks(t)
	h, conns := openConns(t)
	scfg := serverTLS(t).Clone()
	scfg.CurvePreferences = []tls.CurveID{tls.CurveP256}
	p := startNetpoll(t, h, Options{TLS: scfg})
	cfg := clientTLS(t).Clone()
	cfg.CurvePreferences = []tls.CurveID{tls.X25519, tls.CurveP256}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: waitLimit}, "tcp", p.Addr().String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc := recvConn(t, conns)
	echoRound(t, c, pattern(5000, 1), 5000)
	if cs := c.ConnectionState(); cs.CurveID != tls.CurveP256 || !tookOver(sc) {
		t.Fatalf("group %v, taken over %v", cs.CurveID, tookOver(sc))
	}
}

// TestTLS13KeyLogChained: a user's KeyLogWriter still gets crypto/tls's
// lines, and a user's GetConfigForClient is still consulted.
func TestTLS13KeyLogChained(t *testing.T) {
	checkLeaks(t)
	h, conns := openConns(t)
	var log bytes.Buffer
	called := 0
	scfg := serverTLS(t).Clone()
	var addr net.Addr
	scfg.GetConfigForClient = func(chi *tls.ClientHelloInfo) (*tls.Config, error) {
		called++
		addr = chi.Conn.RemoteAddr()
		cfg := serverTLS(t).Clone()
		cfg.KeyLogWriter = &log
		return cfg, nil
	}
	p := startNetpoll(t, h, Options{TLS: scfg})
	c := dialTLS(t, p.Addr().String())
	defer c.Close()
	sc := recvConn(t, conns)
	echoRound(t, c, pattern(100, 1), 100)
	if !tookOver(sc) {
		t.Fatal("not taken over")
	}
	if called != 1 || !strings.Contains(log.String(), "CLIENT_TRAFFIC_SECRET_0 ") || !strings.Contains(log.String(), "SERVER_TRAFFIC_SECRET_0 ") {
		t.Fatalf("GetConfigForClient called %d times; key log %q", called, log.String())
	}
	// The hooks see the peer's address as a *net.TCPAddr, as on a net.Conn.
	if ta, ok := addr.(*net.TCPAddr); !ok || ta.String() != c.LocalAddr().String() {
		t.Fatalf("ClientHelloInfo.Conn.RemoteAddr() = %#v, want the client's %v", addr, c.LocalAddr())
	}
}

// --- a client speaking through the record layer (client role) ---

// boundedConn hands crypto/tls no bytes past the record it reads, so that
// after the client's handshake the server's tickets are still unread.
type boundedConn struct {
	net.Conn
	f framing

	hold   bool   // keep writes after the first (the client's Finished) in held
	writes int    //
	held   []byte //
}

func (b *boundedConn) Write(p []byte) (int, error) {
	b.writes++
	if b.hold && b.writes > 1 {
		b.held = append(b.held, p...)
		return len(p), nil
	}
	return b.Conn.Write(p)
}

func (b *boundedConn) Read(p []byte) (int, error) {
	p = p[:min(len(p), b.f.limit())]
	n, err := b.Conn.Read(p)
	for k := 0; k < n; {
		m, _ := b.f.advance(p[k:n])
		k += m
	}
	return n, err
}

type recLog struct{ r *rec13 }

func (w recLog) Write(p []byte) (int, error) { w.r.logLine(p); return len(p), nil }

// peer13 is a TLS 1.3 client: crypto/tls's handshake, then rec13 in the
// client role over the raw socket, so that a test can send any record.
type peer13 struct {
	t    *testing.T
	raw  net.Conn
	r    *rec13
	in   []byte
	err  error // what the server's records ended with
	data []byte
}

func dialPeer13(t *testing.T, addr string) *peer13 {
	return dialPeer13Held(t, addr, nil)
}

// dialPeer13Held is dialPeer13 that, with held set, does not send the
// client's second flight (its Finished) but stores it in *held.
func dialPeer13Held(t *testing.T, addr string, held *[]byte) *peer13 {
	raw := dialTCP(t, addr)
	r := &rec13{client: true}
	cfg := clientTLS(t).Clone()
	cfg.MinVersion = tls.VersionTLS13
	cfg.KeyLogWriter = recLog{r}
	bc := &boundedConn{Conn: raw, hold: held != nil}
	defer func() {
		if held != nil {
			*held = bc.held
		}
	}()
	tc := tls.Client(bc, cfg)
	raw.SetDeadline(time.Now().Add(waitLimit))
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	cs := tc.ConnectionState()
	if !r.init(cs.Version, cs.CipherSuite) {
		t.Fatal("client record layer refused the connection")
	}
	t.Cleanup(func() { raw.Close() })
	return &peer13{t: t, raw: raw, r: r}
}

// sendInner seals inner (content, type and padding) as one record.
func (p *peer13) sendInner(inner []byte) {
	p.t.Helper()
	rec := make([]byte, recordHeaderLen+len(inner)+aeadTagLen)
	copy(rec[recordHeaderLen:], inner)
	n := len(inner) + aeadTagLen
	rec[0], rec[1], rec[2], rec[3], rec[4] = recApplicationData, 3, 3, byte(n>>8), byte(n)
	d := &p.r.wr
	d.aead.Seal(rec[recordHeaderLen:recordHeaderLen], d.nonceFor(), rec[recordHeaderLen:recordHeaderLen+len(inner)], rec[:recordHeaderLen])
	d.seq++
	p.write(rec)
}

func (p *peer13) write(b []byte) {
	p.t.Helper()
	if _, err := p.raw.Write(b); err != nil {
		p.t.Fatal(err)
	}
}

func (p *peer13) send(msg []byte) {
	p.sendInner(append(append([]byte{}, msg...), recApplicationData))
}

// keyUpdate sends a KeyUpdate and moves the client's write key on.
func (p *peer13) keyUpdate(requested bool) {
	var req byte
	if requested {
		req = 1
	}
	p.sendInner([]byte{hsKeyUpdate, 0, 0, 1, req, recHandshake})
	if err := p.r.update(&p.r.wr); err != nil {
		p.t.Fatal(err)
	}
}

// recv reads until n bytes of application data arrived, or the server's
// records end (p.err).
func (p *peer13) recv(n int) []byte {
	p.t.Helper()
	buf := make([]byte, 64<<10)
	for len(p.data) < n && p.err == nil {
		k, w, err := p.r.readRecords(p.in)
		p.data = append(p.data, p.in[:w]...)
		p.in = append(p.in[:0], p.in[k:]...)
		if err != nil {
			p.err = err
			break
		}
		if len(p.data) >= n {
			break
		}
		m, rerr := p.raw.Read(buf)
		p.in = append(p.in, buf[:m]...)
		if rerr != nil {
			p.err = rerr
		}
	}
	got := p.data[:min(n, len(p.data))]
	p.data = p.data[len(got):]
	return got
}

// TestTLS13DataWithFinished: application data that arrives in the same
// read as the client's Finished (here in one TCP write) is the record
// layer's, at sequence number 0: crypto/tls was given no byte of it.
func TestTLS13DataWithFinished(t *testing.T) {
	checkLeaks(t)
	h, conns := openConns(t)
	p := startNetpollTLS(t, h, Options{})
	var finished []byte
	c := dialPeer13Held(t, p.Addr().String(), &finished)
	if len(finished) == 0 {
		t.Fatal("no client Finished held")
	}
	raw := c.raw
	var sent bytes.Buffer
	c.raw = writerConn{raw, &sent}
	c.send([]byte("first words"))
	c.send(pattern(16<<10, 1)) // a full record
	c.raw = raw
	c.write(append(finished, sent.Bytes()...))
	sc := recvConn(t, conns)
	want := append([]byte("first words"), pattern(16<<10, 1)...)
	if got := c.recv(len(want)); !bytes.Equal(got, want) {
		t.Fatalf("echo of %d bytes, %v", len(got), c.err)
	}
	if !tookOver(sc) {
		t.Fatal("not taken over")
	}
}

// writerConn is a net.Conn whose writes go to w.
type writerConn struct {
	net.Conn
	w io.Writer
}

func (c writerConn) Write(p []byte) (int, error) { return c.w.Write(p) }

// TestTLS13KeyUpdate: KeyUpdates from the client, with and without
// update_requested, in one record with data after it and alone; data keeps
// flowing both ways, and the server answers a request with a KeyUpdate of
// its own (which the client must process to read what follows).
func TestTLS13KeyUpdate(t *testing.T) {
	checkLeaks(t)
	h, conns := openConns(t)
	p := startNetpollTLS(t, h, Options{})
	c := dialPeer13(t, p.Addr().String())
	sc := recvConn(t, conns)
	c.send([]byte("before"))
	if got := c.recv(6); string(got) != "before" {
		t.Fatalf("echo %q, %v", got, c.err)
	}
	rd0 := c.r.rd.secret
	for i, requested := range []bool{true, false, true, true} {
		c.keyUpdate(requested)
		msg := pattern(20000, i)
		c.send(msg[:16000])
		c.send(msg[16000:])
		if got := c.recv(len(msg)); !bytes.Equal(got, msg) {
			t.Fatalf("round %d: echo of %d bytes, %v", i, len(got), c.err)
		}
	}
	if c.r.rd.secret == rd0 {
		t.Fatal("the server never answered update_requested")
	}
	if !tookOver(sc) {
		t.Fatal("not taken over")
	}
	// A KeyUpdate split over two records is fine too.
	c.sendInner([]byte{hsKeyUpdate, 0, recHandshake})
	c.sendInner([]byte{0, 1, 1, recHandshake})
	if err := c.r.update(&c.r.wr); err != nil {
		t.Fatal(err)
	}
	c.send([]byte("after"))
	if got := c.recv(5); string(got) != "after" {
		t.Fatalf("echo %q, %v", got, c.err)
	}
}

// TestTLS13BadRecords: each violation of RFC 8446 section 5 closes the
// connection with the alert it calls for, sent encrypted, and OnClose gets
// that alert.
func TestTLS13BadRecords(t *testing.T) {
	checkLeaks(t)
	h, _ := openConns(t)
	p := startNetpollTLS(t, h, Options{})
	ad := func(b ...byte) []byte { return append([]byte{recApplicationData, 3, 3}, b...) }
	for _, tc := range []struct {
		name  string
		send  func(c *peer13)
		alert uint8
	}{
		{"tampered", func(c *peer13) {
			c.send([]byte("ok"))
			rec := make([]byte, 64)
			copy(rec, ad(0, 59))
			c.write(rec)
		}, alertBadRecordMAC},
		{"too short for the tag", func(c *peer13) { c.write(ad(0, 3, 1, 2, 3)) }, alertBadRecordMAC},
		{"oversized", func(c *peer13) { c.write(ad(0x41, 0x01)) }, alertRecordOverflow},
		{"plaintext inner over 2^14", func(c *peer13) {
			c.sendInner(append(bytes.Repeat([]byte{1}, 1<<14+1), recApplicationData))
		}, alertRecordOverflow},
		{"all zeros", func(c *peer13) { c.sendInner(make([]byte, 10)) }, alertUnexpectedMessage},
		{"plaintext handshake record", func(c *peer13) { c.write([]byte{recHandshake, 3, 3, 0, 1, 1}) }, alertUnexpectedMessage},
		{"change_cipher_spec", func(c *peer13) { c.write([]byte{recChangeCipherSpec, 3, 3, 0, 1, 1}) }, alertUnexpectedMessage},
		{"protected change_cipher_spec", func(c *peer13) { c.sendInner([]byte{1, recChangeCipherSpec}) }, alertUnexpectedMessage},
		{"unknown inner type", func(c *peer13) { c.sendInner([]byte{1, 2, 3, 99}) }, alertUnexpectedMessage},
		{"bad version", func(c *peer13) { c.write([]byte{recApplicationData, 3, 1, 0, 20}) }, alertProtocolVersion},
		{"ticket from a client", func(c *peer13) { c.sendInner([]byte{hsNewSessionTicket, 0, 0, 1, 0, recHandshake}) }, alertUnexpectedMessage},
		{"other handshake message", func(c *peer13) { c.sendInner([]byte{20, 0, 0, 1, 0, recHandshake}) }, alertUnexpectedMessage},
		{"empty handshake record", func(c *peer13) { c.sendInner([]byte{recHandshake}) }, alertUnexpectedMessage},
		{"KeyUpdate of bad length", func(c *peer13) { c.sendInner([]byte{hsKeyUpdate, 0, 0, 2, 0, 0, recHandshake}) }, alertDecodeError},
		{"KeyUpdate bad request", func(c *peer13) { c.sendInner([]byte{hsKeyUpdate, 0, 0, 1, 2, recHandshake}) }, alertIllegalParameter},
		{"KeyUpdate not ending its record", func(c *peer13) {
			c.sendInner([]byte{hsKeyUpdate, 0, 0, 1, 0, hsKeyUpdate, recHandshake})
		}, alertUnexpectedMessage},
		{"data inside a handshake message", func(c *peer13) {
			c.sendInner([]byte{hsKeyUpdate, 0, recHandshake})
			c.send([]byte("x"))
		}, alertUnexpectedMessage},
		{"two alerts in a record", func(c *peer13) { c.sendInner([]byte{1, 0, 1, 0, recAlert}) }, alertUnexpectedMessage},
		{"too many empty records", func(c *peer13) {
			for i := 0; i <= maxUselessRecords; i++ {
				c.sendInner([]byte{recApplicationData})
			}
		}, alertUnexpectedMessage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialPeer13(t, p.Addr().String())
			tc.send(c)
			c.recv(1 << 30)
			var a tls.AlertError
			if !errors.As(c.err, &a) || uint8(a) != tc.alert || !strings.Contains(c.err.Error(), "remote error") {
				t.Fatalf("client got %v, want the alert %v", c.err, tls.AlertError(tc.alert))
			}
			ev := recvClose(t, h.closes)
			if !errors.As(ev.err, &a) || uint8(a) != tc.alert {
				t.Fatalf("OnClose(%v), want %v", ev.err, tls.AlertError(tc.alert))
			}
		})
	}
	// A peer's error alert closes with that alert (and no answer).
	c := dialPeer13(t, p.Addr().String())
	c.sendInner([]byte{alertLevelFatal, alertInternalError, recAlert})
	ev := recvClose(t, h.closes)
	var a tls.AlertError
	if !errors.As(ev.err, &a) || uint8(a) != alertInternalError || !strings.Contains(ev.err.Error(), "remote error") {
		t.Fatalf("OnClose(%v), want the peer's internal_error", ev.err)
	}
	// user_canceled is dropped; padding is stripped; empty records are fine.
	c = dialPeer13(t, p.Addr().String())
	c.sendInner([]byte{alertLevelWarning, alertUserCanceled, recAlert})
	c.sendInner([]byte{recApplicationData})
	c.sendInner([]byte{'p', 'a', 'd', recApplicationData, 0, 0, 0, 0, 0})
	if got := c.recv(3); string(got) != "pad" {
		t.Fatalf("echo %q, %v", got, c.err)
	}
	waitFor(t, "connections gone", func() bool { return p.Len() == 1 })
}

// TestTLS13SeqExhausted: the write side closes rather than let its
// sequence number wrap (RFC 8446 section 5.3), and updates its key after
// rekeyAfter records (section 5.5).
func TestTLS13SeqLimits(t *testing.T) {
	checkLeaks(t)
	h, conns := openConns(t)
	p := startNetpollTLS(t, h, Options{})
	c := dialPeer13(t, p.Addr().String())
	sc := recvConn(t, conns)
	c.send([]byte("a"))
	c.recv(1)
	r := sc.tls.r
	r.wmu.Lock()
	r.wr.seq = rekeyAfter
	r.wmu.Unlock()
	c.r.rd.seq = rekeyAfter // as if the client had read that many records
	rd0 := c.r.rd.secret
	c.send([]byte("b"))
	if got := c.recv(1); string(got) != "b" || c.r.rd.secret == rd0 {
		t.Fatalf("echo %q (%v); key updated: %v", got, c.err, c.r.rd.secret != rd0)
	}
	r.wmu.Lock()
	r.wr.seq = ^uint64(0)
	r.wmu.Unlock()
	c.send([]byte("c"))
	ev := recvClose(t, h.closes)
	if !errors.Is(ev.err, errSeqExhausted) {
		t.Fatalf("OnClose(%v), want errSeqExhausted", ev.err)
	}
}

// TestTLS13IdleRelease: an idle connection gives up its AEAD states (the
// idle sweep) and rebuilds them for the next record, both ways.
func TestTLS13IdleRelease(t *testing.T) {
	checkLeaks(t)
	h, conns := openConns(t)
	p := startNetpollTLS(t, h, Options{})
	c := dialTLS(t, p.Addr().String())
	defer c.Close()
	sc := recvConn(t, conns)
	echoRound(t, c, pattern(100, 1), 100)
	l := sc.tls
	released := func() bool {
		l.mu.Lock()
		rd := !l.busy && l.r.rd.aead == nil
		l.mu.Unlock()
		l.r.wmu.Lock()
		wr := l.r.wr.aead == nil
		l.r.wmu.Unlock()
		return rd && wr
	}
	waitFor(t, "the AEAD states released", released)
	for i := 0; i < 3; i++ {
		echoRound(t, c, pattern(20<<10, i), 20<<10)
	}
}

// --- openssl s_client: AES-256-GCM and its KeyUpdate commands ---

// opensslClient starts openssl s_client; its stderr lines come on the
// returned channel.
func opensslClient(t *testing.T, addr string, args ...string) (io.WriteCloser, *bufio.Reader, *exec.Cmd, chan string) {
	path, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("NC_INTEROP_REQUIRED") != "" {
			t.Fatal("openssl not found")
		}
		t.Skip("openssl not found")
	}
	args = append([]string{"s_client", "-connect", addr, "-tls1_3", "-quiet", "-no_ign_eof"}, args...)
	cmd := exec.Command(path, args...)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	errLines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			select {
			case errLines <- sc.Text():
			default:
			}
		}
	}()
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(waitLimit):
			cmd.Process.Kill()
			<-done
		}
	})
	return stdin, bufio.NewReader(stdout), cmd, errLines
}

// TestTLS13OpenSSL: openssl s_client with each TLS 1.3 suite (a Go client
// cannot choose them), and its KeyUpdate commands ("K": update requested,
// "k": not): the AES-GCM suites are taken over, ChaCha20-Poly1305 stays
// with crypto/tls; data flows both ways across the key updates.
func TestTLS13OpenSSL(t *testing.T) {
	checkLeaks(t)
	for _, tc := range []struct {
		suite  string
		keyLen uint8 // 0: not taken over
	}{
		{"TLS_AES_256_GCM_SHA384", 32},
		{"TLS_AES_128_GCM_SHA256", 16},
		{"TLS_CHACHA20_POLY1305_SHA256", 0},
	} {
		t.Run(tc.suite, func(t *testing.T) {
			h, conns := openConns(t)
			p := startNetpollTLS(t, h, Options{})
			msgs := t.TempDir() + "/msgs"
			stdin, out, cmd, errLines := opensslClient(t, p.Addr().String(), "-ciphersuites", tc.suite, "-msgfile", msgs, "-msg")
			sc := recvConn(t, conns)
			type line struct {
				s   string
				err error
			}
			lines := make(chan line, 1)
			readLine := func() string {
				go func() { s, err := out.ReadString('\n'); lines <- line{s, err} }()
				select {
				case l := <-lines:
					if l.err != nil {
						t.Fatalf("openssl: %v", l.err)
					}
					return l.s
				case <-time.After(waitLimit):
					b, _ := os.ReadFile(msgs)
					t.Fatalf("no echo from openssl; its trace:\n%s", b)
				}
				return ""
			}
			for i, in := range []string{"first", "K", "after-requested", "k", "after-not-requested", "K", strings.Repeat("x", 3000)} {
				if _, err := io.WriteString(stdin, in+"\n"); err != nil {
					t.Fatal(err)
				}
				if in == "K" || in == "k" {
					// A command, not data. s_client drops the rest of what it
					// read from stdin with it: wait until it has done it.
					for l := ""; l != "KEYUPDATE"; {
						select {
						case l = <-errLines:
						case <-time.After(waitLimit):
							t.Fatal("openssl did not do the KeyUpdate command")
						}
					}
					continue
				}
				if got := readLine(); got != in+"\n" {
					t.Fatalf("line %d: echo %q", i, got)
				}
			}
			if took := tookOver(sc); took != (tc.keyLen != 0) || took && sc.tls.r.keyLen != tc.keyLen {
				t.Fatalf("taken over: %v", took)
			}
			stdin.Close()
			ev := recvClose(t, h.closes)
			if ev.err != nil && !errors.Is(ev.err, io.EOF) {
				t.Fatalf("OnClose(%v)", ev.err)
			}
			cmd.Wait() // the trace is complete
			b, _ := os.ReadFile(msgs)
			if n := strings.Count(string(b), "KeyUpdate"); n < 3+2 {
				t.Fatalf("%d KeyUpdate messages in openssl's trace, want 3 sent and 2 answers:\n%s", n, b)
			}
		})
	}
}
