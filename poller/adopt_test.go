package poller

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
)

// adoptCase is a way to get an established server-side connection to give
// to Adopt, and the Poller to give it to.
var adoptCases = []struct {
	name   string
	poller func(tb testing.TB, h Handler) *Poller
	tls    bool
}{
	{"new-tcp", newPoller_, false},      // netpoll engine where there is one
	{"listen-tcp", listenPoller, false}, // a Poller with its own listener too
	{"serve-tcp", servePoller, false},   // goroutine engine
	{"new-tls", newPoller_, true},       // TLS: always a goroutine
}

func newPoller_(tb testing.TB, h Handler) *Poller {
	p, err := New(h, Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Close() })
	return p
}

func listenPoller(tb testing.TB, h Handler) *Poller { return startNetpoll(tb, h, Options{}) }
func servePoller(tb testing.TB, h Handler) *Poller  { return startServeTCP(tb, h, Options{}) }

// acceptPair returns the server and client ends of a real TCP (or TLS)
// connection on 127.0.0.1.
func acceptPair(tb testing.TB, useTLS bool) (server, client net.Conn) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	if useTLS {
		ln = tls.NewListener(ln, serverTLS(tb))
	}
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil && useTLS {
			err = c.(*tls.Conn).Handshake()
		}
		ch <- res{c, err}
	}()
	if useTLS {
		client = dialTLS(tb, ln.Addr().String())
	} else {
		client = dialTCP(tb, ln.Addr().String())
	}
	r := <-ch
	if r.err != nil {
		tb.Fatal(r.err)
	}
	return r.c, client
}

// TestAdopt gives Adopt a connection with input already read from it and
// input still in flight: OnOpen comes first, OnData sees the initial bytes
// then the rest in order, writes reach the peer, and a peer close ends in
// OnClose with io.EOF.
func TestAdopt(t *testing.T) {
	for _, ac := range adoptCases {
		t.Run(ac.name, func(t *testing.T) {
			checkLeaks(t)
			var got bytes.Buffer
			var addr net.Addr
			h := &testHandler{tb: t, closes: make(chan closeEvent, 1)}
			h.open = func(c *Conn) { addr = c.RemoteAddr() }
			h.data = func(c *Conn, in []byte) int {
				got.Write(in)
				return echo(c, in)
			}
			p := ac.poller(t, h)
			srv, cli := acceptPair(t, ac.tls)
			defer cli.Close()
			if _, err := cli.Write([]byte("world")); err != nil {
				t.Fatal(err)
			}
			if err := p.Adopt(srv, []byte("hello ")); err != nil {
				t.Fatal(err)
			}
			if p.Len() != 1 {
				t.Errorf("Len = %d after Adopt, want 1", p.Len())
			}
			want := "hello world"
			b := make([]byte, len(want))
			readFull(t, cli, b)
			if string(b) != want {
				t.Fatalf("echo %q, want %q", b, want)
			}
			big := pattern(1<<20, 7)
			go cli.Write(big)
			b = make([]byte, len(big))
			readFull(t, cli, b)
			if !bytes.Equal(b, big) {
				t.Fatal("1 MiB echo differs")
			}
			cli.Close()
			ev := recvClose(t, h.closes)
			if !errors.Is(ev.err, io.EOF) && !isReset(ev.err) {
				t.Errorf("OnClose err = %v, want io.EOF", ev.err)
			}
			if addr == nil || addr.String() != cli.LocalAddr().String() {
				t.Errorf("RemoteAddr = %v, want %v", addr, cli.LocalAddr())
			}
			if got.Len() != len(want)+len(big) {
				t.Errorf("OnData saw %d bytes, want %d", got.Len(), len(want)+len(big))
			}
			waitFor(t, "Len 0", func() bool { return p.Len() == 0 })
		})
	}
}

// TestAdoptServerCloseAfterFlush: a reply then CloseAfterFlush from the
// handler reaches the peer, followed by EOF (the write side is shut down).
func TestAdoptCloseAfterFlush(t *testing.T) {
	for _, ac := range adoptCases {
		t.Run(ac.name, func(t *testing.T) {
			checkLeaks(t)
			h := &testHandler{tb: t}
			h.data = func(c *Conn, in []byte) int {
				_ = c.Write([]byte("bye"), nil, false)
				c.CloseAfterFlush(0)
				return len(in)
			}
			p := ac.poller(t, h)
			srv, cli := acceptPair(t, ac.tls)
			defer cli.Close()
			if err := p.Adopt(srv, []byte("x")); err != nil {
				t.Fatal(err)
			}
			b, err := readToEOF(cli)
			if err != nil || string(b) != "bye" {
				t.Fatalf("read %q, %v; want \"bye\" then EOF", b, err)
			}
			cli.Close()
			waitFor(t, "Len 0", func() bool { return p.Len() == 0 })
		})
	}
}

// TestAdoptAfterClose: a closed Poller refuses (and closes) the connection.
func TestAdoptAfterClose(t *testing.T) {
	checkLeaks(t)
	p, err := New(&testHandler{tb: t}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.StopAccepting(); err != nil {
		t.Fatal(err)
	}
	p.Close()
	srv, cli := acceptPair(t, false)
	defer cli.Close()
	if err := p.Adopt(srv, nil); !errors.Is(err, ErrPollerClosed) {
		t.Fatalf("Adopt after Close = %v, want ErrPollerClosed", err)
	}
	if b, err := readToEOF(cli); err != nil || len(b) != 0 {
		t.Fatalf("peer read %q, %v; want EOF", b, err)
	}
}

// TestPollerCloseAdopted: Close closes adopted connections as its own.
func TestPollerCloseAdopted(t *testing.T) {
	for _, ac := range adoptCases {
		t.Run(ac.name, func(t *testing.T) {
			checkLeaks(t)
			h := &testHandler{tb: t, closes: make(chan closeEvent, 1)}
			p := ac.poller(t, h)
			srv, cli := acceptPair(t, ac.tls)
			defer cli.Close()
			if err := p.Adopt(srv, nil); err != nil {
				t.Fatal(err)
			}
			p.Close()
			if ev := recvClose(t, h.closes); !errors.Is(ev.err, ErrPollerClosed) {
				t.Errorf("OnClose err = %v, want ErrPollerClosed", ev.err)
			}
			if _, err := readToEOF(cli); err != nil {
				t.Fatalf("peer: %v, want EOF", err)
			}
		})
	}
}

// TestListenOn serves a listener the caller bound, TCP (netpoll on Linux)
// and TLS (goroutine engine).
func TestListenOn(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "tcp", true: "tls"}[useTLS], func(t *testing.T) {
			checkLeaks(t)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			if useTLS {
				ln = tls.NewListener(ln, serverTLS(t))
			}
			p, err := ListenOn(ln, &testHandler{tb: t, data: echo}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if p.Addr().String() != ln.Addr().String() {
				t.Errorf("Addr %v, want %v", p.Addr(), ln.Addr())
			}
			var c net.Conn
			if useTLS {
				c = dialTLS(t, p.Addr().String())
			} else {
				c = dialTCP(t, p.Addr().String())
			}
			defer c.Close()
			c.Write([]byte("ping"))
			b := make([]byte, 4)
			readFull(t, c, b)
			if string(b) != "ping" {
				t.Fatalf("echo %q", b)
			}
		})
	}
}
