package provider

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/compress"
	"github.com/networkcluster/networkcluster/frame"
	"github.com/networkcluster/networkcluster/internal/proto"
	"github.com/networkcluster/networkcluster/internal/wstest"
	"github.com/networkcluster/networkcluster/poller"
)

func TestOptionsDefaults(t *testing.T) {
	o, err := Options{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.Addr != ":8080" || o.Path != "/connect" || o.MaxPayloadLength != 32<<10 ||
		o.MaxBackpressure != 1<<20 || o.Heartbeat.Interval != 10*time.Second || o.Heartbeat.MaxStrikes != 2 {
		t.Fatalf("defaults: %+v", o)
	}
	// The rest of the defaults the README's table and the field comments state.
	if o.Network != "tcp" || o.Compressor != compress.Disabled || o.CompressionThreshold != compress.DefaultThreshold ||
		o.Backpressure != CloseOnBackpressure || o.Heartbeat.Mode != HeartbeatControlFrames ||
		o.Auth.MaxPending != 1024 || o.HandshakeTimeout != 10*time.Second || o.MaxHandshakeSize != 8<<10 ||
		o.CloseTimeout != 5*time.Second || o.PollLoops != 0 {
		t.Fatalf("defaults: %+v", o)
	}
}

func TestOptionsInvalid(t *testing.T) {
	for name, o := range map[string]Options{
		"bad addr":        {Addr: "nonsense"},
		"bad port":        {Addr: ":70000"},
		"network":         {Network: "udp"},
		"path":            {Path: "connect"},
		"path query":      {Path: "/c?x=1"},
		"alive path":      {Path: "/alive"},
		"payload":         {MaxPayloadLength: -1},
		"backpressure":    {MaxBackpressure: -5},
		"interval":        {Heartbeat: Heartbeat{Interval: time.Microsecond}},
		"strikes":         {Heartbeat: Heartbeat{MaxStrikes: -2}},
		"mode":            {Heartbeat: Heartbeat{Mode: 9}},
		"handshake size":  {MaxHandshakeSize: 10},
		"tls empty":       {TLS: &TLS{}},
		"policy":          {Backpressure: 7},
		"empty param key": {Auth: Auth{Parameters: map[string]string{"": "x"}}},
		"compressor":      {Compressor: 0x7fffffff},
	} {
		if _, err := New(o); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%s: err = %v, want ErrInvalidOptions", name, err)
		}
	}
}

func TestStartPort0AndClose(t *testing.T) {
	before, _ := goroutines()
	p, err := New(Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if p.Port() == 0 || p.Port() == 8080 {
		t.Fatalf("port %d", p.Port())
	}
	if err := p.Start(); !errors.Is(err, ErrAlreadyStarted) {
		t.Fatalf("second Start: %v", err)
	}
	p.Close()
	p.Close()
	if err := p.Start(); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Start after Close: %v", err)
	}
	checkNoLeak(t, before)
}

func TestHTTPResponses(t *testing.T) {
	p, _, addr := start(t, Options{})
	cases := []struct{ name, req, status string }{
		{"alive", "GET /alive HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 OK"},
		{"alive head", "HEAD /alive HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 OK"},
		{"alive post", "POST /alive HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 405 Method Not Allowed"},
		{"other path", "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 404 Not Found"},
		{"post", "POST /connect HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 405 Method Not Allowed"},
		{"plain get", "GET /connect HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 426 Upgrade Required"},
		{"garbage", "HELLO\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"no key", "GET /connect HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"version 8", "GET /connect HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n", "HTTP/1.1 426 Upgrade Required"},
		{"http/1.0", "GET /connect HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", "HTTP/1.1 505 HTTP Version Not Supported"},
		{"too large", "GET /connect HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 9000) + "\r\n\r\n", "HTTP/1.1 431 Request Header Fields Too Large"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			line, _ := rawHTTP(t, addr, tc.req)
			if line != tc.status {
				t.Fatalf("got %q, want %q", line, tc.status)
			}
		})
	}
	// Each refusal is counted under its RejectReason; /alive is not a refusal.
	want := map[string]uint64{"bad_request": 3, "not_found": 1, "method": 1, "upgrade": 2, "too_large": 1}
	got := p.Stats().Rejected
	for k, n := range want {
		if got[k] != n {
			t.Errorf("Rejected[%q] = %d, want %d (all: %v)", k, got[k], n, got)
		}
	}
}

func TestHandshakeTimeout(t *testing.T) {
	p, _, addr := start(t, Options{HandshakeTimeout: 150 * time.Millisecond})
	line, _ := rawHTTP(t, addr, "GET /connect HTTP/1.1\r\nHost: x\r\n") // never finished
	if line != "HTTP/1.1 408 Request Timeout" {
		t.Fatalf("got %q", line)
	}
	if got := p.Stats().Rejected["timeout"]; got != 1 {
		t.Fatalf("timeout rejections = %d", got)
	}
}

