package peers_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/lesismal/nbio/logging"

	"github.com/networkcluster/networkcluster/loadtest/peers"
)

// ioTimeout bounds every blocking step of a test; no test asserts timing.
const ioTimeout = 20 * time.Second

var wsImpls = []string{peers.ImplGorilla, peers.ImplNbio, peers.ImplGobwas}

func TestMain(m *testing.M) {
	logging.SetLevel(logging.LevelNone) // nbio's engine start/stop lines
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// client is a gobwas client connection with a deadline on every operation.
type client struct {
	t  testing.TB
	nc net.Conn
	rw io.ReadWriter
}

func dial(t testing.TB, srv testServer, path string) *client {
	t.Helper()
	return dialAddr(t, srv.Addr(), path)
}

func dialAddr(t testing.TB, addr, path string) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	nc, br, _, err := ws.Dialer{}.Dial(ctx, "ws://"+addr+path)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(ioTimeout))
	c := &client{t: t, nc: nc, rw: nc}
	if br != nil {
		c.rw = struct {
			io.Reader
			io.Writer
		}{br, nc}
	}
	return c
}

func (c *client) send(op ws.OpCode, p []byte) {
	c.t.Helper()
	if err := wsutil.WriteClientMessage(c.nc, op, p); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *client) recv() ([]byte, ws.OpCode) {
	c.t.Helper()
	p, op, err := wsutil.ReadServerData(c.rw)
	if err != nil {
		c.t.Fatalf("recv: %v", err)
	}
	return p, op
}

// recvClose reads until the server's close frame and returns its code.
func (c *client) recvClose() ws.StatusCode {
	c.t.Helper()
	for i := 0; i < 100; i++ {
		h, err := ws.ReadHeader(c.rw)
		if err != nil {
			c.t.Fatalf("waiting for close: %v", err)
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(c.rw, p); err != nil {
			c.t.Fatalf("waiting for close: %v", err)
		}
		if h.OpCode == ws.OpClose {
			code, _ := ws.ParseCloseFrameData(p)
			return code
		}
	}
	c.t.Fatalf("no close frame in 100 frames")
	return 0
}

func (c *client) stats() peers.Stats {
	c.t.Helper()
	c.send(ws.OpBinary, []byte(peers.StatsQuery))
	p, op := c.recv()
	st, err := peers.ParseStats(p)
	if op != ws.OpBinary || err != nil {
		c.t.Fatalf("stats answer op=%v %q: %v", op, p, err)
	}
	return st
}

func payload(n int, seed byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = 'a' + (seed+byte(i))%26 // valid UTF-8 for text messages too
	}
	return p
}

func TestEcho(t *testing.T) {
	for _, impl := range wsImpls {
		t.Run(impl, func(t *testing.T) {
			srv := start(t, peers.Config{Impl: impl})
			c := dial(t, srv, "/connect?ignored=1&key=x")
			type msg struct {
				op ws.OpCode
				p  []byte
			}
			var sent []msg
			sizes := []int{0, 1, 64, 125, 126, 4095, 4096, 65535, 65536, 200_000}
			if impl == peers.ImplNbio {
				sizes = sizes[1:] // nbio drops empty data messages (PROTOCOL.md)
			}
			for i, n := range sizes {
				op := ws.OpText
				if i%2 == 1 {
					op = ws.OpBinary
				}
				sent = append(sent, msg{op, payload(n, byte(i))})
			}
			for _, m := range sent { // pipelined: all sent before any read
				c.send(m.op, m.p)
			}
			for i, m := range sent {
				p, op := c.recv()
				if op != m.op || !bytes.Equal(p, m.p) {
					t.Fatalf("message %d: got op %v len %d, want op %v len %d", i, op, len(p), m.op, len(m.p))
				}
			}
		})
	}
}

func TestEchoFragmentedAndPing(t *testing.T) {
	for _, impl := range wsImpls {
		t.Run(impl, func(t *testing.T) {
			srv := start(t, peers.Config{Impl: impl})
			c := dial(t, srv, "/connect")
			// "hello world" in three fragments with a ping in between.
			frames := []ws.Frame{
				ws.NewFrame(ws.OpText, false, []byte("hello")),
				ws.NewFrame(ws.OpContinuation, false, []byte(" ")),
				ws.NewPingFrame([]byte("p1")),
				ws.NewFrame(ws.OpContinuation, true, []byte("world")),
			}
			for _, f := range frames {
				if err := ws.WriteFrame(c.nc, ws.MaskFrame(f)); err != nil {
					t.Fatal(err)
				}
			}
			var pong, text bool
			for i := 0; i < 2; i++ { // the pong and the message, in either order
				h, err := ws.ReadHeader(c.rw)
				if err != nil {
					t.Fatal(err)
				}
				p := make([]byte, h.Length)
				if _, err := io.ReadFull(c.rw, p); err != nil {
					t.Fatal(err)
				}
				switch {
				case h.OpCode == ws.OpPong && string(p) == "p1":
					pong = true
				case h.OpCode == ws.OpText && h.Fin && string(p) == "hello world":
					text = true
				default:
					t.Fatalf("unexpected frame op %d fin %v %q", h.OpCode, h.Fin, p)
				}
			}
			if !pong || !text {
				t.Fatalf("pong %v, text %v: want both", pong, text)
			}
		})
	}
}

