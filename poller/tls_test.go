//go:build linux

package poller

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

// TestTLSIdleGoroutines: TLS connections on the event loop hold no
// goroutine once their handshake is done: the goroutine count with 300
// open (and used) connections is that with 30, give or take the pool's
// transient workers.
func TestTLSIdleGoroutines(t *testing.T) {
	checkLeaks(t)
	h := &testHandler{tb: t, data: echo}
	p := startNetpollTLS(t, h, Options{})
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	settled := func(n int) int {
		for len(conns) < n {
			c := dialTLS(t, p.Addr().String())
			conns = append(conns, c)
			msg := pattern(50, len(conns))
			if _, err := c.Write(msg); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(msg))
			c.SetReadDeadline(time.Now().Add(waitLimit))
			if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("echo: %v", err)
			}
		}
		// Workers and handshake goroutines end once idle; take the lowest
		// count seen over a while (not a timing assertion: the bound below
		// is compared, not the time).
		low := runtime.NumGoroutine()
		for i := 0; i < 50; i++ {
			time.Sleep(10 * time.Millisecond)
			low = min(low, runtime.NumGoroutine())
		}
		return low
	}
	few := settled(30)
	many := settled(300)
	if many-few > 20 {
		t.Fatalf("%d goroutines with 30 idle TLS connections, %d with 300: they grow with the connections", few, many)
	}
	t.Logf("goroutines: %d with 30 idle TLS connections, %d with 300", few, many)
}

// TestTLSHandshakeTimeout: a connection that sends nothing, or only part
// of a ClientHello, is closed at the handshake timeout and never opened.
func TestTLSHandshakeTimeout(t *testing.T) {
	checkLeaks(t)
	h := &testHandler{tb: t}
	p := startNetpollTLS(t, h, Options{TLSHandshakeTimeout: 100 * time.Millisecond})
	for _, first := range [][]byte{nil, {0x16, 0x03, 0x01, 0x01, 0x00, 0x01}} {
		c := dialTCP(t, p.Addr().String())
		if first != nil {
			if _, err := c.Write(first); err != nil {
				t.Fatal(err)
			}
		}
		c.SetReadDeadline(time.Now().Add(waitLimit))
		if n, err := c.Read(make([]byte, 64)); err == nil {
			t.Fatalf("read %d bytes, %v; want the connection closed", n, err)
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("the silent connection was not closed")
		}
		c.Close()
	}
	waitFor(t, "connections gone", func() bool { return p.Len() == 0 })
	if n := h.opened.Load(); n != 0 {
		t.Fatalf("%d connections opened", n)
	}
}

// TestTLSNotTLS: a peer that speaks something else gets an alert (or
// nothing) and is closed, never opened; the next TLS client is served.
func TestTLSNotTLS(t *testing.T) {
	checkLeaks(t)
	h := &testHandler{tb: t, data: echo}
	p := startNetpollTLS(t, h, Options{})
	c := dialTCP(t, p.Addr().String())
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(waitLimit))
	b, err := io.ReadAll(c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("not closed")
	}
	if len(b) > 0 && b[0] != 0x15 { // an alert record, if anything
		t.Fatalf("answered %q", b)
	}
	c.Close()
	tc := dialTLS(t, p.Addr().String())
	defer tc.Close()
	if _, err := tc.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 2)
	tc.SetReadDeadline(time.Now().Add(waitLimit))
	if _, err := io.ReadFull(tc, got); err != nil || string(got) != "hi" {
		t.Fatalf("echo %q, %v", got, err)
	}
	if n := h.opened.Load(); n != 1 {
		t.Fatalf("%d connections opened, want 1", n)
	}
}

// TestTLSBadRecord: a record that fails authentication closes the
// connection with crypto/tls's error (given to OnClose).
func TestTLSBadRecord(t *testing.T) {
	checkLeaks(t)
	closes := make(chan closeEvent, 1)
	h := &testHandler{tb: t, data: echo, closes: closes}
	p := startNetpollTLS(t, h, Options{})
	raw := dialTCP(t, p.Addr().String())
	defer raw.Close()
	tc := tls.Client(raw, clientTLS(t))
	tc.SetDeadline(time.Now().Add(waitLimit))
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	if _, err := tc.Write([]byte("ok")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(tc, make([]byte, 2)); err != nil {
		t.Fatal(err)
	}
	// An application-data record of 32 bytes of noise.
	bad := append([]byte{23, 3, 3, 0, 32}, bytes.Repeat([]byte{0x5a}, 32)...)
	if _, err := raw.Write(bad); err != nil {
		t.Fatal(err)
	}
	ev := recvClose(t, closes)
	if ev.err == nil || errors.Is(ev.err, io.EOF) {
		t.Fatalf("OnClose got %v, want the TLS error", ev.err)
	}
	t.Logf("OnClose: %v", ev.err)
	waitFor(t, "connection gone", func() bool { return p.Len() == 0 })
}

// TestTLSLargeMessages: messages larger than a TLS record, written in
// pieces and as one, arrive whole both ways (plaintext split over records
// and records split over reads).
func TestTLSLargeMessages(t *testing.T) {
	checkLeaks(t)
	h := &testHandler{tb: t, data: echo}
	p := startNetpollTLS(t, h, Options{})
	c := dialTLS(t, p.Addr().String())
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitLimit))
	for _, size := range []int{1, 16 << 10, 16<<10 + 1, 100 << 10, 1 << 20} {
		msg := pattern(size, size)
		errc := make(chan error, 1)
		go func() {
			for off := 0; off < len(msg); off += 7000 {
				if _, err := c.Write(msg[off:min(len(msg), off+7000)]); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
		got := make([]byte, size)
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("%d bytes: echo differs", size)
		}
	}
}

