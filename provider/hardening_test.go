package provider

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/frame"
	"github.com/networkcluster/networkcluster/internal/wstest"
)

// Upgrade requests that RFC 6455 and RFC 9110 make invalid get 400 and
// never an upgrade.
func TestHandshakeStrictHeaders(t *testing.T) {
	p, e, addr := start(t, Options{})
	req := func(extra ...string) string {
		return "GET /connect HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Version: 13\r\n" + strings.Join(extra, "\r\n") + "\r\n\r\n"
	}
	const good = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="
	if line, _ := rawHTTP(t, addr, req(good)); line != "HTTP/1.1 101 Switching Protocols" {
		t.Fatalf("valid request: %q", line)
	}
	cases := []struct{ name, req string }{
		{"key not base64", req("Sec-WebSocket-Key: not*base64*at*all*here==")},
		{"key of 15 bytes", req("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j")},
		{"key of 17 bytes", req("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZXg=")},
		{"key with stray low bits", req("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==")},
		{"key unpadded", req("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ")},
		{"key repeated", req(good, good)},
		{"key repeated, other case", req(good, "sec-websocket-key: AAAAAAAAAAAAAAAAAAAAAA==")},
		{"NUL in a value", req(good, "X-Note: a\x00b")},
		{"NUL in the key", req("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\x00")},
		{"control char in a value", req(good, "X-Note: a\x01b")},
		{"DEL in a value", req(good, "X-Note: a\x7fb")},
		{"lone LF in a value", req(good, "X-Note: a\nb")},
		{"lone CR in a value", req(good, "X-Note: a\rb")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			line, _ := rawHTTP(t, addr, tc.req)
			if line != "HTTP/1.1 400 Bad Request" {
				t.Fatalf("got %q, want 400", line)
			}
		})
	}
	// A tab inside a value is allowed.
	if line, _ := rawHTTP(t, addr, req(good, "X-Note: a\tb")); line != "HTTP/1.1 101 Switching Protocols" {
		t.Fatalf("tab in a value: %q", line)
	}
	if got, want := p.Stats().Rejected["bad_request"], uint64(len(cases)); got != want {
		t.Fatalf("Rejected[bad_request] = %d, want %d", got, want)
	}
	if n := e.nOpened(); n != 2 {
		t.Fatalf("%d connections opened, want 2", n)
	}
}

// A connection the heartbeat closed counts once in HeartbeatKills however
// long it takes to finish closing (here its OnMessage is still running).
func TestHeartbeatKillCountedOnce(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	o := Options{
		Heartbeat: Heartbeat{Interval: 20 * time.Millisecond, MaxStrikes: 1},
		OnMessage: func(c *Connection, m Message) {
			entered <- struct{}{}
			<-release
		},
	}
	p, e, addr := start(t, o)
	silent := dial(t, addr, "/connect") // never answers a ping
	if err := silent.WriteFrame(true, frame.OpText, []byte("block")); err != nil {
		t.Fatal(err)
	}
	<-entered
	e.wait(t, "the heartbeat kill", func(*events) bool { return p.Stats().HeartbeatKills > 0 })
	time.Sleep(300 * time.Millisecond) // 15 intervals
	close(release)
	e.wait(t, "OnClose", func(e *events) bool { return len(e.closes) == 1 })
	if n := p.Stats().HeartbeatKills; n != 1 {
		t.Fatalf("HeartbeatKills = %d for one connection", n)
	}
}

// Text is checked as a frame's payload arrives: the connection is failed
// with 1007 at the first invalid byte of a large frame whose rest is never
// sent, and nothing of the frame stays held.
func TestInvalidTextInPartialFrame(t *testing.T) {
	p, _, addr := start(t, Options{MaxPayloadLength: 4 << 20})
	c := dial(t, addr, "/connect")
	f := wstest.Frame(true, frame.OpText, 0, append([]byte("valid so far, then \xc0\xaf"), make([]byte, 2<<20)...))
	if err := c.Write(f[:64]); err != nil { // header, 20 valid bytes, the bad ones, a little more
		t.Fatal(err)
	}
	code, _, err := c.ExpectClose()
	if err != nil || code != frame.CloseInvalidPayload {
		t.Fatalf("close %v %v, want 1007", code, err)
	}
	if n := p.Stats().MemoryInUse; n != 0 {
		t.Fatalf("MemoryInUse %d after the failure", n)
	}
}

