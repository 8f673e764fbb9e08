package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/compress"
	"github.com/networkcluster/networkcluster/frame"
)

func TestParseResponse(t *testing.T) {
	key := "dGhlIHNhbXBsZSBub25jZQ=="
	accept := acceptKey(key)
	if accept != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" { // RFC 6455 §1.3
		t.Fatalf("acceptKey = %q", accept)
	}
	ok := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n\r\n"
	cases := []struct {
		name     string
		resp     string
		offered  bool
		complete bool
		wantErr  error
		status   int
	}{
		{"ok", ok, false, true, nil, 0},
		{"ok with frame after", ok + "\x81\x00", false, true, nil, 0},
		{"partial", ok[:20], false, false, nil, 0},
		{"forbidden", "HTTP/1.1 403 Forbidden\r\nContent-Length: 12\r\n\r\nUnauthorized", false, true, ErrHandshake, 403},
		{"bad accept", strings.Replace(ok, accept, "AAAA", 1), false, true, ErrHandshake, 0},
		{"no upgrade", strings.Replace(ok, "Upgrade: websocket\r\n", "", 1), false, true, ErrHandshake, 0},
		{"connection list", strings.Replace(ok, "Connection: Upgrade", "Connection: keep-alive, upgrade", 1), false, true, nil, 0},
		{"extension not offered", strings.Replace(ok, "\r\n\r\n", "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n", 1), false, true, ErrHandshake, 0},
		{"extension offered", strings.Replace(ok, "\r\n\r\n", "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n", 1), true, true, nil, 0},
		{"subprotocol", strings.Replace(ok, "\r\n\r\n", "\r\nSec-WebSocket-Protocol: chat\r\n\r\n", 1), false, true, ErrHandshake, 0},
		{"bad status line", "HTTP/1.1 10\r\n\r\n", false, false, ErrHandshake, 0},
		{"not http", "SSH-2.0-OpenSSH\r\n\r\n", false, false, ErrHandshake, 0},
		{"bad header", "HTTP/1.1 101 OK\r\nno colon\r\n\r\n", false, false, ErrHandshake, 0},
		{"too big", "HTTP/1.1 101 OK\r\n" + strings.Repeat("X: y\r\n", 3000), false, false, ErrHandshake, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, complete, err := parseResponse([]byte(c.resp))
			if err == nil && complete {
				_, err = checkUpgrade(&r, key, c.offered)
			}
			if complete != c.complete && err == nil {
				t.Fatalf("complete = %v, want %v", complete, c.complete)
			}
			if !errors.Is(err, c.wantErr) || (c.wantErr == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, c.wantErr)
			}
			var he *handshakeError
			if c.status != 0 && (!errors.As(err, &he) || he.Status != c.status) {
				t.Fatalf("err = %v, want status %d", err, c.status)
			}
			if c.name == "ok with frame after" && r.n != len(ok) {
				t.Fatalf("head size %d, want %d", r.n, len(ok))
			}
		})
	}
}

func TestAppendRequest(t *testing.T) {
	req := appendRequest(nil, "127.0.0.1:80", "/connect?key=a%20b", "KEY", "permessage-deflate")
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(req)))
	if err != nil {
		t.Fatal(err)
	}
	if r.Method != "GET" || r.RequestURI != "/connect?key=a%20b" || r.Host != "127.0.0.1:80" ||
		r.Header.Get("Sec-WebSocket-Key") != "KEY" || r.Header.Get("Sec-WebSocket-Version") != "13" ||
		r.Header.Get("Sec-WebSocket-Extensions") != "permessage-deflate" || r.URL.Query().Get("key") != "a b" {
		t.Fatalf("request %+v", r)
	}
}