func TestEchoAndEvents(t *testing.T) {
	o := Options{}
	mustEcho(&o)
	p, e, addr := start(t, o)
	c := dial(t, addr, "/connect?key=v&meta=1")
	if got := c.Resp.Header.Get(proto.HeartbeatHeader); got != "10000" {
		t.Fatalf("heartbeat header %q", got)
	}
	e.wait(t, "open", func(e *events) bool { return len(e.opened) == 1 })
	conn := e.opened[0]
	if conn.Param("meta") != "1" || conn.IP() != "127.0.0.1" || len(conn.ID()) != 36 || conn.ID()[14] != '4' {
		t.Fatalf("connection: id %q ip %q params %v", conn.ID(), conn.IP(), conn.Parameters())
	}
	if got, ok := p.Connection(conn.ID()); !ok || got != conn || p.Len() != 1 {
		t.Fatal("lookup by id")
	}
	for _, msg := range []string{"hello", "", strings.Repeat("x", 20000), "héllo wörld"} {
		if err := c.WriteFrame(true, frame.OpText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		op, data, err := c.ReadMessage()
		if err != nil || op != frame.OpText || string(data) != msg {
			t.Fatalf("echo %d bytes: op %v len %d err %v", len(msg), op, len(data), err)
		}
	}
	bin := []byte{0, 1, 2, 255}
	c.WriteFrame(true, frame.OpBinary, bin)
	if op, data, err := c.ReadMessage(); err != nil || op != frame.OpBinary || !bytes.Equal(data, bin) {
		t.Fatalf("binary echo: %v %v %v", op, data, err)
	}
	c.WriteClose(frame.CloseNormal, "bye")
	if code, _, err := c.ExpectClose(); err != nil || code != frame.CloseNormal {
		t.Fatalf("close echo: %v %v", code, err)
	}
	if !c.WaitEOF() {
		t.Fatal("server did not close TCP after the close handshake")
	}
	c.Close()
	e.wait(t, "close", func(e *events) bool { return len(e.closes) == 1 })
	if cl := e.closes[0]; cl.code != frame.CloseNormal || cl.reason != "bye" {
		t.Fatalf("close event %v %q", cl.code, cl.reason)
	}
	if p.Len() != 0 {
		t.Fatal("connection still registered")
	}
	s := p.Stats()
	if s.Opened != 1 || s.Closed != 1 || s.MessagesIn != 5 || s.MessagesOut != 5 {
		t.Fatalf("stats %+v", s)
	}
}

func TestFrameInSamePacketAsHandshake(t *testing.T) {
	_, e, addr := start(t, Options{})
	early := append(wstest.Frame(true, frame.OpText, 0, []byte("early")), wstest.Frame(true, frame.OpText, 0, []byte("bird"))...)
	c, err := wstest.Dial(addr, "/connect", nil, early)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Resp.StatusCode != 101 {
		t.Fatalf("status %d", c.Resp.StatusCode)
	}
	e.wait(t, "two messages", func(e *events) bool { return len(e.messages) == 2 })
	if e.messages[0].data != "early" || e.messages[1].data != "bird" {
		t.Fatalf("messages %+v", e.messages)
	}
}

func TestFrameSplitAtEveryByte(t *testing.T) {
	_, e, addr := start(t, Options{})
	c := dial(t, addr, "/connect")
	// Two messages, the second fragmented with a ping in between.
	var stream []byte
	stream = append(stream, wstest.Frame(true, frame.OpText, 0, []byte("first message"))...)
	stream = append(stream, wstest.Frame(false, frame.OpBinary, 0, bytes.Repeat([]byte{7}, 300))...)
	stream = append(stream, wstest.Frame(true, frame.OpPing, 0, []byte("p"))...)
	stream = append(stream, wstest.Frame(true, frame.OpContinuation, 0, []byte("tail"))...)
	want := 0
	for cut := 1; cut < len(stream); cut += 1 + cut/64 {
		if err := c.Write(stream[:cut]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // let the first part arrive alone
		if err := c.Write(stream[cut:]); err != nil {
			t.Fatal(err)
		}
		want += 2
		e.wait(t, "messages", func(e *events) bool { return len(e.messages) == want })
		e.mu.Lock()
		last, first := e.messages[want-1], e.messages[want-2]
		e.mu.Unlock()
		if !last.bin || len(last.data) != 304 || !strings.HasSuffix(last.data, "tail") {
			t.Fatalf("cut %d: message %q", cut, last.data)
		}
		if first.data != "first message" {
			t.Fatalf("cut %d: %q", cut, first.data)
		}
	}
}

func TestProtocolErrors(t *testing.T) {
	cases := []struct {
		name  string
		bytes []byte
		code  frame.CloseCode
	}{
		{"unmasked", frame.AppendFrame(nil, true, frame.OpText, false, []byte("x")), frame.CloseProtocolError},
		{"rsv1 without extension", wstest.Frame(true, frame.OpText, 4, []byte("x")), frame.CloseProtocolError},
		{"rsv2", wstest.Frame(true, frame.OpText, 2, []byte("x")), frame.CloseProtocolError},
		{"reserved opcode", wstest.Frame(true, 3, 0, []byte("x")), frame.CloseProtocolError},
		{"reserved control opcode", wstest.Frame(true, 0xB, 0, nil), frame.CloseProtocolError},
		{"fragmented ping", wstest.Frame(false, frame.OpPing, 0, nil), frame.CloseProtocolError},
		{"long ping", wstest.Frame(true, frame.OpPing, 0, make([]byte, 126)), frame.CloseProtocolError},
		{"continuation first", wstest.Frame(true, frame.OpContinuation, 0, []byte("x")), frame.CloseProtocolError},
		{"new message mid-message", append(wstest.Frame(false, frame.OpText, 0, []byte("a")), wstest.Frame(true, frame.OpText, 0, []byte("b"))...), frame.CloseProtocolError},
		{"bad utf8", wstest.Frame(true, frame.OpText, 0, []byte{0xff}), frame.CloseInvalidPayload},
		{"bad utf8 in first fragment", wstest.Frame(false, frame.OpText, 0, []byte{'a', 0xc0, 0x80}), frame.CloseInvalidPayload},
		{"truncated utf8 at end", wstest.Frame(true, frame.OpText, 0, []byte{0xe2, 0x82}), frame.CloseInvalidPayload},
		{"too big", wstest.Frame(true, frame.OpBinary, 0, make([]byte, 32<<10+1)), frame.CloseTooBig},
		{"too big in fragments", append(wstest.Frame(false, frame.OpBinary, 0, make([]byte, 20<<10)), wstest.Frame(true, frame.OpContinuation, 0, make([]byte, 20<<10))...), frame.CloseTooBig},
		{"close 1 byte", wstest.Frame(true, frame.OpClose, 0, []byte{3}), frame.CloseProtocolError},
		{"close code 1005", wstest.Frame(true, frame.OpClose, 0, []byte{3, 0xed}), frame.CloseProtocolError},
		{"close code 999", wstest.Frame(true, frame.OpClose, 0, []byte{3, 0xe7}), frame.CloseProtocolError},
		{"close bad reason", wstest.Frame(true, frame.OpClose, 0, []byte{3, 0xe8, 0xff}), frame.CloseInvalidPayload},
	}
	_, e, addr := start(t, Options{})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, addr, "/connect")
			if err := c.Write(tc.bytes); err != nil {
				t.Fatal(err)
			}
			code, _, err := c.ExpectClose()
			if err != nil || code != tc.code {
				t.Fatalf("close code %v (err %v), want %v", code, err, tc.code)
			}
			c.WriteClose(code, "")
			if !c.WaitEOF() {
				t.Fatal("TCP not closed")
			}
		})
	}
	e.wait(t, "close events", func(e *events) bool { return len(e.closes) == len(cases) })
	if len(e.messages) != 0 {
		t.Fatalf("a bad frame was delivered: %+v", e.messages)
	}
}