// TestAllocsTLSEcho: a message decrypted on the event loop, echoed,
// encrypted and written allocates no more than the same echo through a
// crypto/tls server reading a blocking socket (crypto/tls allocates per
// record read; netpoll allocates its hand-off, as for TCP; the TLS 1.3
// record layer nothing). The client is the same crypto/tls client in both,
// so the difference is the server's.
func TestAllocsTLSEcho(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	checkLeaks(t)
	msg := pattern(125, 1)
	measure := func(addr string) float64 {
		c := dialTLS(t, addr)
		defer c.Close()
		c.SetDeadline(time.Now().Add(waitLimit))
		got := make([]byte, len(msg))
		var err error
		round := func() {
			if _, err = c.Write(msg); err == nil {
				_, err = io.ReadFull(c, got)
			}
		}
		for i := 0; i < 100; i++ {
			round()
		}
		a := testing.AllocsPerRun(2000, round)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("echo: %v", err)
		}
		return a
	}
	p := startNetpollTLS(t, &benchHandler{data: echo}, Options{})
	ours := measure(p.Addr().String())

	ln, err := tls.Listen("tcp", "127.0.0.1:0", serverTLS(t))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc, err := ln.Accept()
		if err != nil {
			return
		}
		defer sc.Close()
		buf := make([]byte, 4096)
		for {
			n, err := sc.Read(buf)
			if err != nil {
				return
			}
			if _, err := sc.Write(buf[:n]); err != nil {
				return
			}
		}
	}()
	ref := measure(ln.Addr().String())
	ln.Close()
	<-done
	t.Logf("allocations per echoed message: %.2f on the event loop, %.2f with a blocking crypto/tls server", ours, ref)
	// The record layer that takes TLS 1.3 over allocates nothing per record
	// (see TestAllocsTLS13Records), where crypto/tls allocates per record
	// read: that makes up for netpoll's hand-off.
	if ours > ref {
		t.Errorf("%.2f allocations per message on the event loop, over the %.2f of a blocking crypto/tls server", ours, ref)
	}
}

// TestTLSVersionsAndCiphers: TLS 1.2 (explicit nonces, AES-GCM and
// ChaCha20-Poly1305) and TLS 1.3 records are decrypted and encrypted on the
// event loop alike, with messages crossing record boundaries.
func TestTLSVersionsAndCiphers(t *testing.T) {
	checkLeaks(t)
	h := &testHandler{tb: t, data: echo}
	p := startNetpollTLS(t, h, Options{})
	for _, tc := range []struct {
		name string
		cfg  func(*tls.Config)
	}{
		{"TLS 1.3", func(c *tls.Config) { c.MinVersion = tls.VersionTLS13 }},
		{"TLS 1.2 AES-GCM", func(c *tls.Config) {
			c.MaxVersion = tls.VersionTLS12
			c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
		}},
		{"TLS 1.2 ChaCha20-Poly1305", func(c *tls.Config) {
			c.MaxVersion = tls.VersionTLS12
			c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := clientTLS(t).Clone()
			tc.cfg(cfg)
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: waitLimit}, "tcp", p.Addr().String(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(waitLimit))
			for i, size := range []int{1, 300, 40 << 10} {
				msg := pattern(size, i)
				errc := make(chan error, 1)
				go func() { _, err := c.Write(msg); errc <- err }()
				got := make([]byte, size)
				if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
					t.Fatalf("%d bytes: %v", size, err)
				}
				if err := <-errc; err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestTLSInputBeforePeerClose: records that arrive while another goroutine
// is decrypting (here the handshake's, held in OnOpen) and that the peer
// follows with its close are still given to OnData, before OnClose, as a
// plain connection's input is.
func TestTLSInputBeforePeerClose(t *testing.T) {
	checkLeaks(t)
	sent := make(chan struct{})
	var got []byte
	h := &testHandler{tb: t, closes: make(chan closeEvent, 1)}
	h.open = func(c *Conn) {
		<-sent
		// Let netpoll see the bytes and the hang-up while OnOpen holds the
		// decryption (the outcome must not depend on how long this is).
		waitFor(t, "the peer's close", func() bool { return errors.Is(c.Write(nil, nil, true), ErrClosed) })
	}
	h.data = func(c *Conn, in []byte) int {
		got = append(got, in...)
		return len(in)
	}
	p := startNetpollTLS(t, h, Options{})
	c := dialTLS(t, p.Addr().String())
	if _, err := c.Write([]byte("last words")); err != nil {
		t.Fatal(err)
	}
	c.Close()
	close(sent)
	ev := recvClose(t, h.closes)
	if string(got) != "last words" {
		t.Fatalf("OnData got %q before OnClose(%v), want %q", got, ev.err, "last words")
	}
	if !errors.Is(ev.err, io.EOF) {
		t.Fatalf("OnClose(%v), want io.EOF", ev.err)
	}
}