// mirror is a raw TCP echo on 127.0.0.1, the shape of the rawtcp peer.
func mirror(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(struct{ io.Writer }{c}, c)
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func rawOptions(addr string) *clientOptions {
	o := baseClient()
	o.Addr, o.Raw = addr, true
	return &o
}

// TestClientRawAllocs: a message written and read back through the client
// allocates nothing once the buffers have grown.
func TestClientRawAllocs(t *testing.T) {
	addr := mirror(t)
	c, err := dialConn(testCtx(t, 10*time.Second), rawOptions(addr), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := make([]byte, 64)
	round := func() {
		stampBinary(msg, 42)
		if err := c.write(frame.OpBinary, msg); err != nil {
			t.Fatal(err)
		}
		op, p, err := c.next()
		if err != nil || op != frame.OpBinary || len(p) != 64 {
			t.Fatalf("next: %v %v %d", op, err, len(p))
		}
		if ts, ok := unstampBinary(p); !ok || ts != 42 {
			t.Fatalf("stamp %d %v", ts, ok)
		}
	}
	round()
	if n := testing.AllocsPerRun(200, round); n != 0 {
		t.Fatalf("a round trip allocates %v times", n)
	}
}

// TestClientRawSizes sends messages that are larger than the read buffer
// and that straddle its end.
func TestClientRawSizes(t *testing.T) {
	addr := mirror(t)
	c, err := dialConn(testCtx(t, 10*time.Second), rawOptions(addr), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, n := range []int{0, 1, 125, 126, 4000, 4096, 4097, 70000, 3000, 5000} {
		msg := bytes.Repeat([]byte{byte(n)}, n)
		if err := c.write(frame.OpBinary, msg); err != nil {
			t.Fatal(err)
		}
		_, p, err := c.next()
		if err != nil || !bytes.Equal(p, msg) {
			t.Fatalf("size %d: err %v, got %d bytes", n, err, len(p))
		}
	}
}

// fakeServer accepts one connection, answers the upgrade and then writes
// frames; it returns what the client sent back after them.
func fakeServer(t *testing.T, frames []byte, extHeader string) (addr string, got <-chan []byte) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan []byte, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer ln.Close()
		c, err := ln.Accept()
		if err != nil {
			ch <- nil
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			ch <- nil
			return
		}
		resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
			acceptKey(req.Header.Get("Sec-WebSocket-Key")) + "\r\n" + extHeader + "\r\n"
		_, _ = c.Write(append([]byte(resp), frames...))
		b, _ := io.ReadAll(br)
		ch <- b
	}()
	t.Cleanup(wg.Wait)
	return ln.Addr().String(), ch
}

func wsOptions(addr string) *clientOptions {
	o := baseClient()
	o.Addr, o.Host, o.RequestURI = addr, addr, "/connect"
	return &o
}

// TestClientControl: pings are answered with pongs, the text heartbeat
// with PONG, and a close frame is echoed.
func TestClientControl(t *testing.T) {
	var fr []byte
	fr = frame.AppendFrame(fr, true, frame.OpText, false, []byte(textHeartbeatPrefix+"10000"))
	fr = frame.AppendFrame(fr, true, frame.OpPing, false, []byte("hi"))
	fr = frame.AppendFrame(fr, true, frame.OpText, false, []byte(textPing))
	fr = frame.AppendFrame(fr, false, frame.OpBinary, false, []byte("ab"))
	fr = frame.AppendFrame(fr, true, frame.OpContinuation, false, []byte("cd"))
	fr = frame.AppendCloseFrame(fr, frame.CloseGoingAway, "bye")
	addr, got := fakeServer(t, fr, "")
	c, err := dialConn(testCtx(t, 10*time.Second), wsOptions(addr), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	op, p, err := c.next()
	if err != nil || op != frame.OpBinary || string(p) != "abcd" {
		t.Fatalf("next = %v %q %v", op, p, err)
	}
	_, _, err = c.next()
	var ce *frame.CloseError
	if !errors.As(err, &ce) || ce.Code != frame.CloseGoingAway || ce.Reason != "bye" {
		t.Fatalf("close: %v", err)
	}
	back := <-got
	want := []struct {
		op      frame.Opcode
		payload string
	}{{frame.OpPong, "hi"}, {frame.OpText, textPong}, {frame.OpClose, "\x03\xe9"}}
	for _, w := range want {
		h, n, _, err := frame.ParseHeader(back, frame.ParseOptions{})
		if err != nil || n == 0 || h.Op != w.op || !h.Masked {
			t.Fatalf("client sent %v (masked %v, err %v), want %v", h.Op, h.Masked, err, w.op)
		}
		pl := bytes.Clone(back[n : n+int(h.Length)])
		frame.Mask(pl, h.Mask, 0)
		if string(pl) != w.payload {
			t.Fatalf("%v payload %q, want %q", h.Op, pl, w.payload)
		}
		back = back[n+int(h.Length):]
	}
}

// TestClientProtocolErrors: a server that breaks RFC 6455 gets the right
// close code.
func TestClientProtocolErrors(t *testing.T) {
	masked := frame.AppendMaskedFrame(nil, true, frame.OpBinary, false, []byte("x"), [4]byte{1, 2, 3, 4})
	cases := []struct {
		name   string
		frames []byte
		code   frame.CloseCode
	}{
		{"masked from server", masked, frame.CloseProtocolError},
		{"bad utf8", frame.AppendFrame(nil, true, frame.OpText, false, []byte{0xff}), frame.CloseInvalidPayload},
		{"rsv1 without deflate", frame.AppendFrame(nil, true, frame.OpBinary, true, []byte("x")), frame.CloseProtocolError},
		{"reserved opcode", []byte{0x83, 0x00}, frame.CloseProtocolError},
		{"continuation first", frame.AppendFrame(nil, true, frame.OpContinuation, false, nil), frame.CloseProtocolError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr, got := fakeServer(t, tc.frames, "")
			c, err := dialConn(testCtx(t, 10*time.Second), wsOptions(addr), nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, _, err = c.next()
			if !errors.Is(err, ErrProtocol) || frame.CloseStatus(err) != tc.code {
				t.Fatalf("err = %v, want ErrProtocol with %v", err, tc.code)
			}
			back := <-got
			h, n, _, err := frame.ParseHeader(back, frame.ParseOptions{})
			if err != nil || h.Op != frame.OpClose || n == 0 {
				t.Fatalf("no close frame sent back: %v %v", h.Op, err)
			}
			pl := bytes.Clone(back[n : n+int(h.Length)])
			frame.Mask(pl, h.Mask, 0)
			if code, _, _ := frame.ParseClose(pl); code != tc.code {
				t.Fatalf("closed with %v, want %v", code, tc.code)
			}
		})
	}
}

// TestClientDeflate: the client inflates what a server compressed and
// rejects a negotiation it did not ask for.
func TestClientDeflate(t *testing.T) {
	cfg := compress.NewConfig(compress.SharedCompressor, compress.Params{ServerNoContextTakeover: true, ClientNoContextTakeover: true}, true)
	comp := compress.NewCompressor(cfg)
	msg := bytes.Repeat([]byte("hello deflate "), 100)
	z, err := comp.Compress(nil, msg)
	if err != nil {
		t.Fatal(err)
	}
	fr := frame.AppendFrame(nil, true, frame.OpText, true, z)
	addr, got := fakeServer(t, fr, "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n")
	o := wsOptions(addr)
	o.Preset = compress.DedicatedCompressor | compress.DedicatedDecompressor
	c, err := dialConn(testCtx(t, 10*time.Second), o, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Deflate() {
		t.Fatal("deflate not negotiated")
	}
	op, p, err := c.next()
	if err != nil || op != frame.OpText || !bytes.Equal(p, msg) {
		t.Fatalf("next: %v %v %d bytes", op, err, len(p))
	}
	if err := c.write(frame.OpText, msg); err != nil {
		t.Fatal(err)
	}
	c.CloseNormal()
	c.releaseRead()
	back := <-got
	h, n, _, err := frame.ParseHeader(back, frame.ParseOptions{AllowRSV1: true})
	if err != nil || !h.Rsv1() || int(h.Length) >= len(msg) {
		t.Fatalf("client message not compressed: rsv1 %v len %d err %v", h.Rsv1(), h.Length, err)
	}
	pl := bytes.Clone(back[n : n+int(h.Length)])
	frame.Mask(pl, h.Mask, 0)
	dec := compress.NewDecompressor(cfg)
	out, err := dec.Decompress(nil, pl, 0)
	if err != nil || !bytes.Equal(out, msg) {
		t.Fatalf("server side inflate: %v", err)
	}

	// Not offered: the same answer fails the handshake.
	addr2, _ := fakeServer(t, nil, "Sec-WebSocket-Extensions: permessage-deflate\r\n")
	if _, err := dialConn(testCtx(t, 10*time.Second), wsOptions(addr2), nil, 0); !errors.Is(err, ErrHandshake) {
		t.Fatalf("unrequested extension: %v", err)
	}
}

func TestDialRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := dialConn(ctx, wsOptions(addr), nil, 0); err == nil {
		t.Fatal("dial to a closed port succeeded")
	}
}

func BenchmarkClientRawRoundTrip(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(struct{ io.Writer }{c}, c)
	}()
	c, err := dialConn(context.Background(), rawOptions(ln.Addr().String()), nil, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	msg := make([]byte, 64)
	b.ReportAllocs()
	for b.Loop() {
		if err := c.write(frame.OpBinary, msg); err != nil {
			b.Fatal(err)
		}
		if _, _, err := c.next(); err != nil {
			b.Fatal(err)
		}
	}
}