func TestMaxMessageSize(t *testing.T) {
	if testing.Short() {
		t.Skip("16 MiB messages")
	}
	for _, impl := range wsImpls {
		t.Run(impl, func(t *testing.T) {
			srv := start(t, peers.Config{Impl: impl})
			c := dial(t, srv, "/connect")
			big := payload(peers.MaxMessageSize, 7)
			c.send(ws.OpBinary, big)
			p, op := c.recv()
			if op != ws.OpBinary || !bytes.Equal(p, big) {
				t.Fatalf("echo of MaxMessageSize: op %v len %d", op, len(p))
			}
		})
	}
}

func TestBroadcastStatsAndClose(t *testing.T) {
	for _, impl := range wsImpls {
		t.Run(impl, func(t *testing.T) {
			srv := start(t, peers.Config{Impl: impl})
			const n = 4
			cs := make([]*client, n)
			for i := range cs {
				cs[i] = dial(t, srv, "/connect")
			}
			// Every connection is registered once its first echo returns.
			for _, c := range cs {
				c.send(ws.OpText, []byte("ready"))
				if p, _ := c.recv(); string(p) != "ready" {
					t.Fatalf("got %q", p)
				}
			}
			st := cs[0].stats()
			if st.Conns != n || st.Goroutines <= 0 || st.HeapInuse == 0 || st.RSS == 0 {
				t.Fatalf("stats %+v, want conns %d and non-zero figures", st, n)
			}
			// The settled query is answered the same way (after a GC), not echoed.
			cs[0].send(ws.OpBinary, []byte(peers.StatsSettledQuery))
			if p, op := cs[0].recv(); op != ws.OpBinary {
				t.Fatalf("settled stats answer op=%v", op)
			} else if st2, err := peers.ParseStats(p); err != nil || st2.Conns != n || st2.HeapInuse == 0 {
				t.Fatalf("settled stats %q: %+v %v", p, st2, err)
			}
			if got := srv.Conns(); got != n && got != -1 {
				t.Fatalf("Conns() = %d, want %d", got, n)
			}

			msg := append([]byte(peers.BroadcastPrefix), payload(1024, 3)...)
			cs[1].send(ws.OpBinary, msg)
			cs[1].send(ws.OpText, []byte("after")) // sender sees broadcast then this echo
			for i, c := range cs {
				p, op := c.recv()
				if op != ws.OpBinary || !bytes.Equal(p, msg) {
					t.Fatalf("client %d: got op %v %.20q, want the broadcast", i, op, p)
				}
			}
			if p, op := cs[1].recv(); op != ws.OpText || string(p) != "after" {
				t.Fatalf("sender: got op %v %q after the broadcast, want the echo (the trigger must not be echoed)", op, p)
			}

			// Client close: the server echoes the code (RFC 6455 5.5.1).
			cs[2].send(ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye"))
			if code := cs[2].recvClose(); code != ws.StatusNormalClosure {
				t.Fatalf("close reply code %d, want 1000", code)
			}

			// Shutdown: Going Away to the others, then EOF.
			ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			if err := srv.Shutdown(ctx); err != nil {
				t.Fatalf("second Shutdown: %v", err)
			}
			if code := cs[0].recvClose(); code != ws.StatusGoingAway {
				t.Fatalf("shutdown close code %d, want 1001", code)
			}
			if got := srv.Conns(); got != 0 && got != -1 {
				t.Fatalf("Conns() after Shutdown = %d", got)
			}
		})
	}
}

func TestInvalidUTF8AndTooBig(t *testing.T) {
	for _, impl := range []string{peers.ImplNbio, peers.ImplGobwas} { // gorilla does not check UTF-8
		t.Run(impl, func(t *testing.T) {
			srv := start(t, peers.Config{Impl: impl})
			c := dial(t, srv, "/connect")
			c.send(ws.OpText, []byte{0xff, 0xfe})
			if code := c.recvClose(); code != ws.StatusInvalidFramePayloadData && code != ws.StatusProtocolError {
				t.Fatalf("close code %d for invalid UTF-8", code)
			}
		})
	}
	for _, impl := range wsImpls {
		t.Run(impl+"/too-big", func(t *testing.T) {
			srv := start(t, peers.Config{Impl: impl})
			c := dial(t, srv, "/connect")
			// Only the header: the server must refuse on the declared length.
			h := ws.Header{Fin: true, OpCode: ws.OpBinary, Length: peers.MaxMessageSize + 1, Masked: true}
			if err := ws.WriteHeader(c.nc, h); err != nil {
				t.Fatal(err)
			}
			if code := c.recvClose(); code != ws.StatusMessageTooBig {
				t.Fatalf("close code %d, want 1009", code)
			}
		})
	}
}

func TestHandshakeRejects(t *testing.T) {
	for _, impl := range wsImpls {
		t.Run(impl, func(t *testing.T) {
			srv := start(t, peers.Config{Impl: impl})
			hc := &http.Client{Timeout: ioTimeout}
			for _, tc := range []struct {
				path string
				want int
			}{
				{"/other", http.StatusNotFound},
				{"/connect", http.StatusBadRequest}, // a GET that is no upgrade
			} {
				resp, err := hc.Get("http://" + srv.Addr() + tc.path)
				if err != nil {
					t.Fatalf("GET %s: %v", tc.path, err)
				}
				_ = resp.Body.Close()
				if resp.StatusCode != tc.want {
					t.Errorf("GET %s: status %d, want %d", tc.path, resp.StatusCode, tc.want)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
			defer cancel()
			_, _, _, err := ws.Dialer{}.Dial(ctx, "ws://"+srv.Addr()+"/nope")
			var sErr ws.StatusError
			if !errors.As(err, &sErr) || int(sErr) != http.StatusNotFound {
				t.Fatalf("upgrade at a wrong path: %v, want status 404", err)
			}
		})
	}
}

func TestCustomPath(t *testing.T) {
	for _, impl := range wsImpls {
		t.Run(impl, func(t *testing.T) {
			srv := start(t, peers.Config{Impl: impl, Path: "/ws/x"})
			c := dial(t, srv, "/ws/x")
			c.send(ws.OpText, []byte("hi"))
			if p, _ := c.recv(); string(p) != "hi" {
				t.Fatalf("got %q", p)
			}
		})
	}
}

func TestGobwasUnbuffered(t *testing.T) {
	srv := start(t, peers.Config{Impl: peers.ImplGobwas, GobwasReadBuffer: -1})
	c := dial(t, srv, "/connect")
	for _, n := range []int{0, 10, 126, 70_000} {
		p := payload(n, 1)
		c.send(ws.OpBinary, p)
		if got, _ := c.recv(); !bytes.Equal(got, p) {
			t.Fatalf("len %d: echo differs", n)
		}
	}
}

func TestRawTCP(t *testing.T) {
	before := runtime.NumGoroutine()
	srv, err := peers.Start(peers.Config{Impl: peers.ImplRawTCP})
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	for i := 0; i < 3; i++ {
		nc, err := net.DialTimeout("tcp", srv.Addr().String(), ioTimeout)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(ioTimeout))
		conns = append(conns, nc)
	}
	for i, nc := range conns {
		p := payload(10_000+i, byte(i))
		if _, err := nc.Write(p); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(p))
		if _, err := io.ReadFull(nc, got); err != nil || !bytes.Equal(got, p) {
			t.Fatalf("conn %d: echo differs (%v)", i, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(conns[0]).ReadByte(); err == nil {
		t.Fatal("connection still open after Shutdown")
	}
	waitGoroutines(t, before)
}

func TestNoGoroutineLeft(t *testing.T) {
	for _, impl := range []string{peers.ImplGorilla, peers.ImplGobwas} { // nbio keeps pools
		t.Run(impl, func(t *testing.T) {
			before := runtime.NumGoroutine()
			srv, err := peers.Start(peers.Config{Impl: impl})
			if err != nil {
				t.Fatal(err)
			}
			c := dialAddr(t, srv.Addr().String(), "/connect")
			c.send(ws.OpText, []byte("x"))
			c.recv()
			// A connection still in its handshake, too.
			half, err := net.DialTimeout("tcp", srv.Addr().String(), ioTimeout)
			if err != nil {
				t.Fatal(err)
			}
			defer half.Close()
			ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			_ = c.nc.Close()
			waitGoroutines(t, before)
		})
	}
}

// waitGoroutines waits (bounded) for the goroutine count to fall back to n.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	var got int
	for i := 0; i < 200; i++ {
		if got = runtime.NumGoroutine(); got <= n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	buf := make([]byte, 1<<16)
	t.Fatalf("%d goroutines left, want %d:\n%s", got, n, buf[:runtime.Stack(buf, true)])
}

func TestStartErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  peers.Config
		want error
	}{
		{peers.Config{Impl: "nope"}, peers.ErrUnknownImpl},
		{peers.Config{Impl: peers.ImplGorilla, Path: "connect"}, peers.ErrBadConfig},
		{peers.Config{Impl: peers.ImplGobwas, GobwasReadBuffer: 8}, peers.ErrBadConfig},
	} {
		if _, err := peers.Start(tc.cfg); !errors.Is(err, tc.want) {
			t.Errorf("Start(%+v) = %v, want %v", tc.cfg, err, tc.want)
		}
	}
	if _, err := peers.ParseStats([]byte("nope")); !errors.Is(err, peers.ErrNotStats) {
		t.Errorf("ParseStats: %v", err)
	}
}

// rawEcho checks that the raw TCP peer at addr echoes p.
func rawEcho(t testing.TB, addr string, p []byte) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := nc.Write(p); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(p))
	if _, err := io.ReadFull(nc, got); err != nil || !bytes.Equal(got, p) {
		t.Fatalf("raw echo %q, %v; want %q", got, err, p)
	}
}