func TestAuthParameters(t *testing.T) {
	p, e, addr := start(t, Options{Auth: Auth{Parameters: map[string]string{"key": "s3cret é"}}})
	for _, target := range []string{"/connect", "/connect?key=wrong", "/connect?key=s3cret", "/connect?key=s3cret+%C3%A9&key=s3cret+%C3%A9", "/connect?KEY=s3cret+%C3%A9"} {
		c, err := wstest.Dial(addr, target, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		body := make([]byte, 64)
		n, _ := c.Resp.Body.Read(body)
		if c.Resp.StatusCode != 403 || string(body[:n]) != "Unauthorized" {
			t.Fatalf("%s: %d %q", target, c.Resp.StatusCode, body[:n])
		}
		c.Close()
	}
	dial(t, addr, "/connect?key="+url.QueryEscape("s3cret é")+"&worker=7")
	e.wait(t, "open", func(e *events) bool { return len(e.opened) == 1 })
	if e.opened[0].Param("worker") != "7" {
		t.Fatal("metadata parameter lost")
	}
	if got := p.Stats().Rejected["auth"]; got != 5 {
		t.Fatalf("auth rejections %d", got)
	}
}

func TestAuthHandler(t *testing.T) {
	var seen atomic.Value
	release := make(chan struct{})
	o := Options{Auth: Auth{
		Parameters: map[string]string{"key": "k"},
		Handler: func(ctx context.Context, r *Handshake, params url.Values) (bool, error) {
			switch params.Get("who") {
			case "fast":
				seen.Store(r)
			case "slow":
				select { // blocks: the event loop must not stall
				case <-release:
				case <-ctx.Done():
				}
				return true, nil
			case "err":
				return true, errors.New("directory down")
			case "panic":
				panic("boom")
			case "no":
				return false, nil
			}
			return true, nil
		},
	}}
	_, e, addr := start(t, o)
	var releaseOnce sync.Once
	defer releaseOnce.Do(func() { close(release) })
	// A slow handler must not stop other connections.
	slowDone := make(chan *wstest.Client)
	go func() {
		c, err := wstest.Dial(addr, "/connect?key=k&who=slow", nil, wstest.Frame(true, frame.OpText, 0, []byte("queued")))
		if err != nil {
			t.Error(err)
		}
		slowDone <- c
	}()
	fast := dial(t, addr, "/connect?key=k&who=fast", "Authorization: Bearer abc")
	fast.WriteFrame(true, frame.OpText, []byte("fast"))
	e.wait(t, "fast message", func(e *events) bool { return len(e.messages) == 1 })
	if r := seen.Load().(*Handshake); r.Header.Get("Authorization") != "Bearer abc" || r.Path != "/connect" || r.Method != "GET" {
		t.Fatalf("request seen by handler: %+v", r)
	}
	for _, who := range []string{"err", "panic", "no"} {
		c, err := wstest.Dial(addr, "/connect?key=k&who="+who, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.Resp.StatusCode != 403 {
			t.Fatalf("%s: status %d", who, c.Resp.StatusCode)
		}
		c.Close()
	}
	releaseOnce.Do(func() { close(release) })
	slow := <-slowDone
	defer slow.Close()
	if slow.Resp.StatusCode != 101 {
		t.Fatalf("slow: %d", slow.Resp.StatusCode)
	}
	e.wait(t, "queued message", func(e *events) bool { return len(e.messages) == 2 })
	if e.messages[1].data != "queued" {
		t.Fatalf("early frame after slow auth: %+v", e.messages)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.errs) != 2 || !errors.Is(e.errs[0], ErrAuthFailed) {
		t.Fatalf("errors reported: %v", e.errs)
	}
}

func TestAuthBusy(t *testing.T) {
	block := make(chan struct{})
	entered := make(chan struct{}, 1)
	o := Options{Auth: Auth{MaxPending: 1, Handler: func(ctx context.Context, r *Handshake, _ url.Values) (bool, error) {
		entered <- struct{}{}
		select {
		case <-block:
		case <-ctx.Done():
		}
		return true, nil
	}}}
	_, _, addr := start(t, o)
	first := make(chan int)
	go func() {
		c, err := wstest.Dial(addr, "/connect", nil, nil)
		if err != nil {
			first <- 0
			return
		}
		defer c.Close()
		first <- c.Resp.StatusCode
	}()
	<-entered // the first handshake holds the only slot
	line, _ := rawHTTP(t, addr, string(wstest.Request(addr, "/connect")))
	if line != "HTTP/1.1 503 Service Unavailable" {
		t.Fatalf("got %q", line)
	}
	close(block)
	if got := <-first; got != 101 {
		t.Fatalf("first: %d", got)
	}
}

func TestHeartbeatRemovesSilentPeer(t *testing.T) {
	p, e, addr := start(t, Options{Heartbeat: Heartbeat{Interval: 40 * time.Millisecond, MaxStrikes: 2}})
	silent := dial(t, addr, "/connect")
	alive := dial(t, addr, "/connect")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // answers every ping
		defer wg.Done()
		for {
			h, payload, err := alive.ReadFrame()
			if err != nil {
				return
			}
			if h.Op == frame.OpPing {
				alive.WriteFrame(true, frame.OpPong, payload)
			}
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	e.wait(t, "silent peer removed", func(e *events) bool { return len(e.closes) == 1 })
	if cl := e.closes[0]; cl.code != frame.CloseAbnormal || !strings.Contains(cl.reason, "heartbeat") {
		t.Fatalf("close %v %q", cl.code, cl.reason)
	}
	if p.Len() != 1 || p.Stats().HeartbeatKills != 1 {
		t.Fatalf("len %d stats %+v", p.Len(), p.Stats())
	}
	_ = silent
	// The answering connection survives several more intervals.
	time.Sleep(300 * time.Millisecond)
	if p.Len() != 1 {
		t.Fatal("answering connection was removed")
	}
	for _, c := range p.Connections() {
		if time.Since(c.LastPing()) > 200*time.Millisecond {
			t.Fatalf("LastPing %v ago", time.Since(c.LastPing()))
		}
	}
	close(stop)
	alive.Close()
	wg.Wait()
}

func TestTextHeartbeat(t *testing.T) {
	o := Options{Heartbeat: Heartbeat{Interval: 30 * time.Millisecond, Mode: HeartbeatText}}
	p, e, addr := start(t, o)
	c := dial(t, addr, "/connect")
	if c.Resp.Header.Get(proto.HeartbeatHeader) != "" {
		t.Fatal("text mode announced the control-frame header")
	}
	op, data, err := c.ReadMessage()
	if err != nil || op != frame.OpText || string(data) != "PROVIDER_HEARTBEAT|30" {
		t.Fatalf("announcement %q %v", data, err)
	}
	for i := 0; i < 5; i++ {
		op, data, err = c.ReadMessage()
		if err != nil || string(data) != "PING" {
			t.Fatalf("ping %d: %q %v", i, data, err)
		}
		c.WriteFrame(true, frame.OpText, []byte("PONG"))
	}
	if p.Len() != 1 {
		t.Fatal("answering peer dropped")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.messages) != 0 {
		t.Fatalf("PONG delivered as a message: %+v", e.messages)
	}
}

func TestBackpressureClose(t *testing.T) {
	o := Options{MaxBackpressure: 64 << 10}
	p, e, addr := start(t, o)
	slow := dial(t, addr, "/connect")
	fast := dial(t, addr, "/connect")
	e.wait(t, "open", func(e *events) bool { return len(e.opened) == 2 })
	// The slow peer never reads: fill its socket buffers and queue.
	var sc *Connection
	for _, c := range p.Connections() {
		if c.RemoteAddr().String() == slow.Conn.LocalAddr().String() {
			sc = c
		}
	}
	msg := bytes.Repeat([]byte("x"), 16<<10)
	var err error
	for i := 0; i < 10000 && err == nil; i++ {
		err = sc.SendBinary(msg)
	}
	if !errors.Is(err, ErrBackpressure) {
		t.Fatalf("send error %v", err)
	}
	if err := sc.SendBinary(msg); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after backpressure close: %v", err)
	}
	// The other connection is unaffected.
	fast.WriteFrame(true, frame.OpText, []byte("still here"))
	e.wait(t, "message", func(e *events) bool { return len(e.messages) == 1 })
	if p.Stats().BackpressureCloses != 1 {
		t.Fatalf("stats %+v", p.Stats())
	}
	// Once the slow peer reads, it finds its data then the close frame.
	code, reason, err := slow.ExpectClose()
	if err != nil || code != frame.ClosePolicyViolation || reason != "max backpressure exceeded" {
		t.Fatalf("close %v %q %v", code, reason, err)
	}
}

func TestBackpressureRefuse(t *testing.T) {
	o := Options{MaxBackpressure: 64 << 10, Backpressure: RefuseOnBackpressure}
	p, e, addr := start(t, o)
	slow := dial(t, addr, "/connect")
	e.wait(t, "open", func(e *events) bool { return len(e.opened) == 1 })
	sc := p.Connections()[0]
	msg := bytes.Repeat([]byte("y"), 16<<10)
	sent := 0
	var err error
	for i := 0; i < 10000; i++ {
		if err = sc.SendBinary(msg); err != nil {
			break
		}
		sent++
	}
	if !errors.Is(err, ErrBackpressure) || sc.State() != StateOpen {
		t.Fatalf("err %v state %v", err, sc.State())
	}
	// Read everything: every accepted message arrives, and sending works again.
	for i := 0; i < sent; i++ {
		if _, data, err := slow.ReadMessage(); err != nil || len(data) != len(msg) {
			t.Fatalf("message %d/%d: %v", i, sent, err)
		}
	}
	if err := sc.SendBinary([]byte("again")); err != nil {
		t.Fatal(err)
	}
	if _, data, _ := slow.ReadMessage(); string(data) != "again" {
		t.Fatalf("got %q", data)
	}
	if p.Stats().BackpressureRefusals == 0 {
		t.Fatal("refusal not counted")
	}
}

// A single message larger than MaxBackpressure is accepted when nothing is
// queued (Options.MaxBackpressure), under the default close policy too.
func TestBackpressureOversizeOnEmptyQueue(t *testing.T) {
	o := Options{MaxBackpressure: 4 << 10, Heartbeat: Heartbeat{Mode: HeartbeatOff}}
	p, e, addr := start(t, o)
	c := dial(t, addr, "/connect")
	e.wait(t, "open", func(e *events) bool { return len(e.opened) == 1 })
	sc := e.opened[0]
	// The upgrade response has reached the client; wait until the queue
	// has accounted for its write too.
	for i := 0; sc.Buffered() != 0; i++ {
		if i == 5000 {
			t.Fatalf("upgrade response still queued: %d bytes", sc.Buffered())
		}
		time.Sleep(time.Millisecond)
	}
	msg := bytes.Repeat([]byte("z"), 64<<10)
	if err := sc.SendBinary(msg); err != nil {
		t.Fatalf("oversize message on an empty queue: %v", err)
	}
	if _, data, err := c.ReadMessage(); err != nil || !bytes.Equal(data, msg) {
		t.Fatalf("got %d bytes, %v", len(data), err)
	}
	if sc.State() != StateOpen || p.Stats().BackpressureCloses != 0 {
		t.Fatalf("state %v, stats %+v", sc.State(), p.Stats())
	}
}

// A connection in its closing handshake is still counted by Len and found by
// Connection, but no longer listed by Connections.
func TestClosingConnectionLookup(t *testing.T) {
	p, e, addr := start(t, Options{Heartbeat: Heartbeat{Mode: HeartbeatOff}})
	c := dial(t, addr, "/connect")
	e.wait(t, "open", func(e *events) bool { return len(e.opened) == 1 })
	conn := e.opened[0]
	if err := conn.Close(4000, "bye"); err != nil {
		t.Fatal(err)
	}
	// The client has not answered the close frame: the connection waits
	// for it (CloseTimeout, 5 s by default).
	if got, ok := p.Connection(conn.ID()); !ok || got != conn || got.State() != StateClosing {
		t.Fatalf("Connection(id) = %v, %v (state %v)", got, ok, conn.State())
	}
	if p.Len() != 1 || len(p.Connections()) != 0 || p.Stats().Connections != 1 {
		t.Fatalf("Len %d, Connections %d, Stats.Connections %d", p.Len(), len(p.Connections()), p.Stats().Connections)
	}
	code, _, err := c.ExpectClose()
	if err != nil || code != 4000 {
		t.Fatalf("close %v %v", code, err)
	}
	c.WriteClose(code, "")
	if !c.WaitEOF() {
		t.Fatal("no TCP close")
	}
	c.Close()
	e.wait(t, "close", func(e *events) bool { return len(e.closes) == 1 })
	if _, ok := p.Connection(conn.ID()); ok || p.Len() != 0 {
		t.Fatalf("closed connection still found; Len %d", p.Len())
	}
}

func TestServerClose(t *testing.T) {
	p, e, addr := start(t, Options{})
	c := dial(t, addr, "/connect")
	e.wait(t, "open", func(e *events) bool { return len(e.opened) == 1 })
	conn := e.opened[0]
	if err := conn.Close(1005, ""); err == nil {
		t.Fatal("1005 accepted")
	}
	conn.Send("last words")
	conn.Close(4001, "job done")
	if _, data, _ := c.ReadMessage(); string(data) != "last words" {
		t.Fatalf("queued message lost: %q", data)
	}
	code, reason, err := c.ExpectClose()
	if code != 4001 || reason != "job done" || err != nil {
		t.Fatalf("%v %q %v", code, reason, err)
	}
	if err := conn.Send("x"); !errors.Is(err, ErrClosed) {
		t.Fatalf("send while closing: %v", err)
	}
	c.WriteClose(code, "")
	if !c.WaitEOF() {
		t.Fatal("no TCP close")
	}
	c.Close()
	e.wait(t, "close", func(e *events) bool { return len(e.closes) == 1 })
	if e.closes[0].code != 4001 {
		t.Fatal(e.closes[0])
	}
	_ = p
}

// Provider.Close closes every connection without a closing handshake:
// OnClose reports 1006 before Close returns, sends fail with ErrClosed, and
// the client sees the TCP connection end with no close frame.
func TestCloseReports1006(t *testing.T) {
	p, e, addr := start(t, Options{Heartbeat: Heartbeat{Mode: HeartbeatOff}})
	c := dial(t, addr, "/connect")
	e.wait(t, "open", func(e *events) bool { return len(e.opened) == 1 })
	conn := e.opened[0]
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	closes := append([]closed(nil), e.closes...)
	e.mu.Unlock()
	if len(closes) != 1 || closes[0].code != frame.CloseAbnormal {
		t.Fatalf("OnClose when Close returned: %+v", closes)
	}
	if err := conn.Send("x"); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after Close: %v", err)
	}
	h, _, err := c.ReadFrame()
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("after Close: frame %+v, error %v; want the connection's end", h, err)
	}
}