// A message that does not fit the Provider's memory budget closes its
// connection with 1013, counted in Stats; the budget is given back as
// messages are handled.
func TestMemoryBudgetClose(t *testing.T) {
	release := make(chan struct{})
	held := make(chan struct{}, 1)
	o := Options{
		MaxPayloadLength: 64 << 10,
		MemoryBudget:     64 << 10,
		OnMessage: func(c *Connection, m Message) {
			if len(m.Data) > 1000 {
				held <- struct{}{}
				<-release // holds its 40 KiB of the budget
			}
		},
	}
	p, e, addr := start(t, o)
	a := dial(t, addr, "/connect")
	b := dial(t, addr, "/connect")
	if err := a.WriteFrame(true, frame.OpBinary, make([]byte, 40<<10)); err != nil {
		t.Fatal(err)
	}
	<-held
	if n := p.Stats().MemoryInUse; n < 40<<10 {
		t.Fatalf("MemoryInUse %d while a 40 KiB message is handled", n)
	}
	if err := b.WriteFrame(true, frame.OpBinary, make([]byte, 40<<10)); err != nil {
		t.Fatal(err)
	}
	code, reason, err := b.ExpectClose()
	if err != nil || code != frame.CloseTryAgainLater || !strings.Contains(reason, "memory budget") {
		t.Fatalf("close %v %q %v, want 1013", code, reason, err)
	}
	close(release)
	// The first connection goes on.
	if err := a.WriteFrame(true, frame.OpText, []byte("small")); err != nil {
		t.Fatal(err)
	}
	e.wait(t, "the small message", func(e *events) bool { return p.Stats().MessagesIn == 2 })
	st := p.Stats()
	if st.BudgetCloses != 1 || st.ProtocolErrors != 0 {
		t.Fatalf("BudgetCloses %d, ProtocolErrors %d", st.BudgetCloses, st.ProtocolErrors)
	}
	e.wait(t, "the budget given back", func(*events) bool { return p.Stats().MemoryInUse == 0 })
}

// A connection whose handler queue is over MaxHandlerQueue is not read
// until its handler catches up: every message arrives, in order, and the
// peer (which answers pings) is not killed by the heartbeat meanwhile,
// although its pongs wait unread behind its messages.
func TestHandlerQueuePausesReading(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var got []string
	o := Options{
		MaxHandlerQueue: 16 << 10,
		Heartbeat:       Heartbeat{Interval: 50 * time.Millisecond},
		OnMessage: func(c *Connection, m Message) {
			mu.Lock()
			got = append(got, string(m.Data[:4]))
			mu.Unlock()
			if string(m.Data[:4]) == "0000" {
				<-release
			}
		},
	}
	p, e, addr := start(t, o)
	pr := newPeer(t, addr)
	msg := func(i int) []byte { return append([]byte(fmt.Sprintf("%04d", i)), make([]byte, 1020)...) }
	const sent = 60 // 60 KiB behind the blocked handler: over the queue, within what the poller holds
	for i := range sent {
		pr.write(frame.OpBinary, msg(i))
	}
	e.wait(t, "the pause", func(*events) bool { return p.Stats().ReadPauses == 1 })
	time.Sleep(500 * time.Millisecond) // 10 heartbeat intervals
	close(release)
	e.wait(t, "every message", func(*events) bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == sent
	})
	time.Sleep(200 * time.Millisecond) // more heartbeats after the pause
	mu.Lock()
	defer mu.Unlock()
	for i, s := range got {
		if s != fmt.Sprintf("%04d", i) {
			t.Fatalf("message %d is %q", i, s)
		}
	}
	if st := p.Stats(); st.HeartbeatKills != 0 || st.Closed != 0 || pr.closed.Load() {
		t.Fatalf("heartbeat kills %d, closed %d", st.HeartbeatKills, st.Closed)
	}
}

// A client that sends its upgrade request and half-closes while the auth
// handler runs gets its answer (101 or 403), then the close.
func TestHalfCloseDuringAuth(t *testing.T) {
	for _, accept := range []bool{true, false} {
		t.Run(fmt.Sprint("accept ", accept), func(t *testing.T) {
			o := Options{Auth: Auth{Handler: func(ctx context.Context, r *Handshake, _ url.Values) (bool, error) {
				time.Sleep(200 * time.Millisecond)
				return accept, nil
			}}}
			_, e, addr := start(t, o)
			conn := sendUpgradeRequest(t, addr)
			if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			resp, err := io.ReadAll(conn)
			if err != nil {
				t.Fatalf("read: %v (got %q)", err, resp)
			}
			want := "HTTP/1.1 403 Forbidden\r\n"
			if accept {
				want = "HTTP/1.1 101 Switching Protocols\r\n"
			}
			if !strings.HasPrefix(string(resp), want) {
				t.Fatalf("response %q, want %q", resp, want)
			}
			if n := e.nOpened(); n != 0 {
				t.Fatalf("%d connections opened", n)
			}
		})
	}
}