func TestPeerVanishes(t *testing.T) {
	_, e, addr := start(t, Options{})
	c := dial(t, addr, "/connect")
	e.wait(t, "open", func(e *events) bool { return len(e.opened) == 1 })
	c.Close()
	e.wait(t, "close", func(e *events) bool { return len(e.closes) == 1 })
	if e.closes[0].code != frame.CloseAbnormal {
		t.Fatalf("code %v", e.closes[0].code)
	}
}

func TestManyConnections(t *testing.T) {
	const n = 1000
	o := Options{}
	mustEcho(&o)
	p, _, addr := start(t, o)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := wstest.Dial(addr, "/connect", nil, nil)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			if c.Resp.StatusCode != 101 {
				errs <- fmt.Errorf("status %d", c.Resp.StatusCode)
				return
			}
			for j := 0; j < 5; j++ {
				msg := fmt.Sprintf("conn %d msg %d", i, j)
				c.WriteFrame(true, frame.OpText, []byte(msg))
				if _, data, err := c.ReadMessage(); err != nil || string(data) != msg {
					errs <- fmt.Errorf("conn %d: %q %v", i, data, err)
					return
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if s := p.Stats(); s.Opened != n || s.MessagesIn != 5*n {
		t.Fatalf("stats %+v", s)
	}
}

func TestShutdown(t *testing.T) {
	before, _ := goroutines()
	o := Options{Addr: "127.0.0.1:0"}
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	addr := p.Addr().String()
	var clients []*wstest.Client
	for i := 0; i < 5; i++ {
		clients = append(clients, dial(t, addr, "/connect"))
	}
	for p.Len() < 5 {
		time.Sleep(time.Millisecond)
	}
	for _, c := range p.Connections() {
		for i := 0; i < 3; i++ {
			c.Send(fmt.Sprintf("queued %d", i))
		}
	}
	done := make(chan error)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- p.Shutdown(ctx)
	}()
	for _, c := range clients {
		for i := 0; i < 3; i++ {
			if _, data, err := c.ReadMessage(); err != nil || string(data) != fmt.Sprintf("queued %d", i) {
				t.Fatalf("queued message: %q %v", data, err)
			}
		}
		code, _, err := c.ExpectClose()
		if err != nil || code != frame.CloseGoingAway {
			t.Fatalf("close %v %v", code, err)
		}
		c.WriteClose(code, "")
		if !c.WaitEOF() {
			t.Fatal("no TCP close after the close handshake")
		}
		c.Close() // as a client does once the server closed
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Fatal("still accepting after Shutdown")
	}
	p.Shutdown(context.Background())
	p.Close()
	for _, c := range clients {
		c.Close()
	}
	checkNoLeak(t, before)
}

// An upgrade that an Auth.Handler accepted opens the connection off the event
// loop; OnMessage for a frame that arrives meanwhile must still come after
// OnOpen, never before it or alongside it. OnStateChange holds the moment the
// state turns open, and the client sends a frame right then.
func TestAuthHandlerOpenBeforeMessage(t *testing.T) {
	var (
		mu    sync.Mutex
		early []string
		ev    atomic.Pointer[events]
	)
	sendNow := make(chan struct{})
	delivered := make(chan struct{}, 1)
	var once sync.Once
	o := Options{
		Auth: Auth{Handler: func(context.Context, *Handshake, url.Values) (bool, error) { return true, nil }},
		OnMessage: func(c *Connection, m Message) {
			e := ev.Load()
			e.mu.Lock()
			opened := len(e.opened) == 1 && e.opened[0] == c
			e.mu.Unlock()
			if !opened {
				mu.Lock()
				early = append(early, string(m.Data))
				mu.Unlock()
			}
			select {
			case delivered <- struct{}{}:
			default:
			}
		},
		OnStateChange: func(c *Connection, s State) {
			if s != StateOpen {
				return
			}
			once.Do(func() {
				close(sendNow)
				// Give the frame the chance to overtake OnOpen (bounded:
				// no message at all is the correct outcome).
				select {
				case <-delivered:
				case <-time.After(time.Second):
				}
			})
		},
	}
	_, e, addr := start(t, o)
	ev.Store(e)
	conn := sendUpgradeRequest(t, addr)
	<-sendNow
	if _, err := conn.Write(wstest.Frame(true, frame.OpText, 0, []byte("hello"))); err != nil {
		t.Fatal(err)
	}
	e.wait(t, "open", func(e *events) bool { return len(e.opened) == 1 })
	mu.Lock()
	defer mu.Unlock()
	if len(early) != 0 {
		t.Fatalf("OnMessage before OnOpen: %q", early)
	}
}

// RFC 6455 §5.5.1: after sending a close frame an endpoint sends no more
// data frames. Sends racing with Close must either be queued before the
// close frame or fail; none may follow it on the wire.
func TestNoDataAfterCloseFrame(t *testing.T) {
	_, e, addr := start(t, Options{
		MaxPayloadLength: 1 << 20,
		MaxBackpressure:  64 << 20,
		Backpressure:     RefuseOnBackpressure,
		Heartbeat:        Heartbeat{Mode: HeartbeatOff},
	})
	msg := strings.Repeat("é", 32<<10) // valid UTF-8 that takes a while to check
	for round := 0; round < 20; round++ {
		cl := dial(t, addr, "/connect")
		e.wait(t, "open", func(e *events) bool { return len(e.opened) == round+1 })
		e.mu.Lock()
		c := e.opened[round]
		e.mu.Unlock()
		var wg sync.WaitGroup
		sent := make(chan struct{}, 64)
		for g := 0; g < 2; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for c.Send(msg) == nil {
					select {
					case sent <- struct{}{}:
					default:
					}
				}
			}()
		}
		<-sent
		c.Close(frame.CloseNormal, "bye")
		wg.Wait()
		sawClose := false
		for {
			h, _, err := cl.ReadFrame()
			if err != nil {
				t.Fatalf("round %d: %v before the close frame", round, err)
			}
			if h.Op == frame.OpClose {
				sawClose = true
				// Read on briefly: whatever follows the close frame is
				// already queued behind it.
				cl.WriteClose(frame.CloseNormal, "")
				for {
					h, _, err := cl.ReadFrame()
					if err != nil {
						break
					}
					if !h.Op.IsControl() {
						t.Fatalf("round %d: data frame (%v) after the close frame", round, h.Op)
					}
				}
				break
			}
		}
		if !sawClose {
			t.Fatal("no close frame")
		}
		cl.Close()
	}
}

// An upgrade request that arrives on an accepted connection once Shutdown has
// begun is answered 503 and counted as "busy" (Provider.Shutdown).
func TestShutdownRefusesUpgrade(t *testing.T) {
	p, e, addr := start(t, Options{Heartbeat: Heartbeat{Mode: HeartbeatOff}})
	ws := dial(t, addr, "/connect") // keeps Shutdown waiting until it answers
	e.wait(t, "open", func(e *events) bool { return len(e.opened) == 1 })
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	armed := func() bool { // OnOpen armed its handshake deadline
		p.dlMu.Lock()
		defer p.dlMu.Unlock()
		return len(p.deadlines) == 1
	}
	for i := 0; p.liveConns() < 2 || !armed(); i++ { // accepted and opened before Shutdown begins
		if i == 5000 {
			t.Fatal("raw connection not accepted")
		}
		time.Sleep(time.Millisecond)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- p.Shutdown(ctx)
	}()
	if code, _, err := ws.ExpectClose(); err != nil || code != frame.CloseGoingAway {
		t.Fatalf("close %v %v", code, err)
	} // Shutdown has begun
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := raw.Write(wstest.Request(addr, "/connect")); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(raw).ReadString('\n')
	if err != nil || line != "HTTP/1.1 503 Service Unavailable\r\n" {
		t.Fatalf("response %q %v", line, err)
	}
	ws.WriteClose(frame.CloseGoingAway, "")
	if !ws.WaitEOF() {
		t.Fatal("no TCP close")
	}
	ws.Close()
	raw.Close()
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if got := p.Stats().Rejected["busy"]; got != 1 {
		t.Fatalf("busy rejections %d", got)
	}
}

// A connection whose auth handler finishes after Shutdown began is not in
// the snapshot Shutdown closes with 1001; it must still be closed with
// 1001, not left open until the context ends.
func TestShutdownDuringAuth(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	o := Options{Auth: Auth{Handler: func(ctx context.Context, _ *Handshake, params url.Values) (bool, error) {
		if params.Get("slow") != "" {
			entered <- struct{}{}
			<-release
		}
		return true, nil
	}}}
	p, _, addr := start(t, o)
	first := dial(t, addr, "/connect")
	slowc := make(chan *wstest.Client, 1)
	go func() {
		c, err := wstest.Dial(addr, "/connect?slow=1", nil, nil)
		if err != nil {
			t.Error(err)
		}
		slowc <- c
	}()
	<-entered
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- p.Shutdown(ctx)
	}()
	// The first connection's 1001 shows that Shutdown took its snapshot.
	if code, _, err := first.ExpectClose(); err != nil || code != frame.CloseGoingAway {
		t.Fatalf("first: close %v %v", code, err)
	}
	first.WriteClose(frame.CloseGoingAway, "")
	first.WaitEOF()
	first.Close()
	close(release)
	slow := <-slowc
	if slow == nil {
		t.FailNow()
	}
	defer slow.Close()
	if slow.Resp.StatusCode == 101 {
		code, _, err := slow.ExpectClose()
		if err != nil || code != frame.CloseGoingAway {
			t.Fatalf("slow: close %v %v", code, err)
		}
		slow.WriteClose(frame.CloseGoingAway, "")
		slow.WaitEOF()
	}
	slow.Close()
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// Once a request was refused, the connection only lingers until the peer
// closes; what the peer sends meanwhile is not another request. An upgrade
// request sent after a 404 must not open the connection (it would close
// with OnClose but no OnOpen, and Stats.Closed above Stats.Opened).
func TestNoUpgradeAfterRefusal(t *testing.T) {
	opened := make(chan struct{}, 1)
	p, e, addr := start(t, Options{OnStateChange: func(c *Connection, s State) {
		if s == StateOpen {
			select {
			case opened <- struct{}{}:
			default:
			}
		}
	}})
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, _ := io.ReadAll(conn) // the 404, then EOF: the server shut its write side
	if !strings.HasPrefix(string(resp), "HTTP/1.1 404 ") {
		t.Fatalf("response %q", resp)
	}
	if _, err := conn.Write(wstest.Request(addr, "/connect")); err != nil {
		t.Fatal(err)
	}
	select { // bounded: nothing at all is the correct outcome
	case <-opened:
	case <-time.After(time.Second):
	}
	conn.Close()
	for p.liveConns() > 0 {
		select {
		case <-e.notify:
		case <-time.After(5 * time.Millisecond):
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if s := p.Stats(); len(e.opened) != 0 || len(e.closes) != 0 || s.Opened != 0 || s.Closed != 0 {
		t.Fatalf("opened %d, closed %d, stats %+v", len(e.opened), len(e.closes), s)
	}
}

// Close may close a connection while its request is being upgraded. The
// connection then either opens (OnOpen, later OnClose) or never does
// (neither); OnClose without OnOpen would leave Stats.Closed above
// Stats.Opened.
func TestCloseDuringUpgrade(t *testing.T) {
	var once sync.Once
	closed := make(chan struct{})
	p, e, addr := start(t, Options{OnStateChange: func(c *Connection, s State) {
		if s != StateOpen {
			return
		}
		once.Do(func() {
			go func() { c.p.Close(); close(closed) }()
			// Wait (bounded) until Close reached the connection.
			for i := 0; i < 2000 && !errors.Is(c.pc.Write(nil, nil, true), poller.ErrClosed); i++ {
				time.Sleep(time.Millisecond)
			}
		})
	}})
	sendUpgradeRequest(t, addr)
	<-closed
	e.mu.Lock()
	defer e.mu.Unlock()
	if s := p.Stats(); len(e.closes) != len(e.opened) || s.Opened != s.Closed {
		t.Fatalf("OnOpen %d, OnClose %d, stats %+v", len(e.opened), len(e.closes), s)
	}
}

// A request completed just as the handshake deadline passes is either
// refused with 408 or upgraded, and an upgraded connection stays open: the
// handshake deadline must not close it as if it had missed a close deadline.
// OnStateChange holds the moment the state turns open until the deadline
// has passed.
func TestHandshakeDeadlineMeetsUpgrade(t *testing.T) {
	var once sync.Once
	o := Options{HandshakeTimeout: 50 * time.Millisecond, OnStateChange: func(c *Connection, s State) {
		if s != StateOpen {
			return
		}
		once.Do(func() {
			// Bounded: the deadline passing without effect is correct.
			for i := 0; i < 1000 && !errors.Is(c.pc.Write(nil, nil, true), poller.ErrClosed); i++ {
				time.Sleep(time.Millisecond)
			}
		})
	}}
	mustEcho(&o)
	_, _, addr := start(t, o)
	c := dial(t, addr, "/connect")
	if err := c.WriteFrame(true, frame.OpText, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	if _, data, err := c.ReadMessage(); err != nil || string(data) != "still here" {
		t.Fatalf("echo %q %v", data, err)
	}
}

// TestCloseReasonNotUTF8: a close reason must be UTF-8 (RFC 6455 §5.5.1),
// or the peer fails the connection with 1007: Close refuses it and the
// connection stays open.
func TestCloseReasonNotUTF8(t *testing.T) {
	_, e, addr := start(t, Options{})
	c := dial(t, addr, "/connect")
	e.wait(t, "open", func(e *events) bool { return len(e.opened) == 1 })
	conn := e.opened[0]
	if err := conn.Close(4000, "bad \xff reason"); !errors.Is(err, ErrInvalidUTF8) {
		t.Fatalf("Close with a bad reason = %v, want ErrInvalidUTF8", err)
	}
	if err := conn.SendText([]byte("still open")); err != nil {
		t.Fatal(err)
	}
	if op, data, err := c.ReadMessage(); err != nil || op != frame.OpText || string(data) != "still open" {
		t.Fatalf("after the refused Close: %v %q %v", op, data, err)
	}
	if err := conn.Close(4000, "fine"); err != nil {
		t.Fatal(err)
	}
	if code, reason, err := c.ExpectClose(); err != nil || code != 4000 || reason != "fine" {
		t.Fatalf("close frame: %v %q %v", code, reason, err)
	}
}

// TestAuthHandlerPastDeadline: an auth handler still running at the
// handshake deadline is a timeout, counted once, whether the handler honours
// its context (returning its error) or ignores it and refuses late; it is
// not an auth failure and OnError is not told.
func TestAuthHandlerPastDeadline(t *testing.T) {
	for _, honour := range []bool{true, false} {
		t.Run(fmt.Sprintf("honours ctx %v", honour), func(t *testing.T) {
			var reported atomic.Int64
			o := Options{
				HandshakeTimeout: 150 * time.Millisecond,
				OnError:          func(error) { reported.Add(1) },
				Auth: Auth{Handler: func(ctx context.Context, _ *Handshake, _ url.Values) (bool, error) {
					if honour {
						<-ctx.Done()
						return false, ctx.Err()
					}
					time.Sleep(600 * time.Millisecond)
					return false, nil
				}},
			}
			p, _, addr := start(t, o)
			line, _ := rawHTTP(t, addr, string(wstest.Request(addr, "/connect")))
			if line != "" && line != "HTTP/1.1 408 Request Timeout" {
				t.Fatalf("got %q, want 408 or a closed connection", line)
			}
			time.Sleep(700 * time.Millisecond) // a late handler has returned
			st := p.Stats()
			if st.Rejected["timeout"] != 1 || st.Rejected["auth"] != 0 || reported.Load() != 0 {
				t.Fatalf("rejected %v, OnError told %d times; want one timeout", st.Rejected, reported.Load())
			}
		})
	}
}
